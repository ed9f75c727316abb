import pytest

from recsys_lib.distributed.planner.constants import UVM_CACHING_RATIO
from recsys_lib.distributed.planner.enumerators import EmbeddingEnumerator
from recsys_lib.distributed.planner.shard_estimators import EmbeddingPerfEstimator, calculate_pipeline_io_cost
from recsys_lib.distributed.planner.types import ParameterConstraints, Topology
from recsys_lib.distributed.types import CacheParams, PipelineType
from tests.distributed.planner._helpers import EbcTestSharder, make_ebc

B, W = 4, 2  # per-rank batch, world


def _option(topo, rows, dim, sharding_type, kernel, sharder=None, batch=B, **pc):
    constraints = {"t0": ParameterConstraints(sharding_types=[sharding_type], compute_kernels=[kernel], **pc)}
    (o,) = EmbeddingEnumerator(topo, batch, constraints).enumerate(make_ebc([rows], [dim]), [sharder or EbcTestSharder()])
    return o


def _tw_io(dim, pooling=1.0, world=W, batch=B):
    ids = batch * world * pooling
    return int(ids * 8 + batch * world * 4) + batch * world * dim * 4  # ids + lengths, pooled outputs


@pytest.mark.parametrize("kernel,hbm,ddr", [
    ("fused", lambda w, io: w + io, lambda w, io: 0),
    ("fused_uvm", lambda w, io: io, lambda w, io: w),
    ("fused_uvm_caching", lambda w, io: int(UVM_CACHING_RATIO * w) + io, lambda w, io: w),
])
def test_cuda_storage_per_kernel(kernel, hbm, ddr):
    topo = Topology(world_size=W, compute_device="cuda")
    o = _option(topo, 1000, 64, "table_wise", kernel)
    weights, io = 1000 * 64 * 4, _tw_io(64)
    assert o.shards[0].storage.hbm == hbm(weights, io)
    assert o.shards[0].storage.ddr == ddr(weights, io)


def test_cache_load_factor_and_cpu_storage():
    topo = Topology(world_size=W, compute_device="cuda")
    o = _option(topo, 1000, 64, "table_wise", "fused_uvm_caching", cache_params=CacheParams(load_factor=0.5))
    assert o.shards[0].storage.hbm == 1000 * 64 * 4 // 2 + _tw_io(64)
    cpu = _option(Topology(world_size=W, compute_device="cpu"), 1000, 64, "table_wise", "fused")
    assert (cpu.shards[0].storage.hbm, cpu.shards[0].storage.ddr) == (0, 1000 * 64 * 4 + _tw_io(64))


def test_row_wise_shards_split_weights_and_optimizer_state_counts():
    from fbgemm_gpu.split_embedding_configs import EmbOptimType

    topo = Topology(world_size=4, compute_device="cuda")
    sharder = EbcTestSharder(fused_params={"optimizer": EmbOptimType.EXACT_ROWWISE_ADAGRAD})
    rw = _option(topo, 10, 8, "row_wise", "fused", sharder=sharder)
    sizes = [s.size[0] for s in rw.shards]
    assert sizes == [3, 3, 3, 1]
    plain = _option(topo, 10, 8, "row_wise", "fused")
    # row-wise adagrad keeps one fp32 per row on top of the weights; I/O is the same with either optimizer
    extra = [a.storage.hbm - b.storage.hbm for a, b in zip(rw.shards, plain.shards)]
    assert extra == [r * 4 for r in sizes]
    io = [s.storage.hbm - r * 8 * 4 for s, r in zip(plain.shards, sizes)]
    assert io[0] > io[3] > 0  # fewer rows, fewer of the ids land on the shard


def test_sparse_dist_pipeline_keeps_a_second_input():
    # hand-computed from the documented rule: input 10, output 100, prefetch 5
    assert calculate_pipeline_io_cost(10, 100, 0, PipelineType.NONE, None) == 110
    assert calculate_pipeline_io_cost(10, 100, 0, PipelineType.TRAIN_SPARSE_DIST, None) == 20
    assert calculate_pipeline_io_cost(10, 100, 0, PipelineType.TRAIN_SPARSE_DIST, None, True) == 120
    assert calculate_pipeline_io_cost(10, 100, 5, PipelineType.TRAIN_PREFETCH_SPARSE_DIST, None) == 30 + 35
    assert calculate_pipeline_io_cost(10, 100, 5, PipelineType.TRAIN_PREFETCH_SPARSE_DIST, 3) == 30 + 15
    assert calculate_pipeline_io_cost(10, 100, 0, PipelineType.NONE, None, is_inference=True) == 0


