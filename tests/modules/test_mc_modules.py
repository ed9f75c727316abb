"""MCHManagedCollisionModule / ManagedCollisionCollection against a plain-Python reference and hand-made sequences."""

import random

import pytest
import torch

from recsys_lib.modules.embedding_configs import EmbeddingConfig
from recsys_lib.modules.mc_modules import (
    apply_mc_method_to_jt_dict,
    average_threshold_filter,
    DistanceLFU_EvictionPolicy,
    dynamic_threshold_filter,
    LFU_EvictionPolicy,
    LRU_EvictionPolicy,
    ManagedCollisionCollection,
    MCHManagedCollisionModule,
    probabilistic_threshold_filter,
)
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor
from tests.modules._mch_reference import ReferenceMCH

CPU = torch.device("cpu")
POLICIES = {
    "lfu": lambda d: LFU_EvictionPolicy(),
    "lru": lambda d: LRU_EvictionPolicy(decay_exponent=d),
    "dlfu": lambda d: DistanceLFU_EvictionPolicy(decay_exponent=d),
}


def mch(z, interval=1, policy="lfu", decay=1.0, offset=0, **kw):
    return MCHManagedCollisionModule(
        zch_size=z, device=CPU, eviction_policy=POLICIES[policy](decay), eviction_interval=interval,
        output_global_offset=offset, name="t", **kw,
    )


def remap(module, ids):
    out = module({"t": JaggedTensor(values=torch.tensor(ids, dtype=torch.int64), lengths=torch.tensor([len(ids)]))})
    return out["t"].values().tolist()


def test_lfu_hand_sequence():
    # Z=5: 4 id rows + miss row 4; a round every 2 batches, before the remap of the 2nd batch.
    m = mch(5, interval=2)
    assert remap(m, [1, 2, 3, 3]) == [4, 4, 4, 4]  # no round yet: all misses
    # round 1 counts 6:3, 3:2, 1:1, 2:1, 4:1, 5:1 -> keep 6, 3, then ties by smaller id: 1, 2 (rows in score order)
    assert remap(m, [4, 5, 6, 6, 6]) == [4, 4, 0, 0, 0]
    assert m.evict().tolist() == [0, 1, 2, 3]
    assert m.open_slots().tolist() == [0]
    assert remap(m, [7, 8, 1]) == [4, 4, 2]
    # round 2: 1 -> count 2; 9 (4 times) beats 2 (count 1), takes its row 3; 7, 8, 10 (1 each) lose to the rest
    assert remap(m, [9, 9, 9, 9, 10]) == [3, 3, 3, 3, 4]
    assert m.evict().tolist() == [3]
    assert m.evict() is None


@pytest.mark.parametrize("policy", ["lfu", "lru", "dlfu"])
@pytest.mark.parametrize("seed", range(6))
def test_matches_reference_on_random_sequences(policy, seed):
    rng = random.Random(seed)
    z, interval, offset = rng.randint(1, 9), rng.randint(1, 3), rng.choice([0, 11])
    decay = rng.choice([0.5, 1.0, 2.0])
    ours, ref = mch(z, interval, policy, decay, offset), ReferenceMCH(z, interval, policy, decay, offset)
    for step in range(12):
        # negative and 64-bit ids are ordinary raw ids; small ids repeat so that counts differ
        ids = [rng.choice([rng.randint(-6, 12), rng.randint(0, 3), rng.randint(2**40, 2**40 + 3)])
               for _ in range(rng.randint(0, 10))]
        training = step < 10
        ours.train(training)
        got = remap(ours, ids)
        assert got == ref.forward(ids, training), (step, ids)
        assert all(offset <= r < offset + z for r in got)
        evicted = ours.evict()
        assert (sorted(evicted.tolist()) if evicted is not None else []) == ref.take_evicted()


def test_identical_ids_share_a_row_and_distinct_ids_do_not():
    m = mch(50, interval=1)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(-(2**62), 2**62, (30,), generator=g).repeat(3)
    rows = torch.tensor(remap(m, ids.tolist()))
    for i in range(30):
        assert bool((rows[ids == ids[i]] == rows[i]).all())
    assert rows[:30].unique().numel() == 30  # all 30 distinct ids admitted into 49 free rows


