"""dist_data: KJT all-to-all and the embedding output dists against plain-torch rebuilds (gloo, W=2 and 4)."""

import pytest
import torch

from recsys_lib.distributed.comm_ops import count_collectives
from recsys_lib.distributed.dist_data import (
    EmbeddingsAllToOne,
    EmbeddingsAllToOneReduce,
    KJTAllToAll,
    KJTOneToAll,
    MergePooledEmbeddingsModule,
    PooledEmbeddingsAllGather,
    PooledEmbeddingsAllToAll,
    PooledEmbeddingsReduceScatter,
    SeqEmbeddingsAllToOne,
    SequenceEmbeddingsAllToAll,
    VariableBatchPooledEmbeddingsAllToAll,
    VariableBatchPooledEmbeddingsReduceScatter,
    kjt_recat,
    sequence_recat,
)
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

KEYS = ["f0", "f1", "f2", "f3", "f4"]


def _rank_batch(rank, variable):
    """Rank's KJT as {key: [ids per sample]} (batch 2 + rank; per-key batch in the VBE case)."""
    g = torch.Generator().manual_seed(1000 + rank)
    out = {}
    for i, k in enumerate(KEYS):
        b = (1 + (rank + i) % 3) if variable else 2 + rank
        out[k] = [torch.randint(0, 50, (int(torch.randint(0, 4, (1,), generator=g)),), generator=g).tolist()
                  for _ in range(b)]
    return out


def _to_kjt(batch, weighted, variable, world):
    lengths = [len(s) for k in KEYS for s in batch[k]]
    values = [v for k in KEYS for s in batch[k] for v in s]
    kw = {}
    if variable:
        kw["stride_per_key_per_rank"] = [[len(batch[k])] for k in KEYS]
    kjt = KeyedJaggedTensor(
        keys=KEYS, values=torch.tensor(values, dtype=torch.int64),
        weights=torch.tensor(values, dtype=torch.float32) / 7.0 if weighted else None,
        lengths=torch.tensor(lengths, dtype=torch.int32), **kw,
    )
    return kjt


def _kjt_a2a(rank, world, splits, weighted, variable):
    batches = [_rank_batch(r, variable) for r in range(world)]
    kjt = _to_kjt(batches[rank], weighted, variable, world)
    with count_collectives() as c:
        out = KJTAllToAll(None or _world(), splits)(kjt).wait().wait()
    start = sum(splits[:rank])
    mine = KEYS[start:start + splits[rank]]
    assert out.keys() == mine
    # (a zero-key KJT's to_dict() fails in sparse/_kjt_ops: reported; check its tensors instead)
    got = out.to_dict() if mine else {}
    if not mine:
        assert out.values().numel() == 0 and out.lengths().numel() == 0
    for k in mine:
        exp_samples = [s for r in range(world) for s in batches[r][k]]
        assert got[k].lengths().tolist() == [len(s) for s in exp_samples], k
        assert got[k].values().tolist() == [v for s in exp_samples for v in s], k
        if weighted:
            torch.testing.assert_close(got[k].weights(), torch.tensor([v for s in exp_samples for v in s],
                                                                      dtype=torch.float32) / 7.0)
    if variable:
        assert out.stride_per_key_per_rank() == [[len(batches[r][k]) for r in range(world)] for k in mine]
    else:
        assert out.stride() == sum(2 + r for r in range(world))
    # one split exchange + one all-to-all per label (lengths, values, [strides], [weights])
    assert c.count("all_to_all") == 1 + 2 + int(variable) + int(weighted), c.calls


def _world():
    import torch.distributed as dist

    return dist.group.WORLD


