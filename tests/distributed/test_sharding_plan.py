"""sharding_plan helpers: ParameterSharding contents (ranks, shard metadata, placements, kernels) and bad plans."""

import pytest
import torch
from torch import nn

from recsys_lib.distributed import sharding_plan as sp
from recsys_lib.distributed.types import ModuleSharder, ShardingType


class _Tables(nn.Module):
    def __init__(self):
        super().__init__()
        self.t0 = nn.Parameter(torch.zeros(10, 8))
        self.t1 = nn.Parameter(torch.zeros(5, 12))


class _Sharder(ModuleSharder):
    def shard(self, module, params, env, device=None, module_fqn=None):
        raise NotImplementedError

    @property
    def module_type(self):
        return _Tables

    def compute_kernels(self, sharding_type, compute_device_type):
        return ["dense", "fused"]


def _plan(per_param, world=4, local=2):
    return sp.construct_module_sharding_plan(_Tables(), per_param, sharder=_Sharder(), local_size=local,
                                             world_size=world, device_type="cpu")


def _shards(ps):
    return [(list(s.shard_offsets), list(s.shard_sizes), str(s.placement)) for s in ps.sharding_spec.shards]


def test_helpers_build_the_documented_shards():
    plan = _plan({"t0": sp.row_wise(), "t1": sp.column_wise(ranks=[2, 0, 2])})
    assert plan["t0"].sharding_type == "row_wise" and plan["t0"].ranks == [0, 1, 2, 3]
    assert _shards(plan["t0"]) == [([0, 0], [3, 8], "rank:0/cpu"), ([3, 0], [3, 8], "rank:1/cpu"),
                                   ([6, 0], [3, 8], "rank:2/cpu"), ([9, 0], [1, 8], "rank:3/cpu")]
    assert plan["t1"].ranks == [2, 0, 2]
    assert _shards(plan["t1"]) == [([0, 0], [5, 4], "rank:2/cpu"), ([0, 4], [5, 4], "rank:0/cpu"),
                                   ([0, 8], [5, 4], "rank:2/cpu")]
    plan = _plan({"t0": sp.table_wise(rank=3), "t1": sp.data_parallel()})
    assert plan["t0"].ranks == [3] and _shards(plan["t0"]) == [([0, 0], [10, 8], "rank:3/cpu")]
    assert plan["t1"].sharding_type == "data_parallel" and plan["t1"].sharding_spec is None
    assert plan["t1"].ranks == [0, 1, 2, 3] and plan["t1"].compute_kernel == "dense"
    plan = _plan({"t0": sp.table_row_wise(host_index=1), "t1": sp.grid_shard(host_indexes=[0, 1])})
    assert plan["t0"].ranks == [2, 3] and _shards(plan["t0"])[1] == ([5, 0], [5, 8], "rank:3/cpu")
    assert plan["t1"].ranks == [0, 1, 2, 3]
    assert [(o, s) for o, s, _ in _shards(plan["t1"])] == [([0, 0], [3, 6]), ([3, 0], [2, 6]), ([0, 6], [3, 6]),
                                                            ([3, 6], [2, 6])]
    plan = _plan({"t0": sp.row_wise(([4, 6], "cpu")), "t1": sp.column_wise(size_per_rank=[2, 10])}, world=2)
    assert [s for _, s, _ in _shards(plan["t0"])] == [[4, 8], [6, 8]] and plan["t1"].ranks == [0, 1]


def test_compute_kernel_rule():
    m = _Tables()
    m.t0._in_backward_optimizers = [object()]  # what apply_optimizer_in_backward leaves on a parameter
    plan = sp.construct_module_sharding_plan(m, {"t0": sp.table_wise(0), "t1": sp.table_wise(1)}, sharder=_Sharder(),
                                             local_size=2, world_size=2, device_type="cpu")
    assert plan["t0"].compute_kernel == "fused" and plan["t1"].compute_kernel == "dense"
    assert _plan({"t0": sp.table_wise(0, compute_kernel="fused"), "t1": sp.data_parallel()})["t0"].compute_kernel == "fused"


