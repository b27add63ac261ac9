"""ExperienceMatrix driven by real Avalanche strategies."""

import math

import pytest
import torch
import torch.nn.functional as F
from tiny_runs import (
    FlatCrossEntropy,
    MemoryLogger,
    Net,
    accuracy_of,
    byte_lm_benchmark,
    classification_benchmark,
    make_strategy,
)
from torch import nn

from lifelong.metrics import ExperienceMatrix, summarize_matrix

ACC = "lifelong/Top1_Acc_Exp/eval_phase/test_stream/Task{t:03d}/Exp{e:03d}"


def test_matrix_is_square_and_its_last_row_matches_an_independent_evaluation(
    classification_run,
):
    run = classification_run
    R = run.matrix.matrix
    assert len(R) == 3 and all(len(row) == 3 for row in R)
    assert R[-1] == pytest.approx(run.last_row, abs=1e-12)
    assert run.matrix.result() == R
    # Training moved the matrix: each experience is learnt better right after its training
    # than at random init.
    assert all(R[j][j] > run.matrix.initial[j] for j in range(3))


def test_initial_evaluation_is_kept_out_of_the_matrix(classification_run):
    run = classification_run
    initial = run.matrix.initial
    assert len(initial) == 3 and all(0.0 <= v <= 1.0 for v in initial)
    for e in range(3):
        emitted = run.logger.values(ACC.format(t=e, e=e))
        # x = trained experiences: 0 (random init), then 1, 2, 3.
        assert [x for x, _ in emitted] == [0, 1, 2, 3]
        assert [v for _, v in emitted] == pytest.approx(
            [initial[e]] + [row[e] for row in run.matrix.matrix]
        )


def test_stream_summaries_are_emitted_from_the_matrix(classification_run):
    run = classification_run
    R, initial = run.matrix.matrix, run.matrix.initial
    expected = summarize_matrix(R, initial=initial)
    assert run.matrix.summary() == expected
    names = {
        "average": "Average_Accuracy",
        "forgetting": "Forgetting",
        "bwt": "BWT",
        "fwt": "FWT",
    }
    for key, metric in names.items():
        emitted = run.logger.values(f"lifelong/{metric}/eval_phase/test_stream")
        assert emitted[-1] == (3, pytest.approx(expected[key]))
    # After the first experience there is nothing to forget yet: only the average.
    first = summarize_matrix(R[:1], initial=initial)
    assert run.logger.values("lifelong/Average_Accuracy/eval_phase/test_stream")[0] == (
        1,
        pytest.approx(first["average"]),
    )
    assert [x for x, _ in run.logger.values("lifelong/Forgetting/eval_phase/test_stream")] == [2, 3]


def test_names_use_integer_ids_beyond_ten_experiences():
    torch.manual_seed(0)
    bm = classification_benchmark(11, n_train=8, n_test=8)
    matrix, logger = ExperienceMatrix("accuracy"), MemoryLogger()
    strategy = make_strategy(Net(), [matrix], logger, epochs=1, mb=8)
    rows = []
    for exp in bm.train_stream:
        strategy.train(exp)
        strategy.eval(bm.test_stream)
        rows.append(len(matrix.matrix))
    assert rows == list(range(1, 12))  # one more complete row per trained experience
    assert all(len(row) == 11 for row in matrix.matrix)
    names = {name for name, _, _ in logger.records}
    assert "lifelong/Top1_Acc_Exp/eval_phase/test_stream/Task010/Exp010" in names
    assert not any("Exp0010" in n or "Task0010" in n for n in names)
    assert logger.values(ACC.format(t=10, e=10))[-1][0] == 11


