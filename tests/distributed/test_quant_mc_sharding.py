"""Sharded quantized MC-EC / MC-EBC (inference, W = 2 and 4 "ranks" in one process) against plain torch: each id is
remapped by a copy of the MC module of the rank owning its raw-id block (``id // ceil(H / W)``, computed here by
hand), then looked up in the fake-quantised (quantise-dequantise) float table."""

import copy

import pytest
import torch

from recsys_lib.distributed.mc_modules import InferManagedCollisionCollectionSharder
from recsys_lib.distributed.quant_embedding import (
    QuantEmbeddingCollectionSharder,
    QuantManagedCollisionEmbeddingCollectionSharder,
    ShardedMCECLookup,
)
from recsys_lib.distributed.quant_embeddingbag import (
    QuantEmbeddingBagCollectionSharder,
    QuantManagedCollisionEmbeddingBagCollectionSharder,
)
from recsys_lib.distributed.sharding_plan import row_wise
from recsys_lib.distributed.types import ShardingEnv
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
from recsys_lib.modules.mc_embedding_modules import (
    ManagedCollisionEmbeddingBagCollection,
    ManagedCollisionEmbeddingCollection,
)
from recsys_lib.modules.mc_modules import LFU_EvictionPolicy, ManagedCollisionCollection, MCHManagedCollisionModule
from recsys_lib.quant.embedding_modules import (
    QuantManagedCollisionEmbeddingBagCollection,
    QuantManagedCollisionEmbeddingCollection,
)
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor
from tests.quant._helpers import fake_quant_rows, qconfig

CPU = torch.device("cpu")
ROWS = {"t0": 16, "t1": 24}
H = 1000  # raw-id range of both tables


def _quant_module(bagged):
    cls = EmbeddingBagConfig if bagged else EmbeddingConfig
    cfgs = [cls(name="t0", embedding_dim=8, num_embeddings=16, feature_names=["a"]),
            cls(name="t1", embedding_dim=8, num_embeddings=24, feature_names=["b", "c"])]
    emb = (EmbeddingBagCollection if bagged else EmbeddingCollection)(tables=cfgs, device=CPU)
    mcs = {t: MCHManagedCollisionModule(zch_size=r, device=CPU, eviction_policy=LFU_EvictionPolicy(),
                                        eviction_interval=1, input_hash_size=H, name=t) for t, r in ROWS.items()}
    mc_cls = ManagedCollisionEmbeddingBagCollection if bagged else ManagedCollisionEmbeddingCollection
    module = mc_cls(emb, ManagedCollisionCollection(mcs, cfgs), return_remapped_features=True)
    module.eval()
    module.qconfig = qconfig(torch.qint8)
    weights = {t: (emb.embedding_bags if bagged else emb.embeddings)[t].weight.detach().clone() for t in ROWS}
    qcls = QuantManagedCollisionEmbeddingBagCollection if bagged else QuantManagedCollisionEmbeddingCollection
    return qcls.from_float(module), weights


def _shard(quant, bagged, world):
    e_sharder = QuantEmbeddingBagCollectionSharder() if bagged else QuantEmbeddingCollectionSharder()
    cls = QuantManagedCollisionEmbeddingBagCollectionSharder if bagged else QuantManagedCollisionEmbeddingCollectionSharder
    sharder = cls(e_sharder, InferManagedCollisionCollectionSharder())
    assert sharder.sharding_types("cpu") == ["row_wise"]
    plan = {t: row_wise()(torch.empty(r, 8, device="meta"), world, world, "cpu", sharder) for t, r in ROWS.items()}
    return sharder.shard(quant, plan, ShardingEnv.from_local(world, 0), CPU)


@pytest.mark.parametrize("bagged", [False, True])
@pytest.mark.parametrize("world", [2, 4])
def test_sharded_quant_mc_equals_owner_remap_then_dequantised_lookup(bagged, world):
    quant, weights = _quant_module(bagged)
    sharded = _shard(quant, bagged, world)
    per_rank = sharded._managed_collision_collection._managed_collision_modules_per_rank
    g = torch.Generator().manual_seed(world)
    for mcs in per_rank:  # give every rank's modules some ids (as a sharded training checkpoint would)
        for t, mc in mcs.items():
            mc.train()
            mc.profile({t: JaggedTensor(values=torch.randint(0, H, (30,), generator=g), lengths=torch.tensor([30]))})
            mc.eval()
    reference = copy.deepcopy(per_rank)
    lengths = torch.tensor([2, 1, 3, 0, 2, 2])
    kjt = KeyedJaggedTensor(keys=["a", "b", "c"], values=torch.randint(0, H, (10,), generator=g), lengths=lengths)
    out, remapped = sharded(kjt)
    block = -(-H // world)
    table_of = {"a": "t0", "b": "t1", "c": "t1"}
    for f, jt in kjt.to_dict().items():
        t = table_of[f]
        owner = torch.clamp(jt.values() // block, 0, world - 1)
        rows = torch.empty_like(jt.values())
        for r in range(world):
            sel = (owner == r).nonzero().squeeze(1)
            if sel.numel():
                mine = {t: JaggedTensor(values=jt.values()[sel], lengths=torch.tensor([sel.numel()]))}
                rows[sel] = reference[r][t].remap(mine)[t].values()
        assert torch.equal(remapped[f].values(), rows), (f, remapped[f].values(), rows)
        looked_up = fake_quant_rows(weights[t], 8)[rows]
        if bagged:
            seg = torch.repeat_interleave(torch.arange(2), jt.lengths())
            torch.testing.assert_close(out[f], torch.zeros(2, 8).index_add_(0, seg, looked_up), atol=1e-3, rtol=1e-3)
        else:
            torch.testing.assert_close(out[f].values(), looked_up, atol=1e-3, rtol=1e-3)


def test_mcec_lookup_is_remap_then_lookup():
    quant, _ = _quant_module(False)
    sharded = _shard(quant, False, 2)
    remapper = sharded._managed_collision_collection.create_mcc_remappers()[0][1]
    lookup = ShardedMCECLookup(0, 1, remapper, torch.nn.Identity())
    kjt = KeyedJaggedTensor(keys=["a", "b", "c"], values=torch.tensor([600, 700, 999, 800]),
                            lengths=torch.tensor([1, 1, 1, 0, 1, 0]))
    local, global_rows = lookup(kjt, return_remapped_features=True)
    assert torch.equal(global_rows.values() - local.values(), torch.tensor([8, 8, 12, 12]))  # rank 1's first rows: t0, t0, t1, t1


def test_mcebc_lookup_is_remap_then_lookup():
    from recsys_lib.distributed.quant_embeddingbag import ShardedMCEBCLookup

    quant, _ = _quant_module(True)
    sharded = _shard(quant, True, 2)
    remapper = sharded._managed_collision_collection.create_mcc_remappers()[0][0]
    kjt = KeyedJaggedTensor(keys=["a", "b", "c"], values=torch.tensor([6, 7, 99, 8]),
                            lengths=torch.tensor([1, 1, 1, 0, 1, 0]))
    got = ShardedMCEBCLookup(0, 0, remapper, torch.nn.Identity())(kjt)
    assert torch.equal(got.values(), remapper(kjt).values()) and bool((got.values() < 12).all())