def test_gpu_placement_strings():
    assert sp.placement("cuda", 3, 2) == "rank:3/cuda:1"
    assert sp.placement("cpu", 3, 2) == "rank:3/cpu"
    assert sp.placement_helper("cuda", 1, 5) == "rank:5/cuda:1"
    plan = sp.construct_module_sharding_plan(_Tables(), {"t0": sp.table_wise(3), "t1": sp.table_wise(2, device="cpu")},
                                             sharder=_Sharder(), local_size=2, world_size=4, device_type="cuda")
    assert _shards(plan["t0"])[0][2] == "rank:3/cuda:1" and _shards(plan["t1"])[0][2] == "rank:2/cpu"


@pytest.mark.parametrize(
    "per_param,match",
    [
        ({"t0": sp.table_wise(0)}, r"misses tables \['t1'\]"),
        ({"t0": sp.table_wise(0), "t1": sp.table_wise(0), "t9": sp.table_wise(0)}, r"unknown tables \['t9'\]"),
        ({"t0": sp.table_wise(4), "t1": sp.table_wise(0)}, r"table 't0': ranks \[4\] are outside the world of size 4"),
        ({"t0": sp.column_wise(ranks=[0, 1, 2]), "t1": sp.table_wise(0)}, r"table 't0'.*dim 8 is not divisible.* 3"),
        ({"t0": sp.table_row_wise(host_index=2), "t1": sp.table_wise(0)}, r"host_index 2 out of range"),
        ({"t0": sp.row_wise(([4, 4], "cpu")), "t1": sp.table_wise(0)}, r"sum to the 10 rows"),
    ],
)
def test_bad_plans_name_the_problem(per_param, match):
    with pytest.raises(ValueError, match=match):
        _plan(per_param)


def test_constructors_by_type_and_apply_to_all():
    assert sp.get_sharding_constructor_from_type(ShardingType.TABLE_WISE) is sp.table_wise
    assert sp.get_sharding_constructor_from_type(ShardingType.GRID_SHARD) is sp.grid_shard
    with pytest.raises(ValueError, match="no sharding-plan helper for table_column_wise"):
        sp.get_sharding_constructor_from_type(ShardingType.TABLE_COLUMN_WISE)
    gen = sp.row_wise()
    assert sp.apply_to_all(_Tables(), gen, sharder=_Sharder()) == {"t0": gen, "t1": gen}
    with pytest.raises(ValueError, match="no default sharder for _Tables"):
        sp.apply_to_all(_Tables(), gen)


def test_calculate_shard_sizes_and_offsets_goes_through_the_registry():
    t = torch.zeros(5, 8)
    assert sp.calculate_shard_sizes_and_offsets(t, 4, 4, "row_wise") == (
        [[2, 8], [2, 8], [1, 8], [0, 8]], [[0, 0], [2, 0], [4, 0], [5, 0]])
    assert sp.calculate_shard_sizes_and_offsets(t, 2, 2, "column_wise", col_wise_shard_dim=4) == (
        [[5, 4], [5, 4]], [[0, 0], [0, 4]])


def test_plan_helpers_accept_the_dense_kernel_with_the_real_sharder():
    # TorchRec's helpers pick `dense` for a table-wise table without an in-backward optimizer, and
    # construct_module_sharding_plan accepts it even though the sharder's planner list is ["fused"].
    from recsys_lib import EmbeddingBagCollection, EmbeddingBagConfig
    from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder

    ebc = EmbeddingBagCollection([EmbeddingBagConfig(name=f"t{i}", embedding_dim=8, num_embeddings=10,
                                                     feature_names=[f"f{i}"]) for i in range(2)])
    sharder = EmbeddingBagCollectionSharder()
    assert "dense" not in sharder.compute_kernels("table_wise", "cpu")
    plan = sp.construct_module_sharding_plan(ebc, {"t0": sp.table_wise(0), "t1": sp.column_wise(ranks=[0, 1])},
                                             sharder=sharder, local_size=2, world_size=2, device_type="cpu")
    assert plan["t0"].compute_kernel == "dense" and plan["t1"].compute_kernel == "dense"
