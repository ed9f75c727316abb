"""Sharded quantized EC on one host against the unsharded quantized EC: TW / RW / CW, world sizes 2 and 4,
exact (sequence rows are only moved); fx-traced and TorchScript-ed."""

import copy

import pytest
import torch

from recsys_lib.distributed.quant_embedding import QuantEmbeddingCollectionSharder, ShardedQuantEmbeddingCollection
from recsys_lib.distributed.types import ShardingEnv
from recsys_lib.fx import symbolic_trace
from tests.distributed._quant_infer_cases import batch, generators, logical_plan, mixed_generators, quantized

CPU = torch.device("cpu")


def _shard(model, gens, world_size):
    sharder = QuantEmbeddingCollectionSharder()
    return sharder.shard(model.sparse, logical_plan(gens, world_size, sharder, pooled=False), ShardingEnv.from_local(world_size, 0),
                         CPU)


def _assert_same(got, want):
    assert list(got) == list(want)
    for k in want:
        assert torch.equal(got[k].values(), want[k].values()), k
        assert torch.equal(got[k].lengths(), want[k].lengths()), k
        assert torch.equal(got[k].weights(), want[k].weights()), k  # need_indices: the input ids


@pytest.mark.parametrize("world_size", [2, 4])
@pytest.mark.parametrize("sharding_type", ["table_wise", "row_wise", "column_wise"])
def test_sharded_equals_unsharded(sharding_type, world_size):
    model = quantized(pooled=False)
    sharded = _shard(model, generators(sharding_type, world_size), world_size)
    assert isinstance(sharded, ShardedQuantEmbeddingCollection)
    for seed in (0, 1):
        kjt = batch(False, seed=seed)
        _assert_same(sharded(kjt), model.sparse(kjt))


def test_mixed_plan_traces_and_scripts():
    model = quantized(pooled=False)
    want_model = copy.deepcopy(model)
    model.sparse = _shard(model, mixed_generators(), 2)
    scripted = torch.jit.script(symbolic_trace(model))
    for seed in (0, 2):
        kjt = batch(False, batch_size=3 + seed, seed=seed)
        want = want_model(kjt)
        assert torch.equal(model(kjt), want)
        assert torch.equal(scripted(kjt), want)


def test_bad_input_raises():
    model = quantized(pooled=False)
    sharded = _shard(model, mixed_generators(), 2)
    kjt = type(batch(False)).from_lengths_sync(["f0", "f1", "f2", "f3"], torch.tensor([0, 20, 0, 0]),
                                               torch.tensor([1, 1, 1, 1]))
    with pytest.raises(ValueError, match="'t1'.*20"):
        sharded(kjt)
