"""What a run leaves behind: metrics.json, PNG plots, TensorBoard hparams.

Every run metric (``lifelong.metrics.RUN_METRICS``) contributes its figures to
metrics.json (``metric.report()``) and its PNGs (``metric.save_plots(run_dir)``); the run
adds ``experience_names``, ``scenario`` and ``params`` (total, trainable, active per
token). docs/running.md
lists the keys. Nothing in it depends on the machine's speed, so runs with the same seed
write the same file (the wall time goes to ``run.json``).
"""

import json
from pathlib import Path

from omegaconf import OmegaConf
from torch import nn


def active_params_per_token(model: nn.Module) -> int:
    """Parameters one token touches: every parameter of the model, except that a layer with
    ``active_params_per_token()`` (every growing layer) counts only what it uses per token."""
    total, counted = 0, set()
    for module in model.modules():
        if callable(getattr(module, "active_params_per_token", None)) and not any(
            id(p) in counted for p in module.parameters()
        ):
            total += module.active_params_per_token()
            counted.update(id(p) for p in module.parameters())
    return total + sum(p.numel() for p in model.parameters() if id(p) not in counted)


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """{"total", "trainable", "active_per_token"}: every parameter (all grown stages and
    heads), those that still train, and what one token uses (``active_params_per_token``)."""
    params = list(model.parameters())
    return {
        "total": sum(p.numel() for p in params),
        "trainable": sum(p.numel() for p in params if p.requires_grad),
        "active_per_token": active_params_per_token(model),
    }


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


def write_report(run_dir: Path, *, cfg, exp, writer) -> dict:
    """Write metrics.json (and, per ``cfg.log``, the PNGs and the TensorBoard hparams) from
    the run's metrics; returns what metrics.json holds."""
    result = {}
    for metric in exp.metrics.values():
        result.update(metric.report())
    result.update(
        experience_names=list(exp.spec.experience_names),
        scenario=exp.spec.scenario,
        params=parameter_counts(exp.model),
    )
    (run_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")

    if cfg.log.png:
        for metric in exp.metrics.values():
            metric.save_plots(run_dir)

    if writer is not None:
        from torch.utils.tensorboard.summary import hparams

        flat = {**result, **{f"params_{k}": v for k, v in result["params"].items()}}
        scalars = {f"final/{k}": v for k, v in flat.items() if isinstance(v, (int, float))}
        for part in hparams(_flat_hparams(cfg), scalars):
            writer.file_writer.add_summary(part)
        step = exp.strategy.clock.train_exp_counter
        for key, value in scalars.items():
            writer.add_scalar(key, value, step)
        writer.flush()
    return result
