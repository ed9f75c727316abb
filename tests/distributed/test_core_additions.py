"""Small distributed-core names: storage accounting, host copies, fused-param dtypes, topology env, helpers.

References are hand-computed values or plain torch.
"""

import logging

import pytest
import torch
from fbgemm_gpu.split_embedding_configs import EmbOptimType

from recsys_lib.distributed import comm, global_settings
from recsys_lib.distributed.fused_params import get_embedding_table_index_type, get_embedding_table_offset_type
from recsys_lib.distributed.logger import LazyStr
from recsys_lib.distributed.memory_stashing import chunked_copy_
from recsys_lib.distributed.shards_wrapper import LocalShardsWrapper
from recsys_lib.distributed.types import (
    DeviceToHostTensorAwaitable,
    ObjectPoolShardingPlan,
    ObjectPoolShardingType,
    ShardingStrategy,
    StorageUsageType,
    compute_storage_usage,
)
from recsys_lib.distributed.utils import emb_opt_type_to_optimizer_class, optimizer_type_to_emb_opt_type
from recsys_lib.optim.rowwise_adagrad import RowWiseAdagrad


@pytest.mark.parametrize(
    "device,kernel,usage,expected",
    [
        ("cpu", "fused", StorageUsageType.BASE, {"ddr": 7 * 3 * 4}),
        ("cuda", "fused", StorageUsageType.BASE, {"hbm": 84}),
        ("cuda", "fused_uvm_caching", StorageUsageType.BASE, {"ddr": 84}),
        ("cuda", "fused_uvm_caching", StorageUsageType.DEFAULT, {"hbm": 84}),
        ("mtia", "quant", StorageUsageType.BASE_QUANT, {"ddr": 84 + 7 * 4}),  # +4 bytes per row: scale, bias
        ("cuda", "quant_uvm", StorageUsageType.BASE_QUANT, {"ddr": 112}),
        ("mtia", "dense", StorageUsageType.BASE, {"hbm": 84}),
        ("tpu", "dense", StorageUsageType.DEFAULT, {"hbm": 84}),
    ],
)
def test_compute_storage_usage(device, kernel, usage, expected):
    assert compute_storage_usage(torch.zeros(7, 3), device, kernel, usage) == expected


def test_device_to_host_awaitable_and_plan_types():
    t = torch.arange(5.0)
    out = DeviceToHostTensorAwaitable(t).wait()
    assert out.device.type == "cpu"
    torch.testing.assert_close(out, t)
    plan = ObjectPoolShardingPlan(ObjectPoolShardingType.REPLICATED_ROW_WISE, inference=True)
    assert (plan.sharding_type.value, plan.inference, plan.memory_capacity_per_rank) == ("replicated_row_wise", True, None)
    assert ShardingStrategy("per_module") is ShardingStrategy.PER_MODULE


def test_fused_param_dtypes():
    assert get_embedding_table_index_type(None) is torch.int64
    assert get_embedding_table_index_type({"embedding_table_index_type": torch.int32}) is torch.int32
    assert get_embedding_table_offset_type({"embedding_table_index_type": torch.int32}) is torch.int64
    assert get_embedding_table_offset_type({"embedding_table_offset_type": torch.int32}) is torch.int32


def test_lazy_str_evaluates_once_and_only_when_formatted(caplog):
    calls = []
    lazy = LazyStr(lambda: calls.append(1) or "summary")
    logging.getLogger("t.lazy").debug("%s", lazy)  # level WARNING: not formatted
    assert calls == []
    assert f"{lazy}-{lazy}" == "summary-summary" and calls == [1]


@pytest.mark.parametrize("chunk", [0, 4, 12, 1 << 20])
def test_chunked_copy_matches_copy(chunk):
    src = torch.randn(5, 7)
    dst = torch.empty(5, 7)
    chunked_copy_(dst, src, chunk_size_bytes=chunk)
    torch.testing.assert_close(dst, src)
    with pytest.raises(ValueError, match="size mismatch"):
        chunked_copy_(torch.empty(3), src)


def test_emb_opt_type_round_trip():
    assert emb_opt_type_to_optimizer_class(EmbOptimType.EXACT_ROWWISE_ADAGRAD) is RowWiseAdagrad
    for e in EmbOptimType:
        cls = emb_opt_type_to_optimizer_class(e)
        if cls is not None:
            assert optimizer_type_to_emb_opt_type(cls) == e
    assert emb_opt_type_to_optimizer_class(None) is None
    assert emb_opt_type_to_optimizer_class(EmbOptimType.SHAMPOO) is None


