"""Argument checks shared by the layers and the stream builders.

Each check returns the value it accepted and otherwise raises ``error`` (a ``ValueError``
by default; the stream builders pass ``DataError``) with one line that names the argument,
the value it got and what would be accepted.
"""

from collections.abc import Collection


def positive_int(name: str, value, *, error: type[ValueError] = ValueError) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise error(f"{name}={value!r} must be a positive integer (>= 1)")
    return value


def non_negative_int(name: str, value, *, error: type[ValueError] = ValueError) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise error(f"{name}={value!r} must be a non-negative integer (>= 0)")
    return value


def positive_number(name: str, value, *, error: type[ValueError] = ValueError) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise error(f"{name}={value!r} must be a positive number (> 0)")
    return float(value)


def non_negative_number(name: str, value, *, error: type[ValueError] = ValueError) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise error(f"{name}={value!r} must be a non-negative number (>= 0)")
    return float(value)


def fraction(name: str, value, *, error: type[ValueError] = ValueError) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise error(f"{name}={value!r} must be a number strictly between 0 and 1")
    return float(value)


def unit_interval(name: str, value, *, error: type[ValueError] = ValueError) -> float:
    """A number in [0, 1): a share that may be zero but not everything."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise error(f"{name}={value!r} must be a number in [0, 1)")
    return float(value)


def one_of(name: str, value, valid: Collection, *, error: type[ValueError] = ValueError):
    if value not in valid:
        choices = ", ".join(repr(v) for v in sorted(valid, key=str))
        raise error(f"{name}={value!r} is not supported; choose one of {choices}")
    return value
