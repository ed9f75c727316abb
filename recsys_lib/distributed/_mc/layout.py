"""Row-wise layout of managed-collision (MC) tables: pure functions, tested without a process group.

A row-wise sharded MC table of ``R`` rows over ``W`` ranks gives rank ``r`` the row slice
``[o_r, o_r + n_r)`` of the embedding table *and* the matching slice of the remapped id space: rank ``r``'s MC
module is the unsharded module rebuilt for rows ``[o_r, o_r + n_r)`` (``rebuild_with_output_id_range``). Raw ids
are routed to their owner by blocks of the raw-id (hash) space ``[0, H)``, ``H = input_size()``::

    block = ceil(H / W);  owner(id) = clamp(id // block, 0, W - 1)

    H = 2**63 - 1, W = 2:   ids [0, 2**62) -> rank 0,   [2**62, 2**63) -> rank 1
    R = 10, W = 4:          rows  rank 0: [0, 3)  1: [3, 6)  2: [6, 9)  3: [9, 10)

Negative ids (outside every block) go to rank 0. Every rank needs at least one row (``R >= W``): a rank without
rows would own raw ids it cannot place.
"""

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch


@dataclass(frozen=True)
class MCTableLayout:
    """Where one MC table lives.

    Attributes:
        table: table name.
        rows: ``R``, the table's ``num_embeddings``.
        row_ranges: ``(offset, rows)`` of each rank, in rank order; they tile ``[0, R)``.
        input_size: ``H``, the raw-id range routed in blocks (0: by ``id mod buckets``).
    """

    table: str
    rows: int
    row_ranges: Tuple[Tuple[int, int], ...]
    input_size: int

    @property
    def world_size(self) -> int:
        return len(self.row_ranges)

    @property
    def output_segments(self) -> List[int]:
        """Row boundaries ``[o_0, ..., o_{W-1}, R]`` (the MC modules' ``output_segments``)."""
        return [o for o, _ in self.row_ranges] + [self.rows]


def mc_table_layout(table: str, rows: int, shard_rows: Sequence[Tuple[int, int, int]], input_size: int,
                    world_size: int) -> MCTableLayout:
    """The layout of one table from its plan's shards.

    Args:
        table: named in errors.
        rows: the table's ``num_embeddings``.
        shard_rows: ``(rank, row_offset, row_count)`` of each shard.
        input_size: the MC module's ``input_size()``.
        world_size: ``W``.

    Raises:
        ValueError: ``R < W``, a rank without exactly one shard, or shards that do not tile the rows in rank order.
    """
    if rows < world_size:
        raise ValueError(
            f"managed-collision table {table!r} has {rows} rows (zch_size) but is sharded row-wise over {world_size} "
            f"ranks: every rank needs at least one row, so zch_size must be >= world size"
        )
    by_rank = sorted(shard_rows)
    if [r for r, _, _ in by_rank] != list(range(world_size)):
        raise ValueError(
            f"managed-collision table {table!r}: row-wise shards must place one row block on every rank "
            f"0..{world_size - 1}, got ranks {[r for r, _, _ in by_rank]}"
        )
    ranges: List[Tuple[int, int]] = []
    expected = 0
    for rank, offset, count in by_rank:
        if count < 1:
            raise ValueError(
                f"managed-collision table {table!r}: the plan gives rank {rank} no rows ({rows} rows over {world_size} "
                f"ranks); every rank needs rows: pick num_embeddings so the row blocks are all non-empty, or give "
                f"row_wise() explicit sizes"
            )
        if offset != expected:
            raise ValueError(
                f"managed-collision table {table!r}: rank {rank} holds rows [{offset}, {offset + count}); row blocks "
                f"must be consecutive in rank order (expected offset {expected})"
            )
        ranges.append((offset, count))
        expected = offset + count
    if expected != rows:
        raise ValueError(f"managed-collision table {table!r}: shards cover {expected} of {rows} rows")
    if input_size < 0:
        raise ValueError(f"managed-collision table {table!r}: input_size() must be >= 0, got {input_size}")
    return MCTableLayout(table, rows, tuple(ranges), input_size)


