"""quantize_inference_model / quantize_embeddings / quantize_dense / hot swap / PredictModule against float models."""

import json

import pytest
import torch
from torch import nn

from recsys_lib import EmbeddingBagCollection, EmbeddingCollection, EmbeddingConfig
from recsys_lib.inference import modules as im
from recsys_lib.modules.feature_processor_ import PositionWeightedModuleCollection
from recsys_lib.modules.fp_embedding_modules import FeatureProcessedEmbeddingBagCollection
from recsys_lib.quant import embedding_modules as qm
from tests.inference._models import KEYS, batch, dlrm
from tests.quant._helpers import bag_tables
from tests.quant._helpers import batch as kjt_batch


def test_quantize_inference_model_swaps_ebc_and_stays_close_to_float():
    model = dlrm()
    dense, kjt = batch(6)
    want = model(dense, kjt).detach()
    q = im.quantize_inference_model(model)
    ebc = q.sparse_arch.embedding_bag_collection
    assert isinstance(ebc, qm.EmbeddingBagCollection)
    assert ebc.register_tbes and any(k.startswith("sparse_arch.embedding_bag_collection.tbes.0.") for k in q.state_dict())
    assert all(c.data_type.value == "INT8" for c in ebc.embedding_bag_configs())
    torch.testing.assert_close(q(dense, kjt), want, rtol=0, atol=5e-3)  # INT8 tables: error ~1e-3 on logits


def test_quantize_inference_model_per_table_dtype_and_ec_and_fp_ebc():
    torch.manual_seed(0)
    model = nn.ModuleDict({
        "ec": EmbeddingCollection([EmbeddingConfig(num_embeddings=20, embedding_dim=8, name="e", feature_names=["f0"])]),
        "fp": FeatureProcessedEmbeddingBagCollection(EmbeddingBagCollection(bag_tables(), is_weighted=True),
                                                     PositionWeightedModuleCollection({"f0": 3, "f1": 3, "f2": 3})),
    })
    im.quantize_inference_model(model, per_table_weight_dtype={"t1": torch.quint4x2}, fp_weight_dtype=torch.half)
    assert isinstance(model["ec"], qm.EmbeddingCollection)
    assert isinstance(model["fp"], qm.FeatureProcessedEmbeddingBagCollection)
    types = {c.name: c.data_type.value for c in model["fp"].embedding_bag_configs()}
    assert types == {"t0": "FP16", "t1": "INT4"}


def test_quantize_embeddings_output_dtype_and_not_inplace():
    torch.manual_seed(0)
    model = nn.Sequential(EmbeddingBagCollection(bag_tables()))
    q = im.quantize_embeddings(model, dtype=torch.qint8, inplace=False, output_dtype=torch.half)
    assert isinstance(model[0], EmbeddingBagCollection)  # original untouched
    out = q[0](kjt_batch(False)).values()
    assert out.dtype == torch.half
    torch.testing.assert_close(out.float(), model[0](kjt_batch(False)).values().detach(), rtol=0, atol=2e-2)


def test_set_pruning_data_truncates_tables():
    model = dlrm()
    im.set_pruning_data(model, {"t0": 7})
    im.quantize_inference_model(model)
    assert model.state_dict()["sparse_arch.embedding_bag_collection.embedding_bags.t0.weight"].shape[0] == 7


def test_quantize_dense_half_casts_dense_children_only():
    class Predict(im.PredictModule):
        def predict_forward(self, batch):
            m = self.predict_module
            return m.lin(m.ebc(batch["kjt"]).values())

    torch.manual_seed(0)
    model = nn.Module()
    model.ebc = EmbeddingBagCollection(bag_tables())
    model.lin = nn.Linear(40, 3)
    im.quantize_inference_model(model)
    p = Predict(model, device="cpu")
    kjt = kjt_batch(False)
    want = p({"kjt": kjt})
    im.quantize_dense(p, torch.half)
    assert model.lin.weight.dtype == torch.half
    assert isinstance(model.ebc, qm.EmbeddingBagCollection)  # embedding modules are left alone
    got = p({"kjt": kjt})  # the pre-hook casts the float input of the fp16 layer
    assert got.dtype == torch.half
    torch.testing.assert_close(got.float(), want, rtol=1e-2, atol=1e-2)
    with pytest.raises(ValueError, match="only torch.half"):
        im.quantize_dense(p, torch.qint8)
    assert not model.training
    assert set(p.state_dict()) == set(model.state_dict())


def test_hot_swap_weights_into_scripted_model():
    from recsys_lib.fx import symbolic_trace

    a, b = im.quantize_inference_model(dlrm(0)), im.quantize_inference_model(dlrm(1))
    b.dense_arch.load_state_dict(a.dense_arch.state_dict())
    b.over_arch.load_state_dict(a.over_arch.state_dict())
    scripted = torch.jit.script(symbolic_trace(a))
    dense, kjt = batch(5)
    before = scripted(dense, kjt)
    im.assign_weights_to_tbe(a, im.get_table_to_weights_from_tbe(b))
    after = scripted(dense, kjt)
    assert not torch.equal(before, after)
    torch.testing.assert_close(after, b(dense, kjt))
    with pytest.raises(KeyError, match="no weights for tables"):
        im.assign_weights_to_tbe(a, {})


def test_predict_factory_metadata_json():
    class Factory(im.PredictFactory):
        def create_predict_module(self):
            return nn.Identity()

        def batching_metadata(self):
            return {"float_features": im.BatchingMetadata(type="dense", device="cpu", pinned=[])}

        def result_metadata(self):
            return "dict_of_tensor"

        def run_weights_independent_tranformations(self, m):
            return m

        def run_weights_dependent_transformations(self, m):
            return m

    f = Factory()
    assert json.loads(f.batching_metadata_json()) == {"float_features": {"type": "dense", "device": "cpu", "pinned": []}}
    assert f.qualname_metadata_json() == "{}" and f.model_inputs_data() == {}


def test_trim_torch_package_prefix():
    assert im.trim_torch_package_prefix_from_typename("<torch_package_3>.a.b.C") == "a.b.C"
    assert im.trim_torch_package_prefix_from_typename("a.b.C") == "a.b.C"
    assert KEYS == ["f0", "f1", "f2"]
