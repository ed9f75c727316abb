"""Sharded EmbeddingCollection (sequence embeddings) vs the unsharded module, on CPU with gloo.

Matrix: layout (DP, TW, CW, mixed) x kernel (``fused`` with row-wise Adagrad, ``dense`` with SGD), world
size 2 (default: mixed layout, both kernels) and the full matrix plus world size 4 (slow). Per case, on every
rank: the output ``Dict[str, JaggedTensor]`` equals the unsharded EC's on this rank's samples; after one
backward + step every local shard equals the plain-torch reference; collectives per step are 1 (splits) +
2 (lengths, values) + 1 (rows forward) + 1 (rows backward) all-to-alls per non-DP sharding and one all-reduce
for DP tables; the state dict round-trips. (EC has no pooling and no per-id weights.)
"""

import copy
from typing import Dict, List, Tuple

import pytest
import torch
import torch.distributed as dist
from fbgemm_gpu.split_embedding_configs import EmbOptimType

from recsys_lib.distributed.comm_ops import count_collectives
from recsys_lib.distributed.embedding import EmbeddingCollectionSharder
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.distributed.types import LazyAwaitable, ShardingEnv
from recsys_lib.modules.embedding_modules import EmbeddingCollection
from tests.distributed._sharding_helpers import (
    EPS,
    LR,
    check_local_shards,
    column_blocks,
    concat_batches,
    ec_tables,
    global_batch,
    param_sharding,
    rowwise_adagrad_reference,
)

B = 3
DIM = 8
LAYOUTS_W2: Dict[str, Dict[str, Tuple[str, List[int]]]] = {
    "dp": {t: ("data_parallel", [0, 1]) for t in ("t0", "t1", "t2", "t3")},
    "tw": {"t0": ("table_wise", [1]), "t1": ("table_wise", [0]), "t2": ("table_wise", [1]), "t3": ("table_wise", [1])},
    "cw": {"t0": ("column_wise", [1, 0]), "t1": ("column_wise", [0, 1]), "t2": ("column_wise", [0, 0]),
           "t3": ("column_wise", [1, 1])},
    "mixed": {"t0": ("column_wise", [1, 0]), "t1": ("table_wise", [1]), "t2": ("data_parallel", [0, 1]),
              "t3": ("table_wise", [0])},
}
LAYOUTS_W4: Dict[str, Dict[str, Tuple[str, List[int]]]] = {
    "mixed": {"t0": ("column_wise", [3, 1]), "t1": ("table_wise", [2]), "t2": ("data_parallel", [0, 1, 2, 3]),
              "t3": ("column_wise", [0, 2])},
}
KERNELS = ["fused", "dense"]


def make_plan(layout, kernel: str, tables) -> Dict[str, object]:
    plan = {}
    for t in tables:
        st, ranks = layout[t.name]
        k = "dense" if st == "data_parallel" else kernel
        plan[t.name] = param_sharding(st, t.num_embeddings, t.embedding_dim, ranks, kernel=k)
    return plan


def expected_collectives(layout) -> Dict[str, int]:
    types = {st for st, _ in layout.values()}
    a2a = sum(5 for st in types if st != "data_parallel")
    out = {"all_to_all": a2a} if a2a else {}
    if "data_parallel" in types:
        out["all_reduce"] = 1
    return out


def _sharder() -> EmbeddingCollectionSharder:
    return EmbeddingCollectionSharder(
        fused_params={"optimizer": EmbOptimType.EXACT_ROWWISE_ADAGRAD, "learning_rate": LR, "eps": EPS}
    )


def _rows_of_rank(jt, rank: int) -> slice:
    lengths = jt.lengths()
    return slice(int(lengths[: rank * B].sum()), int(lengths[: (rank + 1) * B].sum()))


