"""``shard_quant_model`` on CPU (no global flag): a quantized DLRM sharded over 2 / 4 CPU "ranks" gives the
unsharded quantized model's outputs, also fx-traced + TorchScript-ed (TorchRec's inference flow)."""

import copy

import pytest
import torch

from recsys_lib.distributed.quant_embeddingbag import (
    QuantEmbeddingBagCollectionSharder,
    ShardedQuantEmbeddingBagCollection,
)
from recsys_lib.distributed.sharding_plan import column_wise, construct_module_sharding_plan, row_wise, table_wise
from recsys_lib.distributed.types import ShardingPlan
from recsys_lib.fx import symbolic_trace
from recsys_lib.inference.modules import quantize_inference_model, shard_quant_model
from tests.inference._models import batch, dlrm


def _quantized():
    model = quantize_inference_model(dlrm())
    model.eval()
    return model, copy.deepcopy(model)


@pytest.mark.parametrize("world_size", [2, 4])
def test_default_plan_is_table_wise_and_exact(world_size):
    model, unsharded = _quantized()
    sharded, plan = shard_quant_model(model, world_size=world_size, compute_device="cpu")
    ebc = sharded.sparse_arch.embedding_bag_collection
    assert isinstance(ebc, ShardedQuantEmbeddingBagCollection)
    entries = plan.plan["sparse_arch.embedding_bag_collection"]
    assert {ps.sharding_type for ps in entries.values()} == {"table_wise"}
    assert {ps.compute_kernel for ps in entries.values()} == {"quant"}
    for seed, b in [(0, 3), (1, 6)]:
        dense, kjt = batch(b, seed)
        assert torch.equal(sharded(dense, kjt), unsharded(dense, kjt))


@pytest.mark.parametrize("world_size", [2, 4])
def test_given_plan_tw_rw_cw_traced_and_scripted(world_size):
    model, unsharded = _quantized()
    ebc = model.sparse_arch.embedding_bag_collection
    gens = {"t0": table_wise(rank=world_size - 1), "t1": row_wise(), "t2": column_wise(ranks=[1, 0])}
    module_plan = construct_module_sharding_plan(ebc, gens, QuantEmbeddingBagCollectionSharder(),
                                                 local_size=world_size, world_size=world_size, device_type="cpu")
    plan = ShardingPlan({"sparse_arch.embedding_bag_collection": module_plan})
    sharded, returned = shard_quant_model(model, world_size=world_size, compute_device="cpu", sharding_plan=plan)
    assert returned is plan
    scripted = torch.jit.script(symbolic_trace(sharded))
    for seed, b in [(0, 3), (2, 7)]:
        dense, kjt = batch(b, seed)
        want = unsharded(dense, kjt)
        torch.testing.assert_close(sharded(dense, kjt), want)  # row-wise: partial sums in another order
        assert torch.equal(scripted(dense, kjt), sharded(dense, kjt))


def test_bad_arguments_raise_clear_errors():
    model, _ = _quantized()
    with pytest.raises(ValueError, match="world_size must be >= 1"):
        shard_quant_model(model, world_size=0, compute_device="cpu")
    with pytest.raises(ValueError, match="compute_device"):
        shard_quant_model(model, world_size=2, compute_device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            shard_quant_model(model, world_size=2)  # TorchRec's default compute_device is "cuda"
