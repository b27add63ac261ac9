"""Byte-level language-modelling streams: one experience per text domain.

`text_domains` uses text every installation has (see text_sources), or the user's own
files and folders (`paths`; the stream kind `text_files` requires them). A domain is a list of
documents (files); whole documents are held out for testing, drawn with the seed (a single
document is split into regions instead; byte_windows), and fixed windows of seq_len + 1 bytes
are drawn from each side: x = window[:-1], y = window[1:]. Test windows whose bytes occur in
the training text are rejected (window_hashes), so repeated boilerplate cannot leak.
"""

import math
import os
import re
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import torch

from .byte_windows import (
    BYTE_VOCAB,
    HeldOut,
    domain_rng,
    hold_out,
    sample_starts,
    training_side,
)
from .checks import fraction, non_negative_int, positive_int
from .errors import DataError
from .experiences import lm_dataset, make_benchmark
from .spec import StreamSpec
from .text_sources import DEFAULT_DOMAINS, Document, file_documents, walk_files
from .window_hashes import unseen_test_starts

DEFAULT_MAX_BYTES = 2_000_000  # per domain: reading stays well under a second


def domain_windows(
    name: str,
    documents: Sequence[Document],
    *,
    seq_len: int,
    train_sequences: int,
    test_sequences: int,
    seed: int,
    test_fraction: float,
    validation: bool = False,
) -> tuple[HeldOut, torch.Tensor, torch.Tensor]:
    """A domain held out by document, with its train and test window starts into
    ``held.data`` ((train_sequences,) and (test_sequences,) int64); no test window's bytes
    occur in a training window. ``validation``: the test documents are set aside unread
    and the training documents are held out again the same way, so the "test" side is a
    validation split that no test run ever scores."""
    window = seq_len + 1
    held = hold_out(documents, window, test_fraction, domain_rng(seed, name, "documents"))
    if validation and held is not None:
        rng = domain_rng(seed, name, "validation")
        held = hold_out(training_side(held, documents), window, test_fraction, rng)
    if held is None:  # a single document, too short for its train and test regions
        n_bytes = sum(len(d) for _, d in documents)
        need = math.ceil(window / min(test_fraction, 1 - test_fraction)) + 2
        raise DataError(
            f"text domain {name!r} has {n_bytes} bytes, too few for seq_len={seq_len} "
            f"with test_fraction={test_fraction}: give it at least {need} bytes or lower seq_len"
        )
    n_train = sum(end - start for start, end in held.train)
    if n_train < window:
        raise DataError(
            f"text domain {name!r} keeps {n_train} bytes of its files for training, fewer than "
            f"one window of seq_len + 1 = {window}: lower seq_len or test_fraction, or add text"
        )
    unseen = unseen_test_starts(held.data, held.train, held.test, window)
    n_unseen = int(unseen.sum())
    if n_unseen < test_sequences:
        raise DataError(
            f"text domain {name!r} has {n_unseen} test windows whose bytes do not occur in its "
            f"training text, fewer than test_sequences={test_sequences}: lower test_sequences, "
            "raise max_bytes or raise test_fraction"
        )
    train = sample_starts(held.train, window, train_sequences, domain_rng(seed, name, "train"))
    test_rng = domain_rng(seed, name, "test")
    test = sample_starts(held.test, window, test_sequences, test_rng, keep=unseen)
    return held, train, test


def lm_stream(
    domains: Sequence[tuple[str, Sequence[Document]]],
    *,
    seq_len: int,
    train_sequences: int,
    test_sequences: int,
    seed: int,
    task_labels: bool,
    test_fraction: float,
    validation: bool = False,
) -> StreamSpec:
    """One experience per (name, documents) domain; task label = domain index if task_labels;
    ``validation``: test experiences from held-out training documents (``domain_windows``)."""
    train, test = [], []
    for i, (name, documents) in enumerate(domains):
        held, train_starts, test_starts = domain_windows(
            name,
            documents,
            seq_len=seq_len,
            train_sequences=train_sequences,
            test_sequences=test_sequences,
            seed=seed,
            test_fraction=test_fraction,
            validation=validation,
        )
        tensor = torch.frombuffer(bytearray(held.data), dtype=torch.uint8)  # (n_bytes,)
        t = i if task_labels else 0
        train.append(lm_dataset(tensor, train_starts, seq_len, t))
        test.append(lm_dataset(tensor, test_starts, seq_len, t))
    return StreamSpec(
        benchmark=make_benchmark(train, test, classification=False),
        task="lm",
        scenario="lm",
        input_shape=(seq_len,),
        num_classes=BYTE_VOCAB,
        experience_names=[name for name, _ in domains],
    )


