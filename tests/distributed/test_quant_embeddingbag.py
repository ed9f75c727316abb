"""Sharded quantized EBC / FP-EBC on one host (every "rank" a CPU device) against the unsharded quantized
module: TW / RW / CW, world sizes 2 and 4, weighted; fx-traced and TorchScript-ed."""

import copy

import pytest
import torch

from recsys_lib.distributed.quant_embeddingbag import (
    QuantEmbeddingBagCollectionSharder,
    QuantFeatureProcessedEmbeddingBagCollectionSharder,
    ShardedQuantEmbeddingBagCollection,
)
from recsys_lib.distributed.sharding.cw_sharding import InferCwPooledEmbeddingDist
from recsys_lib.distributed.sharding.tw_sharding import InferTwPooledEmbeddingDist
from recsys_lib.distributed.sharding_plan import construct_module_sharding_plan, get_default_sharders
from recsys_lib.distributed.types import ShardingEnv
from recsys_lib.fx import symbolic_trace
from tests.distributed._quant_infer_cases import batch, generators, logical_plan, mixed_generators, quantized

CPU = torch.device("cpu")


def _shard(model, gens, world_size):
    sharder = QuantEmbeddingBagCollectionSharder()
    plan = logical_plan(gens, world_size, sharder)
    return sharder.shard(model.sparse, plan, ShardingEnv.from_local(world_size, 0), CPU)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("world_size", [2, 4])
@pytest.mark.parametrize("sharding_type", ["table_wise", "row_wise", "column_wise"])
def test_sharded_equals_unsharded(sharding_type, world_size, weighted):
    model = quantized(pooled=True, weighted=weighted)
    sharded = _shard(model, generators(sharding_type, world_size), world_size)
    assert isinstance(sharded, ShardedQuantEmbeddingBagCollection)
    assert set(sharded.shardings()) == {sharding_type}
    for seed in (0, 1):
        kjt = batch(weighted, seed=seed)
        want, got = model.sparse(kjt), sharded(kjt)
        assert got.keys() == want.keys() and got.length_per_key() == want.length_per_key()
        if sharding_type == "row_wise":  # partial sums added in another order than the kernel's
            torch.testing.assert_close(got.values(), want.values())
        else:  # the same dequantised rows pooled by the same kernel
            assert torch.equal(got.values(), want.values())


def test_mixed_plan_traces_and_scripts():
    model = quantized(pooled=True, weighted=True)
    want_model = copy.deepcopy(model)
    model.sparse = _shard(model, mixed_generators(), 2)
    assert set(model.sparse.shardings()) == {"table_wise", "row_wise", "column_wise"}
    # the side-by-side output dists are TorchRec's classes
    shardings = model.sparse.shardings()
    assert isinstance(shardings["table_wise"].create_output_dist(), InferTwPooledEmbeddingDist)
    assert isinstance(shardings["column_wise"].create_output_dist(), InferCwPooledEmbeddingDist)
    scripted = torch.jit.script(symbolic_trace(model))
    for seed in (0, 3):
        kjt = batch(True, batch_size=2 + seed, seed=seed)
        want = want_model(kjt)
        torch.testing.assert_close(model(kjt), want)
        assert torch.equal(scripted(kjt), model(kjt))


def test_plan_in_state_dict_bytes_is_rescaled():
    """Planners and plan helpers size quantized tables by their state-dict weight (bytes): same result."""
    model = quantized(pooled=True)
    sharder = QuantEmbeddingBagCollectionSharder()
    plan = construct_module_sharding_plan(model.sparse, mixed_generators(), sharder, local_size=2, world_size=2,
                                          device_type="cpu")
    sharded = sharder.shard(model.sparse, plan, ShardingEnv.from_local(2, 0), CPU)
    kjt = batch(False)
    torch.testing.assert_close(sharded(kjt).values(), model.sparse(kjt).values())


def test_bad_input_and_plans_raise_clear_errors():
    model = quantized(pooled=True)
    sharded = _shard(model, mixed_generators(), 2)
    kjt = batch(False)
    bad = type(kjt).from_lengths_sync(kjt.keys(), torch.where(kjt.values() > 3, 12, kjt.values()), kjt.lengths())
    with pytest.raises(ValueError, match="t0.*ids must be in"):
        sharded(bad)
    too_big = type(kjt).from_lengths_sync(["f0", "f1", "f2", "f3"], torch.tensor([0, 0, 13, 0]),
                                          torch.tensor([1, 1, 1, 1]))
    with pytest.raises(ValueError, match="'t1'.*13"):  # row-wise: caught before ids are split by row block
        sharded(too_big)
    with pytest.raises(ValueError, match="f9"):
        sharded(type(kjt).from_lengths_sync(["f9"], torch.tensor([0]), torch.tensor([1])))
    sharder = QuantEmbeddingBagCollectionSharder()
    plan = logical_plan(mixed_generators(), 2, sharder)
    with pytest.raises(ValueError, match="no entry for tables \\['t2'\\]"):
        sharder.shard(model.sparse, {k: plan[k] for k in ("t0", "t1")}, ShardingEnv.from_local(2, 0), CPU)
    from recsys_lib.distributed.sharding_plan import column_wise
    odd = logical_plan({"t0": column_wise(size_per_rank=[2, 6])}, 2, sharder)
    with pytest.raises(ValueError, match="t0.*multiple of 4"):
        sharder.shard(model.sparse, {**plan, **odd}, ShardingEnv.from_local(2, 0), CPU)
    dp = {**plan, "t0": logical_plan({"t0": __import__("recsys_lib.distributed.sharding_plan", fromlist=["x"])
                                      .data_parallel()}, 2, sharder)["t0"]}
    with pytest.raises(ValueError, match="data_parallel"):
        sharder.shard(model.sparse, dp, ShardingEnv.from_local(2, 0), CPU)


