"""Random valid KJTs through one sharded DMP (gloo W=2, a mixed TW/RW/CW plan) equal the unsharded module;
corruptions of one rank's KJT raise a clear error on *every* rank, never hang, and leave the group usable: the
next batch is correct.

Hypothesis (``derandomize=True``) draws the whole list of cases in the parent; one spawn runs them all (process
start-up is paid once). Valid cases cover keys in any order per rank, an extra key no table reads, keys with no
ids at all, zero-length bags, per-id weights on some ranks only (ignored by the unweighted EBC) and different
batch sizes per rank. The fast test runs every corruption on each rank, each followed by a valid batch, plus
the weighted EBC with one rank missing its weights.
"""

import copy
import re
from typing import Any, Dict, List

import pytest
import torch
import torch.distributed as dist
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder
from recsys_lib.distributed.model_parallel import DistributedModelParallel
from recsys_lib.distributed.sharding_plan import (
    column_wise,
    construct_module_sharding_plan,
    row_wise,
    table_wise,
)
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.distributed.types import ShardingEnv, ShardingPlan
from recsys_lib.modules.embedding_configs import PoolingType
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor
from tests.distributed._sharding_helpers import concat_batches, ebc_tables

TABLES = ebc_tables(PoolingType.SUM, dims=(8, 16, 8, 24))
ROWS = {f: t.num_embeddings for t in TABLES for f in t.feature_names}
KEYS = sorted(ROWS) + ["extra"]
CORRUPTIONS = ["id_too_big", "negative_id", "missing_key", "lengths_past_values", "negative_length", "float_ids",
               "negative_length_no_ids"]


@st.composite
def _rank_batch(draw: Any) -> Dict[str, Any]:
    """One rank's KJT as plain lists: keys (shuffled), lengths per key per sample, ids, weights."""
    keys = draw(st.permutations(KEYS))
    batch = draw(st.integers(1, 4))
    empty = draw(st.sets(st.sampled_from(KEYS)))  # keys with no ids in this batch
    lengths, values = [], []
    for k in keys:
        ln = [0] * batch if k in empty else draw(st.lists(st.integers(0, 3), min_size=batch, max_size=batch))
        lengths += ln
        values += draw(st.lists(st.integers(0, ROWS.get(k, 5) - 1), min_size=sum(ln), max_size=sum(ln)))
    weighted = draw(st.booleans())
    return {"keys": list(keys), "lengths": lengths, "values": values, "weighted": weighted}


def _cases():
    valid = st.tuples(st.just("valid"), _rank_batch(), _rank_batch(), st.just(0))
    bad = st.tuples(st.sampled_from(CORRUPTIONS), _rank_batch(), _rank_batch(), st.integers(0, 1))
    return st.lists(st.one_of(valid, bad), min_size=10, max_size=10)


def _kjt(spec: Dict[str, Any], seed: int) -> KeyedJaggedTensor:
    values = torch.tensor(spec["values"], dtype=torch.int64)
    weights = torch.rand(values.numel(), generator=torch.Generator().manual_seed(seed)) if spec["weighted"] else None
    return KeyedJaggedTensor(keys=spec["keys"], values=values, lengths=torch.tensor(spec["lengths"], dtype=torch.int32),
                             weights=weights)


