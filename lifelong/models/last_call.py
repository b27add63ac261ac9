"""``LastCall``: the result of a module's last call, kept for a repeat on the same tensor.

A byte language model with several growing layers shares one byte selector among them
(the bytes are the same at every layer), and each layer asks it for the scores of the same
input bytes in one forward pass. The second ask returns the first answer.
"""

from torch import Tensor


class LastCall:
    """One entry: the input tensor itself (so its storage cannot be reused by another
    tensor while it is kept), its version counter (an in-place change invalidates it) and
    the result."""

    def __init__(self):
        self._entry: tuple[Tensor, int, Tensor] | None = None

    def get(self, x: Tensor) -> Tensor | None:
        """The result kept for ``x``, or None if the last call was on another tensor."""
        if self._entry is not None and self._entry[0] is x and self._entry[1] == x._version:
            return self._entry[2]
        return None

    def put(self, x: Tensor, result: Tensor) -> Tensor:
        self._entry = (x, x._version, result)
        return result

    def clear(self) -> None:
        self._entry = None