def _run_case(rank: int, world: int, env: ShardingEnv, layout, kernel: str) -> Dict[str, int]:
    tables = ec_tables(DIM)
    torch.manual_seed(5)
    ec = EmbeddingCollection(tables)
    ref = copy.deepcopy(ec)
    plan = make_plan(layout, kernel, tables)
    sharded = _sharder().shard(ec, plan, env, torch.device("cpu"))
    kjts = global_batch(tables, world, B, False, seed=13)
    ref_out = ref(concat_batches(kjts))
    gen = torch.Generator().manual_seed(9)
    targets = {k: torch.randn(jt.values().shape, generator=gen) for k, jt in ref_out.items()}

    with count_collectives(env.process_group) as counter:
        lazy = sharded(kjts[rank])
        assert isinstance(lazy, LazyAwaitable)
        out = lazy.wait()
        loss = sum((jt.values() * targets[k][_rows_of_rank(ref_out[k], rank)]).sum() for k, jt in out.items())
        loss.backward()
    dense = [p for _, p in sharded.named_parameters() if not hasattr(p, "_in_backward_optimizers")]
    if dense:
        torch.optim.SGD(dense, lr=LR).step()

    assert list(out) == list(ref_out)
    for k, jt in out.items():
        r = ref_out[k]
        torch.testing.assert_close(jt.lengths(), r.lengths()[rank * B:(rank + 1) * B])
        torch.testing.assert_close(jt.values(), r.values()[_rows_of_rank(r, rank)], msg=lambda m: f"{k}: {m}")
    (sum((jt.values() * targets[k]).sum() for k, jt in ref_out.items()) / world).backward()

    state = sharded.state_dict()
    assert list(state) == [f"embeddings.{t.name}.weight" for t in tables]
    for t in tables:
        w = ref.embeddings[t.name].weight.detach()
        g = ref.embeddings[t.name].weight.grad
        ps = plan[t.name]
        expected = (rowwise_adagrad_reference(w, g, column_blocks(ps, DIM)) if ps.compute_kernel == "fused"
                    else w - LR * g)
        check_local_shards(state[f"embeddings.{t.name}.weight"], expected, f"{t.name} after one step")

    torch.manual_seed(200 + rank)
    other = _sharder().shard(EmbeddingCollection(tables), plan, env, torch.device("cpu"))
    result = other.load_state_dict(state)
    assert not result.missing_keys and not result.unexpected_keys, result
    with torch.no_grad():
        a, b = other(kjts[rank]).wait(), sharded(kjts[rank]).wait()
        for k in a:
            torch.testing.assert_close(a[k].values(), b[k].values())
    return counter.by_kind()


def _matrix(rank: int, world: int, layouts) -> List[Tuple[str, Dict[str, int], Dict[str, int]]]:
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    results = []
    for name, layout in layouts.items():
        for kernel in KERNELS:
            results.append((f"{name}/{kernel}", _run_case(rank, world, env, layout, kernel),
                            expected_collectives(layout)))
    return results


def _check(results, layouts) -> None:
    for per_rank in results:
        assert len(per_rank) == len(layouts) * len(KERNELS)
        for label, counts, expected in per_rank:
            assert counts == expected, f"{label}: collectives {counts}, expected {expected}"


def test_sharded_ec_mixed_layout_world_2() -> None:
    layouts = {"mixed": LAYOUTS_W2["mixed"]}
    _check(run_multiprocess(_matrix, 2, layouts, timeout_s=600), layouts)


@pytest.mark.slow
def test_sharded_ec_matrix_world_2() -> None:
    _check(run_multiprocess(_matrix, 2, LAYOUTS_W2, timeout_s=900), LAYOUTS_W2)


@pytest.mark.slow
def test_sharded_ec_world_4() -> None:
    _check(run_multiprocess(_matrix, 4, LAYOUTS_W4, timeout_s=900), LAYOUTS_W4)


def test_ec_sharder_sharding_types_follow_the_registry() -> None:
    types = EmbeddingCollectionSharder().sharding_types("cpu")
    assert types[:3] == ["data_parallel", "table_wise", "column_wise"]
    assert "table_column_wise" not in types
