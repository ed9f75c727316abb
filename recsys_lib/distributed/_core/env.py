"""``ShardingEnv``: world size, rank and the process groups a sharded module communicates on.

Process groups are carried here (and passed down), never kept in module globals. Groups derived
from the world group (intra-host / cross-host, used by the two-level strategies) are created on the
first request and cached on this object.
"""

from typing import Optional, Tuple

import torch
import torch.distributed as dist

from recsys_lib._public import public_at
from recsys_lib.streamable import Multistreamable


@public_at("recsys_lib.distributed.types")
class ShardingEnv:
    """Where a module is sharded.

    Args:
        world_size: number of ranks.
        rank: this process's rank in ``pg``.
        pg: the process group (``None`` for a local, single-process "world", e.g. inference).
        output_dtensor: return DTensors instead of ShardedTensors from ``state_dict``.

    Ranks per host (``local_world_size``) come from ``comm.get_local_size(world_size)`` unless set with
    ``_set_local_world_size`` (tests that simulate several hosts on one machine).

    Example::

        env = ShardingEnv.from_process_group(dist.GroupMember.WORLD)
        intra, cross = env.intra_and_cross_node_pg()   # created once, then cached on ``env``
    """

    def __init__(
        self,
        world_size: int,
        rank: int,
        pg: Optional[dist.ProcessGroup] = None,
        output_dtensor: bool = False,
    ) -> None:
        if world_size < 1:
            raise ValueError(f"ShardingEnv: world_size must be >= 1, got {world_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"ShardingEnv: rank must be in [0, {world_size}), got {rank}")
        self.world_size = world_size
        self.rank = rank
        self.process_group: Optional[dist.ProcessGroup] = pg
        self.output_dtensor = output_dtensor
        self._local_world_size: Optional[int] = None
        self._node_groups: Optional[Tuple[Optional[dist.ProcessGroup], Optional[dist.ProcessGroup]]] = None

    @classmethod
    def from_process_group(cls, pg: dist.ProcessGroup) -> "ShardingEnv":
        """The environment of process group ``pg`` (its size and this process's rank in it)."""
        return cls(dist.get_world_size(pg), dist.get_rank(pg), pg)

    @classmethod
    def from_local(cls, world_size: int, rank: int) -> "ShardingEnv":
        """A process-group-less environment (single-process sharding, e.g. for inference)."""
        return cls(world_size, rank, None)

    @property
    def local_world_size(self) -> int:
        """Ranks per host (``LOCAL_WORLD_SIZE`` and friends unless given at construction)."""
        if self._local_world_size is None:
            from recsys_lib.distributed.comm import get_local_size

            self._local_world_size = get_local_size(self.world_size)
        return self._local_world_size

    def _set_local_world_size(self, local_world_size: int) -> "ShardingEnv":
        """Fixes the ranks per host (instead of the environment's); returns ``self``. Before any group is built."""
        if local_world_size < 1 or self.world_size % local_world_size != 0:
            raise ValueError(
                f"ShardingEnv: local_world_size={local_world_size} must be >= 1 and divide "
                f"world_size={self.world_size}"
            )
        if self._node_groups is not None:
            raise RuntimeError("ShardingEnv: local_world_size cannot change after the node groups were built")
        self._local_world_size = local_world_size
        return self

    def intra_and_cross_node_pg(
        self, device: Optional[torch.device] = None, backend: Optional[str] = None
    ) -> Tuple[Optional[dist.ProcessGroup], Optional[dist.ProcessGroup]]:
        """This rank's (intra-host, cross-host) groups; built on the first call (a collective), then cached here."""
        if self._node_groups is None:
            from recsys_lib.distributed.comm import node_groups

            self._node_groups = node_groups(
                device, backend, world_size=self.world_size, rank=self.rank,
                local_size=self.local_world_size,
            )
        return self._node_groups

    def __repr__(self) -> str:
        return f"ShardingEnv(world_size={self.world_size}, rank={self.rank}, pg={self.process_group is not None})"


@public_at("recsys_lib.distributed.types")
class NullShardedModuleContext(Multistreamable):
    """Context of a sharded module that keeps no per-batch state."""

    def record_stream(self, stream: torch.Stream) -> None:
        pass


@public_at("recsys_lib.distributed.types")
class NullShardingContext(Multistreamable):
    """Context of a sharding strategy that keeps no per-batch state."""

    def record_stream(self, stream: torch.Stream) -> None:
        pass
