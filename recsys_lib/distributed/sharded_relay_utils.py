"""Sharded-relay all-reduce for 2D sparse parallelism: one fused all-reduce per dtype within each sparse group.

On a host of ``L`` ranks split into sparse groups of ``S`` consecutive local ranks (``S = 2``)::

    L = 4, S = 2:   group 0 = local ranks [0, 1]    group 1 = local ranks [2, 3]

``allreduce_tensors_with_sharded_relay`` packs this rank's tensors of one dtype into one flat buffer, all-reduces
it (``AVG`` or ``SUM``) with the other active ranks of its group, and unpacks the result in place.

TorchRec drives a fused multi-group RCCLX kernel (ROCm) in which the other groups' ranks relay traffic; that
kernel is not part of recsys_lib. Here the fused object is a portable one with the same
``allreduce_multi_group`` call: one process group per sparse group (created once, at setup) and one
all-reduce of the packed buffer, on any backend (gloo included). Results equal the fused kernel's.
"""

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
from torch.autograd.profiler import record_function

from recsys_lib.distributed.comm import get_local_size

logger: logging.Logger = logging.getLogger(__name__)


class _GroupAllReduce:
    """``allreduce_multi_group`` of the fused kernel, as one all-reduce on this rank's sparse-group process group."""

    def __init__(self, group: dist.ProcessGroup, my_sparse_group: int) -> None:
        self.group = group
        self.my_sparse_group = my_sparse_group

    def allreduce_multi_group(
        self, tensors: List[torch.Tensor], num_groups: int, per_group_sizes: List[int],
        all_active_ranks: List[List[int]], op: Any = dist.ReduceOp.AVG, skip_validation: bool = False,
    ) -> None:
        if op not in (dist.ReduceOp.AVG, dist.ReduceOp.SUM):
            raise ValueError(f"sharded relay all-reduce supports ReduceOp.AVG and ReduceOp.SUM, got {op}")
        mine = tensors[self.my_sparse_group]
        if op == dist.ReduceOp.AVG:  # gloo has no AVG: sum, then divide by the active ranks
            dist.all_reduce(mine, op=dist.ReduceOp.SUM, group=self.group)
            mine.div_(len(all_active_ranks[self.my_sparse_group]))
        else:
            dist.all_reduce(mine, op=op, group=self.group)


@dataclass
class ShardedRelayState:
    """What ``allreduce_tensors_with_sharded_relay`` needs, built once by ``setup_sharded_relay``.

    Args:
        fused: the multi-group all-reduce (``allreduce_multi_group``).
        intra_node_pytorch_pg: this host's process group (used once per annotation and dtype to learn every
            group's packed size).
        local_rank / local_size: this rank's index on its host, and ranks per host.
        sparse_group_size / my_sparse_group / num_sparse_groups: the sparse groups of this host.
        precomputed_active_ranks: local ranks of each sparse group.
    """

    fused: Any
    intra_node_pytorch_pg: Optional[dist.ProcessGroup]
    local_rank: int
    sparse_group_size: int
    my_sparse_group: int
    num_sparse_groups: int
    local_size: int
    precomputed_active_ranks: List[List[int]]
    _rcclx_comm: Any = field(default=None)
    _active_flat_cache: Dict[torch.dtype, torch.Tensor] = field(default_factory=dict)
    _helper_flat_cache: Dict[Tuple[int, torch.dtype], torch.Tensor] = field(default_factory=dict)
    _flat_metadata_cache: Dict[str, List[int]] = field(default_factory=dict)


def _preconditions_met(use_inter_host_allreduce: bool, sharding_group_size: int, local_size: int) -> bool:
    reason = None
    if use_inter_host_allreduce:
        reason = "not supported with use_inter_host_allreduce=True (the replica group spans hosts)"
    elif sharding_group_size != 2:
        reason = f"needs sharding_group_size=2, got {sharding_group_size}"
    elif local_size < 4:
        reason = f"needs at least 4 ranks per host, got local_size={local_size}"
    if reason is not None:
        logger.warning("sharded relay disabled: %s", reason)
        return False
    return True


