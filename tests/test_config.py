"""Config loading: schema, YAML chains, overrides, and one-line errors."""

import pytest

from lifelong.config import ConfigError, load_config


def test_defaults_yaml_and_overrides_merge(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: mine\ntrain: {epochs: 7}\nstream: {kind: split_digits}\n")
    cfg = load_config(path, ["train.lr=0.5", "model.peer.topk=2", "stream.scenario=task-il"])
    assert (cfg.name, cfg.train.epochs, cfg.train.lr, cfg.model.peer.topk) == ("mine", 7, 0.5, 2)
    assert cfg.stream == {"kind": "split_digits", "scenario": "task-il", "seed": 0}
    assert cfg.growth.policy == "every_experience"  # untouched defaults survive


def test_base_chain(tmp_path):
    (tmp_path / "full.yaml").write_text("name: full\ntrain: {epochs: 10, lr: 0.1}\n")
    (tmp_path / "smoke.yaml").write_text("base: full.yaml\nname: smoke\ntrain: {epochs: 1}\n")
    cfg = load_config(tmp_path / "smoke.yaml")
    assert (cfg.name, cfg.train.epochs, cfg.train.lr) == ("smoke", 1, 0.1)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["train.epoch=2"], r"unknown config key 'train.epoch' \(did you mean train.epochs\?\)"),
        (["trian.epochs=2"], r"unknown config key 'trian' \(did you mean train\?\)"),
        (["train.epochs=abc"], r"config key 'train.epochs': .*'abc'.*Integer"),
        (["model.peer.query_batchnorm=maybe"], r"query_batchnorm.*'maybe' is not a valid bool"),
        (["epochs"], r"override 'epochs' is not key=value"),
        (["train.regularizer_options=[1]"], r"'train.regularizer_options'.*a list cannot replace"),
    ],
)
def test_bad_overrides(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match=r"config file '.*nope.yaml' does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match=r"is not valid YAML"):
        load_config(bad)
    loop = tmp_path / "loop.yaml"
    loop.write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match=r"names itself as a base"):
        load_config(loop)


def test_every_shipped_config_loads():
    from pathlib import Path

    configs = sorted(Path(__file__).resolve().parents[1].joinpath("configs").glob("*.yaml"))
    assert len(configs) >= 8
    for path in configs:
        cfg = load_config(path)
        assert cfg.stream.kind and cfg.name
