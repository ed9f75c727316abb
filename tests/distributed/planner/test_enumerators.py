import pytest

from recsys_lib.distributed.planner.enumerators import EmbeddingEnumerator, get_partition_by_type
from recsys_lib.distributed.planner.types import ParameterConstraints, PlannerError, PlannerErrorType, Topology
from tests.distributed.planner._helpers import EbcTestSharder, TwoTower, make_ebc


def _space(topology, module, constraints=None, batch_size=512):
    return EmbeddingEnumerator(topology, batch_size, constraints).enumerate(module, [EbcTestSharder()])


def test_cpu_search_space_matches_the_sharder_lists():
    space = _space(Topology(world_size=2, compute_device="cpu"), make_ebc([100, 200], [16, 32]))
    got = {(o.name, o.sharding_type, o.compute_kernel) for o in space}
    want = {(t, st, "dense" if st == "data_parallel" else "fused")
            for t in ("t0", "t1") for st in ("data_parallel", "table_wise", "column_wise", "table_column_wise")}
    assert got == want and len(space) == len(want)
    assert all(s.perf is not None and s.storage is not None for o in space for s in o.shards)


def test_cuda_search_space_drops_kernels_without_a_perf_model():
    space = _space(Topology(world_size=2, compute_device="cuda"), make_ebc([100], [16]))
    kernels = {o.compute_kernel for o in space if o.sharding_type == "row_wise"}
    assert kernels == {"fused", "fused_uvm", "fused_uvm_caching"}
    assert len(space) == 1 + 6 * 3  # dp/dense + 6 sharded types x 3 kernels


def test_constraints_restrict_types_and_kernels_and_shape_the_shards():
    topo = Topology(world_size=4, compute_device="cuda", local_world_size=2)
    pc = {"t0": ParameterConstraints(sharding_types=["row_wise"], compute_kernels=["fused"])}
    (only,) = _space(topo, make_ebc([10], [8]), pc)
    assert (only.sharding_type, only.compute_kernel) == ("row_wise", "fused")
    assert [s.size for s in only.shards] == [[3, 8], [3, 8], [3, 8], [1, 8]]
    assert [s.offset[0] for s in only.shards] == [0, 3, 6, 9]


def test_min_partition_sets_the_column_block():
    topo = Topology(world_size=2, compute_device="cpu")
    default = [o for o in _space(topo, make_ebc([10], [256])) if o.sharding_type == "column_wise"][0]
    assert [s.size[1] for s in default.shards] == [128, 128]
    pc = {"t0": ParameterConstraints(sharding_types=["column_wise"], min_partition=64)}
    (cw,) = _space(topo, make_ebc([10], [256]), pc)
    assert [s.size[1] for s in cw.shards] == [64, 64, 64, 64]
    assert [s.offset[1] for s in cw.shards] == [0, 64, 128, 192]


def test_impossible_constraints_name_the_table():
    pc = {"t1": ParameterConstraints(sharding_types=["row_wise"])}  # not offered on cpu
    with pytest.raises(PlannerError, match="'t1'") as e:
        _space(Topology(world_size=2, compute_device="cpu"), make_ebc([10, 10], [8, 8]), pc)
    assert e.value.error_type == PlannerErrorType.STRICT_CONSTRAINTS


def test_nested_modules_features_and_pooling_factors():
    model = TwoTower([10, 20], [8, 8])
    pc = {"t1": ParameterConstraints(pooling_factors=[5.0])}
    space = _space(Topology(world_size=1, compute_device="cpu"), model, pc)
    assert {o.fqn for o in space} == {"sparse.ebc.t0", "sparse.ebc.t1"}
    assert {tuple(o.input_lengths) for o in space if o.name == "t1"} == {(5.0,)}
    two = _space(Topology(world_size=1, compute_device="cpu"), make_ebc([10], [8], features_per_table=2),
                 {"t0": ParameterConstraints(pooling_factors=[2.0, 5.0])})
    assert {tuple(o.input_lengths) for o in two} == {(2.0, 5.0)}
    multi = _space(Topology(world_size=1, compute_device="cpu"), make_ebc([10], [8], features_per_table=3))
    assert all(o.input_lengths == [1.0, 1.0, 1.0] and len(o.feature_names) == 3 for o in multi)


@pytest.mark.parametrize("sharding_type,expected", [
    ("table_wise", "device"), ("column_wise", "device"), ("table_row_wise", "host"),
    ("table_column_wise", "host"), ("row_wise", "uniform"), ("data_parallel", "uniform"),
    ("grid_shard", "multi_host"),
])
def test_partition_by_type(sharding_type, expected):
    assert get_partition_by_type(sharding_type) == expected
