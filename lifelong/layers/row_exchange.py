"""Moving table rows between the ranks that own them and the ranks that retrieved them.

A table sharded round-robin over W ranks keeps global row r on rank r mod W, as local row
r div W. Every stage, and every growth, is then spread evenly over the ranks, and a rank's
share of any stage is a contiguous block of its local table.

A rank that retrieved the rows ``ids`` gets them in three ``all_to_all_single`` calls, the
exchange GShard (Lepikhin et al. 2021) uses to dispatch tokens to experts, here moving the
(much smaller) expert rows to the tokens instead:
1. how many ids each rank asks of each other rank;
2. the ids themselves (as local rows of their owner);
3. the rows, from their owners.
``send_back`` returns per-row values (the rows' gradients) to the owners along the same
route in one more call.
"""

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


def rows_held(rows: int, *, rank: int, world: int) -> int:
    """How many of the global rows [0, rows) rank ``rank`` of ``world`` owns."""
    return max(0, (rows - rank + world - 1) // world)


@dataclass(frozen=True)
class Route:
    """Where the rows one rank asked for live, and which rows it serves to the others.

    Attributes:
        order: (U,) the requested ids' positions, grouped by owner rank.
        asked: rows this rank asked of each rank (its own included).
        served_to: rows each rank asked of this one.
        served: (R,) local rows this rank serves, in the order the requests arrived.
        rank: this rank in ``group``.
    """

    order: Tensor
    asked: list[int]
    served_to: list[int]
    served: Tensor
    rank: int
    group: dist.ProcessGroup | None

    def remote_bytes(self, row_bytes: int) -> tuple[int, int]:
        """Bytes this rank sends to other ranks (ids, rows) for one fetch; ``send_back``
        sends ``sum(asked) - asked[rank]`` rows back."""
        ids = (sum(self.asked) - self.asked[self.rank]) * 8
        rows = (sum(self.served_to) - self.served_to[self.rank]) * row_bytes
        return ids, rows


def route(ids: Tensor, group: dist.ProcessGroup | None = None) -> Route:
    """Ask each row's owner for the global rows ``ids`` (U,). Every rank of ``group`` must
    call this at the same time (it exchanges counts and ids)."""
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    owners = ids % world
    order = torch.argsort(owners, stable=True)
    asked = torch.bincount(owners, minlength=world)
    served_to = torch.empty_like(asked)
    dist.all_to_all_single(served_to, asked, group=group)
    asked_l, served_l = asked.tolist(), served_to.tolist()
    served = ids.new_empty(sum(served_l))
    dist.all_to_all_single(served, (ids // world)[order], served_l, asked_l, group=group)
    return Route(order, asked_l, served_l, served, rank, group)


def fetch(tables: list[Tensor], path: Route) -> list[Tensor]:
    """The requested rows of each local table (rows, d_t), each (U, d_t) in the order of
    the ids given to ``route``; one exchange for all tables."""
    widths = [t.shape[1] for t in tables]
    payload = torch.cat([t.index_select(0, path.served) for t in tables], dim=1)
    got = payload.new_empty(sum(path.asked), sum(widths))
    dist.all_to_all_single(got, payload, path.asked, path.served_to, group=path.group)
    out = torch.empty_like(got)
    out[path.order] = got
    return list(out.split(widths, dim=1))


def send_back(values: Tensor, path: Route) -> Tensor:
    """values (U, d), one per requested row -> (R, d) for this rank's ``path.served`` rows,
    summed by nothing: a row asked by several ranks appears once per asker."""
    out = values.new_empty(path.served.shape[0], values.shape[1])
    dist.all_to_all_single(
        out, values[path.order].contiguous(), path.served_to, path.asked, group=path.group
    )
    return out
