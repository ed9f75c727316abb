"""Variable batch per feature (VBE) through the sharded EmbeddingBagCollection, every pooled strategy, on gloo.

Each rank passes a KJT whose keys have their own batch sizes (``stride_per_key_per_rank=[[b_f]]``, different on
every rank) plus ``inverse_indices`` mapping the full batch (``B_FULL`` samples) to those rows. For every
strategy (DP, TW, CW, TWCW, RW, TWRW, GRID, and one module mixing DP/TW/CW/RW tables) and pooling (SUM, MEAN,
a SUM/MEAN mix, weighted), two training steps check on every rank:

* forward: the sharded output equals the unsharded EBC on this rank's VBE batch (``[B_FULL, sum D]``);
* backward + step: the tables equal the unsharded ones after one SGD step on ``(1/W) * sum_r loss_r``
  (fused kernels: FBGEMM EXACT_SGD inside backward; dense kernels: SGD by hand).

Bad input: a VBE KJT without ``inverse_indices`` → ValueError naming them; ranks disagreeing on VBE → a
ValueError on every rank (no hang).
"""

import copy
from typing import Any, List, Tuple

import pytest
import torch
import torch.distributed as dist
from fbgemm_gpu.split_embedding_configs import EmbOptimType

from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder
from recsys_lib.distributed.fbgemm_qcomm_codec import CommType, QCommsConfig, get_qcomm_codecs_registry
from recsys_lib.distributed.sharding_plan import (
    column_wise,
    construct_module_sharding_plan,
    data_parallel,
    grid_shard,
    row_wise,
    table_row_wise,
    table_wise,
)
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.distributed.types import ShardingEnv
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, PoolingType
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor
from tests.distributed._sharding_helpers import check_local_shards, param_sharding, with_compute_kernel

LR = 0.5
B_FULL = 4
ROWS = (11, 3, 1, 16)  # not divisible by 2 or 4; smaller than 4; smaller than 2; divisible
DIMS = (8, 16, 8, 24)
FEATURES = (("f0",), ("f1", "f2"), ("f3",), ("f4",))

# (name, strategy per table or one strategy for all, kernel, pooling, weighted)
CASES: List[Tuple[str, Any, str, str, bool]] = [
    ("dp", "data_parallel", "dense", "MIX", False),
    ("tw", "table_wise", "fused", "MIX", False),
    ("tw-dense-weighted", "table_wise", "dense", "SUM", True),
    ("cw", "column_wise", "fused", "MEAN", False),
    ("twcw", "table_column_wise", "fused", "SUM", True),
    ("rw", "row_wise", "fused", "MIX", False),
    ("rw-weighted", "row_wise", "fused", "SUM", True),
    ("rw-dense-mean", "row_wise", "dense", "MEAN", False),
    ("twrw", "table_row_wise", "fused", "MIX", False),
    ("grid", "grid_shard", "fused", "MEAN", False),
    ("mixed", ("data_parallel", "column_wise", "table_wise", "row_wise"), "fused", "MIX", False),
    # FP16 forward / BF16 backward codecs on every output dist (names ending in -qcomm)
    ("cw-qcomm", "column_wise", "fused", "SUM", False),
    ("rw-qcomm", "row_wise", "fused", "MIX", False),
    ("twrw-qcomm", "table_row_wise", "fused", "SUM", False),
]


def _tables(pooling: str) -> List[EmbeddingBagConfig]:
    pools = {"SUM": [PoolingType.SUM] * 4, "MEAN": [PoolingType.MEAN] * 4,
             "MIX": [PoolingType.MEAN, PoolingType.SUM, PoolingType.MEAN, PoolingType.SUM]}[pooling]
    return [EmbeddingBagConfig(num_embeddings=r, embedding_dim=d, name=f"t{i}", feature_names=list(f), pooling=p)
            for i, (r, d, f, p) in enumerate(zip(ROWS, DIMS, FEATURES, pools))]


def _plan(strategy: Any, kernel: str, ebc: EmbeddingBagCollection, sharder: Any, world: int, local: int) -> Any:
    hosts = world // local
    per_table = strategy if isinstance(strategy, tuple) else (strategy,) * len(ROWS)
    if "table_column_wise" in per_table:  # no plan helper: shards of every table on host 0's ranks
        return {f"t{i}": param_sharding("table_column_wise", r, d, list(range(local)), kernel=kernel)
                for i, (r, d) in enumerate(zip(ROWS, DIMS))}
    gens = {}
    for i, st in enumerate(per_table):
        k = "dense" if st == "data_parallel" else kernel
        gens[f"t{i}"] = {
            "data_parallel": lambda: data_parallel(),
            "table_wise": lambda: table_wise(rank=(i + 1) % world, compute_kernel=k),
            "column_wise": lambda: column_wise(ranks=[world - 1, 0], compute_kernel=k),  # fused: widths % 4 == 0
            "row_wise": lambda: row_wise(compute_kernel=k),
            "table_row_wise": lambda: with_compute_kernel(table_row_wise(host_index=i % hosts), k),
            "grid_shard": lambda: with_compute_kernel(grid_shard(host_indexes=list(range(hosts))), k),
        }[st]()
    return construct_module_sharding_plan(ebc, gens, sharder=sharder, local_size=local, world_size=world,
                                          device_type="cpu")


