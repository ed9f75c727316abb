"""The collective shell of the sharded MC modules: raw ids to their owners, remapped rows back.

Three 1-D all-to-alls per batch (all tables together): the ``(W, T)`` counts, the raw ids, and (after the owners
remapped them) the rows. The planning around them is pure (``layout.py``)::

    source rank                          owner rank
    ids (N,) --plan_send--> send order
    counts (W, T) ------ all-to-all ---> recv counts (W, T)
    ids in send order -- all-to-all ---> ids per table (sources in rank order) -> MC module -> rows per table
    rows (N,) <-restore_order-- all-to-all <-- rows (source-major, then table)
"""

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.distributed as dist

from recsys_lib.distributed._collectives.primitives import all_to_all_flat
from recsys_lib.distributed._mc.layout import back_to_sources, per_table_received, plan_send, restore_order, SendPlan


@dataclass
class ExchangeFacts:
    """What the reply needs: this rank's send plan and the counts it received."""

    plan: SendPlan
    recv_counts: torch.Tensor  # (W, T)


class RawIdExchange:
    """Moves ids between ranks for the sharded managed-collision collection.

    Args:
        pg: process group (``None``: a world of one).
        world_size: ``W``.
        num_tables: ``T``.
    """

    def __init__(self, pg: Optional[dist.ProcessGroup], world_size: int, num_tables: int) -> None:
        self._pg = pg
        self._world = world_size
        self._tables = num_tables

    def send(
        self, values: torch.Tensor, owner: torch.Tensor, table_of: torch.Tensor
    ) -> Tuple[List[torch.Tensor], ExchangeFacts]:
        """Sends ids ``(N,)`` to ``owner`` ``(N,)``; returns ``(ids per table received here, ExchangeFacts)``."""
        plan = plan_send(owner, table_of, self._tables, self._world)
        recv_counts = self._counts(plan.counts)
        in_splits = plan.counts.sum(dim=1).tolist()
        out_splits = recv_counts.sum(dim=1).tolist()
        sent = values.to(torch.int64)[plan.order]
        received = all_to_all_flat(sent, in_splits, out_splits, self._pg).wait()
        return per_table_received(received, recv_counts), ExchangeFacts(plan, recv_counts)

    def reply(self, rows_per_table: List[torch.Tensor], facts: ExchangeFacts) -> torch.Tensor:
        """Rows of the ids received in :meth:`send` → rows ``(N,)`` of this rank's ids, in their original order."""
        rows = back_to_sources([r.to(torch.int64) for r in rows_per_table], facts.recv_counts)
        in_splits = facts.recv_counts.sum(dim=1).tolist()
        out_splits = facts.plan.counts.sum(dim=1).tolist()
        replies = all_to_all_flat(rows, in_splits, out_splits, self._pg).wait()
        return restore_order(facts.plan.order, replies)

    def _counts(self, counts: torch.Tensor) -> torch.Tensor:
        flat = counts.reshape(-1).to(torch.int64)
        splits = [self._tables] * self._world
        return all_to_all_flat(flat, splits, splits, self._pg).wait().view(self._world, self._tables)
