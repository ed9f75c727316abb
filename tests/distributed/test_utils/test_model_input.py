"""``ModelInput.generate`` / ``generate_variable_batch_input``: shapes, ranges and the global/local split,
checked by hand against the per-rank pieces."""

import pytest
import torch

from recsys_lib.distributed.test_utils.test_model import ModelInput
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

B, W, F = 3, 2, 5


def _tables():
    rows, feats = [11, 23, 7], [["a"], ["b", "c"], ["d"]]
    return [EmbeddingBagConfig(num_embeddings=r, embedding_dim=4, name=f"t{i}", feature_names=f)
            for i, (r, f) in enumerate(zip(rows, feats))]


def _weighted():
    return [EmbeddingBagConfig(num_embeddings=13, embedding_dim=4, name="w0", feature_names=["wa", "wb"]),
            EmbeddingBagConfig(num_embeddings=5, embedding_dim=4, name="w1", feature_names=["wc"])]


def _rows():
    return {f: t.num_embeddings for t in _tables() + _weighted() for f in t.feature_names}


def _samples(kjt: KeyedJaggedTensor, key: str):
    """Per-sample id lists of one key (plus weights when present)."""
    jt = kjt[key]
    ids = [x.tolist() for x in torch.split(jt.values(), jt.lengths().tolist())]
    if kjt.weights_or_none() is None:
        return ids, None
    return ids, [x.tolist() for x in torch.split(jt.weights(), jt.lengths().tolist())]


def _check_split(glob: ModelInput, local, kept):
    """Rank r's batch is samples r*B .. r*B+kept[r]-1 of the global batch, per key, ids and weights alike."""
    for attr in ("idlist_features", "idscore_features"):
        gk = getattr(glob, attr)
        if gk is None:
            assert all(getattr(m, attr) is None for m in local)
            continue
        for key in gk.keys():
            g_ids, g_w = _samples(gk, key)
            for r in range(W):
                l_ids, l_w = _samples(getattr(local[r], attr), key)
                assert l_ids == g_ids[r * B: r * B + kept[r]], (attr, key, r)
                if g_w is not None:
                    assert l_w == g_w[r * B: r * B + kept[r]]
    for r in range(W):
        assert torch.equal(local[r].float_features, glob.float_features[r * B:(r + 1) * B])
        assert torch.equal(local[r].label, glob.label[r * B:(r + 1) * B])


def test_generate_shapes_ranges_and_split():
    glob, local = ModelInput.generate(batch_size=B, world_size=W, num_float_features=F, tables=_tables(),
                                      weighted_tables=_weighted(), pooling_avg=4, random_seed=3)
    assert glob.float_features.shape == (W * B, F) and glob.label.shape == (W * B,)
    assert float(glob.float_features.min()) >= 0 and float(glob.float_features.max()) < 1
    assert glob.idlist_features.keys() == ["a", "b", "c", "d"]
    assert glob.idscore_features.keys() == ["wa", "wb", "wc"]
    rows = _rows()
    for kjt in (glob.idlist_features, glob.idscore_features):
        assert kjt.stride() == W * B
        for key in kjt.keys():
            ids = kjt[key].values()
            assert ids.numel() == int(kjt[key].lengths().sum())
            assert ids.numel() == 0 or (int(ids.min()) >= 0 and int(ids.max()) < rows[key]), key
    w = glob.idscore_features.weights()
    assert w.numel() == glob.idscore_features.values().numel() and float(w.min()) >= 0 and float(w.max()) < 1
    # lengths: |N(4, 1)| truncated, so within [0, 4 + 6] with overwhelming probability, mean near 4
    lengths = glob.idlist_features.lengths().float()
    assert 0 <= float(lengths.min()) and float(lengths.max()) <= 10 and 2.0 < float(lengths.mean()) < 5.0
    assert len(local) == W
    _check_split(glob, local, [B] * W)
    again, _ = ModelInput.generate(batch_size=B, world_size=W, num_float_features=F, tables=_tables(),
                                   weighted_tables=_weighted(), pooling_avg=4, random_seed=3)
    assert torch.equal(again.idlist_features.values(), glob.idlist_features.values())
    assert glob.size_in_bytes() == (W * B * F + W * B) * 4 + glob.idlist_features.size_in_bytes() \
        + glob.idscore_features.size_in_bytes()


