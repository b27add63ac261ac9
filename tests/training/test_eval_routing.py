"""`lifelong eval RUN routing=oracle|posterior` on a byte LM with inferred routing: every
sample routed to its own experience's stage (what its task label routes it to), or every
stage mixed by its posterior given the prefix (against the mixture written out); and
`average` is the run's own headline (the geometric mean for perplexity)."""

import json
from pathlib import Path

import pytest
import torch

from lifelong.cli import main
from lifelong.config import load_config
from lifelong.models.growing import GrowingExperts, routed_as_trained
from lifelong.models.stage_mixture import stage_mixture_log_probs
from lifelong.training.evaluate import load_run, score_experience
from lifelong.training.run import run

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "text_domains_no_labels_smoke.yaml"
QUIET = ["log.progress=false", "log.tensorboard=false", "log.png=false"]


@pytest.fixture(scope="module")
def inferred(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return run(load_config(CONFIG, [f"runs_dir={runs}", "name=inferred", *QUIET]))


def test_oracle_routing_scores_each_experience_as_its_task_label_routes_it(
    inferred, tmp_path, capsys
):
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


def test_posterior_mixture_is_the_bayes_mixture_written_out_and_causal(inferred, capsys):
    _, built = load_run(inferred)
    model = built.model
    x = next(iter(built.spec.benchmark.test_stream[2].dataset.eval()))[0][None]  # (1, T)
    x = torch.cat([x, x.flip(-1)])  # (2, T): two windows
    t = torch.zeros(2, dtype=torch.long)
    mixed = stage_mixture_log_probs(model, x, t).double()  # (2, T, V)

    # Written out: p(next) = sum_e w_e p_e(next), w_e ∝ prod of p_e(byte) over the bytes so far.
    with torch.no_grad():
        probs = []
        for e in range(4):
            with routed_as_trained(model, e):
                probs.append(torch.softmax(model(x, t).double(), -1))
    T = x.shape[1]
    for b in range(2):
        likelihood = [1.0] * 4
        for pos in range(T):
            total = sum(likelihood)
            expected = sum(likelihood[e] / total * probs[e][b, pos] for e in range(4))
            assert torch.allclose(mixed[b, pos].exp(), expected, rtol=1e-4, atol=1e-7)
            if pos + 1 < T:
                likelihood = [
                    likelihood[e] * float(probs[e][b, pos, x[b, pos + 1]]) for e in range(4)
                ]

    # Causal: changing byte 20 moves no prediction made before it (positions 0..19).
    changed = x.clone()
    changed[:, 20] = (changed[:, 20] + 7) % 256
    after = stage_mixture_log_probs(model, changed, t)
    assert torch.equal(after[:, :20], mixed[:, :20].float())
    assert not torch.allclose(after[:, 20:], mixed[:, 20:].float())

    assert main(["eval", str(inferred), "routing=posterior"]) == 0
    result = json.loads((inferred / "eval_routing-posterior.json").read_text())
    assert result["routing"] == "posterior" and "posterior" in result["scored"]
    assert len(result["per_experience"]) == 4


def test_a_classifier_with_inferred_routing_takes_the_oracle_but_not_the_mixture(tmp_path, capsys):
    digits = CONFIG.parent / "split_digits_class_il_smoke.yaml"
    overrides = ["growth.routing=inferred", "model.head=multi", "stream.n_experiences=2"]
    run_dir = run(load_config(digits, [f"runs_dir={tmp_path}", "name=c", *overrides, *QUIET]))
    assert main(["eval", str(run_dir), "routing=oracle"]) == 0
    oracle = json.loads((run_dir / "eval_routing-oracle.json").read_text())
    assert oracle["metric"] == "accuracy" and len(oracle["per_experience"]) == 2
    capsys.readouterr()
    assert main(["eval", str(run_dir), "routing=posterior"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "routing=posterior mixes a language model's stages" in err[0]
    assert not (run_dir / "eval_routing-posterior.json").exists()


def test_a_byte_shape_run_reloads_its_selector_and_scores_as_it_ran(tmp_path, capsys):
    # The selector's counts are buffers whose sizes grow with what it saw: a rebuilt model
    # starts empty, takes the saved sizes and must route every byte as the run did.
    shape = ["growth.selector=byte_shape", "growth.selector_order=5"]
    done = run(load_config(CONFIG, [f"runs_dir={tmp_path}", "name=shape", *shape, *QUIET]))
    metrics = json.loads((done / "metrics.json").read_text())
    assert metrics["selector_bytes"] > 0 and 0 < metrics["task_inference_accuracy"] <= 1
    assert main(["eval", str(done)]) == 0
    own = json.loads((done / "eval.json").read_text())
    assert own["per_experience"] == pytest.approx(metrics["perplexity_matrix"][-1], rel=1e-9)
    _, built = load_run(done)
    (selector, *others) = [
        m.selector for m in built.model.modules() if isinstance(m, GrowingExperts)
    ]
    assert others and all(s is selector for s in others)  # both blocks: one selector of the bytes
    assert selector.order == 5 and metrics["selector_bytes"] == selector.nbytes()
    capsys.readouterr()