SHARDED = ["table_wise", "column_wise", "row_wise", "table_row_wise", "table_column_wise", "grid_shard"]


@pytest.mark.parametrize("sharding_type", SHARDED + ["data_parallel"])
def test_more_columns_cost_more(sharding_type):
    topo = Topology(world_size=4, compute_device="cuda", local_world_size=2)
    kernel = "dense" if sharding_type == "data_parallel" else "fused"
    small = _option(topo, 1000, 128, sharding_type, kernel)
    big = _option(topo, 1000, 256, sharding_type, kernel)
    assert big.total_perf > small.total_perf
    assert big.total_storage.hbm > small.total_storage.hbm


@pytest.mark.parametrize("sharding_type", SHARDED + ["data_parallel"])
def test_more_rows_need_more_storage_and_never_less_time(sharding_type):
    topo = Topology(world_size=4, compute_device="cuda", local_world_size=2)
    kernel = "dense" if sharding_type == "data_parallel" else "fused"
    small = _option(topo, 1000, 64, sharding_type, kernel)
    big = _option(topo, 100_000, 64, sharding_type, kernel)
    assert big.total_storage.hbm > small.total_storage.hbm
    assert big.total_perf >= small.total_perf
    if sharding_type == "data_parallel":  # the dense gradient all-reduce grows with the table
        assert big.total_perf > small.total_perf


def test_more_ids_cost_more():
    topo = Topology(world_size=2, compute_device="cuda")
    few = _option(topo, 1000, 64, "table_wise", "fused", pooling_factors=[1.0])
    many = _option(topo, 1000, 64, "table_wise", "fused", pooling_factors=[20.0])
    assert many.total_perf > few.total_perf


@pytest.mark.parametrize("sharding_type", ["table_wise", "row_wise", "data_parallel", "table_row_wise"])
def test_cross_host_comms_are_slower_than_intra_host(sharding_type):
    kernel = "dense" if sharding_type == "data_parallel" else "fused"
    one_host = _option(Topology(world_size=4, compute_device="cuda", local_world_size=4), 1000, 64, sharding_type, kernel)
    two_hosts = _option(Topology(world_size=4, compute_device="cuda", local_world_size=2), 1000, 64, sharding_type, kernel)

    def comms(o):
        return sum(s.perf.fwd_comms + s.perf.bwd_comms for s in o.shards)

    assert comms(two_hosts) > comms(one_host)
    if len(one_host.shards) == len(two_hosts.shards):  # same shards: only the links differ
        compute = [sum(s.perf.fwd_compute for s in o.shards) for o in (one_host, two_hosts)]
        assert compute[0] == pytest.approx(compute[1])


def test_inference_estimates_forward_only():
    topo = Topology(world_size=2, compute_device="cuda")
    o = _option(topo, 1000, 64, "table_wise", "fused")
    EmbeddingPerfEstimator(topo, is_inference=True).estimate([o], {})
    assert o.shards[0].perf.bwd_compute == 0 and o.shards[0].perf.bwd_comms == 0 and o.shards[0].perf.fwd_compute > 0


def test_perf_func_emb_wall_time_matches_the_estimator():
    topo = Topology(world_size=2, compute_device="cuda")
    o = _option(topo, 1000, 64, "row_wise", "fused")
    perfs = EmbeddingPerfEstimator.perf_func_emb_wall_time(
        shard_sizes=[s.size for s in o.shards], compute_kernel="fused", compute_device="cuda", sharding_type="row_wise",
        batch_sizes=[B], world_size=2, local_world_size=2, input_lengths=[1.0], input_data_type_size=8,
        table_data_type_size=4, output_data_type_size=4, fwd_a2a_comm_data_type_size=4, bwd_a2a_comm_data_type_size=4,
        fwd_sr_comm_data_type_size=4, bwd_sr_comm_data_type_size=4, num_poolings=[1.0], hbm_mem_bw=topo.hbm_mem_bw,
        ddr_mem_bw=topo.ddr_mem_bw, hbm_to_ddr_mem_bw=topo.hbm_to_ddr_mem_bw, comms_bandwidths=topo.comms_bandwidths,
        bwd_compute_multiplier=2, weighted_feature_bwd_compute_multiplier=1, is_pooled=True,
    )
    assert [p.total for p in perfs] == pytest.approx([s.perf.total for s in o.shards])
