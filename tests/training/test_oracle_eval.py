"""`lifelong eval RUN routing=oracle`: an inferred-routing run scored with every sample
routed to its own experience's stage, which is what its task label routes it to; and
`average` is the run's own headline (the geometric mean for perplexity)."""

import json
from pathlib import Path

import pytest

from lifelong.cli import main
from lifelong.config import load_config
from lifelong.models.growing import GrowingExperts
from lifelong.training.evaluate import load_run, score_experience
from lifelong.training.run import run

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "text_domains_no_labels_smoke.yaml"
QUIET = ["log.progress=false", "log.tensorboard=false", "log.png=false"]


def test_oracle_routing_scores_each_experience_as_its_task_label_routes_it(tmp_path, capsys):
    inferred = run(load_config(CONFIG, [f"runs_dir={tmp_path}", "name=inferred", *QUIET]))
    metrics = json.loads((inferred / "metrics.json").read_text())

    assert main(["eval", str(inferred)]) == 0
    own = json.loads((inferred / "eval.json").read_text())
    assert own["per_experience"] == pytest.approx(metrics["perplexity_matrix"][-1], rel=1e-9)
    assert own["average"] == pytest.approx(metrics["perplexity"], rel=1e-9)  # geometric

    assert main(["eval", str(inferred), "routing=oracle"]) == 0
    oracle = json.loads((inferred / "eval_routing-oracle.json").read_text())
    assert oracle["routing"] == "oracle" and "(oracle)" in oracle["scored"]
    assert (inferred / "eval.json").is_file()  # the run's own scores are not overwritten

    # The same weights routed by another path: task-aware routing reads each window's task
    # label (its domain, which is its experience) through the layer's task -> stage map.
    _, built = load_run(inferred)
    layers = [m for m in built.model.modules() if isinstance(m, GrowingExperts)]
    for m in layers:
        m.routing = "task_aware"
    by_label = [
        score_experience(built.model, e, kind="perplexity", batch_size=16, device=built.device)
        for e in built.spec.benchmark.test_stream
    ]
    assert oracle["per_experience"] == pytest.approx(by_label, rel=1e-6)
    assert oracle["per_experience"] != pytest.approx(own["per_experience"], rel=1e-6)
    capsys.readouterr()

    labelled = ["growth.routing=task_aware", "growth.selector=gaussian", "train.epochs=1"]
    other = run(load_config(CONFIG, [f"runs_dir={tmp_path}", "name=label", *labelled, *QUIET]))
    assert main(["eval", str(other), "routing=oracle"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "routing=oracle replaces inferred routing" in err[0]
    assert main(["eval", str(inferred), "routing=best"]) == 2
    assert "routing=best is not supported" in capsys.readouterr().err
