"""Sharded EmbeddingBagCollection vs the unsharded module, on CPU with gloo.

Matrix (visible below): layout (DP, TW, CW, TWCW, mixed) x kernel (fused row-wise Adagrad / dense SGD)
x input (unweighted SUM, unweighted MEAN, weighted SUM), world size 2 in one spawn (default run) and
world size 4 with two simulated hosts (slow). Every case checks, on every rank:

* forward equals the unsharded EBC on the global batch (this rank's rows);
* after one backward + optimizer step, every local shard equals the reference weights (plain torch:
  row-wise Adagrad per column shard / SGD on the unsharded gradient of the mean over ranks of the losses);
* collectives per step: per non-DP sharding 1 (splits) + 2 or 3 (lengths, values[, weights]) + 1 (pooled
  forward) + 1 (pooled backward) all-to-alls; DP tables: one all-reduce (DDP, one bucket);
* state_dict round trip into a differently initialised sharded module.
"""

import copy
from typing import Dict, List, Tuple

import pytest
import torch
import torch.distributed as dist
from fbgemm_gpu.split_embedding_configs import EmbOptimType

from recsys_lib.distributed.comm_ops import count_collectives
from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder, output_column_permute
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.distributed.types import LazyAwaitable, ShardingEnv
from recsys_lib.modules.embedding_configs import PoolingType
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor
from tests.distributed._sharding_helpers import (
    EPS,
    LR,
    check_local_shards,
    column_blocks,
    concat_batches,
    ebc_tables,
    global_batch,
    param_sharding,
    rowwise_adagrad_reference,
)

B = 3
# table -> (sharding type, ranks, explicit column widths or None); dims: t0 8, t1 16, t2 8, t3 12
LAYOUTS_W2: Dict[str, Dict[str, Tuple[str, List[int], object]]] = {
    "dp": {t: ("data_parallel", [0, 1], None) for t in ("t0", "t1", "t2", "t3")},
    "tw": {"t0": ("table_wise", [1], None), "t1": ("table_wise", [0], None), "t2": ("table_wise", [1], None),
           "t3": ("table_wise", [0], None)},
    "cw": {"t0": ("column_wise", [1, 0], None), "t1": ("column_wise", [0, 1, 1, 0], None),
           "t2": ("column_wise", [0, 0], None), "t3": ("column_wise", [1, 0], [4, 8])},
    "twcw": {"t0": ("table_column_wise", [0, 1], None), "t1": ("table_column_wise", [1, 0], None),
             "t2": ("table_wise", [0], None), "t3": ("table_column_wise", [0, 1], [8, 4])},
    "mixed": {"t0": ("data_parallel", [0, 1], None), "t1": ("column_wise", [1, 0], None),
              "t2": ("table_wise", [1], None), "t3": ("table_column_wise", [1, 0], [4, 8])},
}
LAYOUTS_W4: Dict[str, Dict[str, Tuple[str, List[int], object]]] = {
    "cw": {"t0": ("column_wise", [3, 1], None), "t1": ("column_wise", [0, 1, 2, 3], None),
           "t2": ("column_wise", [2, 2], None), "t3": ("column_wise", [1, 2, 3], None)},
    "twcw": {"t0": ("table_column_wise", [2, 3], None), "t1": ("table_column_wise", [0, 1, 0, 1], None),
             "t2": ("table_wise", [3], None), "t3": ("table_column_wise", [3, 2, 3], None)},
    "mixed": {"t0": ("data_parallel", [0, 1, 2, 3], None), "t1": ("column_wise", [3, 2, 1, 0], None),
              "t2": ("table_wise", [2], None), "t3": ("table_column_wise", [1, 0, 1], None)},
}
INPUTS = [(False, PoolingType.SUM), (False, PoolingType.MEAN), (True, PoolingType.SUM)]
KERNELS = ["fused", "dense"]


def make_plan(layout: Dict[str, Tuple[str, List[int], object]], kernel: str, tables) -> Dict[str, object]:
    plan = {}
    for t in tables:
        st, ranks, widths = layout[t.name]
        k = "dense" if st == "data_parallel" else kernel
        plan[t.name] = param_sharding(st, t.num_embeddings, t.embedding_dim, ranks, kernel=k, widths=widths)
    return plan