def test_topology_env(monkeypatch):
    monkeypatch.delenv("TOPOLOGY_DOMAIN_MULTIPLE", raising=False)
    monkeypatch.delenv("TORCHREC_RESOLVED_POD_SIZE", raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert comm.get_topology_domain_multiple() is None
    assert comm.get_topology_group_world_size(16) == 4  # falls back to ranks per host
    monkeypatch.setenv("TOPOLOGY_DOMAIN_MULTIPLE", "3")
    monkeypatch.setenv("TORCHREC_RESOLVED_POD_SIZE", "2")
    assert comm.get_topology_domain_multiple() == 3
    assert comm.get_topology_group_world_size(16) == 8
    with pytest.raises(ValueError, match="not a multiple"):
        comm.get_topology_group_world_size(12)


def test_set_propogate_device_keyword():
    before = global_settings.get_propogate_device()
    global_settings.set_propogate_device(val=not before)
    assert global_settings.get_propogate_device() is (not before)
    global_settings.set_propogate_device(before)


def test_local_shards_wrapper_views_shards():
    shards = [torch.ones(2, 3), torch.zeros(2, 2)]
    w = LocalShardsWrapper(shards, [(0, 0), (0, 3)])
    assert tuple(w.shape) == (2, 5)
    assert [tuple(s.shape) for s in w.local_shards()] == [(2, 3), (2, 2)]


@pytest.mark.parametrize(
    "rows,world,buckets,expected",
    [(10, 4, 5, [4, 2, 2, 2]), (12, 3, 6, [4, 4, 4]), (8, 2, 8, [4, 4])],
)
def test_row_wise_num_buckets_whole_buckets_per_rank(rows, world, buckets, expected):
    from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from recsys_lib.distributed.sharding_plan import row_wise

    ps = row_wise(num_buckets=buckets)(torch.nn.Parameter(torch.empty(rows, 3)), world, world, "cpu",
                                       EmbeddingBagCollectionSharder())
    shards = ps.sharding_spec.shards
    assert [s.shard_sizes[0] for s in shards] == expected
    assert [s.shard_offsets[0] for s in shards] == [sum(expected[:i]) for i in range(world)]


def test_row_wise_num_buckets_errors():
    from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from recsys_lib.distributed.sharding_plan import row_wise

    p = torch.nn.Parameter(torch.empty(10, 3))
    with pytest.raises(ValueError, match="must be >= the number of ranks"):
        row_wise(num_buckets=2)(p, 4, 4, "cpu", EmbeddingBagCollectionSharder())
    with pytest.raises(ValueError, match="must divide"):
        row_wise(num_buckets=4)(p, 4, 4, "cpu", EmbeddingBagCollectionSharder())


def _table(cols, dtype):
    from types import SimpleNamespace

    return SimpleNamespace(local_cols=cols, data_type=dtype)


@pytest.mark.parametrize(
    "policy,expected_buckets,count",
    [("single_bucket", [0, 0, 0, 0, 0], 1), ("all_buckets", [0, 1, 2, 3, 0], 4), ("cacheline_buckets", [0, 0, 0, 1, 0], 2)],
)
def test_emb_dim_bucketer(policy, expected_buckets, count):
    from recsys_lib.distributed.embedding_dim_bucketer import EmbDimBucketer, EmbDimBucketerPolicy
    from recsys_lib.types import DataType

    # widths in bytes: 16, 64, 96, 160 (fp32), and 16 again (dim 8 in fp16); cache lines of 128 bytes
    tables = [_table(4, DataType.FP32), _table(16, DataType.FP32), _table(24, DataType.FP32),
              _table(40, DataType.FP32), _table(8, DataType.FP16)]
    b = EmbDimBucketer(tables, EmbDimBucketerPolicy(policy))
    assert b.bucket_count() == count
    assert [b.get_bucket(t.local_cols, t.data_type) for t in tables] == expected_buckets
    assert b.dim_in_bytes(3, DataType.INT8) == 3


def test_small_embedding_types_and_helpers():
    from recsys_lib.distributed.embedding_types import BaseEmbeddingUpdate, DTensorMetadata, OptimType
    from recsys_lib.distributed.embeddingbag import EmbeddingAwaitable
    from recsys_lib.distributed.fp_embeddingbag import param_dp_sync
    from recsys_lib.distributed.types import NoWait
    from recsys_lib.sparse.jagged_tensor import KeyedTensor

    assert DTensorMetadata().mesh is None and DTensorMetadata(size=(4, 2)).size == (4, 2)
    assert OptimType("MUON") is OptimType.MUON
    with pytest.raises(TypeError):
        BaseEmbeddingUpdate()
    t = torch.arange(4.0)
    assert torch.equal(EmbeddingAwaitable(NoWait(t)).wait(), t)
    kt = KeyedTensor(keys=["a", "b"], length_per_key=[1, 1], values=torch.ones(2, 2))
    zero = torch.zeros(1, requires_grad=True)
    out = param_dp_sync(kt, zero * 1.0)
    assert out is kt and torch.equal(kt.values(), torch.ones(2, 2))


def test_local_shards_wrapper_copy_zeros_empty_like():
    a = LocalShardsWrapper([torch.arange(6.0).view(2, 3), torch.arange(4.0).view(2, 2) + 10], [(0, 0), (0, 3)])
    z = torch.zeros_like(a)
    assert isinstance(z, LocalShardsWrapper) and z.local_offsets() == a.local_offsets()
    assert all(torch.equal(s, torch.zeros_like(t)) for s, t in zip(z.local_shards(), a.local_shards()))
    e = torch.empty_like(a, dtype=torch.float64)
    assert [s.dtype for s in e.local_shards()] == [torch.float64, torch.float64]
    assert [tuple(s.shape) for s in e.local_shards()] == [(2, 3), (2, 2)]
    z.copy_(a)
    for s, t in zip(z.local_shards(), a.local_shards()):
        assert torch.equal(s, t)
