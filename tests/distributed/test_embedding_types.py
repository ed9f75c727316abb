import pytest
import torch
from fbgemm_gpu.split_table_batched_embeddings_ops_common import EmbeddingLocation
from torch import nn
from torch.distributed._shard.metadata import ShardMetadata

from recsys_lib.distributed.embedding_types import (
    BaseEmbeddingSharder,
    BaseQuantEmbeddingSharder,
    EmbeddingComputeKernel,
    GroupedEmbeddingConfig,
    InputDistOutputs,
    KJTList,
    ListOfKJTList,
    OptimType,
    ShardedEmbeddingTable,
    compute_kernel_to_embedding_location,
)
from recsys_lib.modules.embedding_configs import PoolingType
from recsys_lib.types import DataType


def _tables():
    md = ShardMetadata([0, 4], [10, 4], "rank:1/cpu")
    return [
        ShardedEmbeddingTable(num_embeddings=10, embedding_dim=8, name="t0", feature_names=["f0", "f1"],
                              embedding_names=["f0", "f1"], local_rows=10, local_cols=4, local_metadata=md),
        ShardedEmbeddingTable(num_embeddings=3, embedding_dim=16, name="t1", feature_names=["f2"],
                              embedding_names=["f2"], local_rows=3, local_cols=16),
    ]


def test_grouped_config_per_feature_views():
    g = GroupedEmbeddingConfig(DataType.FP32, PoolingType.SUM, False, False, EmbeddingComputeKernel.FUSED, _tables())
    assert g.num_features() == 3
    assert g.feature_hash_sizes() == [10, 10, 3]
    assert g.dim_sum() == 4 + 4 + 16  # local columns per feature
    assert g.embedding_dims() == [4, 4, 16]
    assert g.table_names() == ["t0", "t1"]
    assert g.feature_names() == ["f0", "f1", "f2"] and g.embedding_names() == ["f0", "f1", "f2"]
    md = g.embedding_shard_metadata()
    assert md[0].shard_offsets == [0, 4] and md[1] is md[0] and md[2] is None


def test_sharded_table_defaults_and_field_order():
    t = ShardedEmbeddingTable(5, 4)
    assert (t.num_embeddings, t.embedding_dim, t.local_rows, t.local_cols) == (5, 4, 0, 0)
    assert t.compute_kernel == EmbeddingComputeKernel.DENSE and t.fused_params is None
    assert t.pooling == PoolingType.SUM and t.global_metadata is None


def test_compute_kernel_locations():
    assert compute_kernel_to_embedding_location(EmbeddingComputeKernel.FUSED) == EmbeddingLocation.DEVICE
    assert compute_kernel_to_embedding_location(EmbeddingComputeKernel.FUSED_UVM) == EmbeddingLocation.MANAGED
    assert compute_kernel_to_embedding_location(EmbeddingComputeKernel.FUSED_UVM_CACHING) == EmbeddingLocation.MANAGED_CACHING
    with pytest.raises(ValueError, match="'dense' has no EmbeddingLocation"):
        compute_kernel_to_embedding_location(EmbeddingComputeKernel.DENSE)
    assert EmbeddingComputeKernel("fused_uvm_caching") is EmbeddingComputeKernel.FUSED_UVM_CACHING
    assert OptimType.ROWWISE_ADAGRAD.value == "ROWWISE_ADAGRAD"


class _Sharder(BaseEmbeddingSharder[nn.Module]):
    def shard(self, module, params, env, device=None, module_fqn=None):
        raise NotImplementedError

    @property
    def module_type(self):
        return nn.Module


