import pytest

from lifelong.data import STREAMS, DataError, build_stream


def test_registry_lists_every_kind():
    assert set(STREAMS) == {
        "text_domains",
        "text_files",
        "split_digits",
        "permuted_digits",
        "tensors",
        "datasets",
        "avalanche",
    }
    with pytest.raises(TypeError):
        STREAMS["mine"] = None  # read-only: no module-level state to mutate


def test_build_stream_passes_options_to_the_builder():
    spec = build_stream("split_digits", n_experiences=2, scenario="task-il")
    assert len(spec.benchmark.train_stream) == 2
    assert spec.scenario == "task-il"


def test_unknown_kind_lists_valid_kinds_and_the_closest():
    with pytest.raises(DataError, match=r"unknown stream kind 'split_digit' \(did you mean "):
        build_stream("split_digit")
    with pytest.raises(DataError, match="valid kinds: text_domains, text_files, split_digits"):
        build_stream("mnist?")


def test_unknown_option_names_the_closest_valid_option():
    with pytest.raises(
        DataError, match=r"unknown option 'scenaro' .*\(did you mean 'scenario'\?\)"
    ):
        build_stream("split_digits", scenaro="task-il")
    with pytest.raises(DataError, match="valid options: .*seq_len"):
        build_stream("text_domains", zzz=1)


def test_missing_required_option():
    with pytest.raises(DataError, match="stream kind 'text_files' needs option 'paths'"):
        build_stream("text_files")
