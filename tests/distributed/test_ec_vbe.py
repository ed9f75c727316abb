"""Sharded EmbeddingCollection with variable batch per feature (VBE) vs the unsharded module, CPU + gloo.

Every rank passes a VBE KJT (``stride_per_key_per_rank=[[b_f] for each key]``): each key has its own batch,
different across keys and across ranks (so the largest batch differs between ranks too). Per case, two
training steps; each step checks on every rank

* forward: the output ``Dict[str, JaggedTensor]`` equals the unsharded ``EmbeddingCollection`` (``need_indices``)
  on this rank's VBE KJT (values, lengths: ``b_f`` bags, one row per id, and the ids); the unsharded module
  itself is checked against per-key ``F.embedding``;
* backward + optimizer step: with ``loss_r = sum_f <out_r[f], G_r[f]>`` on every rank, the sharded tables equal
  the unsharded tables after one SGD step on ``(1/W) * sum_r loss_r`` (fused kernels: FBGEMM EXACT_SGD inside
  backward; dense kernels and data-parallel tables: ``torch.optim.SGD`` on the module's dense parameters);
* collectives of the first step: per non-DP sharding 1 (split sizes) + 3 (lengths, values, strides) + 1 (rows) + 1
  (rows backward) all-to-alls; one all-reduce when there are data-parallel tables.

Then bad input: ranks that disagree on VBE, a rank missing a key, a rank with several batch sizes per key each
raise a ``ValueError`` on every rank (no hang), after which the group still runs a correct step.
"""

import copy
from typing import Any, Callable, Dict, List, Tuple

import pytest
import torch
import torch.distributed as dist
from fbgemm_gpu.split_embedding_configs import EmbOptimType

from recsys_lib.distributed.comm_ops import count_collectives
from recsys_lib.distributed.embedding import EmbeddingCollectionSharder
from recsys_lib.distributed.embedding_sharding import EmbeddingShardingContext
from recsys_lib.distributed.sharding.tw_sharding.sequence import segment_batches, segment_ids
from recsys_lib.distributed.sharding_plan import (
    column_wise,
    construct_module_sharding_plan,
    data_parallel,
    row_wise,
    table_wise,
)
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.distributed.types import ShardingEnv
from recsys_lib.modules.embedding_configs import EmbeddingConfig
from recsys_lib.modules.embedding_modules import EmbeddingCollection
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

LR = 0.25
DIM = 8
ROWS = (11, 23, 7, 17)
FEATURES = (("f0",), ("f1", "f2"), ("f3",), ("f4",))
KEYS = ["f4", "f2", "f0", "f3", "f1"]  # not the module's order: the sharded module must permute

Gen = Callable[[str], Any]  # compute kernel -> plan generator of one table


def _layout(name: str, world: int) -> Dict[str, Gen]:
    """Table -> generator of layout ``name`` at ``world`` ranks (tables on different ranks, CW shards shuffled)."""
    ranks = list(range(world))
    dp: Gen = lambda k: data_parallel()  # noqa: E731
    rw: Gen = lambda k: row_wise(compute_kernel=k)  # noqa: E731

    def tw(r: int) -> Gen:
        return lambda k: table_wise(rank=r, compute_kernel=k)

    def cw(rs: List[int]) -> Gen:
        return lambda k: column_wise(ranks=rs, compute_kernel=k)

    last = world - 1
    layouts: Dict[str, Dict[str, Gen]] = {
        "dp": {"t0": dp, "t1": dp, "t2": dp, "t3": dp},
        "tw": {"t0": tw(last), "t1": tw(0), "t2": tw(last), "t3": tw(last)},
        "cw": {"t0": cw([last, 0]), "t1": cw([0, last]), "t2": cw([0, 0]), "t3": cw(list(reversed(ranks))[:2])},
        "rw": {"t0": rw, "t1": rw, "t2": rw, "t3": rw},
        "mixed": {"t0": cw([last, 1 % world]), "t1": rw, "t2": dp, "t3": tw(last)},
    }
    return layouts[name]


def _tables() -> List[EmbeddingConfig]:
    return [EmbeddingConfig(num_embeddings=r, embedding_dim=DIM, name=f"t{i}", feature_names=list(f))
            for i, (r, f) in enumerate(zip(ROWS, FEATURES))]


def _module() -> EmbeddingCollection:
    ec = EmbeddingCollection(_tables(), need_indices=True)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in ec.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return ec


def vbe_batches(world: int, seed: int, dtype: torch.dtype = torch.int64) -> List[KeyedJaggedTensor]:
    """One VBE KJT per rank: key k of rank r has its own batch (1..3 on even ranks, 1..4 on odd ones; with an even
    seed one key per rank has batch 0); 0-3 ids per bag (some empty)."""
    g = torch.Generator().manual_seed(seed)
    rows_of = {f: r for r, feats in zip(ROWS, FEATURES) for f in feats}
    out = []
    for r in range(world):
        batches = [1 + (k + 2 * r + seed) % (3 + r % 2) for k in range(len(KEYS))]  # largest: 3 or 4
        if seed % 2 == 0:
            batches[(r + 1) % len(KEYS)] = 0  # even seeds: one key of every rank has no samples
        lengths = [torch.randint(0, 4, (b,), generator=g) for b in batches]
        values = [torch.randint(0, rows_of[k], (int(ln.sum()),), generator=g) for k, ln in zip(KEYS, lengths)]
        out.append(KeyedJaggedTensor(keys=KEYS, values=torch.cat(values).to(dtype), lengths=torch.cat(lengths).to(dtype),
                                     stride_per_key_per_rank=[[b] for b in batches]))
    return out


