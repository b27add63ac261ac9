"""Errors of a run, phrased for the command line (each a ``ValueError``: one line, exit 2)."""


class RunError(ValueError):
    """A run that cannot start, phrased for the command line."""


class RankLostError(RunError):
    """A rank of a data-parallel run lost the others (one died or hung); each rank that
    notices says so, so the command line reports it on every rank."""
