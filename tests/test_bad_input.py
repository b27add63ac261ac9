"""Bad input through the command line: every case prints exactly one line
``lifelong: error: ...`` on stderr that names the problem and the fix, exits with status 2,
and loses nothing (no run directory is created or overwritten before the input is known
to be good)."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from lifelong.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DIGITS = str(CONFIGS / "split_digits_task_il_smoke.yaml")
TEXT = str(CONFIGS / "text_domains_smoke.yaml")
QUIET = ["log.tensorboard=false", "log.progress=false", "log.png=false"]
RUN_NAME = "bad"


def run_dir(tmp: Path) -> Path:
    return tmp / "runs" / RUN_NAME


def pair(n: int, classes=(0, 1), features: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.tensor(classes).repeat(n)[:n]
    return torch.rand(n, features), y


def tensors_config(tmp: Path, train=None, test=None) -> str:
    """A tiny `tensors` stream config over train.pt/test.pt in tmp; None leaves a file out."""
    for name, pairs in (("train", train), ("test", test)):
        if pairs is not None:
            torch.save(pairs, tmp / f"{name}.pt")
    path = tmp / "tensors.yaml"
    path.write_text(
        f"stream: {{kind: tensors, train: '{tmp / 'train.pt'}', test: '{tmp / 'test.pt'}'}}\n"
        "model: {kind: mlp, dim: 16, peer: {num_experts: 16, heads: 2, topk: 2, grow_size: 1}}\n"
        "train: {epochs: 1, batch_size: 8, eval_initial: false}\n"
    )
    return str(path)


def text_files(path: Path) -> list[str]:
    return [TEXT, "stream.kind=text_files", f"stream.paths=['{path}']"]


def empty_text(tmp: Path) -> list[str]:
    (tmp / "empty.txt").write_bytes(b"")
    return text_files(tmp / "empty.txt")


def empty_experience(tmp: Path) -> list[str]:
    train = [pair(8), (torch.empty(0, 4), torch.empty(0, dtype=torch.long))]
    return [tensors_config(tmp, train, [pair(4), pair(4, (2, 3))])]


def nan_features(tmp: Path) -> list[str]:
    """Experience 0 is clean; every feature of experience 1 is NaN, so its loss is too."""
    nan_x = torch.full((8, 4), float("nan"))
    train = [pair(8), (nan_x, torch.tensor([2, 3]).repeat(4))]
    return [tensors_config(tmp, train, [pair(4), pair(4, (2, 3))])]


def written(tmp: Path, name: str, text: str) -> str:
    (tmp / name).write_text(text)
    return str(tmp / name)


def nan_first(tmp: Path) -> list[str]:
    """Every feature of experience 0 is NaN: the run fails before any checkpoint."""
    train = [(torch.full((8, 4), float("nan")), torch.tensor([0, 1]).repeat(4)), pair(8, (2, 3))]
    return [tensors_config(tmp, train, [pair(4), pair(4, (2, 3))])]


def existing_run(tmp: Path) -> list[str]:
    run_dir(tmp).mkdir(parents=True)
    (run_dir(tmp) / "metrics.json").write_text("the results of an earlier run")
    return [DIGITS]


def nothing_written(tmp: Path):
    assert not run_dir(tmp).exists(), "bad input must be refused before the run directory"


def earlier_run_kept(tmp: Path):
    assert [p.name for p in run_dir(tmp).iterdir()] == ["metrics.json"]
    assert (run_dir(tmp) / "metrics.json").read_text() == "the results of an earlier run"


def finished_experience_kept(tmp: Path):
    path = run_dir(tmp) / "checkpoint.pt"
    assert path.is_file(), "experience 0 finished: keep its work"
    state = torch.load(path, weights_only=True)
    assert state["finished"] == 1, "the checkpoint of experience 0, not of the NaN one"
    weights = [t for t in state["model"].values() if t.is_floating_point()]
    assert all(bool(torch.isfinite(t).all()) for t in weights), "no NaN reached the weights"


@dataclass
class Case:
    id: str
    args: Callable[[Path], list[str]]  # config and overrides, given a fresh tmp folder
    words: tuple[str, ...]  # each appears in the error line: the problem and the fix
    kept: Callable[[Path], None] = field(default=nothing_written)
    command: str = "run"  # or "eval": args are then the run directory
    own_paths: bool = False  # args set runs_dir and name themselves


def evaluated_run(tmp: Path, checkpoint: bytes) -> list[str]:
    """A run directory holding a real config.yaml and the given checkpoint bytes."""
    from omegaconf import OmegaConf

    from lifelong.config import load_config

    run_dir(tmp).mkdir(parents=True)
    OmegaConf.save(load_config(DIGITS), run_dir(tmp) / "config.yaml")
    (run_dir(tmp) / "checkpoint.pt").write_bytes(checkpoint)
    return [str(run_dir(tmp))]


def nothing_evaluated(tmp: Path):
    assert sorted(p.name for p in run_dir(tmp).iterdir()) == ["checkpoint.pt", "config.yaml"]


def corrupt_gz(tmp: Path) -> list[str]:
    (tmp / "notes").mkdir()
    (tmp / "notes" / "a.txt").write_bytes(b"some text " * 500)
    (tmp / "notes" / "b.txt.gz").write_bytes(b"\x1f\x8b\x08\x00not deflate at all")
    return text_files(tmp / "notes")


def outside(tmp: Path):
    nothing_written(tmp)
    assert sorted(p.name for p in tmp.iterdir()) in ([], ["runs"]), list(tmp.iterdir())


CASES = [
    Case(
        "unknown key",
        lambda tmp: [DIGITS, "train.epoch=2"],
        ("unknown config key 'train.epoch'", "did you mean train.epochs?"),
    ),
    Case(
        "wrong type",
        lambda tmp: [DIGITS, "train.epochs=abc"],
        ("config key 'train.epochs'", "'abc'", "Integer", "pass e.g. train.epochs=3"),
    ),
    Case(
        "wrong type of a group",
        lambda tmp: [DIGITS, "train=5"],
        ("config key 'train'", "train is a group of keys", "e.g. train.strategy="),
    ),
    Case(
        "wrong type of a stream option",
        lambda tmp: [TEXT, "stream.seq_len=abc"],
        ("seq_len='abc' must be a positive integer (>= 1)",),
    ),
    Case(
        "missing config file",
        lambda tmp: [str(tmp / "missing.yaml")],
        ("config file", "missing.yaml' does not exist", "pass a YAML file from configs/"),
    ),
    Case(
        "missing text path",
        lambda tmp: text_files(tmp / "nowhere"),
        ("data path", "nowhere' does not exist", "pass an existing file or folder"),
    ),
    Case(
        "missing tensors file",
        lambda tmp: [tensors_config(tmp, train=None, test=[pair(4)])],
        ("data path", "train.pt' for train does not exist", "torch.save([(x, y), ...]"),
    ),
    Case(
        "empty text domain",
        empty_text,
        ("text domain 'empty' is empty", "add text there or leave the path out"),
    ),
    Case(
        "experience with no samples",
        empty_experience,
        ("train experience 1 has no samples", "give every experience at least one sample"),
    ),
    Case(
        "non-square num_experts",
        lambda tmp: [DIGITS, "model.peer.num_experts=15"],
        ("model.peer.num_experts=15 is not a perfect square", "use 9 or 16"),
    ),
    Case(
        "topk above the sub-keys",
        lambda tmp: [DIGITS, "model.peer.num_experts=16", "model.peer.topk=5"],
        ("model.peer.topk=5 exceeds the 4 sub-keys per side", "choose 1 <= topk <= 4"),
    ),
    Case(
        "byte selector without bytes",
        lambda tmp: [DIGITS, "growth.routing=inferred", "growth.selector=byte_bigram"],
        ("growth.selector=byte_bigram reads the input bytes", "use growth.selector=gaussian"),
    ),
    Case(
        "shape selector without bytes",
        lambda tmp: [DIGITS, "growth.routing=inferred", "growth.selector=byte_shape"],
        ("growth.selector=byte_shape reads the input bytes", "use growth.selector=gaussian"),
    ),
    Case(
        "shape n-gram order out of range",
        lambda tmp: [TEXT, "growth.selector_order=9"],
        ("growth.selector_order=9 is not supported", "choose one of 2, 3, 4, 5, 6, 7"),
    ),
    Case(
        "unknown selector",
        lambda tmp: [DIGITS, "growth.routing=inferred", "growth.selector=lda"],
        ("growth.selector='lda'", "byte_bigram"),
    ),
    Case(
        "zero epochs",
        lambda tmp: [DIGITS, "train.epochs=0"],
        ("train.epochs=0 must be a positive integer (>= 1)",),
    ),
    Case(
        "zero batch size",
        lambda tmp: [TEXT, "train.batch_size=0"],
        ("train.batch_size=0 must be a positive integer (>= 1)",),
    ),
    Case(
        "negative learning rate",
        lambda tmp: [DIGITS, "train.lr=-0.1"],
        ("train.lr=-0.1 must be a positive number (> 0)",),
    ),
    Case(
        "an unknown learning-rate schedule",
        lambda tmp: [DIGITS, "train.schedule=linear"],
        ("train.schedule='linear' is not supported", "'constant'", "'cosine'"),
    ),
    Case(
        "a warm-up as long as the experience",
        lambda tmp: [DIGITS, "train.schedule=cosine", "train.warmup=1"],
        ("train.warmup=1.0 must be below 1",),
    ),
    Case(
        "misspelt routing",
        lambda tmp: [DIGITS, "growth.routing=infered"],
        ("growth.routing='infered' is not supported", "'inferred'"),
    ),
    Case(
        "an unknown distributed backend",
        lambda tmp: [DIGITS, "dist.backend=mpi"],
        ("dist.backend='mpi' is not supported", "'gloo'", "'nccl'"),
    ),
    Case(
        "a zero collective timeout",
        lambda tmp: [DIGITS, "dist.timeout_s=0"],
        ("dist.timeout_s=0.0 must be a positive number (> 0)",),
    ),
    Case(
        "sharded experts of a layer without expert tables",
        lambda tmp: [DIGITS, "dist.shard_experts=true", "model.ffn=dense"],
        ("dist.shard_experts=true spreads PEER's expert tables", "use model.ffn=peer"),
    ),
    Case(
        "a layer option outside its group",
        lambda tmp: [DIGITS, "model.topk=0"],
        ("unknown config key 'model.topk'", "did you mean model.peer.topk?"),
    ),
    Case(
        "a growth size that does not exist",
        lambda tmp: [DIGITS, "growth.sub_keys=0"],
        ("unknown config key 'growth.sub_keys'",),
    ),
    Case(
        "a config that is a list",
        lambda tmp: [written(tmp, "list.yaml", "- a\n- b\n")],
        ("holds a list, not a mapping of keys to values",),
    ),
    Case(
        "a config that is a string",
        lambda tmp: [written(tmp, "str.yaml", "just a string\n")],
        ("holds a str, not a mapping",),
    ),
    Case(
        "an empty config",
        lambda tmp: [written(tmp, "empty.yaml", "")],
        ("is empty; a config maps keys to values",),
    ),
    Case(
        "a YAML tag in an override",
        lambda tmp: [DIGITS, "train.lr=!!python/name:os.system"],
        ("override 'train.lr'", "a value is a plain YAML number, string or list"),
    ),
    Case(
        "a class id far beyond the samples",
        lambda tmp: [tensors_config(tmp, [pair(8), pair(8, (2, 10**9))], [pair(4), pair(4)])],
        ("class ids go up to 1000000000 but the stream has only 24 samples", "0, 1, 2"),
    ),
    Case(
        "runs_dir is a file",
        lambda tmp: [DIGITS, f"runs_dir={written(tmp, 'a_file', 'x')}", f"name={RUN_NAME}"],
        ("runs_dir", "a_file' cannot hold run directories", "pass runs_dir=<a writable folder>"),
        own_paths=True,
    ),
    Case(
        "a name that climbs out of runs_dir",
        lambda tmp: [DIGITS, f"runs_dir={tmp / 'runs'}", "name=../escaped"],
        ("name='../escaped' must be a plain folder name", "runs_dir=..."),
        kept=outside,
        own_paths=True,
    ),
    Case(
        "an absolute name",
        lambda tmp: [DIGITS, f"runs_dir={tmp / 'runs'}", f"name={tmp / 'abs'}"],
        ("must be a plain folder name",),
        kept=outside,
        own_paths=True,
    ),
    Case(
        "a zero-byte checkpoint",
        lambda tmp: evaluated_run(tmp, b""),
        ("checkpoint.pt' is empty (0 bytes)",),
        kept=nothing_evaluated,
        command="eval",
    ),
    Case(
        "a checkpoint of random bytes",
        lambda tmp: evaluated_run(tmp, bytes(range(256)) * 16),
        ("is not a checkpoint written by lifelong (not a torch archive)",),
        kept=nothing_evaluated,
        command="eval",
    ),
    Case(
        "a corrupt .gz in a text folder",
        corrupt_gz,
        ("text file", "b.txt.gz' cannot be read", "repair or remove it"),
    ),
    Case(
        "a model larger than the machine",
        lambda tmp: [TEXT, "model.peer.num_experts=1000000000000"],
        ("the model needs about", "GiB is available", "model.peer's size"),
    ),
    Case(
        "nan loss before the first checkpoint",
        nan_first,
        ("nan", "experience 0"),  # and the directory it had made is gone: a retry may start
    ),
    Case(
        "nan loss",
        nan_features,
        ("nan", "experience 1", "iteration"),
        kept=finished_experience_kept,
    ),
    Case(
        "run directory exists",
        existing_run,
        ("already exists", "resume=true"),
        kept=earlier_run_kept,
    ),
]


def shown(recwarn) -> list[str]:
    """Warnings that Python's default filters would print on stderr from the command line
    (pytest records them instead, so capsys alone would not see them)."""
    hidden = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)
    return [str(w.message) for w in recwarn if not issubclass(w.category, hidden)]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_loses_nothing(case, tmp_path, capsys, recwarn):
    args = case.args(tmp_path)
    if case.command == "eval":
        code = main(["eval", *args])
    else:
        paths = [] if case.own_paths else [f"runs_dir={tmp_path / 'runs'}", f"name={RUN_NAME}"]
        code = main(["run", *args, *paths, *QUIET])
    stderr = capsys.readouterr().err
    lines = stderr.splitlines()
    assert code == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("lifelong: error: "), stderr
    assert not shown(recwarn), "warnings would add lines to stderr"
    for word in case.words:
        assert word in lines[0]
    assert "weights_only" not in lines[0]  # never the advice to load a checkpoint unsafely
    case.kept(tmp_path)
