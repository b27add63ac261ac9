"""Task inference against the length of the prefix, for a language-model run with inferred
routing: how often the stage chosen for byte t is the test window's own experience, per
position t, from the run's checkpoint.

    lifelong run configs/text_domains.yaml growth.routing=inferred name=td_inferred
    python scripts/prefix_curve.py runs/td_inferred --png prefix_curve.png

Prints JSON {"prefix": [1..T], "accuracy": [...], "per_experience": [[...], ...]} and, with
``--png``, draws the curve. Position t's stage is inferred from bytes 0..t only (causal
routing), so the accuracy at t is that of a prefix of t+1 bytes.
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from avalanche.models.utils import avalanche_forward

from lifelong.data.in_order import in_order


def load_run(run_dir: Path):
    """(model, test stream) of a finished run, loaded as ``lifelong eval`` loads it."""
    from lifelong.training.evaluate import load_run as load

    _, built = load(run_dir)
    return built.model, built.spec.benchmark.test_stream


@torch.no_grad()
def prefix_accuracy(model, test_stream, batch_size: int = 128) -> list[list[float]]:
    """Per test experience, the fraction of windows whose position t is routed to that
    experience, for every t (first inferring layer)."""
    from lifelong.metrics.task_inference import inferring_layers

    layers = list(inferring_layers(model).values())
    if not layers or not layers[0].causal:
        raise SystemExit("error: the run has no causal inferred routing (growth.routing)")
    routed = []
    handle = layers[0].register_inference_hook(lambda module, ids: routed.append(ids))
    curves = []
    try:
        for experience in test_stream:
            e, routed[:] = int(experience.current_experience), []
            for batch in in_order(experience.dataset.eval(), batch_size):
                avalanche_forward(model, batch[0], batch[-1])
            ids = torch.cat(routed)  # (N, T)
            curves.append((ids == e).float().mean(0).tolist())
    finally:
        handle.remove()
    return curves


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("run_dir", type=Path)
    p.add_argument("--png", type=Path, help="draw the curve here")
    args = p.parse_args(argv)
    if not (args.run_dir / "config.yaml").is_file():
        p.error(f"'{args.run_dir}' holds no config.yaml; pass a run directory (runs/<name>)")

    import warnings

    warnings.filterwarnings("ignore")
    model, test_stream = load_run(args.run_dir)
    curves = prefix_accuracy(model, test_stream)
    mean = [sum(c[t] for c in curves) / len(curves) for t in range(len(curves[0]))]
    prefix = list(range(1, len(mean) + 1))
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.2))
        for e, c in enumerate(curves):
            ax.plot(prefix, c, lw=1, alpha=0.6, label=f"experience {e}")
        ax.plot(prefix, mean, color="black", lw=2, label="mean")
        ax.set(xlabel="prefix length (bytes)", ylabel="stage inferred correctly", ylim=(0, 1))
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.png, dpi=120)
    print(json.dumps({"prefix": prefix, "accuracy": mean, "per_experience": curves}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