def _rand(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _pooled_modules(rank, world):
    pg = _world()
    B = [1 + r for r in range(world)]
    D = [2 + r % 2 for r in range(world)]
    inputs = [_rand(10 + k, sum(B), D[k]) for k in range(world)]
    offs = [sum(B[:r]) for r in range(world)]
    a2a = PooledEmbeddingsAllToAll(pg, D, callbacks=[lambda t: t * 2])
    out = a2a(inputs[rank].clone(), batch_size_per_rank=B).wait()
    ref = torch.cat([inputs[k][offs[rank]:offs[rank] + B[rank]] for k in range(world)], 1) * 2
    torch.testing.assert_close(out, ref)
    with pytest.raises(ValueError, match="do not split evenly"):
        a2a(torch.zeros(world + 1, D[rank]))

    # reduce-scatter, equal and uneven splits
    rs = PooledEmbeddingsReduceScatter(pg)
    x = [_rand(20 + k, 2 * world, 3) for k in range(world)]
    torch.testing.assert_close(rs(x[rank].clone()).wait(), sum(t[2 * rank:2 * rank + 2] for t in x))
    xs = [_rand(30 + k, sum(B), 3) for k in range(world)]
    torch.testing.assert_close(rs(xs[rank].clone(), input_splits=B).wait(),
                               sum(t[offs[rank]:offs[rank] + B[rank]] for t in xs))

    # all-gather
    ag = PooledEmbeddingsAllGather(pg)
    y = [_rand(40 + k, 2, 3) for k in range(world)]
    torch.testing.assert_close(ag(y[rank].clone()).wait(), torch.cat(y))

    # VBE all-to-all: each rank owns one feature (dim 2 + k); B[r][f] rows of rank r
    dims = [2 + k for k in range(world)]
    vb = [[1 + (r + f) % 2 for f in range(world)] for r in range(world)]
    blocks = {(k, r): _rand(50 + 10 * k + r, vb[r][k], dims[k]) for k in range(world) for r in range(world)}
    local = torch.cat([blocks[(rank, r)].reshape(-1) for r in range(world)])
    vmod = VariableBatchPooledEmbeddingsAllToAll(pg, [[d] for d in dims])
    out = vmod(local, [[vb[r][rank]] for r in range(world)], [vb[rank][f] for f in range(world)]).wait()
    torch.testing.assert_close(out, torch.cat([blocks[(k, rank)].reshape(-1) for k in range(world)]))

    # VBE reduce-scatter: flat [rank][feature][row][dim], two features of dims 2 and 3
    edims = [2, 3]
    n = [sum(vb[r][f] * edims[f] for f in range(2)) for r in range(world)]
    flat = [_rand(70 + k, sum(n)) for k in range(world)]
    no = [sum(n[:r]) for r in range(world)]
    vrs = VariableBatchPooledEmbeddingsReduceScatter(pg)
    got = vrs(flat[rank].clone(), [vb[r][:2] for r in range(world)], edims).wait()
    torch.testing.assert_close(got, sum(t[no[rank]:no[rank] + n[rank]] for t in flat))


def _sequence_module(rank, world):
    pg = _world()
    D = 2
    features_per_rank = [2, 1, 1, 0][:world] if world == 4 else [2, 1]
    owner = [k for k in range(world) for _ in range(features_per_rank[k])]
    nfeat = len(owner)
    B = 2
    # n[f][r][b]: ids of sample b of rank r for feature f
    n = {(f, r): [(f + r + b) % 3 + (1 if f == 0 else 0) for b in range(B)] for f in range(nfeat) for r in range(world)}
    rows = {(f, r): _rand(100 + 10 * f + r, sum(n[(f, r)]), D) for f in range(nfeat) for r in range(world)}
    mine = [f for f in range(nfeat) if owner[f] == rank]
    local = torch.cat([rows[(f, r)] for f in mine for r in range(world)] or [torch.zeros(0, D, dtype=torch.float64)])
    lengths = torch.tensor([v for f in mine for r in range(world) for v in n[(f, r)]], dtype=torch.int64)
    ins = [sum(sum(n[(f, r)]) for f in mine) for r in range(world)]
    outs = [sum(sum(n[(f, rank)]) for f in range(nfeat) if owner[f] == k) for k in range(world)]
    expected = torch.cat([rows[(f, rank)] for f in range(nfeat)])
    a2a = SequenceEmbeddingsAllToAll(pg, features_per_rank)
    # TorchRec convention: the sparse all-to-all's splits (ids sent = rows received back, and the reverse)
    torch.testing.assert_close(a2a(local, lengths, outs, ins).wait(), expected)
    # an unbucketize permutation is applied on the way out: out[i] = received[perm[i]]
    perm = torch.randperm(expected.size(0), generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a2a(local, lengths, outs, ins, unbucketize_permute_tensor=perm).wait(), expected[perm])


def _run_all(rank, world):
    splits = [2, 3] if world == 2 else [1, 0, 3, 1]
    for weighted in (False, True):
        _kjt_a2a(rank, world, splits, weighted, variable=False)
    _kjt_a2a(rank, world, splits, weighted=True, variable=True)
    _pooled_modules(rank, world)
    _sequence_module(rank, world)
    # bad input on one rank: every rank gets a clear error on wait(), nobody hangs
    kjt = _to_kjt(_rank_batch(rank, False), False, False, world)
    bad_splits = [1] * world if rank == 0 else splits
    with pytest.raises(ValueError, match="splits .* expect" if rank == 0 else r"rank\(s\) \[0\] passed an invalid KJT"):
        KJTAllToAll(_world(), bad_splits)(kjt).wait()
    # weighted on one rank only: all ranks refuse before any tensor is sent
    kjt = _to_kjt(_rank_batch(rank, False), rank == 1, False, world)
    with pytest.raises(ValueError, match="must agree on weights"):
        KJTAllToAll(_world(), splits)(kjt).wait()
    # the group is still healthy
    out = KJTAllToAll(_world(), splits)(_to_kjt(_rank_batch(rank, False), False, False, world)).wait().wait()
    assert out.keys() == KEYS[sum(splits[:rank]):sum(splits[:rank + 1])]
    return "ok"


@pytest.mark.dist
@pytest.mark.parametrize("world", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_dist_modules_match_reference(world):
    assert run_multiprocess(_run_all, world) == ["ok"] * world


def _world_of_one(rank, world):
    kjt = _to_kjt(_rank_batch(0, False), weighted=True, variable=False, world=1)
    with count_collectives() as c:
        out = KJTAllToAll(_world(), [len(KEYS)])(kjt).wait().wait()
        pooled = PooledEmbeddingsAllToAll(_world(), [3])(torch.ones(2, 3)).wait()
    assert out.keys() == KEYS and torch.equal(out.values(), kjt.values()) and torch.equal(out.lengths(), kjt.lengths())
    assert torch.equal(pooled, torch.ones(2, 3))
    assert c.total == 0
    return "ok"


@pytest.mark.dist
def test_world_of_one_exchanges_nothing():
    assert run_multiprocess(_world_of_one, 1) == ["ok"]


def test_recats_by_hand():
    assert kjt_recat(2, 2) == [0, 2, 1, 3]
    assert kjt_recat(1, 4, stagger=2) == [0, 2, 1, 3]
    assert sequence_recat(2, 2) == [0, 2, 1, 3]
    assert sequence_recat(1, 3) == [0, 1, 2]
    with pytest.raises(ValueError, match="stagger"):
        kjt_recat(1, 4, stagger=3)


def test_all_to_one_modules():
    a, b = torch.ones(2, 3), torch.full((2, 2), 2.0)
    assert torch.equal(EmbeddingsAllToOne(torch.device("cpu"), 2, 1)([a, b]), torch.cat([a, b], 1))
    assert torch.equal(EmbeddingsAllToOneReduce(torch.device("cpu"), 2)([a, a]), a * 2)
    assert [t.shape for t in SeqEmbeddingsAllToOne(torch.device("cpu"), 2)([a, b])] == [a.shape, b.shape]
    assert torch.equal(MergePooledEmbeddingsModule(torch.device("cpu"))([a, b], 1), torch.cat([a, b], 1))
    with pytest.raises(ValueError, match="expected world_size=3"):
        EmbeddingsAllToOne(torch.device("cpu"), 3, 1)([a, b])


def test_kjt_one_to_all_splits_keys():
    kjt = _to_kjt(_rank_batch(0, False), weighted=False, variable=False, world=1)
    parts = KJTOneToAll([2, 3], 2)(kjt)
    assert [p.keys() for p in parts] == [KEYS[:2], KEYS[2:]]
    torch.testing.assert_close(torch.cat([p.values() for p in parts]), kjt.values())
