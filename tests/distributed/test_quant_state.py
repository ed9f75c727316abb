"""distributed.quant_state: sharded quantized EBC / EC state dicts in TorchRec's keys (``embedding_bags.<t>.weight``
+ ``weight_qscale`` / ``weight_qbias``, sharded tables as ShardedTensorBase / per-column lists), loading them back
(sharded or unsharded tensors), and the weight specs of the kernels' tables. Reference: the unsharded quantized
model's rows split by hand."""

import copy

import pytest
import torch
from torch.distributed._shard.sharded_tensor import ShardedTensorBase

from recsys_lib.distributed._sharded.table_types import GroupedEmbeddingConfig
from recsys_lib.distributed.quant_embeddingbag import QuantEmbeddingBagCollectionSharder
from recsys_lib.distributed.quant_state import (
    WeightSpec,
    get_bucket_offsets_per_virtual_table,
    get_param_id_from_type,
    sharded_tbes_weights_spec,
)
from recsys_lib.distributed.sharding_plan import column_wise, construct_module_sharding_plan, row_wise, table_wise
from recsys_lib.distributed.types import ShardingPlan
from recsys_lib.inference.modules import quantize_inference_model, shard_quant_model
from recsys_lib.quant._rows import split_rows
from recsys_lib.types import DataType
from tests.inference._models import batch, dlrm

PREFIX = "sparse_arch.embedding_bag_collection."
EBC = "sparse_arch.embedding_bag_collection"


def _reference(model):
    """``{table: (data (R, D) uint8, qscale (R, 1) fp16, qbias (R, 1) fp16)}`` from the unsharded stored rows."""
    ebc = model.sparse_arch.embedding_bag_collection
    out = {}
    for name, t in ebc.state_dict().items():
        if not name.startswith("embedding_bags."):
            continue
        table = name.split(".")[1]
        data, ss = split_rows(t, 8, DataType.INT8)
        out[table] = (data, ss[:, 0:2].view(torch.float16), ss[:, 2:4].view(torch.float16))
    return out


def _sharded(seed: int = 0, world_size: int = 2):
    model = quantize_inference_model(dlrm(seed))
    model.eval()
    unsharded = copy.deepcopy(model)
    gens = {"t0": table_wise(rank=1), "t1": row_wise(), "t2": column_wise(ranks=[1, 0])}
    plan = construct_module_sharding_plan(model.sparse_arch.embedding_bag_collection, gens,
                                          QuantEmbeddingBagCollectionSharder(), local_size=world_size,
                                          world_size=world_size, device_type="cpu")
    sharded, _ = shard_quant_model(model, world_size=world_size, compute_device="cpu",
                                   sharding_plan=ShardingPlan({EBC: plan}))
    return sharded, unsharded


def _full(value):
    """A state-dict value as one dense tensor (sharded tensors assembled from their local shards)."""
    if isinstance(value, list):
        return value
    if isinstance(value, ShardedTensorBase):
        size = value.metadata().size
        out = torch.zeros(tuple(size), dtype=value.local_shards()[0].tensor.dtype)
        for s in value.local_shards():
            (r, c), (nr, nc) = s.metadata.shard_offsets, s.metadata.shard_sizes
            out[r:r + nr, c:c + nc] = s.tensor
        return out
    return value


def test_state_dict_has_torchrec_keys_and_the_unsharded_values():
    sharded, unsharded = _sharded()
    sd = {k[len(PREFIX):]: v for k, v in sharded.state_dict().items() if k.startswith(PREFIX)}
    assert not any(k.startswith("_shards.") for k in sd)
    tables = {k for k in sd if k.startswith("embedding_bags.")}
    assert tables == {f"embedding_bags.t{i}.{s}" for i in range(3) for s in ("weight", "weight_qscale", "weight_qbias")}
    assert sorted({k.split(".")[1] for k in sd if k.startswith("tbes.")}) == ["0", "1", "2", "3", "4"]  # 5 kernels
    ref = _reference(unsharded)
    assert type(sd["embedding_bags.t0.weight"]) is torch.Tensor  # one shard: the kernel's tensor
    assert isinstance(sd["embedding_bags.t1.weight"], ShardedTensorBase)  # row-wise: 2 shards
    assert isinstance(sd["embedding_bags.t2.weight_qscale"], list) and len(sd["embedding_bags.t2.weight_qscale"]) == 2
    for t in ("t0", "t1", "t2"):
        data, qscale, qbias = ref[t]
        assert torch.equal(_full(sd[f"embedding_bags.{t}.weight"]), data)
        for key, want in (("weight_qscale", qscale), ("weight_qbias", qbias)):
            got = sd[f"embedding_bags.{t}.{key}"]
            for g in (got if isinstance(got, list) else [_full(got)]):
                assert torch.equal(g, want)  # column blocks each keep every row's scale / bias