def test_eval_mode_does_not_change_state():
    m = mch(4)
    remap(m, [5, 5, 6])
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.eval()
    assert remap(m, [7, 7, 7, 5]) == [3, 3, 3, remap(m, [5])[0]]
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_state_dict_round_trip_keeps_remapping_and_iteration():
    a = mch(6, interval=2, policy="dlfu")
    rng = random.Random(3)
    batches = [[rng.randint(0, 9) for _ in range(7)] for _ in range(9)]
    for ids in batches[:4]:  # ends on a round: no pending history (history is not checkpointed, as in TorchRec)
        remap(a, ids)
    b = mch(6, interval=2, policy="dlfu")
    b.load_state_dict(a.state_dict())
    assert int(b._current_iter_tensor) == 4
    for ids in batches[4:]:  # both continue identically (same iteration count, same metadata)
        assert remap(b, ids) == remap(a, ids)
    assert sorted(a.state_dict()) == sorted(
        ["_output_segments_tensor", "_current_iter_tensor", "_mch_sorted_raw_ids", "_mch_remapped_ids_mapping",
         "_mch_counts", "_mch_last_access_iter"]
    )


def test_load_rejects_segments_that_do_not_cover_the_rows():
    a, b = mch(6), mch(6, offset=6)
    with pytest.raises(ValueError, match="output segments"):
        b.load_state_dict(a.state_dict())


def test_rebuild_with_output_id_range():
    m = mch(10).rebuild_with_output_id_range((10, 15), [0, 10, 15])
    assert (m.output_size(), m.buckets()) == (5, 2)
    # rows 10..14; 14 is the miss row. Ranking: miss slot, id 3, then the 4 empty slots in order: the best 5 keep
    # rows 10, 11, 12 empty and the last-ranked empty slot (row 13) goes to id 3.
    assert remap(m, [3, 3]) == [13, 13]
    m.eval()
    assert remap(m, [4]) == [14]


def test_threshold_filters():
    counts = torch.tensor([1, 1, 1, 9])
    mask, thr = average_threshold_filter(counts)
    assert mask.tolist() == [False, False, False, True] and float(thr) == 3.0
    mask, thr = dynamic_threshold_filter(counts, threshold_skew_multiplier=2.0)  # 12 / 4 * 2 = 6
    assert mask.tolist() == [False, False, False, True] and float(thr) == 6.0
    assert dynamic_threshold_filter(torch.zeros(0, dtype=torch.int64))[0].numel() == 0  # empty round: no crash
    torch.manual_seed(0)
    mask, _ = probabilistic_threshold_filter(torch.tensor([0, 10000]), per_id_probability=0.5)
    assert mask.tolist() == [False, True]  # count 0: score 0; count 10000: score 1.0


def test_filtered_policy_admits_only_ids_above_average():
    m = MCHManagedCollisionModule(zch_size=10, device=CPU, eviction_interval=1,
                                  eviction_policy=LFU_EvictionPolicy(threshold_filtering_func=average_threshold_filter))
    rows = remap(m, [1, 2, 3, 3, 3, 3])  # mean count 2: only id 3 passes
    assert rows[:2] == [9, 9] and rows[2] != 9


@pytest.mark.parametrize("bad", [0, -3])
def test_zch_size_below_one_is_rejected(bad):
    with pytest.raises(ValueError, match="zch_size"):
        mch(bad)


def test_reserved_sentinel_id_is_rejected():
    with pytest.raises(ValueError, match="2\\*\\*63-1"):
        remap(mch(4), [1, 2**63 - 1])


