"""``ShardingEnv2D`` and the ``DMPCollection`` configuration types (TorchRec's ``distributed.types`` names).

``ShardingEnv2D.world_size`` / ``rank`` are relative to the sharding group, ``process_group`` is the *global*
group (the dense part's DDP runs on it), ``sharding_pg`` / ``replica_pg`` the two mesh dimensions. The sharded
modules communicate on ``sharding_pg``: :func:`sharding_env` gives them a ``ShardingEnv`` over it whose
intra/cross-node groups are the 2-D ones.
"""

from typing import Dict, List, Optional, Tuple, Type

import torch
import torch.distributed as dist
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.distributed._core.enums import ShardingStrategy, ShardingType
from recsys_lib.distributed.sharding.strategy import PartitionBy, strategy_for
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._core.plan import ShardingPlan
from recsys_lib.distributed._core.sharder import ShardedModule
from recsys_lib.distributed._parallel2d.groups import node_groups_2d


def _dividing(size: Optional[int], world_size: int) -> Optional[int]:
    return size if size is not None and size >= 1 and world_size % size == 0 else None


def _fix_local_size(env: ShardingEnv, local_world_size: Optional[int]) -> None:
    """Ranks per host from ``node_group_size`` when it divides the group (else the environment's)."""
    if local_world_size is not None:
        env._set_local_world_size(local_world_size)


@public_at("recsys_lib.distributed.types")
class ShardingEnv2D(ShardingEnv):
    """The environment of one rank under 2-D parallelism (sharding group x replica group).

    Args:
        sharding_pg: the ranks sharing one copy of the model (model parallel).
        replica_pg: the ranks holding the same shards (their weights are averaged by ``DMPCollection.sync``).
        global_pg: every rank (``process_group``).
        device_mesh: 2-D mesh, dimensions ``("replicate", "shard")``.
        node_group_size: ranks per logical node for TWRW / GRID (default ``comm.get_local_size``).
        use_inter_host_allreduce: sharding groups are runs of consecutive ranks (replicas across hosts).
        sharding_strategy: ``ShardingStrategy``.

    Example::

        env = ShardingEnv2D(sharding_pg, replica_pg, dist.group.WORLD, mesh)
        env.world_size, env.rank              # in the sharding group
        env.global_world_size, env.global_rank
    """

    def __init__(
        self,
        sharding_pg: dist.ProcessGroup,
        replica_pg: dist.ProcessGroup,
        global_pg: dist.ProcessGroup,
        device_mesh: "dist.DeviceMesh",
        node_group_size: Optional[int] = None,
        use_inter_host_allreduce: bool = False,
        sharding_strategy: ShardingStrategy = ShardingStrategy.DEFAULT,
    ) -> None:
        if device_mesh.ndim != 2:
            raise ValueError(f"ShardingEnv2D: the device mesh must be two dimensional, got {device_mesh.ndim} dims")
        world_size = dist.get_world_size(sharding_pg)
        super().__init__(world_size, dist.get_rank(sharding_pg), global_pg, output_dtensor=True)
        _fix_local_size(self, _dividing(node_group_size, world_size))
        self.global_world_size: int = dist.get_world_size(global_pg)
        self.global_rank: int = dist.get_rank(global_pg)
        self.sharding_pg: dist.ProcessGroup = sharding_pg
        self.replica_pg: dist.ProcessGroup = replica_pg
        self.device_mesh = device_mesh
        self.node_group_size: Optional[int] = node_group_size
        self.use_inter_host_allreduce: bool = use_inter_host_allreduce
        self.sharding_strategy: ShardingStrategy = sharding_strategy
        self._node_groups_2d: Optional[Tuple[Optional[dist.ProcessGroup], Optional[dist.ProcessGroup]]] = None

    def num_sharding_groups(self) -> int:
        """How many times the model-parallel group is replicated (``global_world_size // world_size``)."""
        return self.global_world_size // self.world_size

    def remap_rank(self, rank: int, sharding_type: ShardingType) -> int:
        """Global ``rank`` → its position in its sharding group (column-wise, table-wise and grid only)."""
        # The types whose shards are placed on single devices (TW, CW) or across hosts (GRID), per the registry.
        if strategy_for(sharding_type).partition_by not in (PartitionBy.DEVICE, PartitionBy.MULTI_HOST):
            raise ValueError(f"Do not need 2D specific remapping logic for sharding type: {sharding_type}")
        if self.use_inter_host_allreduce:
            return rank % self.world_size
        return rank // self.num_sharding_groups()

    def intra_and_cross_node_pg(
        self, device: Optional[torch.device] = None, backend: Optional[str] = None
    ) -> Tuple[Optional[dist.ProcessGroup], Optional[dist.ProcessGroup]]:
        """The 2-D intra/cross groups inside this rank's sharding group (``intra_and_cross_node_pg_2D``)."""
        return node_groups_2d(self, device)

    def __repr__(self) -> str:
        return (f"ShardingEnv2D(world_size={self.world_size}, rank={self.rank}, "
                f"global_world_size={self.global_world_size}, global_rank={self.global_rank})")