def _corrupt(kind: str, spec: Dict[str, Any]) -> KeyedJaggedTensor:
    """``spec`` with one corruption; id corruptions hit feature ``f1`` (read by the row-wise table t1)."""
    s = copy.deepcopy(spec)
    b = len(s["lengths"]) // len(s["keys"])
    i = s["keys"].index("f1")
    start = sum(s["lengths"][:i * b])
    if kind in ("id_too_big", "negative_id", "float_ids", "lengths_past_values") and not sum(
            s["lengths"][i * b:(i + 1) * b]):
        s["lengths"][i * b] += 1  # give f1 one id to corrupt
        s["values"].insert(start, 0)
    if kind == "id_too_big":
        s["values"][start] = 10_000
    elif kind == "negative_id":
        s["values"][start] = -1
    elif kind == "missing_key":
        n = sum(s["lengths"][i * b:(i + 1) * b])
        del s["keys"][i], s["lengths"][i * b:(i + 1) * b], s["values"][start:start + n]
    elif kind == "lengths_past_values":
        s["lengths"][-1] += 5
    elif kind == "negative_length":
        s["lengths"][0] = -1
    elif kind == "negative_length_no_ids":  # nothing to check ids of: the lengths must still be checked
        s["values"], s["lengths"] = [], [0] * len(s["lengths"])
        s["lengths"][0] = -1
    if kind == "float_ids":
        kjt = _kjt(s, 0)
        return KeyedJaggedTensor(keys=kjt.keys(), values=kjt.values().float(), lengths=kjt.lengths(),
                                 weights=kjt.weights_or_none())
    return _kjt(s, 0)


def _dmp(weighted: bool) -> Any:
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    torch.manual_seed(0)
    ebc = EmbeddingBagCollection(TABLES, is_weighted=weighted)
    ref = copy.deepcopy(ebc)
    sharder = EmbeddingBagCollectionSharder()
    gens = {"t0": table_wise(rank=0, compute_kernel="fused"), "t1": row_wise(compute_kernel="fused"),
            "t2": column_wise(ranks=[0, 1], compute_kernel="fused"), "t3": table_wise(rank=1, compute_kernel="fused")}
    plan = construct_module_sharding_plan(ebc, gens, sharder=sharder, local_size=2, world_size=2, device_type="cpu")
    dmp = DistributedModelParallel(ebc, env=env, device=torch.device("cpu"), plan=ShardingPlan({"": plan}),
                                   sharders=[sharder])
    return dmp, ref


