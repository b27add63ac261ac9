"""Expert layers. ``PEER`` is the growing product-key expert layer."""

from .peer import PEER
from .peer_reference import ReferencePEER, brute_force_topk

__all__ = ["PEER", "ReferencePEER", "brute_force_topk"]
