"""The installed text domains: text that Python and the project's dependencies ship.

A reader returns a domain's documents, [(name, bytes), ...]: the unit that goes whole to
training or to testing (text.py). A document is one file, except where noted:

- python:       the standard library's .py files (`sysconfig.get_paths()["stdlib"]`, without
                site-packages and test suites);
- prose:        `pydoc_data.topics.topics` (the Python reference manual's topic texts, one
                document each), then scikit-learn's dataset descriptions
                `sklearn/datasets/descr/*.rst`;
- c_headers:    numpy's C headers (`numpy.get_include()`), then torch's `include/` headers;
- csv:          scikit-learn's bundled tables `sklearn/datasets/data/*.csv` and `*.csv.gz`
                (decompressed);
- cython:       the Cython sources (.pyx, .pxd) of scikit-learn, then numpy, then scipy;
- yaml:         torchgen's operator and derivative tables `torchgen/packaged/**/*.yaml`, one
                document per top-level list entry (a file is one long list);
- font_metrics: matplotlib's Adobe font metrics `mpl-data/fonts/{afm,pdfcorefonts}/*.afm`;
- cmake:        torch's CMake package files `torch/share/cmake/**/*.cmake`;
- mpl_styles:   matplotlib's `mpl-data/matplotlibrc` and style sheets `stylelib/*.mplstyle`;
- type_stubs:   the .pyi stubs of numpy, then torch.

The domains after csv read nothing that only a CUDA build of torch ships (nvidia/, triton/,
.cuh files), so every build of torch has them (their bytes may differ). Documents are read
in sorted order and each domain stops at `max_bytes` (the last document may be cut; later
files are never opened), so a domain's bytes are fixed by the installed versions and nothing
is downloaded.
"""

import gzip
import importlib.util
import os
import re
import sysconfig
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import MappingProxyType

from .errors import DataError

# A document: (name, bytes). The name (a path, a pydoc topic) identifies it in audits.
Document = tuple[str, bytes]

# Folders of the stdlib tree that are not the standard library's own source.
SKIP_STDLIB_DIRS = {"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test"}
HEADER_SUFFIXES = (".h", ".hh", ".hpp", ".cuh")
# A top-level YAML list entry starts a line with "- " (torchgen's tables are such lists).
YAML_ENTRY = re.compile(rb"^(?=- )", re.MULTILINE)


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


def suffix_files(roots: Iterable[Path], suffixes: tuple[str, ...]) -> Iterator[Path]:
    """The files under each root in turn whose names end with one of suffixes."""
    for root in roots:
        yield from walk_files(root, lambda n: n.endswith(suffixes))


def read_file(path: Path, limit: int) -> bytes:
    """At most ``limit`` of a file's bytes, .gz files decompressed as they are read: a small
    .gz that expands to gigabytes costs ``limit`` bytes of memory, not its full size."""
    try:
        with gzip.open(path) if path.suffix == ".gz" else open(path, "rb") as f:
            return f.read(limit)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"text file '{path}' cannot be read ({err}); repair or remove it") from None


def read_capped(documents: Iterator[Document], max_bytes: int) -> list[Document]:
    """Non-empty documents until max_bytes in all, the last one cut to fit; the rest of the
    iterator is never read."""
    out, total = [], 0
    for name, data in documents:
        data = data[: max_bytes - total]
        if data:
            out.append((name, data))
            total += len(data)
        if total >= max_bytes:
            break
    return out


def file_documents(paths: Iterable[Path], max_bytes: int) -> list[Document]:
    """One document per file, named by its path."""
    return read_capped(((str(p), read_file(p, max_bytes)) for p in paths), max_bytes)


