"""``HashZchManagedCollisionModule.sync_identities``: merge the identity tables of 2D-sharding replicas.

Replicas of one shard train on different data, so their tables hold different ids. The root replica gathers every
replica's (identities, metadata), inserts the other replicas' ids into a copy of its own table as a training step
would, with every row evictable (``eviction_threshold = 2**31 - 1``, the module's eviction policy deciding which
row an id takes), and broadcasts the merged table. Each replica then finds where its own ids ended up::

    survived[i]       row i held an id that is still in the merged table
    rank_to_global[i] that id's row in the merged table (-1: gone, or row i was empty)

so ``sync_hash_zch_weights`` can move its embedding rows to match before averaging them across replicas.
"""

from typing import List, Optional, Tuple

import torch
import torch.distributed as dist

_ALWAYS_EVICT = 2**31 - 1


def sync_identities(
    mc: torch.nn.Module,
    is_root_node: bool,
    num_replica_gp: int,
    replica_ranks: List[int],
    replica_pg: dist.ProcessGroup,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """See the module docstring; ``mc`` is a ``HashZchManagedCollisionModule`` with an eviction policy.

    Returns:
        ``(survived (Z,) bool, rank_to_global (Z,) int64)``.
    """
    identities = mc._hash_zch_identities.data
    meta = mc._hash_zch_metadata
    if meta is None:
        raise ValueError(f"HashZchManagedCollisionModule({mc._name!r}).sync_identities needs an eviction policy "
                         "(metadata decides which ids survive the merge)")
    gathered_ids: Optional[List[torch.Tensor]] = None
    gathered_meta: Optional[List[torch.Tensor]] = None
    if is_root_node:
        gathered_ids = [torch.full_like(identities, -1) for _ in range(num_replica_gp)]
        gathered_meta = [torch.full_like(meta, -1) for _ in range(num_replica_gp)]
    dist.gather(identities, gather_list=gathered_ids, dst=replica_ranks[0], group=replica_pg)
    dist.gather(meta, gather_list=gathered_meta, dst=replica_ranks[0], group=replica_pg)
    global_ids = torch.full_like(identities, -1)
    global_meta = torch.full_like(meta, -1)
    reserved = mc.get_reserved_slots_per_bucket()
    if is_root_node:
        assert gathered_ids is not None and gathered_meta is not None
        global_ids = identities.clone()
        global_meta = meta.clone()
        for i in range(1, num_replica_gp):
            ids = gathered_ids[i].view(-1)
            keep = (ids != -1).nonzero().squeeze(1)
            values, sizes, offsets = mc.input_mapper(values=ids[keep], output_offset=mc._output_global_offset_tensor)
            mc._zero_collision_hash(
                input=values, identities=global_ids, max_probe=mc.max_probe, circular_probe=True, exp_hours=-1,
                readonly=False, local_sizes=sizes, offsets=offsets, metadata=global_meta, output_on_uvm=False,
                disable_fallback=True, _modulo_identity_DPRECATED=False,
                input_metadata=gathered_meta[i].view(-1)[keep], eviction_threshold=_ALWAYS_EVICT,
                eviction_policy=mc.eviction_flag, opt_in_prob=mc._opt_in_prob, num_reserved_slots=reserved,
                opt_in_rands=None, runtime_meta=None,
            )
    dist.barrier(group=replica_pg)
    dist.broadcast(global_ids, src=replica_ranks[0], group=replica_pg)
    dist.broadcast(global_meta, src=replica_ranks[0], group=replica_pg)
    mine = identities.view(-1)
    present = mine != -1
    values, sizes, offsets = mc.input_mapper(values=mine[present], output_offset=mc._output_global_offset_tensor)
    found, _ = mc._zero_collision_hash(
        input=values, identities=global_ids, max_probe=mc.max_probe, circular_probe=True, exp_hours=-1,
        readonly=True, local_sizes=sizes, offsets=offsets, metadata=None, output_on_uvm=False,
        disable_fallback=True, _modulo_identity_DPRECATED=False, input_metadata=None, eviction_threshold=-1,
        eviction_policy=mc.eviction_flag, opt_in_prob=mc._opt_in_prob, num_reserved_slots=reserved,
        opt_in_rands=None, runtime_meta=None,
    )
    rank_to_global = torch.full_like(mine, -1)
    rank_to_global[present] = found
    survived = present & (rank_to_global != -1)
    identities.copy_(global_ids)
    meta.copy_(global_meta)
    return survived, rank_to_global
