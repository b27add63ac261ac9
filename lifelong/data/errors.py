"""The one error type of the data package."""


class DataError(ValueError):
    """A stream cannot be built; the message names the problem and the fix in one sentence."""