def test_segments_of_a_received_vbe_kjt() -> None:
    """Pure: 2 local features, 2 source ranks; rank 0 sent 3 / 1 samples, rank 1 sent 2 / 4 (features f0 / f1)."""
    ctx = EmbeddingShardingContext(variable_batch_per_feature=True)
    ctx.batch_size_per_rank_per_feature = [[3, 1], [2, 4]]
    batches = segment_batches(ctx, 2, 2)
    assert batches == [3, 2, 1, 4]  # (f0 r0, f0 r1, f1 r0, f1 r1)
    lengths = torch.tensor([1, 0, 2, 3, 1, 0, 1, 1, 2, 0])
    assert segment_ids(lengths, batches).tolist() == [3, 4, 0, 4]
    fixed = EmbeddingShardingContext(batch_size_per_rank=[2, 3])
    assert segment_batches(fixed, 2, 2) == [2, 3, 2, 3]
    with pytest.raises(RuntimeError, match="do not cover"):
        segment_batches(ctx, 3, 2)
    with pytest.raises(RuntimeError, match="lengths for segments"):
        segment_ids(lengths[:-1], batches)


def test_unsharded_ec_vbe_matches_plain_embedding() -> None:
    """The oracle itself: per key, ``b_f`` bags (that key's lengths) and ``F.embedding`` of that key's ids."""
    ec = _module()
    weight_of = {f: ec.embeddings[f"t{i}"].weight for i, feats in enumerate(FEATURES) for f in feats}
    kjt = vbe_batches(1, 5)[0]
    out = ec(kjt)
    assert sorted(out) == sorted(KEYS)
    values = kjt.values().split(kjt.length_per_key())
    lengths = kjt.lengths().split(kjt.stride_per_key())
    assert len(set(kjt.stride_per_key())) > 1
    for k, ids, ln in zip(kjt.keys(), values, lengths):
        torch.testing.assert_close(out[k].lengths(), ln)
        torch.testing.assert_close(out[k].values(), torch.nn.functional.embedding(ids, weight_of[k]))
        torch.testing.assert_close(out[k].weights(), ids)


def _sharder() -> EmbeddingCollectionSharder:
    return EmbeddingCollectionSharder(fused_params={"optimizer": EmbOptimType.EXACT_SGD, "learning_rate": LR})


def _shard(env: ShardingEnv, world: int, layout: Dict[str, Gen], kernel: str) -> Tuple[Any, EmbeddingCollection]:
    ec = _module()
    ref = copy.deepcopy(ec)
    sharder = _sharder()
    plan = construct_module_sharding_plan(ec, {t: gen(kernel) for t, gen in layout.items()}, sharder=sharder,
                                          local_size=world, world_size=world, device_type="cpu")
    return sharder.shard(ec, plan, env, torch.device("cpu")), ref


