"""train.regularizer in a config: one name, or a list with a λ each and options by name."""

import pytest

from lifelong.config import ConfigError, load_config
from lifelong.experiment.strategy import build_regularization
from lifelong.regularizers import GenerativeDistillation, L2Regularizer

CONFIG = "lifelong/configs/text_domains_no_labels_smoke.yaml"
TWO = ["train.regularizer=[gen_distill,l2]", "train.regularizer_lambda=[0.5,2]"]


def plugin(overrides):
    (built,) = build_regularization(load_config(CONFIG, overrides))
    return built


def test_a_list_builds_every_regularizer_in_order_with_its_weight_and_options():
    built = plugin([*TWO, "train.regularizer_options.l2.params=[tok.,ln_f.]"])
    gen, l2 = built.regularizers
    assert isinstance(gen, GenerativeDistillation) and isinstance(l2, L2Regularizer)
    assert built.weights == [0.5, 2.0]
    assert l2.params == ("tok.", "ln_f.")
    assert gen.samples == 256  # no options given: its defaults


def test_one_name_reads_its_options_directly():
    (l2,) = plugin(["train.regularizer=l2", "train.regularizer_options.params=[tok.]"]).regularizers
    assert l2.params == ("tok.",)
    assert build_regularization(load_config(CONFIG, ["train.regularizer=none"])) == []


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["train.regularizer=[l2,ewc]"], r"train.regularizer_lambda as a list of 2 weights"),
        ([*TWO[:1], "train.regularizer_lambda=[1]"], r"list of 2 weights.*\[1\]"),
        (["train.regularizer=[l2,l2]", "train.regularizer_lambda=[1,1]"], r"each regulariser once"),
        (
            ["train.regularizer=[l2,ewcc]", "train.regularizer_lambda=[1,1]"],
            r"regularizer\[1\]='ewcc'",
        ),
        ([*TWO[:1], "train.regularizer_lambda=[1,-1]"], r"regularizer_lambda\[1\]=-1"),
        (
            [*TWO, "train.regularizer_options.ewc.decay=1"],
            r"options\.ewc: .*one of \['gen_distill', 'l2'\]",
        ),
        (
            [*TWO, "train.regularizer_options.decay=1"],
            r"options\.decay: .*regularizer_options\.l2\.",
        ),
    ],
)
def test_bad_lists_name_the_key_and_the_fix(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CONFIG, overrides)