def test_embedding_sharder_offers_torchrecs_lists():
    s = _Sharder(fused_params={"learning_rate": 0.1})
    assert s.fused_params == {"learning_rate": 0.1}
    assert s.sharding_types("cpu") == ["data_parallel", "table_wise", "column_wise", "table_column_wise"]
    assert s.sharding_types("cuda") == s.sharding_types("cpu") + ["row_wise", "table_row_wise", "grid_shard"]
    assert s.compute_kernels("data_parallel", "cpu") == ["dense"]
    assert s.compute_kernels("table_wise", "cpu") == ["fused"]
    assert s.compute_kernels("row_wise", "cuda") == [
        "fused", "fused_uvm", "fused_uvm_caching", "key_value", "ssd_virtual_table", "dram_virtual_table",
        "dram_ssd_virtual_table"]  # TorchRec 1.8.0's list
    w = torch.zeros(10, 4)
    assert s.storage_usage(w, "cpu", "fused") == {"ddr": 160}
    assert s.storage_usage(w, "cuda", "fused") == {"hbm": 160}
    assert s.storage_usage(w, "cuda", "fused_uvm_caching") == {"ddr": 160}
    with pytest.raises(ValueError, match="needs a cuda device"):
        s.storage_usage(w, "cpu", "fused_uvm")
    with pytest.raises(ValueError, match="compute_device_type"):
        s.sharding_types("tpu")


class _QuantSharder(BaseQuantEmbeddingSharder[nn.Module]):
    def shard(self, module, params, env, device=None, module_fqn=None):
        raise NotImplementedError

    @property
    def module_type(self):
        return nn.Module


def test_quant_sharder():
    module = nn.ModuleDict({"embedding_bags": nn.ModuleDict({"t0": nn.Embedding(4, 8), "t1": nn.Embedding(2, 8)})})
    s = _QuantSharder()
    assert s.sharding_types("cpu") == ["table_wise", "row_wise", "column_wise"]
    assert s.compute_kernels("table_wise", "cpu") == ["quant"]
    assert s.compute_kernels("table_wise", "cuda") == ["quant", "quant_uvm", "quant_uvm_caching"]
    assert sorted(s.shardable_parameters(module)) == ["t0", "t1"]
    assert list(_QuantSharder(shardable_params=["t1"]).shardable_parameters(module)) == ["t1"]
    with pytest.raises(ValueError, match="'zz'"):
        _QuantSharder(shardable_params=["zz"]).shardable_parameters(module)
    q = torch.zeros(10, 8, dtype=torch.uint8)
    assert s.storage_usage(q, "cuda", "quant") == {"hbm": 80 + 40}
    assert s.storage_usage(q, "cuda", "quant_uvm") == {"ddr": 120}


class _Streamed:
    def __init__(self):
        self.streams = []

    def record_stream(self, stream):
        self.streams.append(stream)


def test_kjt_lists_are_streamable_containers():
    a, b = _Streamed(), _Streamed()
    lst = KJTList([a, b])
    assert len(lst) == 2 and lst[1] is b and list(lst) == [a, b]
    lst.record_stream("s")
    nested = ListOfKJTList([lst])
    nested.record_stream("t")
    assert a.streams == ["s", "t"]
    out = InputDistOutputs(features=lst)
    out.record_stream("u")
    assert b.streams == ["s", "t", "u"] and out.unbucketize_permute_tensor is None


class _Lookup(nn.Module):
    def __init__(self):
        super().__init__()
        self.prefetched = []

    def prefetch(self, sparse_features, forward_stream=None):
        self.prefetched.append(sparse_features)


def test_sharded_embedding_module_common_parts():
    from recsys_lib.distributed.embedding_types import ShardedEmbeddingModule

    class _Sharded(ShardedEmbeddingModule):
        def create_context(self):
            return None

        def input_dist(self, ctx, *input, **kwargs):
            raise NotImplementedError

        def compute(self, ctx, dist_input):
            raise NotImplementedError

        def output_dist(self, ctx, output):
            raise NotImplementedError

    m = _Sharded()
    a, b = _Lookup(), _Lookup()
    m._lookups = [a, b]
    m.prefetch(KJTList(["kjt0", "kjt1"]))
    assert a.prefetched == ["kjt0"] and b.prefetched == ["kjt1"]
    m._lookups = [a]
    m.eval()
    assert not a.training
    m.train()
    assert a.training
    assert "lookups:" in repr(m) and "_input_dists: []" in repr(m)
    called = []
    m.register_post_lookup_tracker_fn(lambda *args: called.append(args))
    assert m.post_lookup_tracker_fn is not None and m.post_odist_tracker_fn is None