def expected_collectives(layout, weighted: bool) -> Dict[str, int]:
    types = {st for st, _, _ in layout.values()}
    a2a = sum(1 + (3 if weighted else 2) + 1 + 1 for st in types if st != "data_parallel")
    out = {"all_to_all": a2a} if a2a else {}
    if "data_parallel" in types:
        out["all_reduce"] = 1
    return out


def _sharder() -> EmbeddingBagCollectionSharder:
    return EmbeddingBagCollectionSharder(
        fused_params={"optimizer": EmbOptimType.EXACT_ROWWISE_ADAGRAD, "learning_rate": LR, "eps": EPS}
    )


def _run_case(rank: int, world: int, env: ShardingEnv, layout, kernel: str, weighted: bool, pooling) -> Dict[str, int]:
    tables = ebc_tables(pooling)
    torch.manual_seed(7)  # the same unsharded module on every rank
    ebc = EmbeddingBagCollection(tables, is_weighted=weighted)
    ref = copy.deepcopy(ebc)
    plan = make_plan(layout, kernel, tables)
    sharded = _sharder().shard(ebc, plan, env, torch.device("cpu"))
    kjts = global_batch(tables, world, B, weighted, seed=11)
    dim_sum = sum(t.embedding_dim * len(t.feature_names) for t in tables)
    targets = torch.randn(world, B, dim_sum, generator=torch.Generator().manual_seed(3))

    with count_collectives(env.process_group) as counter:
        out = sharded(kjts[rank])
        assert isinstance(out, LazyAwaitable)
        kt = out.wait()
        (kt.values() * targets[rank]).sum().backward()
    dense = [p for _, p in sharded.named_parameters() if not hasattr(p, "_in_backward_optimizers")]
    if dense:
        torch.optim.SGD(dense, lr=LR).step()

    ref_kt = ref(concat_batches(kjts))
    assert kt.keys() == ref_kt.keys()
    assert kt.length_per_key() == ref_kt.length_per_key()
    torch.testing.assert_close(kt.values(), ref_kt.values()[rank * B:(rank + 1) * B])
    ((ref_kt.values() * targets.view(world * B, -1)).sum() / world).backward()

    state = sharded.state_dict()
    assert list(state) == [f"embedding_bags.{t.name}.weight" for t in tables]
    for t in tables:
        w = ref.embedding_bags[t.name].weight.detach()
        g = ref.embedding_bags[t.name].weight.grad
        ps = plan[t.name]
        if ps.compute_kernel == "fused":
            expected = rowwise_adagrad_reference(w, g, column_blocks(ps, t.embedding_dim))
        else:
            expected = w - LR * g
        check_local_shards(state[f"embedding_bags.{t.name}.weight"], expected, f"{t.name} after one step")

    # round trip: a differently initialised sharded module loads the state and computes the same
    torch.manual_seed(100 + rank)
    other = _sharder().shard(EmbeddingBagCollection(tables, is_weighted=weighted), plan, env, torch.device("cpu"))
    result = other.load_state_dict(state)
    assert not result.missing_keys and not result.unexpected_keys, result
    with torch.no_grad():
        torch.testing.assert_close(other(kjts[rank]).wait().values(), sharded(kjts[rank]).wait().values())
    return counter.by_kind()


def _matrix(rank: int, world: int, layouts) -> List[Tuple[str, Dict[str, int], Dict[str, int]]]:
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    results = []
    for name, layout in layouts.items():
        for kernel in KERNELS:
            for weighted, pooling in INPUTS:
                label = f"{name}/{kernel}/{'weighted' if weighted else 'unweighted'}/{pooling.name}"
                counts = _run_case(rank, world, env, layout, kernel, weighted, pooling)
                results.append((label, counts, expected_collectives(layout, weighted)))
    return results


def _check(results, layouts) -> None:
    for per_rank in results:
        assert len(per_rank) == len(layouts) * len(KERNELS) * len(INPUTS)
        for label, counts, expected in per_rank:
            assert counts == expected, f"{label}: collectives {counts}, expected {expected}"


def test_sharded_ebc_mixed_layout_world_2() -> None:
    """Default-run subset: one module holding DP, CW, TW and TWCW tables at once (every kernel and input)."""
    layouts = {"mixed": LAYOUTS_W2["mixed"]}
    _check(run_multiprocess(_matrix, 2, layouts, timeout_s=600), layouts)