def vbe_batch(rank: int, step: int, weighted: bool, with_inverse: bool = True) -> KeyedJaggedTensor:
    """This rank's VBE KJT: keys shuffled, each with its own batch ``b_f`` in [1, B_FULL], 0-3 ids per bag."""
    g = torch.Generator().manual_seed(1000 * step + rank)
    rows_of = {f: r for r, fs in zip(ROWS, FEATURES) for f in fs}
    keys = sorted(rows_of, reverse=True)
    strides, lengths, values, inverse = [], [], [], []
    for k in keys:
        b = int(torch.randint(1, B_FULL + 1, (1,), generator=g))
        ln = torch.randint(0, 4, (b,), generator=g)
        strides.append([b])
        lengths.append(ln)
        values.append(torch.randint(0, rows_of[k], (int(ln.sum()),), generator=g))
        inverse.append(torch.randint(0, b, (B_FULL,), generator=g))
    v = torch.cat(values)
    w = torch.rand(v.numel(), generator=g) + 0.5 if weighted else None
    return KeyedJaggedTensor(
        keys=keys, values=v, lengths=torch.cat(lengths), weights=w, stride_per_key_per_rank=strides,
        inverse_indices=(keys, torch.stack(inverse)) if with_inverse else None,
    )


def _targets(world: int, step: int, dim_sum: int) -> torch.Tensor:
    return torch.randn(world, B_FULL, dim_sum, generator=torch.Generator().manual_seed(77 + step))


def _run_case(rank: int, world: int, local: int, env: ShardingEnv, case: Tuple[str, Any, str, str, bool]) -> None:
    name, strategy, kernel, pooling, weighted = case
    tables = _tables(pooling)
    torch.manual_seed(5)
    ebc = EmbeddingBagCollection(tables, is_weighted=weighted)
    ref = copy.deepcopy(ebc)
    registry = None
    if name.endswith("-qcomm"):
        registry = get_qcomm_codecs_registry(
            QCommsConfig(forward_precision=CommType.FP16, backward_precision=CommType.BF16), device=torch.device("cpu"))
    # FP16 forward (2^-11 relative per value) and BF16 backward (2^-8 per gradient, times LR) on O(1) values
    tol = {"atol": 1e-2, "rtol": 1e-2} if registry is not None else {}
    sharder = EmbeddingBagCollectionSharder(fused_params={"optimizer": EmbOptimType.EXACT_SGD, "learning_rate": LR},
                                            qcomm_codecs_registry=registry)
    plan = _plan(strategy, kernel, ebc, sharder, world, local)
    sharded = sharder.shard(ebc, plan, env, torch.device("cpu"))
    dim_sum = sum(t.embedding_dim * len(t.feature_names) for t in tables)
    for step in range(2):
        targets = _targets(world, step, dim_sum)
        kt = sharded(vbe_batch(rank, step, weighted)).wait()
        (kt.values() * targets[rank]).sum().backward()
        dense = [p for _, p in sharded.named_parameters() if not hasattr(p, "_in_backward_optimizers")]
        with torch.no_grad():
            for p in dense:
                if p.grad is not None:
                    p -= LR * p.grad
                    p.grad = None

        ref_outs = [ref(vbe_batch(r, step, weighted)) for r in range(world)]
        assert kt.keys() == ref_outs[rank].keys(), (kt.keys(), ref_outs[rank].keys())
        assert kt.length_per_key() == ref_outs[rank].length_per_key()
        torch.testing.assert_close(kt.values(), ref_outs[rank].values(), msg=lambda m: f"{name} step {step}: {m}",
                                   **tol)
        if registry is not None:  # the codecs really ran: FP16 rounding shows in the random-valued output
            assert not torch.equal(kt.values(), ref_outs[rank].values()), name
        loss = sum((o.values() * targets[r]).sum() for r, o in enumerate(ref_outs)) / world
        ref.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in ref.parameters():
                p -= LR * p.grad
        state = sharded.state_dict()
        for t in tables:
            full = ref.embedding_bags[t.name].weight.detach()
            check_local_shards(state[f"embedding_bags.{t.name}.weight"], full, f"{name} step {step} {t.name}", **tol)


