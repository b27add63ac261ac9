"""Re-evaluate a run from its checkpoint:
``lifelong eval RUN_DIR [stream=test|train] [routing=run|oracle|posterior]
[stream.key=value ...]``.

The model is rebuilt from the run's ``config.yaml``, grown the way the run grew it (by
replaying the adaptation over its finished experiences) and loaded from ``checkpoint.pt``
with weights-only deserialisation. It is then scored on every experience of the run's
test stream, or of another stream when ``stream.*`` overrides are given (e.g. more test
sequences, other files, another permutation seed). Accuracy and perplexity are defined as
in ``ExperienceMatrix``, so on the run's own stream the result equals the last row of
its matrix. ``stream=train`` scores the training split instead (how much of its own
training data the model still fits, the other half of a forgetting study).
``routing=oracle`` scores a run with inferred routing as if every sample's experience
were known (each routed to its own stage, as training routed it): against the run's own
routing, the cost of inferring the stage, on the same weights (eval_routing-oracle.json).
``routing=posterior`` (language models) predicts every byte with all the stages, mixed by
how well each predicted the bytes before it (``lifelong.models.stage_mixture``).
"""

import json
import re
from contextlib import nullcontext
from pathlib import Path

import torch
from avalanche.models.utils import avalanche_forward
from omegaconf import OmegaConf

from ..atomic import atomic_write_text
from ..config import load_config
from ..data.in_order import in_order
from ..experiment import build_experiment, build_stream_from_config, resolve_device
from ..metrics.matrix_metric import batch_score, row_average, score_value
from ..models.growing import GrowingExperts, routed_as_trained
from ..models.stage_mixture import stage_mixture_log_probs
from .checkpoint import CHECKPOINT, CheckpointError, load_checkpoint
from .identity import check_fingerprint, load_weights
from .run_state import grow_like_checkpoint
from .shards import one_process_state

SPLITS = {"test": "test_stream", "train": "train_stream"}  # stream=... -> Avalanche stream
# routing=...: the run's own; each experience's stage (oracle); the language model's stages
# mixed by their posterior given the prefix (lifelong.models.stage_mixture)
ROUTINGS = ("run", "oracle", "posterior")
ROUTED = {
    "run": "",
    "oracle": ", every sample routed to its own experience's stage (oracle)",
    "posterior": ", every byte predicted by the stages mixed by their posterior given the "
    "bytes before it (E forward passes)",
}
EVAL_FILES = {"test": "eval.json", "train": "eval_train.json"}


def eval_file(split: str, changed: dict) -> str:
    """eval.json / eval_train.json for the run's own stream; with stream options changed,
    a file named by them (eval_seed-1.json), so no scoring of another stream overwrites
    the run's own."""
    if not changed:
        return EVAL_FILES[split]
    tag = "_".join(f"{k}-{v}" for k, v in sorted(changed.items()))
    tag = re.sub(r"[^A-Za-z0-9.,-]+", "_", tag)[:100]
    return EVAL_FILES[split].removesuffix(".json") + f"_{tag}.json"


def _option(overrides, name: str, default: str) -> str:
    """The last ``name=value`` of ``overrides``, else ``default``."""
    values = [o.split("=", 1)[1] for o in overrides if o.startswith(f"{name}=")]
    return values[-1] if values else default


class EvalError(ValueError):
    """An evaluation that cannot start, phrased for the command line."""


@torch.no_grad()
def score_experience(
    model, experience, *, kind: str, batch_size: int, device, forward=avalanche_forward
) -> float:
    loader = in_order(experience.dataset.eval(), batch_size)
    numerator, tokens = torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.long)
    for batch in loader:
        x, y, t = batch[0].to(device), batch[1].to(device), batch[-1].to(device)
        num, tok = batch_score(kind, forward(model, x, t), y)
        numerator, tokens = numerator + num.cpu(), tokens + tok.cpu()
    return score_value(kind, numerator, tokens)


def load_run(run_dir: Path, *, metrics: bool = False):
    """(config, ``build_experiment`` result) of a finished run: the model grown as the run
    grew it, on its own stream, loaded from its checkpoint and in evaluation mode.
    ``metrics``: build the run's own metrics too (``strategy.eval`` then evaluates as the
    run did), fresh, without the run's recorded values."""
    run_dir = Path(run_dir)
    cfg = load_config(run_dir / "config.yaml")
    built, _, _ = _restore(run_dir, cfg, metrics=metrics)
    return cfg, built


