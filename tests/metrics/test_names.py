"""Metric names are built from integer ids with Avalanche's template (docs/design.md §7)."""

from lifelong.metrics import NAMESPACE, format_metric_name


def test_ids_are_zero_padded_integers_past_nine():
    name = format_metric_name("Top1_Acc_Exp", phase="eval", stream="test", task=12, experience=10)
    assert name == "lifelong/Top1_Acc_Exp/eval_phase/test_stream/Task012/Exp010"
    # a hand-made f"Task00{t}" would give "Task0012"
    assert format_metric_name("X", phase="eval", stream="test", experience=123).endswith("Exp123")


def test_optional_levels_and_extra_parts():
    assert (
        format_metric_name("BWT", phase="eval", stream="test")
        == "lifelong/BWT/eval_phase/test_stream"
    )
    name = format_metric_name(
        "ExpertUsage", phase="eval", stream="test", experience=3, extra=("blocks.1.peer", "stage2")
    )
    assert name == "lifelong/ExpertUsage/eval_phase/test_stream/Exp003/blocks.1.peer/stage2"
    assert format_metric_name("A", phase="train", stream="train", task=0) == (
        "lifelong/A/train_phase/train_stream/Task000"
    )


def test_every_name_is_in_lifelongs_namespace():
    """Avalanche's accuracy_metrics(experience=True) writes
    Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp000: lifelong's name must differ."""
    name = format_metric_name("Top1_Acc_Exp", phase="eval", stream="test", task=0, experience=0)
    assert name == f"{NAMESPACE}/Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp000"
    assert NAMESPACE == "lifelong"