def _targets(ref_outs: List[Dict[str, Any]], seed: int) -> List[Dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [{k: torch.randn(jt.values().shape, generator=g) for k, jt in out.items()} for out in ref_outs]


def _step(
    rank: int, world: int, sharded: Any, ref: EmbeddingCollection, seed: int, dtype: torch.dtype = torch.int64
) -> Dict[str, int]:
    kjts = vbe_batches(world, seed, dtype)
    ref_outs = [ref(k) for k in kjts]
    targets = _targets(ref_outs, seed)
    with count_collectives(dist.group.WORLD) as counter:
        out = sharded(kjts[rank]).wait()
        loss = sum((jt.values() * targets[rank][k]).sum() for k, jt in out.items())
        loss.backward()
    dense = [p for _, p in sharded.named_parameters() if not hasattr(p, "_in_backward_optimizers")]
    if dense:
        torch.optim.SGD(dense, lr=LR).step()
        for p in dense:
            p.grad = None

    expected = ref_outs[rank]
    assert list(out) == list(expected), (list(out), list(expected))
    for k, jt in out.items():
        torch.testing.assert_close(jt.lengths(), expected[k].lengths(), msg=lambda m: f"{k} lengths: {m}")
        torch.testing.assert_close(jt.values(), expected[k].values(), msg=lambda m: f"{k} values: {m}")
        torch.testing.assert_close(jt.weights().to(torch.int64), expected[k].weights().to(torch.int64),
                                   msg=lambda m: f"{k} ids (need_indices): {m}")
    ref_loss = sum((jt.values() * t[k]).sum() for out_r, t in zip(ref_outs, targets) for k, jt in out_r.items())
    (ref_loss / world).backward()
    with torch.no_grad():
        for p in ref.parameters():
            p -= LR * p.grad
            p.grad = None
    _check_tables(sharded, ref)
    return counter.by_kind()


def _check_tables(sharded: Any, ref: EmbeddingCollection) -> None:
    from torch.distributed._shard.sharded_tensor import ShardedTensor

    state = sharded.state_dict()
    for name, emb in ref.embeddings.items():
        value, full = state[f"embeddings.{name}.weight"], emb.weight.detach()
        if not isinstance(value, ShardedTensor):
            torch.testing.assert_close(value, full, msg=lambda m: f"{name}: {m}")
            continue
        for s in value.local_shards():
            (r0, c0), (nr, nc) = s.metadata.shard_offsets, s.metadata.shard_sizes
            torch.testing.assert_close(s.tensor, full[r0:r0 + nr, c0:c0 + nc], msg=lambda m: f"{name} @{r0},{c0}: {m}")


def _expected_collectives(world: int, layout: Dict[str, Gen]) -> Dict[str, int]:
    weight = torch.empty(ROWS[0], DIM)
    types = {gen("dense")(weight, world, world, "cpu", _sharder()).sharding_type for gen in layout.values()}
    a2a = 6 * len(types - {"data_parallel"})
    out = {"all_to_all": a2a} if a2a else {}
    if "data_parallel" in types:
        out["all_reduce"] = 1
    return out


def _bad_inputs(rank: int, world: int, env: ShardingEnv) -> List[str]:
    """Each bad input must raise ValueError on every rank; returns the messages of this rank."""
    sharded, ref = _shard(env, world, _layout("mixed", world), "fused")
    good = vbe_batches(world, 3)[rank]
    messages = []
    plain = KeyedJaggedTensor(keys=KEYS, values=torch.tensor([1] * len(KEYS)), lengths=torch.tensor([1] * len(KEYS)))
    missing = KeyedJaggedTensor(keys=KEYS[:-1], values=torch.tensor([1, 2]), lengths=torch.tensor([1, 0, 1, 0]),
                                stride_per_key_per_rank=[[1], [2], [1], [0]])
    two_sizes = KeyedJaggedTensor(keys=KEYS, values=good.values(), lengths=good.lengths(),
                                  stride_per_key_per_rank=[[b] if i else [b - 1, 1] for i, b in
                                                           enumerate(good.stride_per_key())])
    cases = [("vbe on rank 0 only", plain if rank else good),
             ("missing key on the last rank", missing if rank == world - 1 else good),
             ("two batch sizes per key on rank 0", good if rank else two_sizes)]
    for label, kjt in cases:
        try:
            sharded(kjt).wait()
        except ValueError as e:
            messages.append(f"{label}: {e}")
            continue
        raise AssertionError(f"{label}: no ValueError on rank {rank}")
    # The group is still in step: a correct VBE step runs after the failures.
    _step(rank, world, sharded, ref, seed=4)
    return messages


def _matrix(rank: int, world: int, cases: List[Tuple[str, str, torch.dtype]], bad: bool) -> List[Any]:
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    results: List[Any] = []
    for name, kernel, dtype in cases:
        layout = _layout(name, world)
        sharded, ref = _shard(env, world, layout, kernel)
        counts = [_step(rank, world, sharded, ref, seed, dtype) for seed in (1, 2)]
        results.append((f"{name}/{kernel}", counts, _expected_collectives(world, layout)))
    if bad:
        results.append(("bad", _bad_inputs(rank, world, env), None))
    return results


def _check(per_rank: List[List[Any]], cases: List[Tuple[str, str, torch.dtype]], bad: bool) -> None:
    for results in per_rank:
        assert len(results) == len(cases) + (1 if bad else 0)
        for label, counts, expected in results:
            if label == "bad":
                assert len(counts) == 3, counts
                continue
            # Step 1 only: step 2's forward of a DDP-wrapped lookup (data-parallel tables) also broadcasts the
            # bucket order DDP rebuilt after the first backward.
            assert counts[0] == expected, f"{label}: collectives {counts[0]}, expected {expected}"


I32, I64 = torch.int32, torch.int64
FAST = [("tw", "fused", I64), ("cw", "dense", I32), ("rw", "fused", I64), ("rw", "dense", I32), ("dp", "dense", I64),
        ("mixed", "fused", I64)]
FULL = [(n, k, d) for n in ("tw", "cw", "rw", "mixed") for k in ("fused", "dense") for d in (I32, I64)] + [
    ("dp", "dense", I64)]


def test_ec_vbe_world_2() -> None:
    _check(run_multiprocess(_matrix, 2, FAST, True, timeout_s=600), FAST, True)


@pytest.mark.slow
def test_ec_vbe_full_matrix_world_2() -> None:
    _check(run_multiprocess(_matrix, 2, FULL, False, timeout_s=900), FULL, False)


@pytest.mark.slow
def test_ec_vbe_world_4() -> None:
    cases = [("mixed", "fused", I64), ("mixed", "dense", I32), ("rw", "fused", I64), ("cw", "fused", I64)]
    _check(run_multiprocess(_matrix, 4, cases, True, timeout_s=900), cases, True)