def _lm_options(
    seq_len, train_sequences, test_sequences, seed, task_labels, test_fraction, max_bytes
) -> dict:
    """The options both text builders pass to ``lm_stream``, checked (``max_bytes`` too,
    which each builder uses to read its domains)."""
    positive_int("max_bytes", max_bytes)
    return dict(
        seq_len=positive_int("seq_len", seq_len),
        train_sequences=positive_int("train_sequences", train_sequences),
        test_sequences=positive_int("test_sequences", test_sequences),
        seed=non_negative_int("seed", seed),
        task_labels=task_labels,
        test_fraction=fraction("test_fraction", test_fraction),
    )


DEFAULT_DOMAIN_NAMES = ("python", "prose", "c_headers", "csv")


def text_domains(
    *,
    domains: Sequence[str] | None = DEFAULT_DOMAIN_NAMES,
    paths: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    seq_len: int = 64,
    train_sequences: int = 2048,
    test_sequences: int = 256,
    seed: int = 0,
    task_labels: bool = True,
    test_fraction: float = 0.1,
    max_bytes: int = DEFAULT_MAX_BYTES,
    validation: bool = False,
) -> StreamSpec:
    """One experience per text domain, at most ``max_bytes`` read per domain: the installed
    texts named by ``domains`` (sources in lifelong/data/text_sources.py), or, given
    ``paths``, the user's own files and folders, one domain each (a folder: all its regular
    files, recursively, in sorted order, one document each; hidden names skipped; .gz
    decompressed), named by ``names`` (default: ``domain_name``).
    ``validation=True`` replaces each test experience by a validation one, held out of the
    training documents: for choosing hyper-parameters without reading the test text."""
    options = _lm_options(
        seq_len, train_sequences, test_sequences, seed, task_labels, test_fraction, max_bytes
    )
    if paths is None and domains is None:
        raise DataError(
            "stream kind 'text_files' needs option 'paths'; pass paths=['a.txt', 'notes/'] "
            "(in a config: stream.paths)"
        )
    if paths is None:
        texts = _installed_texts(domains, max_bytes)
    else:
        texts = _user_texts(paths, names, max_bytes)
    return lm_stream(texts, **options, validation=bool(validation))


# The same builder for the user's own files: `paths` is required.
text_files = partial(text_domains, domains=None)


def _installed_texts(domains, max_bytes: int) -> list[tuple[str, list[Document]]]:
    if isinstance(domains, str) or not domains:
        raise DataError(f"domains must be a non-empty list of names, got {domains!r}")
    texts = []
    for name in domains:
        if name not in DEFAULT_DOMAINS:
            valid = ", ".join(DEFAULT_DOMAINS)
            raise DataError(
                f"unknown text domain {name!r}; choose from {valid}, or use kind text_files"
            )
        read, where = DEFAULT_DOMAINS[name]
        documents = read(max_bytes)
        if not documents:
            raise DataError(
                f"text domain {name!r} is empty: no bytes found in {where}; "
                "check the installation or leave the domain out"
            )
        texts.append((name, documents))
    return texts


def domain_name(path: Path) -> str:
    """A folder's name, or a file's without its (at most two) extensions: 'notes' for
    notes.txt.gz, but 'Apache-2.0' for Apache-2.0 (a suffix of digits is part of the name,
    not a file type)."""
    if not path.is_file():
        return path.name
    return re.sub(r"(\.[A-Za-z][A-Za-z0-9]{0,3}){1,2}$", "", path.name) or path.name


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _path_files(path: Path):
    """A file itself, or a folder's regular files, recursively, sorted, skipping hidden ones."""
    if path.is_file():
        return iter([path])
    return walk_files(path, _visible, _visible)


def _user_texts(paths, names, max_bytes: int) -> list[tuple[str, list[Document]]]:
    paths = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    if not paths:
        raise DataError("paths is empty; pass one file or folder per domain, e.g. paths=['a.txt']")
    if names is None:
        names = [domain_name(Path(p)) for p in paths]
    names = [names] if isinstance(names, str) else list(names)
    if len(names) != len(paths):
        raise DataError(f"names has {len(names)} entries for {len(paths)} paths; give one per path")
    if len(set(names)) != len(names):
        raise DataError(f"domain names {names} repeat; pass distinct names=[...], one per path")
    texts = []
    for name, p in zip(names, paths, strict=True):
        path = Path(p).expanduser()
        if not path.exists():
            raise DataError(f"data path '{p}' does not exist; pass an existing file or folder")
        documents = file_documents(_path_files(path), max_bytes)
        if not documents:
            raise DataError(
                f"text domain {name!r} is empty: no bytes found in '{p}'; "
                "add text there or leave the path out"
            )
        texts.append((name, documents))
    return texts