def setup_sharded_relay(
    global_rank: int,
    world_size: int,
    use_inter_host_allreduce: bool,
    sharding_group_size: int = 2,
) -> Optional[ShardedRelayState]:
    """Builds the sparse groups of every host; returns ``None`` (relay disabled, with a warning) unless
    ``sharding_group_size == 2``, at least 4 ranks per host and no inter-host all-reduce.

    A collective: every rank of the world group calls it (process groups are created).
    """
    local_size = get_local_size(world_size)
    if not _preconditions_met(use_inter_host_allreduce, sharding_group_size, local_size):
        return None
    num_groups = local_size // sharding_group_size
    local_rank = global_rank % local_size
    my_node = global_rank // local_size
    active = [list(range(g * sharding_group_size, (g + 1) * sharding_group_size)) for g in range(num_groups)]
    intra: Optional[dist.ProcessGroup] = None
    mine: Optional[dist.ProcessGroup] = None
    for node in range(world_size // local_size):  # new_group is collective: every rank creates every group
        base = node * local_size
        pg = dist.new_group(list(range(base, base + local_size)))
        if node == my_node:
            intra = pg
        for g in range(num_groups):
            sub = dist.new_group([base + r for r in active[g]])
            if node == my_node and local_rank in active[g]:
                mine = sub
    assert mine is not None
    my_group = local_rank // sharding_group_size
    return ShardedRelayState(
        fused=_GroupAllReduce(mine, my_group),
        intra_node_pytorch_pg=intra,
        local_rank=local_rank,
        sparse_group_size=sharding_group_size,
        my_sparse_group=my_group,
        num_sparse_groups=num_groups,
        local_size=local_size,
        precomputed_active_ranks=active,
    )


def cleanup_sharded_relay(state: ShardedRelayState) -> None:
    """Drops the fused all-reduce and finalizes a communicator held by the state (if any)."""
    state.fused = None
    if state._rcclx_comm is not None:
        try:
            state._rcclx_comm.finalize()
        except Exception as e:  # finalizing is best effort at teardown
            logger.warning("sharded relay: error finalizing the communicator: %s", e)
    state._rcclx_comm = None
    state._active_flat_cache.clear()
    state._helper_flat_cache.clear()


def _flat_buffer(cache: Dict[Any, torch.Tensor], key: Any, total: int, dtype: torch.dtype,
                 device: torch.device) -> torch.Tensor:
    """A grow-only cached buffer of at least ``total`` elements, narrowed to ``total``."""
    buf = cache.get(key)
    if buf is None or buf.numel() < total or buf.device != device:
        buf = torch.empty(total, dtype=dtype, device=device)
        cache[key] = buf
    return buf.narrow(0, 0, total)


def allreduce_tensors_with_sharded_relay(
    state: ShardedRelayState,
    tensors_dict: Dict[torch.dtype, List[torch.Tensor]],
    annotation: str,
    op: dist.ReduceOp = dist.ReduceOp.AVG,
) -> None:
    """All-reduces (in place) every tensor of ``tensors_dict`` with the active ranks of this rank's sparse group.

    Per dtype: pack into one flat buffer, one fused all-reduce for all groups, unpack. Every group's packed size
    is learnt once per ``annotation`` and dtype (an all-gather on the host group) and cached.

    Args:
        state: from ``setup_sharded_relay``.
        tensors_dict: tensors to reduce, by dtype.
        annotation: profiler label (and metadata cache key).
        op: ``ReduceOp.AVG`` or ``ReduceOp.SUM``.
    """
    if state.fused is None:
        raise RuntimeError("allreduce_tensors_with_sharded_relay: the state was cleaned up")
    with record_function(f"{annotation}_fused_sharded_relay"):
        for dtype, tensors in tensors_dict.items():
            total = sum(t.numel() for t in tensors)
            if total == 0:
                continue
            device = tensors[0].device
            flat = _flat_buffer(state._active_flat_cache, dtype, total, dtype, device)
            torch.cat([t.reshape(-1) for t in tensors], out=flat)
            key = annotation + str(dtype)
            if key not in state._flat_metadata_cache:
                if state.intra_node_pytorch_pg is not None:
                    totals = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(state.local_size)]
                    dist.all_gather(totals, torch.tensor([total], dtype=torch.int64, device=device),
                                    group=state.intra_node_pytorch_pg)
                    state._flat_metadata_cache[key] = [
                        int(totals[g * state.sparse_group_size].item()) for g in range(state.num_sparse_groups)
                    ]
                else:
                    state._flat_metadata_cache[key] = [total] * state.num_sparse_groups
            sizes = state._flat_metadata_cache[key]
            # other groups' slots: the portable all-reduce relays nothing through this rank, so they stay empty
            group_tensors = [
                flat if g == state.my_sparse_group else flat.new_empty(0) for g in range(state.num_sparse_groups)
            ]
            state.fused.allreduce_multi_group(
                tensors=group_tensors, num_groups=state.num_sparse_groups, per_group_sizes=sizes,
                all_active_ranks=state.precomputed_active_ranks, op=op, skip_validation=True,
            )
            for t, part in zip(tensors, flat.split([t.numel() for t in tensors])):
                t.copy_(part.view(t.shape))