def test_load_unsharded_and_sharded_state_dicts():
    sharded, unsharded = _sharded(seed=0)
    other, _ = _sharded(seed=1)
    dense, kjt = batch(5, 3)
    want = unsharded(dense, kjt)
    assert not torch.allclose(other(dense, kjt), want)
    # 1) sharded -> identically sharded (dense parts too)
    result = other.load_state_dict(sharded.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    torch.testing.assert_close(other(dense, kjt), want)
    # 2) unsharded tensors (the unsharded split state) -> each shard copies its block
    fresh, _ = _sharded(seed=2)
    state = {}
    for k, v in sharded.state_dict().items():
        state[k] = _full(v) if isinstance(v, ShardedTensorBase) else v
    assert isinstance(state[PREFIX + "embedding_bags.t1.weight"], torch.Tensor)
    fresh.load_state_dict(state, strict=True)
    torch.testing.assert_close(fresh(dense, kjt), want)


def test_load_reports_missing_and_unexpected_keys():
    sharded, _ = _sharded()
    state = dict(sharded.state_dict())
    del state[PREFIX + "embedding_bags.t1.weight"]
    state[PREFIX + "embedding_bags.nope.weight"] = torch.zeros(1)
    result = sharded.load_state_dict(state, strict=False)
    assert result.missing_keys == [PREFIX + "embedding_bags.t1.weight"]
    assert result.unexpected_keys == [PREFIX + "embedding_bags.nope.weight"]
    with pytest.raises(RuntimeError, match="embedding_bags.t1.weight"):
        sharded.load_state_dict(state)


def test_sharded_tbes_weights_spec_points_at_the_kernels_blocks():
    sharded, unsharded = _sharded()
    specs = sharded_tbes_weights_spec(sharded)
    ref = _reference(unsharded)
    kernels = list(sharded.sparse_arch.embedding_bag_collection.tbes_configs())
    weights = {k: v for k, v in specs.items() if k.endswith(".weight")}
    assert len(weights) == 5  # t0, t1 x2 rows, t2 x2 columns
    for key, spec in weights.items():
        _, i, j, table, _ = key[len(PREFIX) - 1 + len("."):].split(".")[-5:]
        assert spec.fqn == f"{EBC}.embedding_bags.{table}.weight"
        kernel = kernels[int(i)]
        got = kernel.embedding_bags[table].weight
        (r, c), (nr, nc) = spec.shard_offsets, spec.shard_sizes
        assert tuple(got.shape) == (nr, nc)
        assert torch.equal(got, ref[table][0][r:r + nr, c:c + nc])  # INT8: logical columns == bytes
        assert spec.sharding_type == {"t0": "table_wise", "t1": "row_wise", "t2": "column_wise"}[table]
        q = specs[key + "_qscale"]
        assert q.shard_offsets == [r, 0] and q.shard_sizes == [nr, 2]


def test_small_helpers():
    assert get_param_id_from_type(True, False, False) == "embedding_bags"
    assert get_param_id_from_type(False, True, False) == "_embedding_module.embeddings"
    assert get_param_id_from_type(False, False, True) == "_embedding_bag_collection.embedding_bags"
    assert get_param_id_from_type(False, False, False) == "embeddings"
    assert WeightSpec("a.weight", [0, 0], [2, 2], None).virtual_table_dim_offsets is None
    sharded, _ = _sharded()
    configs = list(sharded.sparse_arch.embedding_bag_collection.tbes_configs().values())
    assert all(isinstance(c, GroupedEmbeddingConfig) for c in configs)
    # t1 rows [0, 30) | [30, 60) in 6 buckets of 10 rows: shards start at buckets 0 and 3
    assert get_bucket_offsets_per_virtual_table(configs, {"t1": [1] * 6}) == {"t1": [0, 3]}


@pytest.mark.parametrize("pooled", [True, False])
def test_ebc_int4_and_ec_state_round_trip(pooled):
    from recsys_lib.distributed.fused_params import FUSED_PARAM_QUANT_STATE_DICT_SPLIT_SCALE_BIAS
    from recsys_lib.distributed.quant_embedding import QuantEmbeddingCollectionSharder
    from recsys_lib.distributed.types import ShardingEnv
    from tests.distributed._quant_infer_cases import batch as kjt_batch
    from tests.distributed._quant_infer_cases import logical_plan, mixed_generators, quantized

    fused = {FUSED_PARAM_QUANT_STATE_DICT_SPLIT_SCALE_BIAS: True}
    sharder = (QuantEmbeddingBagCollectionSharder if pooled else QuantEmbeddingCollectionSharder)(fused_params=fused)

    def build(seed):
        model = quantized(pooled=pooled, seed=seed)
        plan = logical_plan(mixed_generators(), 2, sharder, pooled=pooled)
        return sharder.shard(model.sparse, plan, ShardingEnv.from_local(2, 0), torch.device("cpu")), model.sparse

    a, a_ref = build(0)
    b, _ = build(1)
    prefix = "embedding_bags" if pooled else "embeddings"
    keys = {k for k in a.state_dict() if not k.startswith("tbes.")}
    assert keys == {f"{prefix}.t{i}.{s}" for i in range(3) for s in ("weight", "weight_qscale", "weight_qbias")}
    b.load_state_dict(a.state_dict())
    kjt = kjt_batch(False, seed=4)
    got, want = b(kjt), a_ref(kjt)
    if pooled:
        torch.testing.assert_close(got.values(), want.values())  # row-wise: partial sums; INT4 t2 column-wise
    else:
        assert all(torch.equal(got[k].values(), want[k].values()) for k in want)


def test_deepcopy_keeps_the_state_on_the_copy():
    sharded, unsharded = _sharded()
    clone = copy.deepcopy(sharded)
    dense, kjt = batch(4, 1)
    assert torch.equal(clone(dense, kjt), sharded(dense, kjt))
    clone.state_dict()[PREFIX + "embedding_bags.t1.weight"].local_shards()[1].tensor.zero_()  # rows 30.. of t1
    assert not torch.equal(clone(dense, kjt), sharded(dense, kjt))
    torch.testing.assert_close(sharded(dense, kjt), unsharded(dense, kjt))  # the original is untouched
