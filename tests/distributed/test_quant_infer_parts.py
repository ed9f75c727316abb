"""TorchRec-named parts of sharded quantized inference: the input-dist modules (per-rank KJTs equal to the ids each
rank's kernels look up), device helpers, fx-visible name helpers and the lengths-taking inference TBE."""

import pytest
import torch
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec, ShardMetadata

from recsys_lib.distributed.embedding_sharding import EmbeddingShardingInfo
from recsys_lib.distributed.fused_params import FUSED_PARAM_IS_SSD_TABLE
from recsys_lib.distributed.quant_embedding import (
    EmbeddingCollectionContext,
    QuantEmbeddingCollectionSharder,
    ShardedQuantEcInputDist,
    annotate_embedding_names,
    format_embedding_names_per_rank_per_sharding,
    input_dist_permute,
)
from recsys_lib.distributed.quant_embedding_kernel import IntNBitTableBatchedEmbeddingBagsCodegenWithLength
from recsys_lib.distributed.quant_embeddingbag import (
    QuantEmbeddingBagCollectionSharder,
    ShardedQuantEbcInputDist,
    flatten_feature_lengths,
    get_device_for_first_shard_from_sharding_infos,
    get_device_from_parameter_sharding,
    get_device_from_sharding_infos,
)
from recsys_lib.distributed.types import ParameterSharding, ShardingEnv
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor
from tests.distributed._quant_infer_cases import batch, logical_plan, mixed_generators, quantized


def _ps(sharding_type, devices):
    shards = [ShardMetadata(shard_offsets=[i * 4, 0], shard_sizes=[4, 8], placement=f"rank:{i}/{d}")
              for i, d in enumerate(devices)]
    return ParameterSharding(sharding_type=sharding_type, compute_kernel="quant", ranks=list(range(len(devices))),
                             sharding_spec=EnumerableShardingSpec(shards))


def test_device_helpers():
    assert get_device_from_parameter_sharding(_ps("row_wise", ["cpu", "cpu"])) == "cpu"
    assert get_device_from_parameter_sharding(_ps("row_wise", ["cpu", "meta"])) == ("cpu", "meta")
    with pytest.raises(ValueError, match="row-wise"):
        get_device_from_parameter_sharding(_ps("table_wise", ["cpu", "meta"]))
    with pytest.raises(ValueError, match="EnumerableShardingSpec"):
        get_device_from_parameter_sharding(ParameterSharding("table_wise", "quant", [0], None))
    info = EmbeddingShardingInfo(None, _ps("row_wise", ["meta", "cpu"]), torch.empty(0))  # type: ignore[arg-type]
    assert get_device_from_sharding_infos([info]) == ("meta", "cpu")
    assert get_device_for_first_shard_from_sharding_infos([info]) == "meta"
    ssd = EmbeddingShardingInfo(None, _ps("row_wise", ["cpu"]), torch.empty(0), {FUSED_PARAM_IS_SSD_TABLE: True})
    assert get_device_from_sharding_infos([ssd]) == "ssd"
    with pytest.raises(ValueError, match="same type of device"):
        get_device_from_sharding_infos([ssd, info])


def test_name_and_permute_helpers():
    kjt = KeyedJaggedTensor.from_lengths_sync(["a", "b"], torch.tensor([1, 2, 3]), torch.tensor([[1, 0], [1, 1]]))
    flat = flatten_feature_lengths(kjt)
    assert flat.lengths().tolist() == [1, 0, 1, 1]
    p = input_dist_permute(flat, [1, 0], torch.tensor([1, 0]))
    assert p.keys() == ["b", "a"] and p.values().tolist() == [2, 3, 1]
    names = [["x", "y"], ["z"]]
    assert annotate_embedding_names(["x"], []) == ["x"]
    assert format_embedding_names_per_rank_per_sharding([names], []) == [names]
    assert EmbeddingCollectionContext(sharding_contexts=[]).sharding_contexts == []


