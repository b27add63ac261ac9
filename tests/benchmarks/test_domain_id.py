"""benchmarks/domain_id.py: prefix accuracy against hand-computed cases."""

import importlib.util
from pathlib import Path

import torch

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "domain_id.py"
spec = importlib.util.spec_from_file_location("domain_id", PATH)
domain_id = importlib.util.module_from_spec(spec)
spec.loader.exec_module(domain_id)


def test_prefix_accuracy_is_the_running_sum_argmax():
    # Two windows of experience 0, three bytes each, two experiences. Window 0 favours
    # experience 1 on byte 0 only: right from a prefix of 2 on; window 1 always wrong.
    s0 = torch.tensor([[[0.0, 1.0], [2.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]])
    scores = [torch.nn.functional.pad(s0, (0, 0, 0, 61))]  # (2, 64, 2): later bytes tie
    accuracy = domain_id.prefix_accuracy(scores)
    assert accuracy[1] == 0.0 and accuracy[8] == 0.5 and accuracy[64] == 0.5


def test_n_gram_identifiers_separate_domains_of_different_bytes():
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(0, 128, (32, 64), generator=gen)  # low bytes
    b = torch.randint(128, 256, (32, 64), generator=gen)  # high bytes
    for accuracy in (
        domain_id.bigram_accuracy([a, b], [a[:8], b[:8]], 0.5, 0.2),
        domain_id.ngram_accuracy([a, b], [a[:8], b[:8]], 3, 0.3, 0.0),
        domain_id.ngram_accuracy([a, b], [a[:8], b[:8]], 4, 0.5, 0.2),
    ):
        assert all(v == 1.0 for v in accuracy.values())
    # Identical domains: every guess is the first (ties go to the lower index).
    tied = domain_id.ngram_accuracy([a, a], [a[:8], a[8:16]], 4, 0.5, 0.2)
    assert tied[64] == 0.5


def test_order_two_is_the_library_bigram():
    # Overlapping byte ranges, so that the guesses are not all right and the two must agree
    # on every prefix: the interpolation carried to order 2 is the selector's.
    gen = torch.Generator().manual_seed(1)
    a = torch.randint(0, 40, (64, 64), generator=gen)
    b = torch.randint(30, 70, (64, 64), generator=gen)
    test = [
        torch.randint(0, 40, (16, 64), generator=gen),
        torch.randint(30, 70, (16, 64), generator=gen),
    ]
    ngram = domain_id.ngram_accuracy([a, b], test, 2, 0.5, 0.2)
    assert ngram == domain_id.bigram_accuracy([a, b], test, 0.5, 0.2)
    assert ngram[1] < 1.0


def test_the_shape_identifier_reads_the_layout_not_the_particular_bytes():
    # Tables of decimals against lower-case words: fresh figures and fresh words (bytes the
    # training windows may never hold in that order) are still told apart by their shapes.
    gen = torch.Generator().manual_seed(1)

    def table(n):
        digits = torch.randint(48, 58, (n, 64), generator=gen)
        digits[:, 3::6], digits[:, 5::6] = ord("."), ord(",")
        return digits

    def words(n):
        letters = torch.randint(97, 123, (n, 64), generator=gen)
        letters[:, 4::5] = ord(" ")
        return letters

    train, test = [table(16), words(16)], [table(4), words(4)]
    scores = domain_id.shape_scores(train, test, 5)
    shape = domain_id.prefix_accuracy(scores)
    assert shape[8] == shape[64] == 1.0
    other = test[0].clone()
    is_digit = (other >= 48) & (other < 58)
    other[is_digit] = 48 + (other[is_digit] - 47) % 10  # every figure changed, layout kept
    torch.testing.assert_close(domain_id.shape_scores(train, [other], 5)[0], scores[0])


def test_byte_in_shape_tells_apart_what_shapes_cannot():
    # Both domains are lower-case letters only, so their shapes are identical ('aaaa...'):
    # the shape 7-gram ties, and the byte within its shape class separates them.
    gen = torch.Generator().manual_seed(2)
    a = torch.randint(ord("a"), ord("m") + 1, (32, 64), generator=gen)
    b = torch.randint(ord("n"), ord("z") + 1, (32, 64), generator=gen)
    train, test = [a, b], [a[:8], b[:8]]
    shape = domain_id.shape_scores(train, test, 7)
    assert domain_id.prefix_accuracy(shape)[64] == 0.5  # ties go to the first
    in_shape = domain_id.in_shape_scores(train, test)
    assert all(v == 1.0 for v in domain_id.prefix_accuracy(in_shape).values())
    # A byte alone in its class (a space) carries nothing beyond its shape: scores 0.
    space = torch.full((1, 4), ord(" "))
    assert (domain_id.in_shape_scores(train, [space])[0] == 0).all()


def test_byte_in_shape_is_the_literal_interpolation():
    # Training text "ab" repeated: p(b | a, letter) = 0.5·1 + 0.5·p(b | letter), with
    # p(b | letter) = (c(b) + ½) / Σ_letters (c + ½), then mixed with 1/26 at ε = 0.2.
    w = torch.tensor([[ord("a"), ord("b")] * 8])
    letters = 16 + 26 * 0.5  # 16 letters seen, add-½ over the 26 of the class
    p_b = (8 + 0.5) / letters
    expected = torch.log(torch.tensor(0.8 * (0.5 + 0.5 * p_b) + 0.2 / 26))
    score = domain_id.in_shape_scores([w], [w[:, :2]])[0]  # (1, 2, 1)
    assert torch.isclose(score[0, 1, 0], expected.float())


def test_neural_identifier_separates_and_ties():
    gen = torch.Generator().manual_seed(3)
    a = torch.randint(0, 128, (16, 64), generator=gen)
    b = torch.randint(128, 256, (16, 64), generator=gen)
    apart = domain_id.neural_scores([a, b], [a[:4], b[:4]], seed=0)
    assert domain_id.prefix_accuracy(apart)[64] == 1.0
    # The same data and seed give the same model: every score ties, every guess is the first.
    same = domain_id.neural_scores([a, a], [a[:4], a[4:8]], seed=0)
    assert torch.equal(same[0][..., 0], same[0][..., 1])
    assert domain_id.prefix_accuracy(same)[64] == 0.5
