"""The TensorBoard custom-scalars layout of a run: one chart per continual-learning question.

TensorBoard's scalar tab draws one chart per tag; whether a model forgets shows only when
the curves of all experiences share one chart. The custom-scalars tab does that from a
layout (``SummaryWriter.add_custom_scalars``) whose "Multiline" charts each draw every
scalar tag that a regular expression matches (``re.match`` on the tag, as TensorBoard's
custom-scalars plugin does), one series per tag:

- the accuracy (or perplexity) on every experience against the experiences trained, one
  series per experience, its tag ending in ``Exp{j:03}``: the forgetting curves;
- the stream's average and forgetting together;
- expert usage and KL / log N (both in [0, 1]) of every growth stage of every layer.

The patterns match the tags that the run metrics emit (names.py, matrix_metric.py,
usage_metric.py) and nothing else, for either kind of stream (accuracy or perplexity), so
the layout can be written when the writer opens, before any value exists.
"""

import re
from collections.abc import Iterable

from .matrix_metric import KINDS, SUMMARY_NAMES
from .names import NAMESPACE
from .usage_metric import KL_NORMALIZED, USAGE

STREAM = "eval_phase/test_stream"  # the run metrics record the test stream only
CONTINUAL, EXPERTS = "lifelong: continual learning", "lifelong: experts"
PER_EXPERIENCE = "score on every experience vs experiences trained (one curve per experience)"
AVERAGE_AND_FORGETTING = "average and forgetting vs experiences trained"
USAGE_PER_STAGE = "expert usage and KL / log N of each growth stage"


def _one_of(names: Iterable[str]) -> str:
    """A regex group matching exactly one of ``names``."""
    return "(" + "|".join(re.escape(n) for n in names) + ")"


def chart_patterns() -> dict[str, dict[str, str]]:
    """{category: {chart title: tag regex}} of the layout."""
    head = f"{re.escape(NAMESPACE)}/"
    per_experience = _one_of(kind[0] for kind in KINDS.values())
    summaries = _one_of([*(kind[1] for kind in KINDS.values()), SUMMARY_NAMES["forgetting"]])
    usage = _one_of([USAGE, KL_NORMALIZED])
    return {
        CONTINUAL: {
            # The task level is absent when an experience mixes task labels (names.py).
            PER_EXPERIENCE: rf"{head}{per_experience}/{STREAM}/(Task\d+/)?Exp\d+$",
            AVERAGE_AND_FORGETTING: rf"{head}{summaries}/{STREAM}$",
        },
        EXPERTS: {
            # Over the whole stream ({layer}/stage{s}), not per experience (Exp{j}/...):
            # module paths hold no "/", so one component is the layer.
            USAGE_PER_STAGE: rf"{head}{usage}/{STREAM}/[^/]+/stage\d+$",
        },
    }


def custom_scalars_layout() -> dict:
    """The layout in ``SummaryWriter.add_custom_scalars`` form:
    {category: {title: ["Multiline", [regex]]}}."""
    return {
        category: {title: ["Multiline", [pattern]] for title, pattern in charts.items()}
        for category, charts in chart_patterns().items()
    }