def test_generate_options():
    glob, local = ModelInput.generate(
        batch_size=B, world_size=W, num_float_features=F, tables=_tables(), weighted_tables=[],
        variable_batch_size=True, tables_pooling=[2, 6, 3], max_feature_lengths=[9, 9, 4, 9], use_offsets=True,
        random_seed=0)
    assert glob.idscore_features is None
    kept = [B, B - 1]
    lengths = glob.idlist_features.lengths().view(4, W * B)
    offsets = glob.idlist_features.offsets()
    assert torch.equal(offsets[1:], glob.idlist_features.lengths().cumsum(0)) and int(offsets[0]) == 0
    for f, (pool, cap) in enumerate(zip([2, 6, 6, 3], [9, 9, 4, 9])):
        for r in range(W):
            mine = lengths[f, r * B: (r + 1) * B]
            assert (mine[kept[r]:] == 0).all()  # samples beyond this rank's batch have no ids
            assert (mine[:kept[r]] >= 1).all() and (mine[:kept[r]] <= min(cap, pool * 2)).all()
    assert [m.idlist_features.stride() for m in local] == kept
    assert [m.float_features.size(0) for m in local] == [B, B]
    _check_split(glob, local, kept)

    zero, _ = ModelInput.generate(batch_size=B, world_size=W, num_float_features=F, tables=_tables(),
                                  weighted_tables=_weighted(), randomize_indices=False,
                                  indices_dtype=torch.int32, lengths_dtype=torch.int32)
    assert zero.idlist_features.values().dtype == torch.int32 and not zero.idlist_features.values().any()
    assert not zero.float_features.any() and not zero.label.any()

    with pytest.raises(ValueError, match="tables_pooling"):
        ModelInput.generate(batch_size=B, world_size=W, num_float_features=F, tables=_tables(),
                            weighted_tables=[], tables_pooling=[1])
    with pytest.raises(ValueError, match="input_type"):
        ModelInput.generate(batch_size=B, world_size=W, num_float_features=F, tables=_tables(),
                            weighted_tables=[], input_type="dense")


def test_generate_power_law_ids_are_skewed_and_in_range():
    table = [EmbeddingBagConfig(num_embeddings=50, embedding_dim=4, name="t", feature_names=["f"])]
    glob, _ = ModelInput.generate(batch_size=200, world_size=1, num_float_features=1, tables=table,
                                  weighted_tables=[], power_law_alpha=1.5, random_seed=1)
    ids = glob.idlist_features.values()
    assert int(ids.min()) >= 0 and int(ids.max()) < 50
    counts = torch.bincount(ids, minlength=50).float()
    # P(0) under 1/x**1.5 on [1, 50] is ~0.6; uniform would be 0.02
    assert counts[0] / ids.numel() > 0.3 and counts[0] > counts[10:].sum()


def test_generate_variable_batch_input():
    avg = 3
    full = 2 * avg
    glob, local = ModelInput.generate_variable_batch_input(average_batch_size=avg, world_size=W,
                                                           num_float_features=F, tables=_tables(),
                                                           weighted_tables=_weighted(), random_seed=7)
    keys = ["a", "b", "c", "d"]
    assert glob.float_features.shape == (W * full, F) and glob.label.shape == (W * full,)
    strides = [m.idlist_features.stride_per_key_per_rank() for m in local]
    for r, m in enumerate(local):
        kjt = m.idlist_features
        assert kjt.keys() == keys and m.float_features.shape == (full, F)
        assert all(1 <= s[0] <= full - 1 for s in strides[r])
        inv_keys, inv = kjt.inverse_indices()
        assert inv_keys == keys and inv.shape == (4, full)
        assert all(int(inv[f].max()) < strides[r][f][0] for f in range(4))
        # weights only for tables that say is_weighted (EmbeddingTableConfig); EmbeddingBagConfig has no flag
        assert m.idscore_features.keys() == ["wa", "wb", "wc"] and m.idscore_features.weights_or_none() is None
    g = glob.idlist_features
    assert g.stride_per_key_per_rank() == [[strides[0][f][0] + strides[1][f][0]] for f in range(4)]
    # global ids of a key: rank 0's samples, then rank 1's
    for f, key in enumerate(keys):
        want = torch.cat([local[r].idlist_features[key].values() for r in range(W)])
        assert torch.equal(g[key].values(), want)

    const, const_local = ModelInput.generate_variable_batch_input(
        average_batch_size=avg, world_size=W, num_float_features=F, tables=_tables(), weighted_tables=_weighted(),
        global_constant_batch=True, random_seed=7)
    assert const.idlist_features.stride() == W * full
    for attr in ("idlist_features", "idscore_features"):
        for key in getattr(const, attr).keys():
            g_ids, _ = _samples(getattr(const, attr), key)
            for r in range(W):
                kjt = getattr(const_local[r], attr)
                inv = kjt.inverse_indices()[1][kjt.keys().index(key)]
                jt = kjt[key]
                l_ids = [x.tolist() for x in torch.split(jt.values(), jt.lengths().tolist())]
                assert g_ids[r * full:(r + 1) * full] == [l_ids[i] for i in inv.tolist()], (key, r)


def test_to_on_cpu():
    glob, _ = ModelInput.generate(batch_size=B, world_size=1, num_float_features=F, tables=_tables(),
                                  weighted_tables=_weighted(), random_seed=2)
    moved = glob.to(torch.device("cpu"))
    assert torch.equal(moved.float_features, glob.float_features)
    assert torch.equal(moved.idscore_features.weights(), glob.idscore_features.weights())
    assert repr(moved).startswith("ModelInput(float_features=")
