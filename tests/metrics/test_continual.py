"""summarize_matrix against matrices summarised by hand (definitions of docs/design.md §5)."""

import math

import numpy as np
import pytest

from lifelong.metrics import per_experience_forgetting, summarize_matrix

# Accuracy, R[i][j] = accuracy on j after training through i.
ACC = [
    [0.70, 0.10, 0.20],
    [0.90, 0.80, 0.30],  # training 1 *improved* experience 0 (0.70 -> 0.90)
    [0.60, 0.55, 0.95],
]
ACC_INIT = [0.10, 0.12, 0.15]
# Perplexity, lower is better.
PPL = [
    [20.0, 90.0, 95.0],
    [18.0, 25.0, 85.0],
    [30.0, 27.0, 22.0],
]
PPL_INIT = [256.0, 250.0, 260.0]


def test_accuracy_matrix_by_hand():
    s = summarize_matrix(ACC, initial=ACC_INIT)
    # average    = (0.60 + 0.55 + 0.95) / 3 = 2.10 / 3 = 0.70
    # forgetting: j=0: max(0.70, 0.90) - 0.60 = 0.30 (not 0.70 - 0.60: the max, not
    #             "right after training j"); j=1: 0.80 - 0.55 = 0.25; mean = 0.275
    # bwt        = ((0.60 - 0.70) + (0.55 - 0.80)) / 2 = (-0.10 - 0.25) / 2 = -0.175
    # fwt        = ((R[0][1] - b1) + (R[1][2] - b2)) / 2 = ((0.10 - 0.12) + (0.30 - 0.15)) / 2
    #            = (-0.02 + 0.15) / 2 = 0.065
    assert s == pytest.approx({"average": 0.70, "forgetting": 0.275, "bwt": -0.175, "fwt": 0.065})
    assert per_experience_forgetting(ACC) == pytest.approx([0.30, 0.25])


def test_perplexity_matrix_by_hand():
    s = summarize_matrix(PPL, higher_is_better=False, initial=PPL_INIT)
    # average    = (30 + 27 + 22) / 3 = 79 / 3
    # forgetting = rise over the best (lowest) earlier value:
    #              j=0: 30 - min(20, 18) = 12; j=1: 27 - 25 = 2; mean = 7
    # bwt        = ((30 - 20) + (27 - 25)) / 2 = 6   (positive: old experiences got worse)
    # fwt        = ((90 - 250) + (85 - 260)) / 2 = (-160 - 175) / 2 = -167.5
    assert s == pytest.approx({"average": 79 / 3, "forgetting": 7.0, "bwt": 6.0, "fwt": -167.5})
    assert per_experience_forgetting(PPL, higher_is_better=False) == pytest.approx([12.0, 2.0])


def test_perplexity_is_not_summarised_as_accuracy():
    # With higher_is_better=True the same matrix would give max-based "forgetting":
    # j=0: max(20, 18) - 30 = -10; j=1: 25 - 27 = -2; mean -6 (the sign flips).
    assert summarize_matrix(PPL)["forgetting"] == pytest.approx(-6.0)


def test_partial_matrix_uses_last_available_row():
    s = summarize_matrix(ACC[:2], initial=ACC_INIT)
    # row i = 1 over j <= 1: average (0.90 + 0.80) / 2 = 0.85
    # forgetting j=0: max over l in [0, 1) = 0.70 - 0.90 = -0.20 (it improved)
    # bwt = 0.90 - 0.70 = 0.20; fwt = R[0][1] - b1 = 0.10 - 0.12 = -0.02
    assert s == pytest.approx({"average": 0.85, "forgetting": -0.20, "bwt": 0.20, "fwt": -0.02})


def test_numpy_input_and_entries_above_the_diagonal_of_later_rows_are_ignored():
    # Only j <= i of the last row counts for the average: the 0.0 of untrained experiences
    # in row 0 must not enter it.
    assert summarize_matrix(np.array([[0.5, 0.0, 0.0]]))["average"] == 0.5


def test_single_experience():
    s = summarize_matrix([[0.42]], initial=[0.1])
    assert s == {"average": pytest.approx(0.42), "forgetting": None, "bwt": None, "fwt": None}
    assert per_experience_forgetting([[0.42]]) == []


def test_fwt_needs_initial():
    assert summarize_matrix(ACC)["fwt"] is None
    assert not math.isnan(summarize_matrix(ACC)["bwt"])


@pytest.mark.parametrize(
    "R, initial, message",
    [
        ([], None, "non-empty"),
        ([[1.0], [1.0]], None, "at most as many rows"),
        ([0.5, 0.5], None, "non-empty matrix"),
        (ACC, [0.1, 0.1], "one value per experience"),
    ],
)
def test_bad_inputs(R, initial, message):
    with pytest.raises(ValueError, match=message):
        summarize_matrix(R, initial=initial)