@pytest.mark.slow
def test_sharded_ebc_matrix_world_2() -> None:
    _check(run_multiprocess(_matrix, 2, LAYOUTS_W2, timeout_s=900), LAYOUTS_W2)


@pytest.mark.slow
def test_sharded_ebc_matrix_world_4_two_hosts() -> None:
    _check(run_multiprocess(_matrix, 4, LAYOUTS_W4, local_world_size=2, timeout_s=900), LAYOUTS_W4)


# ---- pure pieces (no process group) ----


def test_output_column_permute_restores_module_order() -> None:
    # sharding order: g (2 cols) then f (3 cols); module order f, g
    assert output_column_permute(["g", "f"], [2, 3], ["f", "g"]) == [2, 3, 4, 0, 1]
    assert output_column_permute(["f", "g"], [3, 2], ["f", "g"]) is None


# ---- GPU tier (skipped without CUDA; scripts/gpu_tier.sh runs it) ----


def _gpu_case(rank: int, world: int) -> str:
    device = torch.device("cuda", rank)
    torch.cuda.set_device(device)
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    for layout in ({"t0": ("table_wise", [0], None), "t1": ("column_wise", [0, 0], None),
                    "t2": ("data_parallel", [0], None), "t3": ("table_wise", [0], None)},):
        tables = ebc_tables(PoolingType.SUM)
        torch.manual_seed(7)
        ebc = EmbeddingBagCollection(tables, device=device)
        plan = make_plan(layout, "fused", tables)
        sharded = _sharder().shard(ebc, plan, env, device)
        kjt = global_batch(tables, 1, B, False, seed=11)[0].to(device)
        torch.testing.assert_close(sharded(kjt).wait().values(), ebc(kjt).values())
    return "ok"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sharded_ebc_nccl_world_1() -> None:
    assert run_multiprocess(_gpu_case, 1, backend="nccl", timeout_s=300) == ["ok"]


def test_data_parallel_without_process_group_and_construction_helpers() -> None:
    """T1 without any process group: a data-parallel sharded EBC is the unsharded EBC, and TorchRec's
    construction helpers route through the registry."""
    from recsys_lib.distributed.embeddingbag import ShardedEmbeddingBagCollection
    from recsys_lib.distributed.sharding.dp_sharding import DpPooledEmbeddingSharding

    tables = ebc_tables(PoolingType.MEAN)
    torch.manual_seed(0)
    ebc = EmbeddingBagCollection(tables)
    plan = {t.name: param_sharding("data_parallel", t.num_embeddings, t.embedding_dim, [0]) for t in tables}
    env = ShardingEnv.from_local(1, 0)
    infos = ShardedEmbeddingBagCollection.create_grouped_sharding_infos(ebc, plan, "", None)
    sharding = ShardedEmbeddingBagCollection.create_embedding_bag_sharding(infos["data_parallel"], env)
    assert isinstance(sharding, DpPooledEmbeddingSharding)
    assert sharding.embedding_names() == ["f0", "f1", "f2", "f3", "f4"]
    assert ShardedEmbeddingBagCollection.extend_shard_name("t1") == "embedding_bags.t1.weight"
    sharded = EmbeddingBagCollectionSharder().shard(ebc, plan, env, torch.device("cpu"))
    kjt = global_batch(tables, 1, B, False, seed=2)[0]
    torch.testing.assert_close(sharded(kjt).wait().values(), ebc(kjt).values())
    torch.manual_seed(1)
    sharded.reset_parameters()
    assert not torch.equal(sharded.state_dict()["embedding_bags.t0.weight"], ebc.embedding_bags["t0"].weight)
    keys = ["f0", "f1", "f2", "f3", "f4"]
    vbe = KeyedJaggedTensor(keys=keys, values=torch.tensor([1, 2]), lengths=torch.tensor([1, 1, 0, 0, 0, 0]),
                            stride_per_key_per_rank=[[2], [1], [1], [1], [1]])
    with pytest.raises(ValueError, match="variable-batch .* needs inverse_indices"):
        sharded(vbe)
    with pytest.raises(ValueError, match="one sharding type"):
        ShardedEmbeddingBagCollection.create_embedding_bag_sharding(infos["data_parallel"][:1] + [
            type(infos["data_parallel"][0])(infos["data_parallel"][0].embedding_config,
                                            param_sharding("table_wise", 11, 8, [0]), torch.empty(0))], env)
