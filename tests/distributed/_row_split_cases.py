"""Sharded-vs-unsharded cases of the row-split strategies (RW, TWRW, GRID), run many per process group.

``results(world, local)`` spawns ``world`` gloo ranks once per (world size, ranks per host) in a pytest
session and runs every case of ``CASES`` that fits there; each case returns ``None`` (passed) or the
failing rank's traceback. Tests then look their case up, so the matrix stays visible in the test files
while process start-up (~6 s per rank here) is paid once.

A case: an EBC (or EC) with deterministic weights, sharded with the plan helpers (``row_wise``,
``table_row_wise``, ``grid_shard``), two training steps on per-rank batches. Each step checks

* forward: this rank's output equals the unsharded module's output on this rank's batch;
* backward + optimizer step: after ``loss_r = sum(out_r * G_r)`` on every rank, the sharded tables equal the
  unsharded tables after one SGD step on ``(1/W) * sum_r loss_r`` (the pooled gradient is divided by the
  world size, as DDP averages dense gradients). The fused kernel steps inside backward (FBGEMM EXACT_SGD);
  the dense kernel's gradients are stepped by hand.
"""

import copy
import functools
import sys
import traceback
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist

from recsys_lib.distributed.test_utils import run_multiprocess

LR = 0.5
BATCH = 3
ROWS = (11, 3, 1, 16)  # not divisible by 2 or 4; smaller than 4; smaller than 2; divisible
DIMS = (8, 16, 8, 24)  # grid splits them over 2 hosts: fused kernels need widths that are multiples of 4
FEATURES = (("f0",), ("f1", "f2"), ("f3",), ("f4",))


@dataclass(frozen=True)
class Case:
    name: str
    module: str = "ebc"  # "ebc" | "ec"
    sharding: str = "row_wise"  # "row_wise" | "table_row_wise" | "grid_shard" (| "table_wise" | "column_wise")
    weighted: bool = False
    pooling: str = "SUM"  # "SUM" | "MEAN" | "MIX" (MEAN and SUM tables)
    kernel: str = "fused"  # "fused" | "dense"
    qcomm: bool = False  # FP16 forward / BF16 backward codecs on every output dist
    bad_ids: bool = False  # every rank's batch has an id == num_embeddings: expect a clear ValueError
    count: bool = False  # count the collectives of one step (see _check_collective_count)
    worlds: Tuple[Tuple[int, int], ...] = ((2, 2),)  # (world, ranks per host) where it runs


def _tables(case: Case) -> List[Any]:
    from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig, PoolingType

    out = []
    for i, (rows, dim, feats) in enumerate(zip(ROWS, DIMS, FEATURES)):
        if case.module == "ec":
            out.append(EmbeddingConfig(num_embeddings=rows, embedding_dim=8, name=f"t{i}", feature_names=list(feats)))
            continue
        mean = case.pooling == "MEAN" or (case.pooling == "MIX" and i % 2 == 0)
        out.append(EmbeddingBagConfig(num_embeddings=rows, embedding_dim=dim, name=f"t{i}", feature_names=list(feats),
                                      pooling=PoolingType.MEAN if mean else PoolingType.SUM))
    return out


def _module(case: Case) -> torch.nn.Module:
    from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection

    tables = _tables(case)
    m = EmbeddingCollection(tables=tables) if case.module == "ec" else EmbeddingBagCollection(
        tables=tables, is_weighted=case.weighted)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return m


def batches(world: int, step: int, weighted: bool, batch: int = BATCH) -> List[Any]:
    """One KJT per rank (keys in module order, 0-4 ids per bag, some empty bags)."""
    from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

    g = torch.Generator().manual_seed(100 + step)
    keys = [f for feats in FEATURES for f in feats]
    rows_of = {f: r for r, feats in zip(ROWS, FEATURES) for f in feats}
    out = []
    for _ in range(world):
        lengths = torch.randint(0, 5, (len(keys) * batch,), generator=g)
        vals = [torch.randint(0, rows_of[k], (int(lengths[i * batch:(i + 1) * batch].sum()),), generator=g)
                for i, k in enumerate(keys)]
        v = torch.cat(vals)
        w = torch.rand(v.numel(), generator=g) + 0.5 if weighted else None
        out.append(KeyedJaggedTensor(keys=keys, values=v, lengths=lengths, weights=w))
    return out


