"""Text domains are held out by file, and no test window occurs verbatim in training."""

from pathlib import Path

import numpy as np
import pytest
import torch

from lifelong.config import load_config
from lifelong.data import DataError, build_stream
from lifelong.data.byte_windows import domain_rng, hold_out, sample_starts
from lifelong.data.text import DEFAULT_DOMAIN_NAMES, DEFAULT_MAX_BYTES, domain_windows
from lifelong.data.text_sources import DEFAULT_DOMAINS, read_capped

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DEFAULTS = dict(seq_len=64, train_sequences=2048, test_sequences=256, seed=0, test_fraction=0.1)
WINDOW = DEFAULTS["seq_len"] + 1


@pytest.fixture(scope="module")
def installed():
    """Every installed domain's documents, read once: {name: [(document name, bytes), ...]}."""
    return {name: read(DEFAULT_MAX_BYTES) for name, (read, _) in DEFAULT_DOMAINS.items()}


def windows(data: bytes, starts) -> list[bytes]:
    return [data[s : s + WINDOW] for s in starts.tolist()]


def leaked(data: bytes, train_starts, test_starts) -> int:
    """Test windows equal, byte for byte, to some training window."""
    train = set(windows(data, train_starts))
    return sum(w in train for w in windows(data, test_starts))


@pytest.mark.parametrize("name", list(DEFAULT_DOMAINS))
def test_test_windows_do_not_occur_in_training(installed, name):
    # Before the file split and the dedup, 10 of 256 c_headers test windows (5 of prose, 21 of
    # mpl_styles) occurred whole in 16,384 training windows.
    for train_sequences in (2048, 16384):
        options = {**DEFAULTS, "train_sequences": train_sequences}
        held, train, test = domain_windows(name, installed[name], **options)
        assert len(train) == train_sequences and len(test) == 256
        assert leaked(held.data, train, test) <= 0.01 * len(test)


@pytest.mark.parametrize("name", list(DEFAULT_DOMAINS))
def test_held_out_files_never_feed_training(installed, name):
    documents = dict(installed[name])
    held, train, test = domain_windows(name, installed[name], **DEFAULTS)
    assert held.train_documents and held.test_documents
    assert not set(held.train_documents) & set(held.test_documents)
    assert set(held.train_documents) | set(held.test_documents) == set(documents)
    # The layout is the training documents, then the test documents, and every window lies
    # on its own side, so its bytes come from its side's documents only.
    [(a, cut)], [(cut_, end)] = held.train, held.test
    assert a == 0 and cut == cut_ and end == len(held.data)
    assert held.data[:cut] == b"".join(documents[d] for d in held.train_documents)
    assert held.data[cut:] == b"".join(documents[d] for d in held.test_documents)
    assert (train >= 0).all() and (train + WINDOW <= cut).all()
    assert (test >= cut).all() and (test + WINDOW <= end).all()
    # Close to test_fraction: a file that would pass twice the share stays in training.
    assert 0.1 <= (end - cut) / end <= 0.2


def test_seeds_hold_out_different_files(installed):
    for name, documents in installed.items():
        held = [hold_out(documents, WINDOW, 0.1, domain_rng(s, name, "documents")) for s in (0, 1)]
        assert held[0].test_documents != held[1].test_documents, name
        again = hold_out(documents, WINDOW, 0.1, domain_rng(0, name, "documents"))
        assert again.test_documents == held[0].test_documents


def test_the_stream_draws_the_same_windows(installed):
    small = dict(train_sequences=64, test_sequences=8)
    spec = build_stream("text_domains", domains=["prose"], **small)
    _, train, test = domain_windows("prose", installed["prose"], **{**DEFAULTS, **small})
    assert list(spec.benchmark.train_stream[0].dataset.byte_offsets) == train.tolist()
    assert list(spec.benchmark.test_stream[0].dataset.byte_offsets) == test.tolist()


def boilerplate_documents(n_documents=20, own=3000, shared=2000):
    """Documents of random bytes that all carry the same block, like a license header."""
    rng = np.random.default_rng(0)
    block = rng.integers(0, 256, shared, dtype=np.uint8).tobytes()
    return [
        (f"doc{i}", block + rng.integers(0, 256, own, dtype=np.uint8).tobytes())
        for i in range(n_documents)
    ]


def test_test_windows_in_repeated_text_are_rejected():
    documents = boilerplate_documents()
    held, train, test = domain_windows("boilerplate", documents, **DEFAULTS)
    [(_, cut)] = held.train
    training_text = {held.data[s : s + WINDOW] for s in range(cut - WINDOW + 1)}
    assert not any(w in training_text for w in windows(held.data, test))
    assert leaked(held.data, train, test) == 0
    # Without the rejection, test windows inside the shared block (40% of every file) leak.
    plain = sample_starts(held.test, WINDOW, 256, domain_rng(0, "boilerplate", "test"))
    assert sum(w in training_text for w in windows(held.data, plain)) > 50
    # Rejection only drops: the kept starts begin with the plain draws that do not leak.
    clean = [s for s in plain.tolist() if held.data[s : s + WINDOW] not in training_text]
    assert test.tolist()[: len(clean)] == clean