class _ShardingGroupEnv(ShardingEnv):
    """What the sharded modules of a 2-D job see: the sharding group as their world."""

    def __init__(self, env2d: ShardingEnv2D) -> None:
        super().__init__(env2d.world_size, env2d.rank, env2d.sharding_pg)
        _fix_local_size(self, _dividing(env2d.node_group_size, env2d.world_size))
        self._env2d = env2d

    def intra_and_cross_node_pg(
        self, device: Optional[torch.device] = None, backend: Optional[str] = None
    ) -> Tuple[Optional[dist.ProcessGroup], Optional[dist.ProcessGroup]]:
        return node_groups_2d(self._env2d, device)


def sharding_env(env2d: ShardingEnv2D) -> ShardingEnv:
    """A ``ShardingEnv`` over ``env2d.sharding_pg`` (group ranks) for sharding modules under 2-D parallelism."""
    return _ShardingGroupEnv(env2d)


@public_at("recsys_lib.distributed.types")
class DMPCollectionConfig:
    """Sharding of one module type inside a ``DMPCollection`` (its own plan and sharding-group size).

    Args:
        module: the module *type* (not a sharded module) the configuration applies to.
        plan: the plan for that module's subtree, made for ``sharding_group_size`` ranks.
        sharding_group_size / node_group_size / use_inter_host_allreduce / sharding_strategy: as ``DMPCollection``.
    """

    def __init__(
        self,
        module: Type[nn.Module],
        plan: "ShardingPlan",
        sharding_group_size: int,
        node_group_size: Optional[int] = None,
        use_inter_host_allreduce: bool = False,
        sharding_strategy: ShardingStrategy = ShardingStrategy.DEFAULT,
    ) -> None:
        self.module = module
        self.plan = plan
        self.sharding_group_size = sharding_group_size
        self.node_group_size = node_group_size
        self.use_inter_host_allreduce = use_inter_host_allreduce
        self.sharding_strategy = sharding_strategy
        if module is not None and isinstance(module, ShardedModule):
            raise ValueError(f"ShardedModule should not be passed into DMPCollectionConfig: got {type(module)}")

    def __repr__(self) -> str:
        return (f"DMPCollectionConfig(module={self.module}, sharding_group_size={self.sharding_group_size}, "
                f"node_group_size={self.node_group_size}, use_inter_host_allreduce={self.use_inter_host_allreduce}, "
                f"sharding_strategy={self.sharding_strategy})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DMPCollectionConfig):
            return NotImplemented
        return (self.module, self.plan, self.sharding_group_size, self.node_group_size,
                self.use_inter_host_allreduce, self.sharding_strategy) == (
            other.module, other.plan, other.sharding_group_size, other.node_group_size,
            other.use_inter_host_allreduce, other.sharding_strategy)


@public_at("recsys_lib.distributed.types")
class DMPCollectionContext(DMPCollectionConfig):
    """A ``DMPCollectionConfig`` plus what ``DMPCollection`` builds for it: mesh, groups, kernels to sync and the
    tensors averaged by ``sync()`` (grouped by dtype)."""

    def __init__(
        self,
        module: Type[nn.Module],
        plan: "ShardingPlan",
        sharding_group_size: int,
        node_group_size: Optional[int] = None,
        use_inter_host_allreduce: bool = False,
        sharding_strategy: ShardingStrategy = ShardingStrategy.DEFAULT,
        modules_to_sync: Optional[List[Tuple[nn.Module, nn.Module]]] = None,
        sharded_module: Optional[nn.Module] = None,
        device_mesh: Optional["dist.DeviceMesh"] = None,
        sharding_pg: Optional["dist.ProcessGroup"] = None,
        replica_pg: Optional["dist.ProcessGroup"] = None,
        weights_by_dtype: Optional[Dict["torch.dtype", List["torch.Tensor"]]] = None,
        optimizer_tensors_by_dtype: Optional[Dict["torch.dtype", List["torch.Tensor"]]] = None,
        hash_zch_modules: Optional[List[Tuple[nn.Module, str]]] = None,
    ) -> None:
        super().__init__(module, plan, sharding_group_size, node_group_size, use_inter_host_allreduce,
                         sharding_strategy)
        self.modules_to_sync: List[Tuple[nn.Module, nn.Module]] = list(modules_to_sync or [])
        self.sharded_module = sharded_module
        self.device_mesh = device_mesh
        self.sharding_pg = sharding_pg
        self.replica_pg = replica_pg
        self.weights_by_dtype: Dict[torch.dtype, List[torch.Tensor]] = dict(weights_by_dtype or {})
        self.optimizer_tensors_by_dtype: Dict[torch.dtype, List[torch.Tensor]] = dict(optimizer_tensors_by_dtype or {})
        self.hash_zch_modules: List[Tuple[nn.Module, str]] = list(hash_zch_modules or [])