def test_collection_routes_features_and_checks_sizes():
    cfgs = [EmbeddingConfig(name="t0", embedding_dim=4, num_embeddings=4, feature_names=["a"]),
            EmbeddingConfig(name="t1", embedding_dim=4, num_embeddings=3, feature_names=["b", "c"])]
    mods = {"t0": mch(4), "t1": mch(3)}
    mcc = ManagedCollisionCollection(mods, cfgs)
    # key-major, batch 2: c [7] [] | a [5, 5] [] | b [9] [7] | x [] [100]  (x belongs to no table: dropped)
    kjt = KeyedJaggedTensor.from_lengths_sync(
        keys=["c", "a", "b", "x"], values=torch.tensor([7, 5, 5, 9, 7, 100]),
        lengths=torch.tensor([1, 0, 2, 0, 1, 1, 0, 1]),
    )
    out = mcc(kjt)
    assert out.keys() == ["a", "b", "c"] and out.lengths().tolist() == [2, 0, 1, 1, 1, 0]
    a_rows, b_rows, c_rows = (out[k].values().tolist() for k in "abc")
    assert a_rows[0] == a_rows[1] != 3  # id 5 admitted to t0 (miss row 3)
    assert b_rows[1] == c_rows[0] != b_rows[0]  # id 7 in b and c: one row of the shared table t1
    assert 2 not in b_rows + c_rows  # t1's 2 id rows hold 7 and 9; row 2 is its miss row
    assert set(mcc.evict()) == {"t0", "t1"} and set(mcc.open_slots()) == {"t0", "t1"}
    with pytest.raises(ValueError, match="num_embeddings"):
        ManagedCollisionCollection({"t0": mch(5), "t1": mch(3)}, cfgs)
    with pytest.raises(ValueError, match="not present"):
        ManagedCollisionCollection({"t0": mch(4)}, cfgs)


def test_apply_mc_method_to_jt_dict():
    m = mch(4)
    feats = {"t": JaggedTensor(values=torch.tensor([3, 3]), lengths=torch.tensor([2]))}
    assert apply_mc_method_to_jt_dict(m, "remap", feats)["t"].values().tolist() == [3, 3]  # nothing admitted yet


@pytest.mark.parametrize("spread", ["hashed", "sequential", "clustered", "negative"])
def test_directory_remap_equals_searchsorted(spread):
    # tables of >= 4096 ids use the bucket directory; it must agree with the plain searchsorted remap
    from recsys_lib.modules._mch import _mch_remap

    g = torch.Generator().manual_seed(7)
    z = 9000
    ids = {
        "hashed": torch.randint(-(2**63), 2**63 - 1, (z - 1,), generator=g),
        "sequential": torch.arange(z - 1) * 3,
        "clustered": torch.cat([torch.arange(4000), 2**62 + torch.arange(z - 1 - 4000)]),  # crowded buckets
        "negative": -torch.arange(1, z),
    }[spread].unique()
    m = mch(z)
    with torch.no_grad():
        m._mch_sorted_raw_ids[: ids.numel()] = ids
        m._mch_remapped_ids_mapping[:-1] = torch.randperm(z - 1, generator=g)  # the sentinel keeps the miss row
    m.eval()
    queries = torch.cat([ids[torch.randint(0, ids.numel(), (20000,), generator=g)],
                         torch.randint(-(2**63), 2**63 - 1, (20000,), generator=g), (ids.min() - 1).view(1), (ids.max() + 1).view(1),
                         torch.tensor([2**63 - 1, -(2**63), 0])])
    feats = {"t": JaggedTensor(values=queries, lengths=torch.tensor([queries.numel()]))}
    expect = _mch_remap(feats, m._mch_sorted_raw_ids, m._mch_remapped_ids_mapping, z - 1)["t"].values()
    assert torch.equal(m.remap(feats)["t"].values(), expect)
    assert m._remap_directory is not None  # the large batch paid for the directory
    with torch.no_grad():
        m._mch_remapped_ids_mapping[:5] = m._mch_remapped_ids_mapping[:5].flip(0).clone()  # a changed table is seen
    expect = _mch_remap(feats, m._mch_sorted_raw_ids, m._mch_remapped_ids_mapping, z - 1)["t"].values()
    assert torch.equal(m.remap(feats)["t"].values(), expect)