def _restore(run_dir: Path, run_cfg, *, eval_cfg=None, metrics: bool = False):
    """(``build_experiment(run_cfg)`` result with the checkpoint's weights, in evaluation
    mode; the stream to score: the run's own, or ``eval_cfg``'s where its stream options
    differ; the checkpoint). The model grows as the run grew it, over the run's training
    stream and the scored stream's task labels."""
    state = load_checkpoint(run_dir / CHECKPOINT)
    check_fingerprint(state, run_cfg, run_dir / CHECKPOINT)  # a checkpoint from another run
    state = one_process_state(state, run_dir)  # a run with sharded experts: whole tables
    built = build_experiment(run_cfg, metrics=metrics)  # the model, on the stream it grew on
    own = eval_cfg is None or eval_cfg.stream == run_cfg.stream
    target = built.spec if own else build_stream_from_config(eval_cfg)
    grow_like_checkpoint(
        built.model,
        int(state["finished"]),
        train_stream=built.spec.benchmark.train_stream,
        test_stream=target.benchmark.test_stream,
    )
    try:
        load_weights(built.model, state["model"], run_dir / CHECKPOINT)
    except CheckpointError as err:
        if own:
            raise
        # e.g. a stream with task labels the run never had grows other heads
        raise EvalError(f"{err}; on another stream, evaluate one with the run's tasks") from None
    built.model.eval()
    return built, target, state


def evaluate_run(run_dir: Path, overrides: list[str] = ()) -> dict:
    """{"metric", "split", "stream", "experience_names", "per_experience", "average",
    "trained_experiences", "scored" (what was scored, in words), "file"}; also written to
    ``run_dir/<file>``: eval.json (eval_train.json for ``stream=train``), or with stream
    options changed a file named by them (``eval_file``)."""
    run_dir = Path(run_dir)
    config = run_dir / "config.yaml"
    if not config.is_file():
        raise EvalError(f"'{run_dir}' holds no config.yaml; pass a run directory (runs/<name>)")
    split = _option(overrides, "stream", "test")
    if split not in SPLITS:
        raise EvalError(f"stream={split} is not a split; pass stream=test or stream=train")
    routing = _option(overrides, "routing", "run")
    if routing not in ROUTINGS:
        choices = ", ".join(f"routing={r}" for r in ROUTINGS)
        raise EvalError(f"routing={routing} is not supported; pass {choices}")
    overrides = [o for o in overrides if not o.startswith(("stream=", "routing="))]
    bad = [o for o in overrides if not o.startswith(("stream.", "device="))]
    if bad:
        raise EvalError(
            f"lifelong eval takes stream=test|train, routing=run|oracle|posterior, stream.*=... "
            f"and device=... overrides, not '{bad[0]}'"
        )
    run_cfg = load_config(config)
    eval_cfg = load_config(config, list(overrides))
    built, target, state = _restore(run_dir, run_cfg, eval_cfg=eval_cfg)
    spec, model = built.spec, built.model
    device = resolve_device(eval_cfg.device)
    model.to(device)

    if routing != "run" and not any(
        isinstance(m, GrowingExperts) and m.routing == "inferred" for m in model.modules()
    ):
        raise EvalError(
            f"routing={routing} replaces inferred routing, and this run routes by "
            f"growth.routing={run_cfg.growth.routing}; evaluate it without routing={routing}"
        )
    kind = "perplexity" if spec.task == "lm" else "accuracy"
    if routing == "posterior" and kind != "perplexity":
        raise EvalError(
            "routing=posterior mixes a language model's stages by how well each predicted "
            "the bytes before; this run is a classifier: use routing=run or routing=oracle"
        )
    forward = stage_mixture_log_probs if routing == "posterior" else avalanche_forward
    batch_size = run_cfg.train.eval_batch_size
    # oracle: each experience's own stage, as training routed it, instead of the selector's
    # guess; the gap to the run's routing is what inference costs the same model.
    oracle = routing == "oracle"
    per_experience = []
    for e in getattr(target.benchmark, SPLITS[split]):
        with routed_as_trained(model, e.current_experience) if oracle else nullcontext():
            per_experience.append(
                score_experience(
                    model, e, kind=kind, batch_size=batch_size, device=device, forward=forward
                )
            )
    result = {
        "metric": kind,
        "split": split,
        "stream": OmegaConf.to_container(eval_cfg.stream, resolve=True),
        "experience_names": list(target.experience_names),
        "per_experience": per_experience,
        "average": row_average(kind, per_experience),  # the run's headline, e.g. perplexity
        "trained_experiences": int(state["finished"]),
        "routing": routing,
    }
    trained = OmegaConf.to_container(run_cfg.stream, resolve=True)
    changed = {k: v for k, v in result["stream"].items() if trained.get(k) != v}
    result["scored"] = f"the {split} split of the run's own stream" + (
        ""
        if not changed
        else " with "
        + ", ".join(f"stream.{k}={v}" for k, v in changed.items())
        + (" (another sample of text or class order: not the data the run was tested on)")
    )
    result["scored"] += ROUTED[routing]
    result["file"] = eval_file(
        split, {**changed, **({"routing": routing} if routing != "run" else {})}
    )
    atomic_write_text(run_dir / result["file"], json.dumps(result, indent=2) + "\n")
    return result