def _run_bad_input(rank: int, world: int, local: int, env: ShardingEnv) -> None:
    tables = _tables("SUM")
    sharder = EmbeddingBagCollectionSharder(fused_params={"optimizer": EmbOptimType.EXACT_SGD, "learning_rate": LR})
    ebc = EmbeddingBagCollection(tables)
    sharded = sharder.shard(ebc, _plan("table_wise", "fused", ebc, sharder, world, local), env, torch.device("cpu"))
    with pytest.raises(ValueError, match="inverse_indices"):
        sharded(vbe_batch(rank, 0, False, with_inverse=False))
    # rank 0 sends a VBE batch, the others a uniform one: every rank raises instead of hanging
    kjt = vbe_batch(rank, 0, False)
    if rank != 0:
        uniform = [torch.randint(0, 2, (2,)) for _ in kjt.keys()]
        kjt = KeyedJaggedTensor(keys=kjt.keys(), values=torch.zeros(int(sum(u.sum() for u in uniform)), dtype=torch.long),
                                lengths=torch.cat(uniform))
    with pytest.raises(ValueError):
        sharded(kjt).wait()
    # one rank's bad input (the others' is fine) raises on every rank, before any rank waits in a collective
    good = vbe_batch(rank, 1, False)
    bad_inputs = {
        "inverse_indices": vbe_batch(0, 1, False, with_inverse=False),
        "outside its table": KeyedJaggedTensor(keys=good.keys(), values=torch.full_like(good.values(), 10**6),
                                          lengths=good.lengths(), stride_per_key_per_rank=good.stride_per_key_per_rank(),
                                          inverse_indices=good.inverse_indices()),
        "lacks features": KeyedJaggedTensor(keys=["f0"], values=torch.tensor([1]), lengths=torch.tensor([1])),
    }
    for what, bad in bad_inputs.items():
        expected = what if rank == 0 else "invalid KJT"
        with pytest.raises(ValueError, match=expected):
            sharded(bad if rank == 0 else good).wait()
    kt = sharded(good).wait()  # the group is still in step
    assert kt.values().shape == (B_FULL, sum(d * len(f) for d, f in zip(DIMS, FEATURES)))


def _worker(rank: int, world: int, local: int, names: List[str]) -> List[str]:
    """Runs the named cases in order; the first failure propagates (its peers are stopped by the runner, since
    they would wait in a collective the failed rank never joins)."""
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    done = []
    for case in CASES:
        if case[0] in names:
            _run_case(rank, world, local, env, case)
            done.append(case[0])
    if "bad-input" in names:
        _run_bad_input(rank, world, local, env)
        done.append("bad-input")
    return done


def _check(results: List[List[str]], names: List[str]) -> None:
    for done in results:
        assert sorted(done) == sorted(names)


ALL = [c[0] for c in CASES] + ["bad-input"]


def test_vbe_every_strategy_world_2_one_host() -> None:
    _check(run_multiprocess(_worker, 2, 2, ALL, local_world_size=2), ALL)


def test_vbe_two_level_strategies_world_2_two_hosts() -> None:
    names = ["twrw", "grid", "mixed"]
    _check(run_multiprocess(_worker, 2, 1, names, local_world_size=1), names)


@pytest.mark.slow
def test_vbe_every_strategy_world_4_two_hosts() -> None:
    names = [c[0] for c in CASES if c[0] != "twcw"]
    _check(run_multiprocess(_worker, 4, 2, names, local_world_size=2, timeout_s=900), names)


class _Model(torch.nn.Module):
    """An EBC feeding a linear layer (a DLRM-like sparse + dense model)."""

    def __init__(self) -> None:
        super().__init__()
        self.ebc = EmbeddingBagCollection(_tables("MIX"))
        self.over = torch.nn.Linear(sum(d * len(f) for d, f in zip(DIMS, FEATURES)), 1)

    def forward(self, kjt: KeyedJaggedTensor) -> torch.Tensor:
        return self.over(self.ebc(kjt).values())


def _dmp_worker(rank: int, world: int) -> bool:
    """A model under DistributedModelParallel trains on VBE batches like the unsharded model."""
    from recsys_lib.distributed.model_parallel import DistributedModelParallel
    from recsys_lib.distributed.types import ShardingPlan

    torch.manual_seed(3)
    model = _Model()
    ref = copy.deepcopy(model)
    sharder = EmbeddingBagCollectionSharder(fused_params={"optimizer": EmbOptimType.EXACT_SGD, "learning_rate": LR})
    module_plan = _plan(("row_wise", "table_wise", "column_wise", "data_parallel"), "fused", model.ebc, sharder, world, world)
    dmp = DistributedModelParallel(model, ShardingEnv.from_process_group(dist.group.WORLD), torch.device("cpu"),
                                   plan=ShardingPlan({"ebc": module_plan}), sharders=[sharder])
    for step in range(3):  # forward equal; then one SGD step on (1/W) * sum_r loss_r (DDP averages dense grads)
        out = dmp(vbe_batch(rank, step, False))
        torch.testing.assert_close(out, ref(vbe_batch(rank, step, False)), msg=lambda m: f"step {step}: {m}")
        out.sum().backward()
        with torch.no_grad():
            for _, p in dmp.named_parameters():
                if p.grad is not None and not hasattr(p, "_in_backward_optimizers"):
                    p -= LR * p.grad
                    p.grad = None
        ref.zero_grad()
        (sum(ref(vbe_batch(r, step, False)).sum() for r in range(world)) / world).backward()
        with torch.no_grad():
            for p in ref.parameters():
                p -= LR * p.grad
    return True


def test_vbe_under_distributed_model_parallel() -> None:
    assert run_multiprocess(_dmp_worker, 2) == [True, True]
