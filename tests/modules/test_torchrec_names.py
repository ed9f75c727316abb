"""The smaller TorchRec 1.8.0 names of recsys_lib.modules, each against a plain-torch reference."""

import pytest
import torch
from torch import nn

from recsys_lib.modules.debug_embedding_modules import DebugEmbeddingBagCollection, DebugEmbeddingCollection
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.modules.fused_embedding_modules import EmbeddingFusedOptimizer, FusedEmbeddingBagCollection
from recsys_lib.modules.pruning_logger import PruningLoggerDefault
from recsys_lib.modules.regroup import KTRegroupAsDict, PermuteMultiEmbedding, module_init
from recsys_lib.modules.utils import (
    SequenceVBEContext,
    construct_jagged_tensors,
    make_hash_zch_buckets_non_persistent,
    reset_module_states_post_sharding,
)
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor, KeyedTensor


def _kjt():
    return KeyedJaggedTensor.from_lengths_sync(["f0", "f1"], torch.tensor([1, 2, 3, 4, 5]), torch.tensor([2, 1, 0, 2]))


def test_debug_ebc_passes_through_and_catches_nan_gradients():
    tables = [EmbeddingBagConfig(num_embeddings=8, embedding_dim=3, name="t", feature_names=["f0", "f1"])]
    torch.manual_seed(0)
    plain = DebugEmbeddingBagCollection(tables, device=torch.device("cpu"))
    torch.manual_seed(0)
    debug = DebugEmbeddingBagCollection(tables, device=torch.device("cpu"), debug_mode=True)
    torch.testing.assert_close(plain(_kjt()).values(), debug(_kjt()).values())
    debug(_kjt()).values().sum().backward()  # finite gradient: fine
    with pytest.raises(RuntimeError, match="NaN/Inf gradient reaching ebc.values"):
        (debug(_kjt()).values().sum() * float("nan")).backward()
    assert list(debug.state_dict()) == ["ebc.embedding_bags.t.weight"]


def test_debug_ec_catches_inf_gradients():
    tables = [EmbeddingConfig(num_embeddings=8, embedding_dim=3, name="t", feature_names=["f0", "f1"])]
    ec = DebugEmbeddingCollection(tables, device=torch.device("cpu"), debug_mode=True)
    out = ec(_kjt())
    with pytest.raises(RuntimeError, match=r"ec\[f0\].values"):
        (out["f0"].values().sum() * float("inf")).backward()


def test_pruning_logger_default_yields_a_record():
    with PruningLoggerDefault.pruning_logger(event="evict", trainer="t") as rec:
        rec.rows = 3
    assert rec.rows == 3


def test_permute_multi_embedding_and_module_cache():
    a, b, c = torch.randn(3, 2), torch.randn(3, 1), torch.randn(3, 4)
    kts = [KeyedTensor.from_tensor_list(["a", "b"], [a, b]), KeyedTensor.from_tensor_list(["c"], [c])]
    mod = KTRegroupAsDict(groups=[["c", "a"], ["b", "a"]], keys=["x", "y"])
    module_init(mod, kts)
    assert mod._is_inited
    out = mod(kts)
    torch.testing.assert_close(out["x"], torch.cat([c, a], 1))
    torch.testing.assert_close(out["y"], torch.cat([b, a], 1))
    reset_module_states_post_sharding(nn.Sequential(mod))
    assert not mod._is_inited
    pme = PermuteMultiEmbedding([["c"]])
    assert pme([a]) == [a]  # before init_tensors: identity