def plan_for(case: Case, module: torch.nn.Module, sharder: Any, world: int, local: int) -> Any:
    from tests.distributed._sharding_helpers import with_compute_kernel
    from recsys_lib.distributed.sharding_plan import (
        column_wise,
        construct_module_sharding_plan,
        grid_shard,
        row_wise,
        table_row_wise,
        table_wise,
    )

    hosts = world // local
    gens = {}
    for i, name in enumerate(f"t{j}" for j in range(len(ROWS))):
        if case.sharding == "row_wise":
            gens[name] = row_wise(compute_kernel=case.kernel)
        elif case.sharding == "table_wise":
            gens[name] = table_wise(rank=i % world, compute_kernel=case.kernel)
        elif case.sharding == "column_wise":
            gens[name] = column_wise(ranks=list(range(world)), compute_kernel=case.kernel)
        elif case.sharding == "table_row_wise":
            gens[name] = with_compute_kernel(table_row_wise(host_index=i % hosts), case.kernel)
        else:
            gens[name] = with_compute_kernel(grid_shard(host_indexes=list(range(hosts))), case.kernel)
    return construct_module_sharding_plan(module, gens, sharder=sharder, local_size=local, world_size=world,
                                          device_type="cpu")


def _sharder(case: Case) -> Any:
    from fbgemm_gpu.split_embedding_configs import EmbOptimType

    from recsys_lib.distributed.embedding import EmbeddingCollectionSharder
    from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from recsys_lib.distributed.fbgemm_qcomm_codec import CommType, QCommsConfig, get_qcomm_codecs_registry

    fused = {"optimizer": EmbOptimType.EXACT_SGD, "learning_rate": LR}
    registry = None
    if case.qcomm:
        registry = get_qcomm_codecs_registry(
            QCommsConfig(forward_precision=CommType.FP16, backward_precision=CommType.BF16), device=torch.device("cpu"))
    cls = EmbeddingCollectionSharder if case.module == "ec" else EmbeddingBagCollectionSharder
    return cls(fused_params=fused, qcomm_codecs_registry=registry)


def _outputs(case: Case, out: Any) -> torch.Tensor:
    """The module output as one tensor (EC: every feature's rows, in key order)."""
    if case.module == "ec":
        return torch.cat([out[k].values() for k in sorted(out)], dim=0)
    return out.values()


def _tolerance(case: Case) -> Dict[str, float]:
    # FP16 forward (relative rounding 2^-11 per value, summed over <= 4 partials) and BF16 backward (2^-8
    # per gradient value, times LR): 1e-2 bounds both on these O(1)-magnitude values.
    return {"atol": 1e-2, "rtol": 1e-2} if case.qcomm else {}


def _check_tables(case: Case, sharded: torch.nn.Module, ref: torch.nn.Module) -> None:
    from torch.distributed._shard.sharded_tensor import ShardedTensor

    attr = "embeddings" if case.module == "ec" else "embedding_bags"
    sd = sharded.state_dict()
    for name, mod in getattr(ref, attr).items():
        value = sd[f"{attr}.{name}.weight"]
        full = mod.weight.detach()
        assert isinstance(value, ShardedTensor), f"{name}: expected a ShardedTensor, got {type(value).__name__}"
        for shard in value.local_shards():
            (r0, c0), (nr, nc) = shard.metadata.shard_offsets, shard.metadata.shard_sizes
            torch.testing.assert_close(shard.tensor, full[r0:r0 + nr, c0:c0 + nc], **_tolerance(case),
                                       msg=lambda m, n=name, o=(r0, c0): f"table {n} shard at {o}: {m}")


def _check_forward(case: Case, step: int, out: torch.Tensor, ref: torch.Tensor) -> None:
    torch.testing.assert_close(out.detach(), ref.detach(), **_tolerance(case),
                               msg=lambda m: f"step {step} forward: {m}")


def _check_bad_ids(case: Case, sharded: torch.nn.Module, rank: int, world: int) -> None:
    from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

    kjt = batches(world, 0, case.weighted)[rank]
    values = kjt.values().clone()
    start = sum(kjt.length_per_key()[:4])  # first id of f4 (table t3, ROWS[3] rows)
    if kjt.length_per_key()[4] == 0:
        raise AssertionError("test batch has no f4 ids")
    values[start] = ROWS[3]
    bad = KeyedJaggedTensor(keys=kjt.keys(), values=values, lengths=kjt.lengths(), weights=kjt.weights_or_none())
    try:
        sharded(bad).wait()
    except ValueError as e:
        assert f"feature 'f4' has id {ROWS[3]} outside its table's rows [0, {ROWS[3]})" in str(e), str(e)
        return
    raise AssertionError("an id == num_embeddings did not raise")


