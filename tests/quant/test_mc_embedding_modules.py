"""Quantized MC-EC / MC-EBC: output equals the float MC module in eval (its remap) followed by a plain-torch
lookup of the fake-quantised (quantise-dequantise) float rows."""

import copy

import pytest
import torch

from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
from recsys_lib.modules.hash_mc_modules import HashZchManagedCollisionModule
from recsys_lib.modules.mc_embedding_modules import (
    ManagedCollisionEmbeddingBagCollection,
    ManagedCollisionEmbeddingCollection,
)
from recsys_lib.modules.mc_modules import LFU_EvictionPolicy, ManagedCollisionCollection, MCHManagedCollisionModule
from recsys_lib.quant.embedding_modules import (
    QuantManagedCollisionEmbeddingBagCollection,
    QuantManagedCollisionEmbeddingCollection,
)
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor
from tests.quant._helpers import DTYPES, fake_quant_rows, qconfig

CPU = torch.device("cpu")
ROWS = {"t0": 16, "t1": 20}


def _mc(name, kind):
    if kind == "mch":
        return MCHManagedCollisionModule(zch_size=ROWS[name], device=CPU, eviction_policy=LFU_EvictionPolicy(),
                                         eviction_interval=1, name=name)
    return HashZchManagedCollisionModule(zch_size=ROWS[name], device=CPU, total_num_buckets=1, max_probe=8, name=name)


def _float_module(bagged, kind):
    cls = EmbeddingBagConfig if bagged else EmbeddingConfig
    cfgs = [cls(name="t0", embedding_dim=8, num_embeddings=16, feature_names=["a"]),
            cls(name="t1", embedding_dim=8, num_embeddings=20, feature_names=["b", "c"])]
    emb = (EmbeddingBagCollection if bagged else EmbeddingCollection)(tables=cfgs, device=CPU)
    mcc = ManagedCollisionCollection({t: _mc(t, kind) for t in ROWS}, cfgs)
    mc_cls = ManagedCollisionEmbeddingBagCollection if bagged else ManagedCollisionEmbeddingCollection
    module = mc_cls(emb, mcc, return_remapped_features=True)
    g = torch.Generator().manual_seed(3)
    module.train()
    for _ in range(3):  # populate the remap tables
        lengths = torch.randint(0, 4, (6,), generator=g)
        module(KeyedJaggedTensor(keys=["a", "b", "c"], values=torch.randint(0, 2**40, (int(lengths.sum()),),
                                                                             generator=g) % 50, lengths=lengths))
    return module


@pytest.mark.parametrize("bagged", [False, True])
@pytest.mark.parametrize("kind", ["mch", "hash"])
@pytest.mark.parametrize("wdtype", [torch.qint8, torch.float16])
def test_quant_mc_equals_float_remap_then_dequantised_lookup(bagged, kind, wdtype):
    module = _float_module(bagged, kind)
    module.eval()
    reference = copy.deepcopy(module)
    module.qconfig = qconfig(wdtype)
    cls = QuantManagedCollisionEmbeddingBagCollection if bagged else QuantManagedCollisionEmbeddingCollection
    quant = cls.from_float(module)
    assert quant._get_name() == cls.__name__
    g = torch.Generator().manual_seed(9)
    lengths = torch.tensor([2, 0, 3, 1, 2, 1])  # 2 samples x 3 features; ids seen in training and new ones
    kjt = KeyedJaggedTensor(keys=["a", "b", "c"], values=torch.randint(0, 60, (9,), generator=g), lengths=lengths)
    _, remapped_ref = reference(kjt)
    out, remapped = quant(kjt)
    assert torch.equal(remapped.values(), remapped_ref.values())
    emb = reference._embedding_module
    bits = DTYPES[wdtype][1]
    deq = {t: fake_quant_rows((emb.embedding_bags if bagged else emb.embeddings)[t].weight.detach(), bits)
           for t in ROWS}
    table_of = {"a": "t0", "b": "t1", "c": "t1"}
    per_feature = remapped_ref.to_dict()
    for f, jt in per_feature.items():
        rows = deq[table_of[f]][jt.values()]
        if bagged:
            seg = torch.repeat_interleave(torch.arange(2), jt.lengths())
            want = torch.zeros(2, 8).index_add_(0, seg, rows)
            torch.testing.assert_close(out[f], want, atol=1e-3, rtol=1e-3)  # fp16 scale/bias rounding in the kernel
        else:
            torch.testing.assert_close(out[f].values(), rows, atol=1e-3, rtol=1e-3)


def test_quant_mc_requires_a_collection():
    cfg = [EmbeddingConfig(name="t0", embedding_dim=8, num_embeddings=16, feature_names=["a"])]
    with pytest.raises(ValueError, match="managed_collision_collection"):
        QuantManagedCollisionEmbeddingCollection(cfg, CPU)
