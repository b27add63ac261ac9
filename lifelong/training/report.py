"""What a run leaves behind: metrics.json, PNG plots, TensorBoard hparams.

metrics.json keys (matrices as lists of rows, indexed [trained_through][evaluated_on]):
- classification: ``accuracy_matrix``, ``average_accuracy``;
  language modelling: ``perplexity_matrix``, ``perplexity`` (mean over the stream's
  experiences after the last one);
- ``forgetting``, ``bwt``, ``fwt`` (BRIEF §4; for perplexity, forgetting is the rise);
- ``expert_usage``, ``kl_nonuniformity``: over the final evaluation of the whole test
  stream, averaged over expert layers (None without expert layers), and per layer and per
  stage under ``expert_layers``;
- ``experience_names``, ``scenario``, ``active_params_per_token``.

Nothing in it depends on the machine's speed, so runs with the same seed write the same
file (the wall time goes to ``run.json``).
"""

import json
from pathlib import Path

from omegaconf import OmegaConf
from torch import nn

from ..metrics import curves_png, matrix_png, usage_grid, usage_png


def active_params_per_token(model: nn.Module) -> int:
    """Parameters one token touches: every parameter of the model, except that an expert
    layer (anything with ``active_params_per_token()``: PEER, PKM, the MoEs) counts only
    what it uses per token instead of all its parameters."""
    total, counted = 0, set()
    for module in model.modules():
        if callable(getattr(module, "active_params_per_token", None)) and not any(
            id(p) in counted for p in module.parameters()
        ):
            total += module.active_params_per_token()
            counted.update(id(p) for p in module.parameters())
    return total + sum(p.numel() for p in model.parameters() if id(p) not in counted)


def _flat_hparams(cfg) -> dict:
    flat = {}

    def walk(node, prefix):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, name + ".")
            elif isinstance(value, (int, float, str, bool)):
                flat[name] = value
            else:
                flat[name] = str(value)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _expert_figures(usage) -> dict:
    """Stream-summed usage and KL of the final evaluation, averaged over expert layers."""
    per_layer = usage.latest_overall()
    return {
        "expert_usage": _mean(v["usage"] for v in per_layer.values()),
        "kl_nonuniformity": _mean(v["kl"] for v in per_layer.values()),
        "expert_layers": per_layer,
    }


def write_report(run_dir: Path, *, cfg, spec, matrix, usage, model, writer) -> dict:
    lm = spec.task == "lm"
    summary = matrix.summary() or {"average": None, "forgetting": None, "bwt": None, "fwt": None}
    result = {
        ("perplexity_matrix" if lm else "accuracy_matrix"): matrix.matrix,
        # The mean over the whole stream after the last training (BRIEF §4); also right for
        # joint training, whose matrix is a single row.
        ("perplexity" if lm else "average_accuracy"): _mean(matrix.matrix[-1])
        if matrix.matrix
        else None,
        "forgetting": summary["forgetting"],
        "bwt": summary["bwt"],
        "fwt": summary["fwt"],
        ("initial_perplexity" if lm else "initial_accuracy"): matrix.initial,
        **_expert_figures(usage),
        "experience_names": list(spec.experience_names),
        "scenario": spec.scenario,
        "active_params_per_token": active_params_per_token(model),
    }
    (run_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")

    if cfg.log.png:
        kind = "perplexity" if lm else "accuracy"
        matrix_png(matrix.matrix, run_dir / f"{kind}_matrix.png", title=f"{kind} matrix",
                   higher_is_better=not lm)  # fmt: skip
        curves_png(matrix.matrix, run_dir / "forgetting_curves.png")
        for record in _final_masses(usage):
            if record["num_sub_keys"]:  # product-key layers: the √N×√N grid of keys
                grid = usage_grid(record["mass"], record["num_sub_keys"])
                usage_png(grid, run_dir / f"usage_{record['layer'].replace('.', '_')}.png")

    if writer is not None:
        from torch.utils.tensorboard.summary import hparams

        scalars = {f"final/{k}": v for k, v in result.items() if isinstance(v, (int, float))}
        for part in hparams(_flat_hparams(cfg), scalars):
            writer.file_writer.add_summary(part)
        for key, value in scalars.items():
            writer.add_scalar(key, value, len(matrix.matrix))
        writer.flush()
    return result


def _final_masses(usage) -> list[dict]:
    """The usage mass of each layer summed over the last evaluation of the stream."""
    if not usage.history:
        return []
    last = max(r["trained"] for r in usage.history)
    merged: dict[str, dict] = {}
    for r in usage.history:
        if r["trained"] != last:
            continue
        if r["layer"] in merged:
            merged[r["layer"]]["mass"] += r["mass"]  # same eval: the layer did not grow
        else:
            merged[r["layer"]] = {
                "layer": r["layer"],
                "num_sub_keys": r["num_sub_keys"],
                "mass": r["mass"].clone(),
            }
    return list(merged.values())
