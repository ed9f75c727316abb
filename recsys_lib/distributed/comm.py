"""Host topology: ranks per host, this rank's host, and the intra-/cross-host process groups.

Ranks are laid out host-major: with ``W`` ranks and ``L`` ranks per host, host ``h`` holds ranks
``h*L .. h*L+L-1``::

    W=4, L=2     host 0: ranks 0 1     intra groups: [0,1] [2,3]
                 host 1: ranks 2 3     cross groups: [0,2] [1,3]   (same local rank)

No group is cached in this module: ``intra_and_cross_node_pg`` builds and returns the groups; keep
them (``ShardingEnv.intra_and_cross_node_pg`` caches them on the environment).
"""

import logging
import os
from typing import Any, List, Optional, Tuple

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

_LOCAL_SIZE_VARS = ("LOCAL_WORLD_SIZE", "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE")
_LOCAL_RANK_VARS = ("LOCAL_RANK", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK")
_DEFAULT_LOCAL_SIZE = 8


def _first_env_int(names: Tuple[str, ...]) -> Optional[int]:
    for name in names:
        value = os.environ.get(name)
        if value is not None and value != "":
            try:
                return int(value)
            except ValueError:
                raise ValueError(f"environment variable {name}={value!r} is not an integer") from None
    return None


def _world_size(world_size: Optional[int]) -> int:
    if world_size is not None:
        return world_size
    if not dist.is_initialized():
        raise RuntimeError("world_size not given and torch.distributed is not initialised")
    return dist.get_world_size()


def get_local_size(world_size: Optional[int] = None) -> int:
    """Ranks per host: ``LOCAL_WORLD_SIZE`` (or the MPI equivalents), default 8.

    If that does not divide ``world_size`` (default: the world group's size), all ranks are taken
    to be on one host and ``world_size`` is returned, with a warning.
    """
    ws = _world_size(world_size)
    local_size = _first_env_int(_LOCAL_SIZE_VARS)
    if local_size is None:
        local_size = _DEFAULT_LOCAL_SIZE
    if local_size < 1 or ws % local_size != 0:
        logger.warning(
            "local size %d does not divide world size %d; treating all ranks as one host", local_size, ws
        )
        return ws
    return local_size


def get_local_rank(world_size: Optional[int] = None, rank: Optional[int] = None) -> int:
    """This rank's index on its host: ``rank % local_size`` for an explicit ``rank``, else ``LOCAL_RANK``
    (or MPI equivalents), else the world rank modulo the local size."""
    local_size = get_local_size(world_size)
    if rank is not None:
        return rank % local_size
    env_rank = _first_env_int(_LOCAL_RANK_VARS)
    if env_rank is not None and 0 <= env_rank < local_size:
        return env_rank
    if not dist.is_initialized():
        raise RuntimeError("rank not given, LOCAL_RANK not set and torch.distributed is not initialised")
    return dist.get_rank() % local_size


def get_group_rank(world_size: Optional[int] = None, rank: Optional[int] = None) -> int:
    """Index of the host holding ``rank`` (default: this process's rank)."""
    if rank is None:
        if not dist.is_initialized():
            raise RuntimeError("rank not given and torch.distributed is not initialised")
        rank = dist.get_rank()
    return rank // get_local_size(world_size)


def get_num_groups(world_size: Optional[int] = None) -> int:
    """Number of hosts."""
    ws = _world_size(world_size)
    return ws // get_local_size(ws)


def get_node_group_size(world_size: Optional[int] = None) -> int:
    """Ranks in one node group (one host): the local size."""
    return get_local_size(world_size)


def host_ranks(host_index: int, local_size: int) -> List[int]:
    """Ranks of host ``host_index``: ``[h*L, ..., h*L + L - 1]``."""
    return list(range(host_index * local_size, (host_index + 1) * local_size))


def cross_host_ranks(local_rank: int, world_size: int, local_size: int) -> List[int]:
    """Ranks with local rank ``local_rank`` on every host: ``[l, l+L, l+2L, ...]``."""
    return list(range(local_rank, world_size, local_size))


def intra_and_cross_node_pg(
    device: Optional[torch.device] = None,
    backend: Optional[str] = None,
) -> Tuple[Optional[dist.ProcessGroup], Optional[dist.ProcessGroup]]:
    """Builds this rank's intra-host and cross-host process groups and returns ``(intra, cross)``.

    A collective: every rank of the world group must call it, in the same order relative to other
    group creations. Nothing is cached here; keep the result (or use ``ShardingEnv.intra_and_cross_node_pg``).

    Args:
        device: the compute device; ``cuda`` picks ``nccl`` unless ``backend`` is given.
        backend: backend of the new groups (default: the world group's backend).
    """
    return node_groups(device, backend)


def node_groups(
    device: Optional[torch.device] = None,
    backend: Optional[str] = None,
    world_size: Optional[int] = None,
    rank: Optional[int] = None,
    local_size: Optional[int] = None,
) -> Tuple[Optional[dist.ProcessGroup], Optional[dist.ProcessGroup]]:
    """``intra_and_cross_node_pg`` with the world size, rank and ranks per host given (default: the world
    group and ``get_local_size``), e.g. for a ``ShardingEnv`` that simulates several hosts."""
    if not dist.is_initialized():
        raise RuntimeError("intra_and_cross_node_pg needs an initialised default process group")
    ws = dist.get_world_size() if world_size is None else world_size
    my_rank = dist.get_rank() if rank is None else rank
    ls = get_local_size(ws) if local_size is None else local_size
    if ls < 1 or ws % ls != 0:
        raise ValueError(f"intra_and_cross_node_pg: local_size={ls} must divide world_size={ws}")
    if backend is None:
        backend = "nccl" if device is not None and device.type == "cuda" else dist.get_backend()
    intra: Optional[dist.ProcessGroup] = None
    cross: Optional[dist.ProcessGroup] = None
    for host in range(ws // ls):
        ranks = host_ranks(host, ls)
        group = dist.new_group(ranks, backend=backend)
        if my_rank in ranks:
            intra = group
    for local_rank in range(ls):
        ranks = cross_host_ranks(local_rank, ws, ls)
        group = dist.new_group(ranks, backend=backend)
        if my_rank in ranks:
            cross = group
    return intra, cross


def get_topology_domain_multiple() -> Optional[int]:
    """Hosts per topology domain (pod): ``TOPOLOGY_DOMAIN_MULTIPLE``, or ``None`` when unset."""
    return _first_env_int(("TOPOLOGY_DOMAIN_MULTIPLE",))


def get_topology_group_world_size(world_size: Optional[int] = None) -> int:
    """Ranks linked by high-bandwidth links: ``TORCHREC_RESOLVED_POD_SIZE`` hosts × ranks per host.

    Falls back to the ranks per host (``get_local_size``) when the pod size is not set.

    Raises:
        ValueError: the world size is not a multiple of the topology group.
    """
    local_size = get_local_size(world_size)
    pods = _first_env_int(("TORCHREC_RESOLVED_POD_SIZE",))
    if pods is None:
        logger.warning("TORCHREC_RESOLVED_POD_SIZE not set, utilizing LOCAL_WORLD_SIZE instead.")
        return local_size
    group = pods * local_size
    ws = _world_size(world_size)
    if ws % group != 0:
        raise ValueError(f"World size {ws} is not a multiple of the topology group: {group}")
    return group


def intra_and_cross_node_pg_2D(
    env: Any, device: Optional[torch.device] = None
) -> Tuple[Optional[dist.ProcessGroup], Optional[dist.ProcessGroup]]:
    """This rank's (intra, cross) groups inside its 2-D sharding group (``env``: a ``ShardingEnv2D``), created once
    (a collective over the global group) and cached on ``env``; ``(None, None)`` on ``meta``. See
    ``distributed/_parallel2d/groups.py`` (``node_groups_2d``) for the layout."""
    from recsys_lib.distributed._parallel2d.groups import node_groups_2d

    return node_groups_2d(env, device)