@pytest.mark.parametrize("pooled", [True, False])
def test_input_dists_give_each_rank_the_ids_of_its_rows(pooled):
    sharder = QuantEmbeddingBagCollectionSharder() if pooled else QuantEmbeddingCollectionSharder()
    model = quantized(pooled=pooled)
    sharded = sharder.shard(model.sparse, logical_plan(mixed_generators(), 2, sharder, pooled=pooled),
                            ShardingEnv.from_local(2, 0), torch.device("cpu"))
    kjt = batch(False, seed=2)
    groups = sharded._sharding_type_device_group_to_sharding
    if pooled:
        out = ShardedQuantEbcInputDist(groups)(kjt)
        per_sharding = [kl.features for kl in out.features_list]
    else:
        order = model.sparse._feature_order
        kjt = kjt.permute([kjt.keys().index(f) for f in order])
        per_sharding = [kl.features for kl in ShardedQuantEcInputDist(order, groups)(kjt)[0]]
    by_type = dict(zip([st for st, _ in groups], per_sharding))
    t1 = model.sparse.embedding_bag_configs()[1] if pooled else model.sparse.embedding_configs()[1]
    half = -(-t1.num_embeddings // 2)  # row blocks of ceil(R / W) rows
    ids = kjt["f1"].values()
    rw = by_type["row_wise"]  # t1 row-wise over 2 ranks: rank r gets its ids, shifted to local rows
    assert sorted(rw[0]["f1"].values().tolist()) == sorted(ids[ids < half].tolist())
    assert sorted(rw[1]["f1"].values().tolist()) == sorted((ids[ids >= half] - half).tolist())
    tw = by_type["table_wise"]  # t0 on rank 1: one KJT holding f0 unchanged
    assert len(tw) == 1 and torch.equal(tw[0]["f0"].values(), kjt["f0"].values())


def test_tbe_with_length_equals_offsets_tbe():
    from fbgemm_gpu.split_table_batched_embeddings_ops_common import EmbeddingLocation
    from fbgemm_gpu.split_embedding_configs import SparseType

    specs = [("t", 10, 8, SparseType.INT8, EmbeddingLocation.HOST)]
    tbe = IntNBitTableBatchedEmbeddingBagsCodegenWithLength(embedding_specs=specs, device="cpu")
    tbe.fill_random_weights()
    indices = torch.tensor([1, 2, 9, 0], dtype=torch.int32)
    lengths = torch.tensor([2, 0, 2], dtype=torch.int32)
    want = torch.nn.Module.__call__(tbe, indices, lengths)  # via forward(lengths)
    offsets = torch.tensor([0, 2, 2, 4], dtype=torch.int32)
    ref = type(tbe).__mro__[1].forward(tbe, indices, offsets)
    torch.testing.assert_close(want, ref)
    assert torch.equal(want[1], torch.zeros(8))  # the empty bag


def test_ec_output_jt_dict_from_per_rank_rows_equals_unsharded():
    sharder = QuantEmbeddingCollectionSharder()
    model = quantized(pooled=False)
    sharded = sharder.shard(model.sparse, logical_plan(mixed_generators(), 2, sharder, pooled=False),
                            ShardingEnv.from_local(2, 0), torch.device("cpu"))
    order = model.sparse._feature_order
    kjt = batch(False, seed=5)
    kjt = kjt.permute([kjt.keys().index(f) for f in order])
    per_sharding, before, unbucketize, mapping, lengths = sharded._input_dist(kjt)
    embs = []
    for part, kjts in zip(sharded._shards, per_sharding):
        rows = []
        for lookup, k in zip(part._lookups, kjts):  # the kernels' rows, in each rank KJT's key order
            out = lookup(k)
            name_of = dict(zip(lookup._feature_order, lookup._embedding_names))
            rows.append(torch.cat([out[name_of[f]].values() for f in k.keys()], dim=0))
        embs.append(rows)
    got = sharded.output_jt_dict(embs, per_sharding, before, unbucketize, mapping, lengths)
    want = model.sparse(kjt)
    assert list(got) == list(want)
    for name in want:
        assert torch.equal(got[name].values(), want[name].values()), name
        assert torch.equal(got[name].lengths(), want[name].lengths()), name
