"""The default text domains: text installed with Python and the project's dependencies.

- python:    the standard library's .py files (`sysconfig.get_paths()["stdlib"]`, without
             site-packages and test suites);
- prose:     `pydoc_data.topics.topics` (the Python reference manual's topic texts), then
             scikit-learn's dataset descriptions `sklearn/datasets/descr/*.rst`;
- c_headers: numpy's C headers (`numpy.get_include()`), then torch's `include/` headers;
- csv:       scikit-learn's bundled tables `sklearn/datasets/data/*.csv` and `*.csv.gz`
             (decompressed).

Files are read in sorted order and each domain stops at `max_bytes`, so a domain's bytes are
fixed by the installed versions and nothing is downloaded.
"""

import gzip
import os
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path
from types import MappingProxyType

# Folders of the stdlib tree that are not the standard library's own source.
SKIP_STDLIB_DIRS = {"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test"}
HEADER_SUFFIXES = (".h", ".hh", ".hpp", ".cuh")


def walk_files(
    root: Path, keep_file: Callable[[str], bool], keep_dir: Callable[[str], bool] = bool
) -> Iterator[Path]:
    """Regular files under root in sorted order (a folder's files, then its sorted subfolders)."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if keep_dir(d))
        for name in sorted(files):
            path = Path(folder, name)
            if keep_file(name) and path.is_file():
                yield path


def read_file(path: Path) -> bytes:
    """A file's bytes; .gz files are decompressed."""
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


def read_capped(parts: Iterator[bytes], max_bytes: int) -> bytes:
    """Concatenate parts until max_bytes; the rest of the iterator is never read."""
    out, total = [], 0
    for part in parts:
        out.append(part[: max_bytes - total])
        total += len(out[-1])
        if total >= max_bytes:
            break
    return b"".join(out)


def files_bytes(paths: Iterator[Path], max_bytes: int) -> bytes:
    return read_capped((read_file(p) for p in paths), max_bytes)


def _sklearn_dir() -> Path:
    import sklearn

    return Path(sklearn.__file__).parent


def python_source(max_bytes: int) -> bytes:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = walk_files(stdlib, lambda n: n.endswith(".py"), lambda d: d not in SKIP_STDLIB_DIRS)
    return files_bytes(files, max_bytes)


def prose(max_bytes: int) -> bytes:
    from pydoc_data.topics import topics

    def parts() -> Iterator[bytes]:
        for key in sorted(topics):
            yield topics[key].encode("utf-8")
        yield from (read_file(p) for p in sorted((_sklearn_dir() / "datasets/descr").glob("*.rst")))

    return read_capped(parts(), max_bytes)


def c_headers(max_bytes: int) -> bytes:
    import numpy
    import torch

    def files() -> Iterator[Path]:
        for root in (Path(numpy.get_include()), Path(torch.__file__).parent / "include"):
            yield from walk_files(root, lambda n: n.endswith(HEADER_SUFFIXES))

    return files_bytes(files(), max_bytes)


def csv_tables(max_bytes: int) -> bytes:
    data = _sklearn_dir() / "datasets/data"
    files = sorted(p for p in data.iterdir() if p.name.endswith((".csv", ".csv.gz")))
    return files_bytes(iter(files), max_bytes)


# Domain name -> (reader(max_bytes) -> bytes, where the bytes come from, for error messages).
DEFAULT_DOMAINS = MappingProxyType(
    {
        "python": (python_source, "the Python standard library's .py files"),
        "prose": (prose, "pydoc_data.topics and sklearn/datasets/descr/*.rst"),
        "c_headers": (c_headers, "numpy's and torch's C headers"),
        "csv": (csv_tables, "sklearn/datasets/data/*.csv"),
    }
)
