"""comm: host topology from the environment, and the intra-/cross-host groups (spawned gloo).

The spawned run also exercises ``collective_utils`` (one process group start per world size).
"""

import pytest
import torch
import torch.distributed as dist

from recsys_lib.distributed import collective_utils, comm
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.distributed.types import ShardingEnv


@pytest.fixture
def clean_env(monkeypatch):
    for name in comm._LOCAL_SIZE_VARS + comm._LOCAL_RANK_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_local_size_from_env_and_default(clean_env):
    assert comm.get_local_size(16) == 8  # default 8 divides 16
    assert comm.get_local_size(4) == 4  # 8 does not divide 4: one host
    clean_env.setenv("LOCAL_WORLD_SIZE", "2")
    assert comm.get_local_size(8) == 2
    assert comm.get_num_groups(8) == 4 and comm.get_node_group_size(8) == 2
    assert comm.get_group_rank(8, rank=5) == 2 and comm.get_local_rank(8, rank=5) == 1
    clean_env.setenv("LOCAL_WORLD_SIZE", "3")
    assert comm.get_local_size(8) == 8  # does not divide: one host
    clean_env.setenv("LOCAL_WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="LOCAL_WORLD_SIZE='two' is not an integer"):
        comm.get_local_size(8)


def test_local_rank_from_env(clean_env):
    clean_env.setenv("LOCAL_WORLD_SIZE", "4")
    clean_env.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "3")
    assert comm.get_local_rank(8) == 3


def test_host_rank_lists():
    assert comm.host_ranks(1, 2) == [2, 3]
    assert comm.cross_host_ranks(1, 6, 2) == [1, 3, 5]


def _members(group, world):
    """Ranks of ``group`` as seen from this rank: all-reduce a one-hot vector over the group."""
    onehot = torch.zeros(world)
    onehot[dist.get_rank()] = 1
    dist.all_reduce(onehot, group=group)
    return [i for i, v in enumerate(onehot.tolist()) if v]


def _groups(rank, world):
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    local = env.local_world_size
    intra, cross = env.intra_and_cross_node_pg()
    assert env.intra_and_cross_node_pg() == (intra, cross)  # cached on the env, no new groups
    host = rank // local
    assert _members(intra, world) == comm.host_ranks(host, local)
    assert _members(cross, world) == comm.cross_host_ranks(rank % local, world, local)
    # collective_utils: rank 1 computes, everyone receives; the leader check
    got = collective_utils.invoke_on_rank_and_broadcast_result(dist.group.WORLD, 1, lambda x: [x, dist.get_rank()], 7)
    assert got == [7, 1]
    decorated = collective_utils.run_on_leader(dist.group.WORLD, 0)(lambda: {"rank": dist.get_rank()})
    assert decorated() == {"rank": 0}
    assert collective_utils.is_leader(dist.group.WORLD, 0) == (rank == 0)
    return local


@pytest.mark.dist
@pytest.mark.parametrize("world,local", [(2, 1), pytest.param(4, 2, marks=pytest.mark.slow)])
def test_intra_and_cross_node_groups(world, local):
    assert run_multiprocess(_groups, world, local_world_size=local) == [local] * world


def test_is_leader_without_group():
    assert collective_utils.is_leader(None) and not collective_utils.is_leader(None, 1)