def bucket_owners(table: str, num_buckets: int, world_size: int) -> List[int]:
    """Owner rank of each of an MC module's ``B`` buckets: ``B / W`` consecutive buckets per rank (an MCH rebuilt for
    a shard has one bucket per rank; a hash ZCH ``total_num_buckets``, a multiple of ``W``).

    Example: ``bucket_owners("t", 4, 2) == [0, 0, 1, 1]``.
    """
    if num_buckets < world_size or num_buckets % world_size != 0:
        raise ValueError(f"managed-collision table {table!r}: {num_buckets} buckets cannot be split evenly over "
                         f"{world_size} ranks; use a multiple of the world size")
    per_rank = num_buckets // world_size
    return [b // per_rank for b in range(num_buckets)]


def raw_id_owner(ids: torch.Tensor, input_size: int, bucket_owner: torch.Tensor) -> torch.Tensor:
    """Owner rank ``(N,)`` int64 of (preprocessed) ids ``(N,)``.

    The id's bucket among ``B = len(bucket_owner)``: blocks of ``ceil(input_size / B)`` when ``input_size > 0``
    (negative ids: bucket 0, ids past the range: the last), else ``id mod B``; then the bucket's owner.
    """
    b = bucket_owner.numel()
    ids = ids.to(torch.int64)
    if input_size > 0:
        bucket = torch.div(ids, max(1, -(-input_size // b)), rounding_mode="floor").clamp_(0, b - 1)
    else:
        bucket = torch.remainder(ids, b)
    return bucket_owner.to(ids.device)[bucket]


@dataclass(frozen=True)
class SendPlan:
    """How this rank's ids leave: sorted by ``(owner, table)``.

    Attributes:
        order: ``(N,)`` positions of the ids in send order (stable within one owner and table).
        counts: ``(W, T)`` ids sent to each rank per table.
    """

    order: torch.Tensor
    counts: torch.Tensor


def plan_send(owner: torch.Tensor, table_of: torch.Tensor, num_tables: int, world_size: int) -> SendPlan:
    """Send order and counts of ids with ``owner`` / ``table_of`` ``(N,)`` (both int64).

    Example: owners ``[1, 0, 1]``, tables ``[0, 0, 1]``, T=2, W=2 → order ``[1, 0, 2]``,
    counts ``[[1, 0], [1, 1]]``.
    """
    key = owner * num_tables + table_of
    order = torch.argsort(key, stable=True)
    counts = torch.bincount(key, minlength=world_size * num_tables).view(world_size, num_tables)
    return SendPlan(order, counts)


def per_table_received(received: torch.Tensor, recv_counts: torch.Tensor) -> List[torch.Tensor]:
    """Ids received ``(source-major, then table)`` → one ``(n_t,)`` tensor per table, sources in rank order.

    Args:
        received: concatenation over sources ``s`` and tables ``t`` of ``recv_counts[s, t]`` ids.
        recv_counts: ``(W, T)``.
    """
    w, t = recv_counts.shape
    chunks = received.split(recv_counts.reshape(-1).tolist())
    return [torch.cat([chunks[s * t + j] for s in range(w)]) for j in range(t)]


def back_to_sources(rows_per_table: List[torch.Tensor], recv_counts: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`per_table_received`: rows laid out ``(source-major, then table)`` for the reply."""
    w, t = recv_counts.shape
    pieces = [rows.split(recv_counts[:, j].tolist()) for j, rows in enumerate(rows_per_table)]
    flat = [pieces[j][s] for s in range(w) for j in range(t)]
    if len(flat) == 0:
        return torch.empty((0,), dtype=torch.int64)
    return torch.cat(flat)


def restore_order(sent_order: torch.Tensor, replies: torch.Tensor) -> torch.Tensor:
    """Replies ``(N,)`` in send order → original order (``out[sent_order[i]] = replies[i]``)."""
    out = torch.empty_like(replies)
    out[sent_order] = replies
    return out
