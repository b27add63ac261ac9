"""What a run leaves behind: metrics.json, PNG plots, TensorBoard hparams and final figures.

Every run metric (``lifelong.metrics.RUN_METRICS``) contributes its figures to
metrics.json (``metric.report()``) and its PNGs (``metric.save_plots(run_dir,
experience_names)``); the run adds ``experience_names``, ``scenario`` and ``params``
(total, trainable, active per token). docs/running.md lists the keys. Nothing in it
depends on the machine's speed, so runs with the same seed write the same file (the wall
time goes to ``run.json``).

TensorBoard gets every number of metrics.json as ``lifelong/final/<key>`` at the last
step, the hyper-parameters against them (hparams.py) and a table of experience names.
"""

import json
from pathlib import Path

from torch import nn

from ..atomic import atomic_write_text
from ..layers.sharded_peer import whole_sizes
from .hparams import hparams_summaries, run_hparams


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
    whole = whole_sizes(model)  # sharded experts: every rank's rows, not this rank's

    def size(p):
        return whole.get(id(p), p.numel())

    return {
        "total": sum(size(p) for p in params),
        "trainable": sum(size(p) for p in params if p.requires_grad),
        "active_per_token": active_params_per_token(model),
    }


FINAL = "lifelong/final"  # the tag prefix of the final figures, the hparams tab's metrics
EXPERIENCE_NAMES = "lifelong/experience_names"  # a text summary: Exp{j:03} -> name


def final_scalars(result: dict) -> dict[str, float]:
    """{``lifelong/final/<key>``: value} of every number in ``result`` (metrics.json), the
    parameter counts as ``params_<key>``."""
    flat = {**result, **{f"params_{k}": v for k, v in result["params"].items()}}
    return {
        f"{FINAL}/{k}": v
        for k, v in flat.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def experience_table(names) -> str:
    """Markdown table of the experiences' ids (as the tags write them) and names."""
    cells = [str(name).replace("|", "\\|") for name in names]  # a "|" would end the cell
    rows = [f"| Exp{j:03d} | {cell} |" for j, cell in enumerate(cells)]
    return "\n".join(["| tag | experience |", "|---|---|", *rows])


def write_report(run_dir: Path, *, cfg, exp, writer) -> dict:
    """Write metrics.json (and, per ``cfg.log``, the PNGs and the TensorBoard hparams) from
    the run's metrics; returns what metrics.json holds."""
    result = {}
    for metric in exp.metrics.values():
        result.update(metric.report())
    names = list(exp.spec.experience_names)
    result.update(
        experience_names=names,
        scenario=exp.spec.scenario,
        params=parameter_counts(exp.model),
    )
    atomic_write_text(run_dir / "metrics.json", json.dumps(result, indent=2) + "\n")

    if cfg.log.png:
        for metric in exp.metrics.values():
            metric.save_plots(run_dir, experience_names=names)

    if writer is not None:
        scalars = final_scalars(result)
        hparams = run_hparams(cfg, len(exp.spec.benchmark.train_stream))
        for part in hparams_summaries(hparams, list(scalars)):
            writer.file_writer.add_summary(part)
        step = exp.strategy.clock.train_exp_counter
        for key, value in scalars.items():
            writer.add_scalar(key, value, step)
        writer.add_text(EXPERIENCE_NAMES, experience_table(names), step)
        writer.flush()
    return result


PNG_END = b"IEND\xaeB`\x82"  # the last chunk of every complete PNG


def report_complete(run_dir: Path, info_name: str = "run.json") -> bool:
    """Whether a finished run's report is whole: run.json (written last) parses and every
    file it lists exists and is complete (JSON that parses, PNGs that end)."""
    try:
        listed = json.loads((run_dir / info_name).read_text())["report"]
        for name in listed:
            data = (run_dir / name).read_bytes()
            if name.endswith(".json"):
                json.loads(data)
            elif name.endswith(".png") and not data.endswith(PNG_END):
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True