def test_construct_jagged_tensors_gather_select_and_seq_vbe():
    kjt = _kjt()
    emb = torch.randn(5, 2)
    d = construct_jagged_tensors(emb, kjt, ["f0", "f1"], need_indices=True)
    torch.testing.assert_close(d["f0"].values(), emb[:3])
    torch.testing.assert_close(d["f1"].weights(), torch.tensor([4, 5]))
    rev = torch.tensor([4, 3, 2, 1, 0])
    g = construct_jagged_tensors(emb, kjt, ["f0", "f1"], original_features=kjt, reverse_indices=rev,
                                 use_gather_select=True)
    torch.testing.assert_close(g["f1"].values(), emb[rev][3:])
    # two row segments received in order [f1 rows, f0 rows]; recat puts f0 first
    received = torch.cat([emb[3:], emb[:3]])
    ctx = SequenceVBEContext(recat=torch.tensor([1, 0]), unpadded_lengths=torch.tensor([2, 3]),
                             reindexed_lengths=torch.tensor([[2, 1], [0, 2]]), reindexed_length_per_key=[3, 2],
                             reindexed_values=torch.tensor([1, 2, 3, 4, 5]))
    v = construct_jagged_tensors(received, kjt, ["f0", "f1"], need_indices=True, seq_vbe_ctx=ctx)
    torch.testing.assert_close(v["f0"].values(), emb[:3])
    torch.testing.assert_close(v["f1"].values(), emb[3:])
    torch.testing.assert_close(v["f1"].weights(), torch.tensor([4, 5]))


def test_make_hash_zch_buckets_non_persistent():
    m = nn.Module()
    m.register_buffer("_hash_zch_bucket", torch.zeros(2))
    assert "_hash_zch_bucket" in m.state_dict()
    assert make_hash_zch_buckets_non_persistent(nn.Sequential(m)) == 1
    assert "_hash_zch_bucket" not in m.state_dict()
    assert make_hash_zch_buckets_non_persistent(m) == 0


def test_fused_ebc_shared_feature_matches_ebc_and_embedding_fused_optimizer():
    tables = [EmbeddingBagConfig(num_embeddings=10, embedding_dim=4, name="t0", feature_names=["f0", "f1"]),
              EmbeddingBagConfig(num_embeddings=8, embedding_dim=8, name="t1", feature_names=["f1"])]
    fused = FusedEmbeddingBagCollection(tables, optimizer_type=torch.optim.SGD, optimizer_kwargs={"lr": 0.1})
    ebc = EmbeddingBagCollection(tables)
    ebc.load_state_dict(fused.state_dict())
    got, want = fused(_kjt()), ebc(_kjt())
    assert got.keys() == want.keys() == ["f0", "f1@t0", "f1@t1"]
    torch.testing.assert_close(got.values(), want.values())
    opt = EmbeddingFusedOptimizer(tables[:1], _single_table_tbe(tables[:1]))
    opt.param_groups[0]["lr"] = 0.5
    opt.step()
    assert opt._emb_module.get_learning_rate() == pytest.approx(0.5)
    assert list(opt.params) == ["t0.weight"]


def _single_table_tbe(tables):
    m = FusedEmbeddingBagCollection(tables, optimizer_type=torch.optim.SGD, optimizer_kwargs={"lr": 0.1})
    return m._tbes[0]


def test_construct_jagged_tensors_inference_remove_padding():
    from recsys_lib.modules.utils import construct_jagged_tensors_inference

    emb = torch.randn(6, 2)  # 4 real rows + 2 padding rows
    lengths = torch.tensor([[1, 1], [0, 2]])
    d = construct_jagged_tensors_inference(emb, lengths, torch.arange(4), ["a", "b"], remove_padding=True)
    torch.testing.assert_close(d["a"].values(), emb[:2])
    torch.testing.assert_close(d["b"].values(), emb[2:4])


def test_eviction_policies_fill_inference_fields_and_header():
    from recsys_lib.modules.embedding_configs import (
        CountBasedEvictionPolicy,
        DataType,
        FeatureScoreBasedEvictionPolicy,
        TimestampBasedEvictionPolicy,
    )

    assert CountBasedEvictionPolicy(eviction_threshold=3).inference_eviction_threshold == 3
    assert TimestampBasedEvictionPolicy().inference_eviction_ttl_mins == 24 * 60
    p = FeatureScoreBasedEvictionPolicy(training_id_keep_count=5, enable_auto_feature_score_collection=True)
    assert p.max_inference_id_num_per_rank == 5 and p.feature_score_mapping == {}
    p.init_metaheader_config(DataType.FP16, 8)
    assert (p.get_meta_header_len(), p.get_embedding_dim()) == (8, 8)  # 16 bytes / 2-byte elements
    p.init_metaheader_config(DataType.FP32, 4)  # once only
    assert p.get_meta_header_len() == 8