@pytest.mark.parametrize("sharding_type", ["table_wise", "column_wise"])
def test_feature_processed_ebc(sharding_type):
    from recsys_lib import EmbeddingBagCollection
    from recsys_lib.inference.modules import quantize_inference_model
    from recsys_lib.modules.feature_processor_ import PositionWeightedModuleCollection
    from recsys_lib.modules.fp_embedding_modules import FeatureProcessedEmbeddingBagCollection
    from tests.distributed._quant_infer_cases import BAG_TABLES, Holder, KEYS

    torch.manual_seed(0)
    ebc = EmbeddingBagCollection(copy.deepcopy(BAG_TABLES), is_weighted=True)
    fp = PositionWeightedModuleCollection(max_feature_lengths={k: 6 for k in KEYS})
    with torch.no_grad():
        for p in fp.parameters():
            p.uniform_(0.5, 1.5)
    model = quantize_inference_model(Holder(FeatureProcessedEmbeddingBagCollection(ebc, fp)))
    sharder = QuantFeatureProcessedEmbeddingBagCollectionSharder()
    assert sharder.sharding_types("cpu") == ["table_wise", "column_wise"]
    plan = logical_plan(generators(sharding_type, 2), 2, sharder)
    sharded = sharder.shard(model.sparse, plan, ShardingEnv.from_local(2, 0), CPU)
    kjt = batch(False)
    assert torch.equal(sharded(kjt).values(), model.sparse(kjt).values())
    # state dict: TorchRec's table keys plus the feature processor's; it loads back strictly
    state = sharded.state_dict()
    assert {k for k in state if k.startswith("feature_processor.")} == {f"feature_processor.position_weights.{k}"
                                                                         for k in KEYS}
    assert "embedding_bags.t0.weight" in state and not any(k.startswith("_shards.") for k in state)
    fresh = sharder.shard(model.sparse, plan, ShardingEnv.from_local(2, 0), CPU)
    result = fresh.load_state_dict(state)
    assert not result.missing_keys and not result.unexpected_keys


def test_default_sharders_include_the_quant_sharders():
    names = [type(s).__name__ for s in get_default_sharders()]
    assert "QuantEmbeddingBagCollectionSharder" in names and "QuantEmbeddingCollectionSharder" in names


def test_infer_utils_find_kernels_devices_and_modules():
    from recsys_lib.distributed.infer_utils import (
        get_all_torchrec_modules,
        get_non_scriptable_trec_module,
        get_path_device_tuples,
        get_tbe_specs_from_sharded_module,
        get_tbes_from_sharded_module,
    )
    from recsys_lib.ops._fbgemm import fbgemm_available

    model = quantized(pooled=True)
    unsharded = model.sparse
    assert get_all_torchrec_modules(model) == {"sparse": unsharded}
    model.sparse = _shard(model, mixed_generators(), 2)
    assert get_non_scriptable_trec_module(model) == {"sparse": model.sparse}
    specs = get_tbe_specs_from_sharded_module(model.sparse)
    if fbgemm_available():
        assert len(get_tbes_from_sharded_module(model.sparse)) >= 3
        # t0 whole on rank 1; t1 in row blocks 7 + 6 (all 16 cols); t2 in two 8-column blocks
        assert sorted((s[0], s[1], s[2]) for s in specs) == [
            ("t0", 11, 8), ("t1", 6, 16), ("t1", 7, 16), ("t2", 9, 8), ("t2", 9, 8)]
    assert ("._device", "cpu") in get_path_device_tuples(model.sparse)
    with pytest.raises(TypeError, match="ShardedQuantEmbeddingBagCollection"):
        get_tbes_from_sharded_module(unsharded)


def test_half_outputs_keep_their_dtype():
    from recsys_lib import EmbeddingBagCollection
    from recsys_lib.inference.modules import quantize_inference_model
    from tests.distributed._quant_infer_cases import BAG_TABLES, Holder

    torch.manual_seed(0)
    model = quantize_inference_model(Holder(EmbeddingBagCollection(copy.deepcopy(BAG_TABLES))),
                                     output_dtype=torch.half)
    sharded = _shard(model, mixed_generators(), 2)
    kjt = batch(False)
    want, got = model.sparse(kjt).values(), sharded(kjt).values()
    assert want.dtype == got.dtype == torch.half
    torch.testing.assert_close(got, want)  # row-wise sums in float32, then one rounding to fp16 (as the kernel)
