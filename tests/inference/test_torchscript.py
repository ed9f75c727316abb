"""fx-traced + scripted float and quantized DLRM: saved, reloaded, identical outputs; DLRM predict factory."""

import argparse

import pytest
import torch

from recsys_lib.fx import symbolic_trace
from recsys_lib.inference.dlrm_predict import DLRMModelConfig, DLRMPredictFactory, create_training_batch
from recsys_lib.inference.modules import quantize_inference_model
from tests.inference._models import batch, dlrm


@pytest.mark.parametrize("quantized", [False, True])
def test_scripted_dlrm_round_trip(quantized, tmp_path):
    model = dlrm()
    if quantized:
        quantize_inference_model(model)
    model.eval()
    scripted = torch.jit.script(symbolic_trace(model))
    path = tmp_path / "m.pt"
    scripted.save(str(path))
    loaded = torch.jit.load(str(path))
    for seed, b in [(0, 3), (1, 8)]:  # a batch size other than the traced one
        dense, kjt = batch(b, seed)
        want = model(dense, kjt)
        assert torch.equal(loaded(dense, kjt), want)
        assert torch.equal(scripted(dense, kjt), want)


def test_quantized_ebc_scripts_directly():
    model = quantize_inference_model(dlrm())
    ebc = model.sparse_arch.embedding_bag_collection
    scripted = torch.jit.script(ebc)
    _, kjt = batch(4)
    assert torch.equal(scripted(kjt).values(), ebc(kjt).values())


def test_dlrm_predict_factory_returns_scripted_quantized_module():
    args = argparse.Namespace(batch_size=5, num_embedding_features=26)
    sample = create_training_batch(args)
    cfg = DLRMModelConfig(dense_arch_layer_sizes=[16, 8], dense_in_features=13, embedding_dim=8,
                          id_list_features_keys=["cat_" + str(i) for i in range(26)], num_embeddings_per_feature=[],
                          num_embeddings=30, over_arch_layer_sizes=[8, 1], sample_input=sample)
    factory = DLRMPredictFactory(cfg)
    torch.manual_seed(0)
    scripted = factory.create_predict_module(world_size=1, device="cpu")
    assert isinstance(scripted, torch.jit.ScriptModule)
    out = scripted({"float_features": sample.dense_features,
                    "id_list_features.lengths": sample.sparse_features.lengths(),
                    "id_list_features.values": sample.sparse_features.values()})
    assert out["default"].shape == (5,) and bool(((out["default"] > 0) & (out["default"] < 1)).all())
    assert factory.batching_metadata() == {"float_features": "dense", "id_list_features": "sparse"}
    torch.manual_seed(0)  # the same weights, tables sharded table-wise over 2 CPU "ranks": the same outputs
    sharded = factory.create_predict_module(world_size=2, device="cpu")
    batch = {"float_features": sample.dense_features, "id_list_features.lengths": sample.sparse_features.lengths(),
             "id_list_features.values": sample.sparse_features.values()}
    assert any(n.endswith("embedding_bag_collection._shards") for n, _ in sharded.named_modules())
    assert torch.equal(sharded(batch)["default"], scripted(batch)["default"])
