"""Row-wise pool layout, pure: pool of ``P`` slots over ``W`` ranks in blocks of ``ceil(P / W)``::

    P = 10, W = 4: block 3;  rank 0: slots [0, 3)  1: [3, 6)  2: [6, 9)  3: [9, 10)
    id 7 -> rank 2, local slot 1

Ids leave a rank sorted by owner (stable, so repeated ids keep their order and "last update wins" holds across
the exchange); ``unbucketize_permute[i]`` is where original id ``i`` sits in that order.
"""

from dataclasses import dataclass
from typing import Tuple

import torch


def block_size(pool_size: int, world_size: int) -> int:
    return max(1, -(-pool_size // world_size))


def local_pool_size(pool_size: int, world_size: int, rank: int) -> int:
    """Slots of rank ``rank`` (the last rank holds the remainder; may be 0 for tiny pools)."""
    block = block_size(pool_size, world_size)
    return max(0, min(pool_size, (rank + 1) * block) - min(pool_size, rank * block))


def bucketize_ids(ids: torch.Tensor, block: int, world_size: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(local ids in owner order (N,), ids per owner (W,), unbucketize_permute (N,))``."""
    owner = torch.div(ids.to(torch.int64), block, rounding_mode="floor").clamp_(0, world_size - 1)
    order = torch.argsort(owner, stable=True)
    counts = torch.bincount(owner, minlength=world_size)
    unbucketize = torch.empty_like(order)
    unbucketize[order] = torch.arange(order.numel(), device=order.device)
    local = ids[order] - (owner[order] * block).to(ids.dtype)
    return local, counts, unbucketize


def row_ranges(pool_size: int, world_size: int) -> Tuple[Tuple[int, int], ...]:
    """``(first slot, slots)`` of every rank."""
    block = block_size(pool_size, world_size)
    return tuple((min(pool_size, r * block), local_pool_size(pool_size, world_size, r)) for r in range(world_size))


@dataclass(frozen=True)
class RwPoolLayout:
    """This rank's view of a row-wise pool: block size, its slot count, every rank's slot range."""

    pool_size: int
    world_size: int
    rank: int

    @property
    def block_size(self) -> int:
        return block_size(self.pool_size, self.world_size)

    @property
    def local_pool_size(self) -> int:
        return local_pool_size(self.pool_size, self.world_size, self.rank)

    @property
    def row_ranges(self) -> Tuple[Tuple[int, int], ...]:
        return row_ranges(self.pool_size, self.world_size)

    def sharding_fields(self, device: torch.device) -> Tuple[int, int, torch.Tensor]:
        """``(block size, this rank's slots, block size as a (1,) long tensor on device)``: what a pool
        sharding keeps (its context carries the tensor)."""
        return self.block_size, self.local_pool_size, torch.tensor([self.block_size], dtype=torch.long, device=device)


def check_slot_ids(owner: str, ids: torch.Tensor, pool_size: int) -> None:
    """Ids in ``[0, pool_size)``; checked before any collective (an id out of range would index past a shard)."""
    if ids.numel() > 0 and (bool((ids < 0).any()) or bool((ids >= pool_size).any())):
        bad = ids[(ids < 0) | (ids >= pool_size)][:5].tolist()
        raise ValueError(f"{owner}: ids must lie in [0, pool_size={pool_size}), got e.g. {bad}")