def _check_collective_count(case: Case, sharded: torch.nn.Module, rank: int, world: int) -> None:
    """RW, unweighted, one step: forward = KJT all-to-all (split sizes, lengths, values: 3) + the reduce-
    scatter (gloo: emulated by 1 all-to-all); backward = the reduce-scatter's transpose (1 collective)."""
    from recsys_lib.distributed.comm_ops import count_collectives

    kjt = batches(world, 0, case.weighted)[rank]
    with count_collectives() as fwd:
        out = _outputs(case, sharded(kjt).wait())
    with count_collectives() as bwd:
        out.sum().backward()
    assert fwd.by_kind() == {"all_to_all": 4}, f"forward collectives {fwd.by_kind()}"
    assert bwd.total == 1, f"backward collectives {bwd.by_kind()}"


def run_case(case: Case, rank: int, world: int, local: int) -> None:
    from recsys_lib.distributed.types import ShardingEnv

    ref = _module(case)
    sharder = _sharder(case)
    plan = plan_for(case, ref, sharder, world, local)
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    sharded = sharder.shard(copy.deepcopy(ref), plan, env, torch.device("cpu"))
    if case.bad_ids:
        _check_bad_ids(case, sharded, rank, world)
        return
    if case.count:
        _check_collective_count(case, sharded, rank, world)
        return
    failures: List[str] = []
    for step in range(2):
        kjts = batches(world, step, case.weighted)
        out = _outputs(case, sharded(kjts[rank]).wait())
        ref_outs = [_outputs(case, ref(k)) for k in kjts]
        g = torch.Generator().manual_seed(1000 + step)
        grads = [torch.randn(o.shape, generator=g) for o in ref_outs]
        (out * grads[rank]).sum().backward()
        if case.kernel == "dense":
            with torch.no_grad():
                for _, p in sharded.named_parameters():
                    if p.grad is not None:
                        p -= LR * p.grad
                        p.grad = None
        ref.zero_grad()
        (sum((o * gr).sum() for o, gr in zip(ref_outs, grads)) / world).backward()
        with torch.no_grad():
            for p in ref.parameters():
                if p.grad is not None:
                    p -= LR * p.grad
        if case.qcomm and torch.equal(out.detach(), ref_outs[rank].detach()):
            failures.append(f"step {step}: output equals the FP32 reference exactly; the codecs were not applied")
        # collect failures and raise after the last step: a rank leaving early would strand its peers
        for check_fn in (lambda: _check_forward(case, step, out, ref_outs[rank]),
                         lambda: _check_tables(case, sharded, ref)):
            try:
                check_fn()
            except AssertionError as e:
                failures.append(str(e))
    if failures:
        raise AssertionError("\n".join(failures))


def worker(rank: int, world: int, local: int, cases: List[Case]) -> Dict[str, Optional[str]]:
    import faulthandler
    import signal

    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints where a stuck rank is
    torch.manual_seed(0)
    out: Dict[str, Optional[str]] = {}
    for case in cases:
        try:
            run_case(case, rank, world, local)
            out[case.name] = None
        except Exception:  # report per case (also on stderr: a peer stuck in a collective cannot report)
            out[case.name] = f"rank {rank}:\n{traceback.format_exc()}"
            print(f"case {case.name} failed on {out[case.name]}", file=sys.stderr, flush=True)
        dist.barrier()
    return out


CASES: List[Case] = []


def register(*cases: Case) -> None:
    names = {c.name for c in CASES}
    for c in cases:
        if c.name not in names:
            CASES.append(c)


@functools.lru_cache(maxsize=None)
def results(world: int, local: int) -> Dict[str, Optional[str]]:
    cases = [c for c in CASES if (world, local) in c.worlds]
    per_rank = run_multiprocess(worker, world, local, cases, local_world_size=local, timeout_s=900)
    merged: Dict[str, Optional[str]] = {}
    for c in cases:
        errors = [r[c.name] for r in per_rank if r[c.name] is not None]
        merged[c.name] = "\n".join(errors) if errors else None
    return merged


def check(case: Case, world: int, local: int) -> None:
    """Asserts that ``case`` passed in the (world, local) process group (spawned on first use)."""
    register(case)
    res = results(world, local)
    if case.name not in res:  # registered after that group ran: run this case alone
        res = dict(res)
        res.update(_run_alone(case, world, local))
    error = res[case.name]
    assert error is None, error


def _run_alone(case: Case, world: int, local: int) -> Dict[str, Optional[str]]:
    per_rank = run_multiprocess(worker, world, local, [case], local_world_size=local, timeout_s=600)
    errors = [r[case.name] for r in per_rank if r[case.name] is not None]
    return {case.name: "\n".join(errors) if errors else None}