def _check_valid(dmp: Any, ref: Any, rank: int, specs: List[Dict[str, Any]], seed: int, weighted_module: bool,
                 what: str) -> None:
    """This rank's sharded output equals its rows of the unsharded module on the global batch (an unweighted
    module ignores weights, so its reference batch has none)."""
    kjts = [_kjt(s, seed * 2 + r) for r, s in enumerate(specs)]
    ref_kjts = kjts if weighted_module else [_kjt(dict(s, weighted=False), 0) for s in specs]
    with torch.no_grad():
        out = dmp(kjts[rank])
        full = ref(concat_batches(ref_kjts))
    lo = sum(len(s["lengths"]) // len(s["keys"]) for s in specs[:rank])
    n = len(specs[rank]["lengths"]) // len(specs[rank]["keys"])
    torch.testing.assert_close(out.values(), full.values()[lo:lo + n], msg=lambda m: f"{what}: {m}")


def _outcome(dmp: Any, kjt: KeyedJaggedTensor, label: str) -> str:
    """``"<label>: <error>"``, or ``"NOT RAISED <label>"`` when the forward succeeds."""
    try:
        dmp(kjt).values()
    except (ValueError, TypeError) as e:
        return f"{label}: {e}"
    return f"NOT RAISED {label}"


def _run(rank: int, world: int, cases: List[Any]) -> List[str]:
    dmp, ref = _dmp(weighted=False)
    errors = []
    for i, (kind, spec0, spec1, bad_rank) in enumerate(cases):
        specs = [spec0, spec1]  # one rank may carry weights and the other not: the unweighted EBC ignores them
        if kind == "valid":
            _check_valid(dmp, ref, rank, specs, i, False, f"case {i}")
            continue
        mine = _corrupt(kind, specs[rank]) if rank == bad_rank else _kjt(specs[rank], i * 2 + rank)
        errors.append(_outcome(dmp, mine, f"{kind}@{bad_rank}"))
    return errors


def _fixed_spec(seed: int, weighted: bool) -> Dict[str, Any]:
    """One rank's batch as plain lists (deterministic; batch 3, 0-3 ids per bag, keys in reverse order)."""
    g = torch.Generator().manual_seed(seed)
    keys = list(reversed(KEYS))
    lengths = torch.randint(0, 4, (len(keys) * 3,), generator=g).tolist()
    values: List[int] = []
    for j, k in enumerate(keys):
        n = sum(lengths[j * 3:(j + 1) * 3])
        values += torch.randint(0, ROWS.get(k, 5), (n,), generator=g).tolist()
    return {"keys": keys, "lengths": lengths, "values": values, "weighted": weighted}


def _run_fixed(rank: int, world: int) -> List[str]:
    """Every corruption on each rank, each followed by a valid batch; mixed weights; a weighted EBC with one rank
    missing its weights. Returns this rank's error messages in order."""
    dmp, ref = _dmp(weighted=False)
    messages = []
    step = 0
    for kind in CORRUPTIONS:
        for bad_rank in range(world):
            step += 1
            specs = [_fixed_spec(step * 2 + r, weighted=False) for r in range(world)]
            mine = _corrupt(kind, specs[rank]) if rank == bad_rank else _kjt(specs[rank], 0)
            messages.append(_outcome(dmp, mine, f"{kind}@{bad_rank}"))
            # the next batch runs in step on every rank and is correct
            _check_valid(dmp, ref, rank, [_fixed_spec(step * 2 + 100 + r, weighted=r == 0) for r in range(world)],
                         step, False, f"batch after {kind}@{bad_rank}")
    wdmp, wref = _dmp(weighted=True)
    specs = [_fixed_spec(500 + r, weighted=True) for r in range(world)]
    _check_valid(wdmp, wref, rank, specs, 500, True, "weighted EBC")
    mine = _kjt(dict(specs[rank], weighted=rank != 1), 0)  # rank 1 sends no weights
    messages.append(_outcome(wdmp, mine, "weights_missing@1"))
    _check_valid(wdmp, wref, rank, specs, 501, True, "weighted EBC after a rank without weights")
    return messages


def test_each_corruption_fails_on_every_rank_and_the_next_batch_is_correct() -> None:
    results = run_multiprocess(_run_fixed, 2, timeout_s=300)
    expected = [f"{k}@{b}" for k in CORRUPTIONS for b in range(2)] + ["weights_missing@1"]
    for rank, messages in enumerate(results):
        assert [m.split(": ")[0] for m in messages] == expected, messages
        for m in messages:
            bad = int(m.split(": ")[0].split("@")[1])
            if rank != bad:  # the peer names the rank whose KJT was bad
                assert f"rank(s) [{bad}] passed an invalid KJT" in m, m
    bad_rank_messages = {m.split(": ")[0]: m for r, ms in enumerate(results) for m in ms
                         if int(m.split(": ")[0].split("@")[1]) == r}
    for key, pattern in {
        "id_too_big@0": r"id 10000 outside its table's rows", "negative_id@1": r"id -1 outside",
        "missing_key@0": r"lacks features \['f1'\]", "lengths_past_values@1": r"needs values up to index",
        "negative_length@0": r"lengths must be >= 0", "float_ids@1": r"ids must be integers",
        "negative_length_no_ids@1": r"lengths must be >= 0",
        "weights_missing@1": r"weighted but the input KJT has no weights",
    }.items():
        assert re.search(pattern, bad_rank_messages[key]), bad_rank_messages[key]


@pytest.mark.slow
@settings(derandomize=True, max_examples=3, deadline=None, suppress_health_check=list(HealthCheck),
          phases=[Phase.generate])  # no shrinking: each example is a spawn
@given(cases=_cases())
def test_random_kjts_sharded_equal_unsharded_and_corruptions_fail_everywhere(cases) -> None:
    errors = run_multiprocess(_run, 2, cases, timeout_s=300)
    assert not [e for r in errors for e in r if e.startswith("NOT RAISED")], errors
    assert len(errors[0]) == len(errors[1]) == sum(c[0] != "valid" for c in cases)