def _package_dir(name: str) -> Path:
    """An installed package's folder, found without importing it (matplotlib, sklearn, ...)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {name!r} is not installed")
    return Path(spec.submodule_search_locations[0])


def python_source(max_bytes: int) -> list[Document]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = walk_files(stdlib, lambda n: n.endswith(".py"), lambda d: d not in SKIP_STDLIB_DIRS)
    return file_documents(files, max_bytes)


def prose(max_bytes: int) -> list[Document]:
    from pydoc_data.topics import topics

    def documents() -> Iterator[Document]:
        for key in sorted(topics):
            yield f"pydoc_data.topics[{key!r}]", topics[key].encode("utf-8")
        for path in sorted((_package_dir("sklearn") / "datasets/descr").glob("*.rst")):
            yield str(path), read_file(path, max_bytes)

    return read_capped(documents(), max_bytes)


def c_headers(max_bytes: int) -> list[Document]:
    import numpy

    roots = (Path(numpy.get_include()), _package_dir("torch") / "include")
    return file_documents(suffix_files(roots, HEADER_SUFFIXES), max_bytes)


def csv_tables(max_bytes: int) -> list[Document]:
    data = _package_dir("sklearn") / "datasets/data"
    files = sorted(p for p in data.iterdir() if p.name.endswith((".csv", ".csv.gz")))
    return file_documents(files, max_bytes)


def cython(max_bytes: int) -> list[Document]:
    # scikit-learn's hand-written sources first; scipy's large generated LAPACK wrappers last.
    roots = (_package_dir(p) for p in ("sklearn", "numpy", "scipy"))
    return file_documents(suffix_files(roots, (".pyx", ".pxd")), max_bytes)


def yaml_tables(max_bytes: int) -> list[Document]:
    def documents() -> Iterator[Document]:
        for path in suffix_files([_package_dir("torchgen") / "packaged"], (".yaml",)):
            # One entry (an operator) per document: a file is one long list, too coarse to
            # hold out whole (native_functions.yaml alone is 0.6 MB, 76% of the domain).
            entries = YAML_ENTRY.split(read_file(path, max_bytes))
            for i, entry in enumerate(entries):
                yield f"{path}#{i}", entry

    return read_capped(documents(), max_bytes)


def font_metrics(max_bytes: int) -> list[Document]:
    fonts = _package_dir("matplotlib") / "mpl-data/fonts"
    return file_documents(
        suffix_files([fonts / "afm", fonts / "pdfcorefonts"], (".afm",)), max_bytes
    )


def cmake(max_bytes: int) -> list[Document]:
    root = _package_dir("torch") / "share/cmake"
    return file_documents(suffix_files([root], (".cmake",)), max_bytes)


def mpl_styles(max_bytes: int) -> list[Document]:
    data = _package_dir("matplotlib") / "mpl-data"
    files = [data / "matplotlibrc", *sorted((data / "stylelib").glob("*.mplstyle"))]
    return file_documents((p for p in files if p.is_file()), max_bytes)


def type_stubs(max_bytes: int) -> list[Document]:
    roots = (_package_dir(p) for p in ("numpy", "torch"))
    return file_documents(suffix_files(roots, (".pyi",)), max_bytes)


# Domain name -> (reader(max_bytes) -> documents, where the bytes come from, for messages).
DEFAULT_DOMAINS = MappingProxyType(
    {
        "python": (python_source, "the Python standard library's .py files"),
        "prose": (prose, "pydoc_data.topics and sklearn/datasets/descr/*.rst"),
        "c_headers": (c_headers, "numpy's and torch's C headers"),
        "csv": (csv_tables, "sklearn/datasets/data/*.csv"),
        "cython": (cython, "the .pyx and .pxd files of scikit-learn, numpy and scipy"),
        "yaml": (yaml_tables, "torchgen/packaged/**/*.yaml"),
        "font_metrics": (font_metrics, "matplotlib's mpl-data/fonts/*/*.afm"),
        "cmake": (cmake, "torch/share/cmake/**/*.cmake"),
        "mpl_styles": (mpl_styles, "matplotlib's mpl-data/matplotlibrc and stylelib/*.mplstyle"),
        "type_stubs": (type_stubs, "the .pyi files of numpy and torch"),
    }
)
