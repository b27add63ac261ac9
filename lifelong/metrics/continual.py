"""Continual-learning summaries of an experience matrix (docs/design.md §5).

``R[i][j]`` is a metric (accuracy, perplexity, ...) on experience j after training through
experience i. While a run is in progress only the first T' <= T rows exist; every summary
is taken at the last available row ``i = T' - 1`` over the experiences trained so far
(``j <= i``), so the final summary (``i = T - 1``) covers the whole stream.

Definitions (van de Ven & Tolias 2019; Lopez-Paz & Ranzato 2017 for BWT/FWT):

- average     = mean_{j<=i} R[i][j]
- forgetting  = mean_{j<i} (max_{j<=l<i} R[l][j] - R[i][j])          (higher is better)
              = mean_{j<i} (R[i][j] - min_{j<=l<i} R[l][j])          (lower is better)
  i.e. the drop from the best value the experience had since it was trained; for
  perplexity forgetting is a rise. Avalanche's ``forgetting_metrics`` compares with the
  value right after training j instead of the best one.
- bwt         = mean_{j<i} (R[i][j] - R[j][j])   (raw sign: negative accuracy BWT and
                positive perplexity BWT both mean the old experiences got worse)
- fwt         = mean_{1<=j<=i} (R[j-1][j] - initial[j]), initial = the metric at random
                initialisation, before any training.
"""

from collections.abc import Sequence

import numpy as np


def _as_rows(R) -> np.ndarray:
    """(T', T) float64 array with T' <= T, or a ValueError saying what is wrong."""
    rows = np.asarray(R, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise ValueError(f"R must be a non-empty matrix of rows (T' x T), got shape {rows.shape}")
    if rows.shape[0] > rows.shape[1]:
        raise ValueError(
            f"R has {rows.shape[0]} rows but only {rows.shape[1]} experiences; row i is "
            f"'trained through experience i', so there are at most as many rows as columns"
        )
    return rows


def per_experience_forgetting(R, higher_is_better: bool = True) -> list[float]:
    """Forgetting of each experience j < i at the last row i (a list of length i).

    The reference value is the best one over the rows ``j <= l < i`` in which experience j
    had already been trained (the max for accuracy, the min for perplexity)."""
    rows = _as_rows(R)
    i = rows.shape[0] - 1
    out = []
    for j in range(i):
        history = rows[j:i, j]  # R[l][j] for j <= l < i
        if higher_is_better:
            out.append(float(history.max() - rows[i, j]))
        else:
            out.append(float(rows[i, j] - history.min()))
    return out


def summarize_matrix(
    R, *, higher_is_better: bool = True, initial: Sequence[float] | None = None
) -> dict[str, float | None]:
    """Average, forgetting, BWT and FWT at the last available row of ``R`` (see module doc).

    Args:
        R: T' x T matrix (list of rows or array), T' <= T.
        higher_is_better: True for accuracy; False for perplexity or loss, where forgetting
            is the rise of the metric.
        initial: the metric on each experience at random initialisation (length >= T'),
            needed for FWT.

    Returns:
        {"average", "forgetting", "bwt", "fwt"}; forgetting, bwt and fwt are None at the
        first row (nothing trained before), fwt also when ``initial`` is None.
    """
    rows = _as_rows(R)
    i = rows.shape[0] - 1
    summary: dict[str, float | None] = {
        "average": float(rows[i, : i + 1].mean()),
        "forgetting": None,
        "bwt": None,
        "fwt": None,
    }
    if i == 0:
        return summary
    summary["forgetting"] = float(np.mean(per_experience_forgetting(rows, higher_is_better)))
    summary["bwt"] = float(np.mean([rows[i, j] - rows[j, j] for j in range(i)]))
    if initial is not None:
        b = np.asarray(initial, dtype=np.float64)
        if b.ndim != 1 or b.shape[0] < i + 1:
            raise ValueError(
                f"initial has shape {b.shape}; expected one value per experience (at least {i + 1})"
            )
        summary["fwt"] = float(np.mean([rows[j - 1, j] - b[j] for j in range(1, i + 1)]))
    return summary
