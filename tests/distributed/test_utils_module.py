"""distributed.utils: prefixes, unsharded-module discovery, model copies, fused-params plumbing."""

import copy
from collections import OrderedDict

import pytest
import torch
from torch import nn

from recsys_lib.distributed import utils
from recsys_lib.distributed.types import CacheParams, EmbeddingEvent, LazyNoWait, NoWait, ParameterSharding, ShardedModule
from recsys_lib.types import DataType


def test_prefix_helpers():
    assert utils.append_prefix("a", "b") == "a.b" and utils.append_prefix("", "b") == "b"
    sd = OrderedDict([("m.x", 1), ("m.y.z", 2), ("n.x", 3)])
    assert utils.filter_state_dict(sd, "m") == OrderedDict([("x", 1), ("y.z", 2)])
    assert utils.filter_state_dict(sd, "") is sd
    d = {"x": 1, "y": 2}
    utils.add_prefix_to_state_dict(d, "p.")
    assert d == {"p.x": 1, "p.y": 2}


class _Sharded(ShardedModule):
    def create_context(self):
        return None

    def input_dist(self, ctx, x):
        return NoWait(NoWait(x))

    def compute(self, ctx, x):
        return x

    def output_dist(self, ctx, x):
        return LazyNoWait(x)


def test_unsharded_module_names():
    model = nn.Module()
    model.dense = nn.Linear(2, 2)
    model.sparse = nn.Module()
    model.sparse.ebc = _Sharded()
    model.sparse.proj = nn.Linear(2, 2)
    model.over = nn.Sequential(nn.Linear(2, 2))
    assert utils.get_unsharded_module_names(model) == ["dense", "over", "sparse.proj"]


def test_sharded_model_copy_and_copy_to_device():
    m = nn.Sequential(nn.Linear(3, 2))
    m.aw = NoWait(1)
    with utils.sharded_model_copy(device=torch.device("cpu")):
        c = copy.deepcopy(m)
    assert c.aw is m.aw  # awaitables are shared, not copied
    assert c[0].weight is not m[0].weight and torch.equal(c[0].weight, m[0].weight)
    assert isinstance(c[0].weight, nn.Parameter)
    moved = utils.copy_to_device(m, torch.device("cpu"), torch.device("cpu"))
    assert torch.equal(moved[0].bias, m[0].bias) and moved[0].bias is not m[0].bias
    # the patch is gone after the block
    c2 = copy.deepcopy(nn.Linear(1, 1))
    assert isinstance(c2.weight, nn.Parameter)


def test_fused_params_plumbing():
    assert utils.merge_fused_params({"a": 1, "learning_rate": 0.1}, {"lr": 0.5}) == {"a": 1, "learning_rate": 0.5}
    base = {"a": 1}
    merged = utils.merge_fused_params(base, None)
    assert merged == base and merged is not base
    ps = ParameterSharding("table_wise", "fused", [0], cache_params=CacheParams(load_factor=0.2, precision=DataType.FP16),
                           stochastic_rounding=False, output_dtype=DataType.FP16)
    fp = utils.add_params_from_parameter_sharding({"x": 1}, ps)
    assert fp == {"x": 1, "cache_load_factor": 0.2, "cache_precision": DataType.FP16, "stochastic_rounding": False,
                  "output_dtype": DataType.FP16}
    from fbgemm_gpu.split_embedding_configs import SparseType

    assert utils.convert_to_fbgemm_types(fp)["cache_precision"] is SparseType.FP16


def test_init_parameters_materialises_meta():
    lin = nn.Linear(4, 3, device="meta")
    utils.init_parameters(lin, torch.device("cpu"))
    assert lin.weight.device.type == "cpu" and torch.isfinite(lin.weight).all()


def test_small_helpers():
    assert utils.none_throws(3) == 3
    with pytest.raises(AssertionError, match="gone"):
        utils.none_throws(None, "gone")
    with pytest.raises(AssertionError, match="expected int, got str"):
        utils.assert_instance("x", int)
    assert utils.get_class_name(nn.Linear(1, 1)) == "Linear"
    assert utils.get_device_type() in ("cpu", "cuda")
    with utils.maybe_annotate_embedding_event(EmbeddingEvent.LOOKUP, "ebc", "table_wise"):
        pass
    from torch.distributed._shard.sharding_spec import EnumerableShardingSpec, ShardMetadata

    spec = EnumerableShardingSpec([ShardMetadata([0, 0], [4, 3], "rank:0/cpu"), ShardMetadata([4, 0], [6, 3], "rank:1/cpu")])
    ps = ParameterSharding("row_wise", "dense", [0, 1], spec)
    assert utils.create_global_tensor_shape_stride_from_metadata(ps) == (torch.Size([10, 3]), (3, 1))
    meta = utils.get_bucket_metadata_from_shard_metadata(spec.shards, num_buckets=5)
    assert (meta.num_buckets_per_shard, meta.bucket_offsets_per_shard, meta.bucket_size) == ([2, 3], [0, 2], 2)
    assert utils.weights_bytes_in_emb_kernel(nn.Linear(2, 2)) == 24