def test_mid_experience_and_train_stream_evaluations_are_not_recorded():
    """Periodic evaluation (eval_every=1) runs inside a training experience on a half-trained
    model; an evaluation of the train stream is another stream. Neither enters the matrix.
    The periodic evaluation before training (the model is untouched) is the initial one."""
    torch.manual_seed(0)
    bm = classification_benchmark(2, n_train=64, n_test=32, task_aware=False)
    model = Net()
    matrix, logger = ExperienceMatrix("accuracy"), MemoryLogger()
    strategy = make_strategy(model, [matrix], logger, epochs=2, eval_every=1)
    initial = [accuracy_of(model, e.dataset) for e in bm.test_stream]
    for exp in bm.train_stream:
        strategy.train(exp, eval_streams=[bm.test_stream])
        assert len(matrix.matrix) < exp.current_experience + 1  # periodic evals ignored
        strategy.eval(bm.test_stream)
        strategy.eval(bm.train_stream)
    assert matrix.initial == pytest.approx(initial)
    assert matrix.matrix[-1] == pytest.approx(
        [accuracy_of(model, e.dataset) for e in bm.test_stream]
    )
    # No task labels on the experiences: no Task level in the name. One value per
    # experience per explicit test evaluation (x = 1, 2) and per before-training one (x = 0).
    xs = [x for x, _ in logger.values("lifelong/Top1_Acc_Exp/eval_phase/test_stream/Exp000")]
    assert xs == [0, 1, 1, 2]
    assert not any("train_stream" in name for name, _, _ in logger.records)


def test_final_periodic_evaluation_fills_the_matrix_without_explicit_eval():
    """eval_every=0: Avalanche evaluates before training (-> initial) and after each
    experience, after the EvaluationPlugin's after_training_exp (-> row i)."""
    torch.manual_seed(0)
    bm = classification_benchmark(2, n_train=64, n_test=32)
    matrix = ExperienceMatrix("accuracy")
    strategy = make_strategy(Net(), [matrix], MemoryLogger(), epochs=1, eval_every=0)
    for exp in bm.train_stream:
        strategy.train(exp, eval_streams=[bm.test_stream])
    assert len(matrix.matrix) == 2 and matrix.initial is not None


@torch.no_grad()
def perplexity_of(model, dataset) -> float:
    model.eval()
    nll, tokens = 0.0, 0
    for x, y, _ in torch.utils.data.DataLoader(dataset.eval(), batch_size=7):
        logits = model(x)  # (B, T, 256)
        nll += float(F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum"))
        tokens += int((y != -100).sum())
    return math.exp(nll / tokens)


def test_perplexity_matrix_of_a_byte_language_model():
    torch.manual_seed(0)
    bm = byte_lm_benchmark()
    model = nn.Sequential(nn.Embedding(256, 16), nn.Linear(16, 256))  # (B, T) -> (B, T, 256)
    matrix, logger = ExperienceMatrix("perplexity"), MemoryLogger()
    strategy = make_strategy(
        model, [matrix], logger, epochs=4, mb=8, lr=5e-2, criterion=FlatCrossEntropy()
    )
    strategy.eval(bm.test_stream)
    initial = [perplexity_of(model, e.dataset) for e in bm.test_stream]
    for exp in bm.train_stream:
        strategy.train(exp)
        strategy.eval(bm.test_stream)
    R = matrix.matrix
    assert matrix.initial == pytest.approx(initial, rel=1e-6)
    assert R[-1] == pytest.approx(
        [perplexity_of(model, e.dataset) for e in bm.test_stream], rel=1e-6
    )
    # Learning the band of experience 0 lowers its perplexity; learning band 1 raises it again.
    assert R[0][0] < initial[0] and R[1][0] > R[0][0]
    summary = summarize_matrix(R, higher_is_better=False, initial=initial)
    assert summary["forgetting"] == pytest.approx(R[1][0] - R[0][0]) and summary["forgetting"] > 0
    # The stream's perplexity is the geometric mean (exp of the mean loss), in bits per byte
    # too; forgetting is the rise in perplexity and, separately, in bits per byte.
    assert logger.values("lifelong/Average_Perplexity/eval_phase/test_stream")[-1] == (
        2,
        pytest.approx(math.sqrt(R[1][0] * R[1][1])),
    )
    assert logger.values("lifelong/Average_BitsPerByte/eval_phase/test_stream")[-1] == (
        2,
        pytest.approx((math.log2(R[1][0]) + math.log2(R[1][1])) / 2),
    )
    assert logger.values("lifelong/Forgetting_BitsPerByte/eval_phase/test_stream")[-1] == (
        2,
        pytest.approx(math.log2(R[1][0]) - math.log2(R[0][0])),
    )
    assert (
        logger.values("lifelong/Perplexity_Exp/eval_phase/test_stream/Task001/Exp001")[-1][0] == 2
    )


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind='bleu'"):
        ExperienceMatrix("bleu")
