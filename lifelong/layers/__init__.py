"""Expert layers. ``PEER`` is the growing product-key expert layer; ``PKM`` the product-key
memory it generalises."""

from .peer import PEER
from .peer_reference import ReferencePEER, brute_force_topk
from .pkm import PKM

__all__ = ["PEER", "PKM", "ReferencePEER", "brute_force_topk"]
