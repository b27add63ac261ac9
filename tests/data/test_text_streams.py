import time

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lifelong.data import DataError, build_stream

DOMAINS = ["python", "prose", "c_headers", "csv"]


@pytest.fixture(scope="module")
def default_stream():
    start = time.perf_counter()
    spec = build_stream("text_domains")
    return spec, time.perf_counter() - start


def window_bytes(experience) -> bytes:
    return b"".join(bytes(x.tolist()) for x, _, _ in experience.dataset)


def windows(experience) -> list[bytes]:
    """Each sample's whole window of seq_len + 1 bytes: x, then the last byte of y."""
    return [bytes(x.tolist()) + bytes([int(y[-1])]) for x, y, _ in experience.dataset]


def test_default_stream_shape_names_and_speed(default_stream):
    spec, seconds = default_stream
    assert seconds < 5
    assert spec.experience_names == DOMAINS
    assert (spec.task, spec.scenario, spec.input_shape, spec.num_classes) == (
        "lm",
        "lm",
        (64,),
        256,
    )
    assert [len(e.dataset) for e in spec.benchmark.train_stream] == [2048] * 4
    assert [len(e.dataset) for e in spec.benchmark.test_stream] == [256] * 4
    for stream in (spec.benchmark.train_stream, spec.benchmark.test_stream):
        assert [e.task_label for e in stream] == [0, 1, 2, 3]


def test_windows_are_next_byte_pairs(default_stream):
    spec, _ = default_stream
    for e, exp in enumerate(spec.benchmark.test_stream):
        x, y, t = next(iter(DataLoader(exp.dataset, batch_size=32)))
        assert x.shape == y.shape == (32, 64) and x.dtype == y.dtype == torch.long
        assert torch.equal(x[:, 1:], y[:, :-1])
        assert 0 <= x.min() and x.max() <= 255 and 0 <= y.min() and y.max() <= 255
        assert t.tolist() == [e] * 32


def test_domains_hold_their_kind_of_text(default_stream):
    spec, _ = default_stream
    python, prose, headers, csv = (window_bytes(e) for e in spec.benchmark.test_stream)
    assert b"def " in python and b"import " in python
    assert prose.count(b" the ") > 50
    assert b"#define" in headers or b"#include" in headers
    # Tables of numbers, comma- or space-separated (sklearn's diabetes files use spaces).
    assert sum(c in b"0123456789.,;e+- \r\n" for c in csv) > 0.9 * len(csv)


def test_test_windows_come_from_held_out_bytes(default_stream):
    spec, _ = default_stream
    window = 64 + 1
    for train, test in zip(spec.benchmark.train_stream, spec.benchmark.test_stream, strict=True):
        train_starts = np.sort(np.asarray(list(train.dataset.byte_offsets)))
        test_starts = np.asarray(list(test.dataset.byte_offsets))
        # A train window [s, s + window) overlaps a test window [u, u + window) iff
        # u - window < s < u + window.
        lo = np.searchsorted(train_starts, test_starts - window, side="right")
        hi = np.searchsorted(train_starts, test_starts + window, side="left")
        assert (hi == lo).all()


def test_no_test_window_occurs_in_the_training_windows(default_stream):
    spec, _ = default_stream
    for train, test in zip(spec.benchmark.train_stream, spec.benchmark.test_stream, strict=True):
        seen = set(windows(train))
        assert sum(w in seen for w in windows(test)) <= 0.01 * len(test.dataset)


def test_fixed_by_seed_and_options():
    small = dict(domains=["csv", "prose"], seq_len=16, train_sequences=40, test_sequences=8)
    a, b, c = (build_stream("text_domains", seed=s, **small) for s in (0, 0, 1))
    offsets = [list(s.benchmark.train_stream[0].dataset.byte_offsets) for s in (a, b, c)]
    assert offsets[0] == offsets[1] != offsets[2]
    assert a.experience_names == ["csv", "prose"] and a.input_shape == (16,)
    assert [e.task_label for e in a.benchmark.train_stream] == [0, 1]
    flat = build_stream("text_domains", task_labels=False, **small)
    assert [e.task_label for e in flat.benchmark.test_stream] == [0, 0]


def test_text_domains_errors():
    with pytest.raises(DataError, match="unknown text domain 'poetry'; choose from python, prose"):
        build_stream("text_domains", domains=["poetry"])
    with pytest.raises(DataError, match="seq_len=0 must be a positive integer"):
        build_stream("text_domains", seq_len=0)
    with pytest.raises(DataError, match="domains must be a non-empty list of names"):
        build_stream("text_domains", domains="python")


def test_text_files_from_files_and_folders(tmp_path):
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_bytes(b"b" * 3000)
    (folder / "sub" / "a.txt").write_bytes(b"a" * 3000)
    (folder / ".hidden").write_bytes(b"h" * 3000)
    single = tmp_path / "notes.md"
    single.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    spec = build_stream(
        "text_files", paths=[str(folder), str(single)], seq_len=8, train_sequences=300
    )
    assert spec.experience_names == ["corpus", "notes"]
    assert (spec.task, spec.scenario, spec.input_shape) == ("lm", "lm", (8,))
    # Each file of a folder is a document: one is held out whole, the other trains.
    train = frozenset(window_bytes(spec.benchmark.train_stream[0]))
    test = frozenset(window_bytes(spec.benchmark.test_stream[0]))
    assert {train, test} == {frozenset(b"a"), frozenset(b"b")}
    # A single file is split into regions; its test windows still hold all kinds of bytes.
    assert len(set(window_bytes(spec.benchmark.test_stream[1]))) > 200
    named = build_stream("text_files", paths=[str(single)], names=["bytes"], seq_len=8)
    assert named.experience_names == ["bytes"]


def test_text_files_reads_at_most_max_bytes(tmp_path):
    path = tmp_path / "long.txt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    options = dict(seq_len=8, test_sequences=64, max_bytes=1000)
    spec = build_stream("text_files", paths=[str(path)], **options)
    offsets = list(spec.benchmark.train_stream[0].dataset.byte_offsets)
    offsets += list(spec.benchmark.test_stream[0].dataset.byte_offsets)
    assert max(offsets) + 9 <= 1000


def test_text_files_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "tiny.txt").write_bytes(b"too short")
    (tmp_path / "ok.txt").write_bytes(b"o" * 2000)
    with pytest.raises(DataError, match="data path 'nowhere/' does not exist; pass an existing"):
        build_stream("text_files", paths=["nowhere/"])
    with pytest.raises(DataError, match="text domain 'empty' is empty: no bytes found in"):
        build_stream("text_files", paths=[str(tmp_path / "empty")])
    with pytest.raises(DataError, match="text domain 'tiny' has 9 bytes, too few for seq_len=64"):
        build_stream("text_files", paths=[str(tmp_path / "tiny.txt")])
    with pytest.raises(DataError, match="names has 2 entries for 1 paths"):
        build_stream("text_files", paths=[str(tmp_path / "ok.txt")], names=["a", "b"])
    ok = str(tmp_path / "ok.txt")
    with pytest.raises(DataError, match=r"domain names \['ok', 'ok'\] repeat"):
        build_stream("text_files", paths=[ok, ok])
    with pytest.raises(DataError, match="paths is empty"):
        build_stream("text_files", paths=[])
