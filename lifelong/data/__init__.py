"""Task streams for continual learning: `build_stream(kind, **options) -> StreamSpec`.

Every stream is an Avalanche benchmark whose minibatches are (x, y, t), plus the facts a
model needs (task, scenario, input shape, number of classes, experience names). See
docs/streams.md.
"""

import difflib
import inspect
from types import MappingProxyType

from .classic import avalanche_classic
from .digits import permuted_digits, split_digits
from .errors import DataError
from .experiences import experience_task_labels
from .spec import StreamSpec
from .text import text_domains, text_files
from .user import datasets, tensors
from .wrap import from_benchmark

# kind -> builder; a builder takes its options as flat keyword arguments.
STREAMS = MappingProxyType(
    {
        "text_domains": text_domains,
        "text_files": text_files,
        "split_digits": split_digits,
        "permuted_digits": permuted_digits,
        "tensors": tensors,
        "datasets": datasets,
        "avalanche": avalanche_classic,
    }
)


def _did_you_mean(name: str, valid) -> str:
    close = difflib.get_close_matches(str(name), list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def build_stream(kind: str, **options) -> StreamSpec:
    """Build the stream `kind` from its options; unknown kinds or options are a DataError."""
    if kind not in STREAMS:
        raise DataError(
            f"unknown stream kind {kind!r}{_did_you_mean(kind, STREAMS)}; "
            f"valid kinds: {', '.join(STREAMS)}"
        )
    params = inspect.signature(STREAMS[kind]).parameters
    for name in options:
        if name not in params:
            raise DataError(
                f"unknown option {name!r} for stream kind {kind!r}{_did_you_mean(name, params)}; "
                f"valid options: {', '.join(params)}"
            )
    missing = [p for p, v in params.items() if v.default is v.empty and p not in options]
    if missing:
        raise DataError(
            f"stream kind {kind!r} needs option {missing[0]!r}; pass {missing[0]}=... "
            f"(in a config: stream.{missing[0]})"
        )
    return STREAMS[kind](**options)


__all__ = [
    "STREAMS",
    "DataError",
    "StreamSpec",
    "build_stream",
    "experience_task_labels",
    "from_benchmark",
]
