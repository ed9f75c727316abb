"""Hash ZCH: our CPU insert agrees with FBGEMM's read-only kernel; eviction, fallback and bad input."""

import time

import pytest
import torch

from recsys_lib.modules import _zch_probe
from recsys_lib.modules.hash_mc_evictions import HashZchEvictionConfig, HashZchEvictionPolicyName
from recsys_lib.modules.hash_mc_modules import HashZchManagedCollisionModule
from recsys_lib.sparse.jagged_tensor import JaggedTensor

CPU = torch.device("cpu")


def fbgemm_lookup(ids, identities, max_probe, **kw):
    return torch.ops.fbgemm.zero_collision_hash(ids, identities, max_probe, circular_probe=True, readonly=True, **kw)[0]


def jt(ids, lengths=None):
    ids = torch.as_tensor(ids, dtype=torch.int64)
    return JaggedTensor(values=ids, lengths=torch.tensor(lengths if lengths is not None else [ids.numel()]))


@pytest.mark.parametrize("size", [1, 7, 64, 1009])
def test_reference_lookup_equals_fbgemm(size):
    g = torch.Generator().manual_seed(size)
    identities = torch.full((size, 1), -1, dtype=torch.int64)
    stored = torch.randint(-(2**63), 2**63 - 1, (size // 2,), generator=g)
    identities[torch.randperm(size, generator=g)[: size // 2], 0] = stored
    ids = torch.cat([stored, torch.randint(-(2**63), 2**63 - 1, (300,), generator=g), torch.tensor([0, -1, 2**63 - 1])])
    for fallback in (False, True):
        ours = _zch_probe.lookup_reference(ids, identities, 5, disable_fallback=fallback)
        assert torch.equal(ours, fbgemm_lookup(ids, identities, 5, disable_fallback=fallback))
    if size >= 64:  # two buckets, and opt-in with reserved tail slots
        half = torch.full_like(ids, size // 2)
        starts = torch.where(ids % 2 == 0, 0, size // 2)
        ours = _zch_probe.lookup_reference(ids, identities, 5, half, starts, opt_in_prob=50, num_reserved_slots=3)
        theirs = fbgemm_lookup(ids, identities, 5, local_sizes=half, offsets=starts, opt_in_prob=50, num_reserved_slots=3)
        assert torch.equal(ours, theirs)


@pytest.mark.parametrize("buckets,input_hash_size", [(1, 0), (4, 0), (4, 1000)])
def test_training_insert_then_eval_lookup_agree(buckets, input_hash_size):
    z = 64
    m = HashZchManagedCollisionModule(zch_size=z, device=CPU, total_num_buckets=buckets, max_probe=8,
                                      input_hash_size=input_hash_size, name="t")
    g = torch.Generator().manual_seed(buckets)
    batches = [torch.randint(0, 1000, (int(n),), generator=g) for n in (40, 25, 30)]
    train_rows = [m({"t": jt(b)})["t"].values() for b in batches]
    ident = m._hash_zch_identities.view(-1)
    owned = ident[ident >= 0]
    assert owned.unique().numel() == owned.numel()  # an id owns at most one row
    m.eval()
    for b, rows in zip(batches, train_rows):
        assert bool(((rows >= 0) & (rows < z)).all())
        per_id = {}
        for i, r in zip(b.tolist(), rows.tolist()):
            assert per_id.setdefault(i, r) == r  # identical ids, identical rows
        # rows of stored ids: the eval (FBGEMM read-only) lookup finds them where training put them
        eval_rows = m({"t": jt(b)})["t"].values()
        stored = ident[rows] == b
        assert torch.equal(eval_rows[stored], rows[stored])
        # every id lands in its own bucket
        block = z // buckets
        bucket = b % buckets if input_hash_size == 0 else b // -(-input_hash_size // buckets)
        assert bool((rows // block == bucket).all())
    assert int((ident >= 0).sum()) > 0.8 * min(z, torch.cat(batches).unique().numel())


def test_full_table_falls_back_or_drops():
    m = HashZchManagedCollisionModule(zch_size=4, device=CPU, total_num_buckets=1, max_probe=4, name="t")
    m({"t": jt(list(range(100, 110)))})  # 4 rows, 10 ids: the table fills
    ident = m._hash_zch_identities.view(-1).tolist()
    newcomer = next(i for i in range(1000, 2000) if i not in ident)
    rows = m({"t": jt([newcomer])})["t"].values()
    assert rows.tolist() == _zch_probe.lookup_reference(torch.tensor([newcomer]), m._hash_zch_identities, 4).tolist()
    drop = HashZchManagedCollisionModule(zch_size=4, device=CPU, total_num_buckets=1, max_probe=4, disable_fallback=True)
    drop.load_state_dict(m.state_dict())
    out = drop({"t": jt([ident[0], newcomer, ident[1], newcomer], lengths=[2, 1, 1])})["t"]
    assert out.lengths().tolist() == [1, 1, 0]  # the newcomer is dropped from bags 0 and 2
    assert out.values().tolist() == [0, 1]


def _ttl_module(policy, z=4):
    cfg = HashZchEvictionConfig(features=["f"], single_ttl=5)
    return HashZchManagedCollisionModule(zch_size=z, device=CPU, total_num_buckets=1, max_probe=z, name="t",
                                         eviction_policy_name=policy, eviction_config=cfg)


@pytest.mark.parametrize("policy", [HashZchEvictionPolicyName.SINGLE_TTL_EVICTION, HashZchEvictionPolicyName.LRU_EVICTION])
def test_expired_rows_are_evicted(policy):
    m = _ttl_module(policy)
    m({"t": jt(list(range(100, 140)))})
    assert m.evict() is None
    ident = m._hash_zch_identities.view(-1).clone()
    meta = m._hash_zch_metadata.view(-1)
    now = int(time.time() / 3600)
    assert bool((meta == now + 5).all())  # every owned row expires single_ttl hours from now
    meta[1], meta[3] = now - 3, now - 1  # rows 1 and 3 expired; row 1 the longest ago
    newcomer = next(i for i in range(1000, 2000) if i not in ident.tolist())
    row = m({"t": jt([newcomer])})["t"].values().item()
    if policy == HashZchEvictionPolicyName.LRU_EVICTION:
        assert row == 1  # the most expired row of the window
    else:  # the first expired row in the newcomer's probe order
        start = _zch_probe.unsigned_mod(_zch_probe.murmur_hash3_2x64(torch.tensor([newcomer])), torch.tensor(4)).item()
        order = [(start + p) % 4 for p in range(4)]
        assert row == min((1, 3), key=order.index)
    assert m.evict().tolist() == [row]
    assert m._hash_zch_identities.view(-1)[row].item() == newcomer and meta[row].item() == now + 5


def test_state_dict_round_trip_and_evicted_rows_offset():
    a = HashZchManagedCollisionModule(zch_size=16, device=CPU, total_num_buckets=2, max_probe=4, name="t")
    a({"t": jt([1, 2, 3, 4, 5])})
    b = HashZchManagedCollisionModule(zch_size=16, device=CPU, total_num_buckets=2, max_probe=4, name="t")
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    assert torch.equal(a({"t": jt([5, 4, 9])})["t"].values(), b({"t": jt([5, 4, 9])})["t"].values())
    assert sorted(a.state_dict()) == ["_hash_zch_bucket", "_hash_zch_identities"]


def test_bad_input():
    with pytest.raises(ValueError, match="zch_size"):
        HashZchManagedCollisionModule(zch_size=0, device=CPU, total_num_buckets=1)
    with pytest.raises(ValueError, match="divide"):
        HashZchManagedCollisionModule(zch_size=10, device=CPU, total_num_buckets=3)
    m = HashZchManagedCollisionModule(zch_size=8, device=CPU, total_num_buckets=2, input_hash_size=100)
    with pytest.raises(ValueError, match="input_hash_size"):
        m({"t": jt([5, -1])})  # TorchRec indexes a bucket table with -1 here
    with pytest.raises(ValueError, match="input_hash_size"):
        m({"t": jt([100])})


def test_make_hash_zch_buckets_non_persistent():
    from recsys_lib.modules.utils import make_hash_zch_buckets_non_persistent

    root = torch.nn.ModuleDict({"x": HashZchManagedCollisionModule(zch_size=4, device=CPU, total_num_buckets=1)})
    assert "x._hash_zch_bucket" in root.state_dict()
    assert make_hash_zch_buckets_non_persistent(root) == 1
    assert "x._hash_zch_bucket" not in root.state_dict() and make_hash_zch_buckets_non_persistent(root) == 0