def test_too_few_unseen_test_windows_is_an_error(tmp_path):
    text = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / name).write_bytes(text)  # every file repeats the others
    message = (
        "text domain 'copies' has 0 test windows whose bytes do not occur in its training "
        "text, fewer than test_sequences=256: lower test_sequences, raise max_bytes or raise "
        "test_fraction"
    )
    with pytest.raises(DataError, match=message):
        build_stream("text_files", paths=[str(tmp_path)], names=["copies"])


def test_too_little_training_text_is_an_error():
    documents = [("small", b"s" * 10), ("large", bytes(range(256)) * 2)]
    options = {**DEFAULTS, "test_fraction": 0.9}
    # The seeds whose draw holds out the large file leave 10 bytes to train on.
    seeds = [
        s
        for s in range(10)
        if hold_out(documents, WINDOW, 0.9, domain_rng(s, "d", "documents")).test_documents
        == ("large",)
    ]
    assert seeds
    message = "text domain 'd' keeps 10 bytes of its files for training, fewer than one window"
    with pytest.raises(DataError, match=message):
        domain_windows("d", documents, **{**options, "seed": seeds[0]})


def test_a_single_document_is_split_by_region():
    text = np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes()
    held, train, test = domain_windows("one", [("one.txt", text)], **DEFAULTS)
    assert held.data == text and held.train_documents == held.test_documents == ("one.txt",)
    assert len(held.train) == len(held.test) > 1  # interleaved blocks over the whole text
    assert test.min() < train.max() and test.max() > train.min()
    inside = [any(a <= s and s + WINDOW <= b for a, b in held.test) for s in test.tolist()]
    assert all(inside) and leaked(held.data, train, test) == 0


def test_reading_stops_at_max_bytes():
    read = []

    def documents():
        for i in range(10):
            read.append(i)
            yield f"d{i}", bytes([i]) * 6

    assert read_capped(documents(), 15) == [("d0", b"\0" * 6), ("d1", b"\1" * 6), ("d2", b"\2" * 3)]
    assert read == [0, 1, 2]


def test_installed_domains_have_their_kind_of_text(installed):
    marks = {
        "cython": b"cdef ",
        "yaml": b"\n- ",
        "font_metrics": b"\nC ",
        "cmake": b"set(",
        "mpl_styles": b"axes.",
        "type_stubs": b"def ",
    }
    for name, mark in marks.items():
        held, _, test = domain_windows(name, installed[name], **DEFAULTS)
        assert sum(mark in w for w in windows(held.data, test)) > 10, name


def test_long_config_streams_the_installed_domains():
    cfg = load_config(CONFIGS / "text_domains_long.yaml")
    domains = list(cfg.stream.domains)
    assert len(domains) >= 8 and len(set(domains)) == len(domains)
    assert set(domains) <= set(DEFAULT_DOMAINS) and domains[:4] == list(DEFAULT_DOMAIN_NAMES)


def test_validation_holds_out_training_documents_and_never_reads_the_test_ones():
    rng = np.random.default_rng(1)
    documents = [
        (f"doc{i}", rng.integers(0, 256, 9_000, dtype=np.uint8).tobytes()) for i in range(30)
    ]
    options = {**DEFAULTS, "test_sequences": 64}
    test_side = domain_windows("d", documents, **options)[0]
    held, train, test = domain_windows("d", documents, **options, validation=True)
    assert set(held.test_documents).isdisjoint(test_side.test_documents)
    assert set(held.train_documents) | set(held.test_documents) == set(test_side.train_documents)
    # The test documents' bytes are nowhere in the validation stream's data.
    by_name = dict(documents)
    assert all(by_name[n] not in held.data for n in test_side.test_documents)
    assert leaked(held.data, train, test) == 0 and len(test) == 64


def test_validation_of_a_single_document_splits_its_training_regions():
    text = np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes()
    test_side = domain_windows("one", [("one.txt", text)], **DEFAULTS)[0]
    held, _, test = domain_windows("one", [("one.txt", text)], **DEFAULTS, validation=True)
    training_bytes = b"".join(text[a:b] for a, b in test_side.train)
    assert held.data == training_bytes  # the test regions are not in it
    assert len(test) == DEFAULTS["test_sequences"]


def test_a_validation_stream_builds_from_a_config():
    cfg = load_config(CONFIGS / "text_domains_smoke.yaml", ["stream.validation=true"])
    validation = build_stream(**cfg.stream).benchmark.test_stream
    cfg.stream.validation = False
    test = build_stream(**cfg.stream).benchmark.test_stream
    assert len(validation) == len(test)
    assert not torch.equal(validation[0].dataset[0][0], test[0].dataset[0][0])
