"""Errors of a run, phrased for the command line (each a ``ValueError``: one line, exit 2)."""


class RunError(ValueError):
    """A run that cannot start, phrased for the command line."""
