"""DistributedModelParallel, shard() / shard_modules(), the TorchRec tutorial flow and bad input, on gloo W=2.

One spawn runs every check (process start is paid once); each check compares against the unsharded model
(deep copies made before sharding, plain-torch optimizer steps) or asserts the error every rank raises.
"""

import copy
from typing import Any, Dict, List

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed._shard.sharded_tensor import ShardedTensor

from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder, ShardedEmbeddingBagCollection
from recsys_lib.distributed.model_parallel import DistributedModelParallel, get_module, get_unwrapped_module
from recsys_lib.distributed.shard import shard, shard_modules
from recsys_lib.distributed.sharding_plan import (
    column_wise,
    construct_module_sharding_plan,
    data_parallel,
    table_wise,
)
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.distributed.types import LazyAwaitable, ShardingEnv, ShardingPlan
from recsys_lib.models.dlrm import DLRM
from recsys_lib.modules.embedding_configs import PoolingType
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
from recsys_lib.optim.keyed import KeyedOptimizerWrapper
from recsys_lib.optim.optimizers import in_backward_optimizer_filter
from recsys_lib.optim.rowwise_adagrad import RowWiseAdagrad
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

B = 4


class SparseDense(nn.Module):
    """An EBC followed by a linear layer (the sparse + dense shape of DLRM)."""

    def __init__(self, tables) -> None:
        super().__init__()
        self.sparse = EmbeddingBagCollection(tables)
        self.fc = nn.Linear(sum(t.embedding_dim * len(t.feature_names) for t in tables), 2)

    def forward(self, kjt):
        return self.fc(self.sparse(kjt).values())


def _model(seed: int, fused: List[str]) -> SparseDense:
    torch.manual_seed(seed)
    m = SparseDense(ebc_tables(PoolingType.SUM))
    params = [m.sparse.embedding_bags[t].weight for t in fused]
    if params:
        apply_optimizer_in_backward(RowWiseAdagrad, params, {"lr": LR, "eps": EPS})
    return m


def _check_dmp_training(rank: int, world: int, env: ShardingEnv) -> None:
    fused = ["t0", "t1", "t3"]
    model = _model(1, fused)
    ref = copy.deepcopy(model)
    gens = {"t0": table_wise(rank=1), "t1": column_wise(ranks=[0, 1]), "t2": data_parallel(), "t3": table_wise(rank=0)}
    module_plan = construct_module_sharding_plan(model.sparse, gens, local_size=2, world_size=2, device_type="cpu")
    assert {n: ps.compute_kernel for n, ps in module_plan.items()} == {
        "t0": "fused", "t1": "fused", "t2": "dense", "t3": "fused"}
    plan = ShardingPlan({"sparse": module_plan})
    dmp = DistributedModelParallel(model, env=env, device=torch.device("cpu"), plan=plan)
    assert dmp._plan is plan and dmp.plan is plan and dmp._env is env
    assert isinstance(dmp._dmp_wrapped_module, nn.parallel.DistributedDataParallel)
    assert isinstance(dmp.module.sparse, ShardedEmbeddingBagCollection)
    assert get_unwrapped_module(dmp) is dmp.module and get_module(dmp) is dmp._dmp_wrapped_module

    # names: the unsharded model's
    unsharded_keys = list(ref.state_dict())
    assert list(dmp.state_dict()) == unsharded_keys
    names = [n for n, _ in dmp.named_parameters()]
    assert set(names) <= {n for n, _ in ref.named_parameters()}
    assert {"fc.weight", "fc.bias", "sparse.embedding_bags.t2.weight"} <= set(names)
    local_fused = {"t0": rank == 1, "t1": True, "t3": rank == 0}
    assert set(dmp.fused_optimizer.params) == {f"sparse.embedding_bags.{t}.weight" for t, here in local_fused.items() if here}

    # ShardedTensor metadata match the plan
    state = dmp.state_dict()
    for t, ps in module_plan.items():
        value = state[f"sparse.embedding_bags.{t}.weight"]
        if ps.sharding_spec is None:
            assert not isinstance(value, ShardedTensor)
            continue
        assert isinstance(value, ShardedTensor)
        got = [(list(m.shard_offsets), list(m.shard_sizes), str(m.placement)) for m in value.metadata().shards_metadata]
        want = [(list(m.shard_offsets), list(m.shard_sizes), str(m.placement)) for m in ps.sharding_spec.shards]
        assert got == want, t

    # one step: fused row-wise Adagrad in backward, SGD for the dense part (fc + data-parallel t2)
    kjts = global_batch(ebc_tables(PoolingType.SUM), world, B, False, seed=21)
    target = torch.randn(world, B, 2, generator=torch.Generator().manual_seed(4))
    dense_opt = KeyedOptimizerWrapper(dict(in_backward_optimizer_filter(dmp.named_parameters())),
                                      lambda ps: torch.optim.SGD(ps, lr=LR))
    out = dmp(kjts[rank])
    (out * target[rank]).sum().backward()
    dense_opt.step()
    ref_out = ref(concat_batches(kjts))
    torch.testing.assert_close(out, ref_out[rank * B:(rank + 1) * B])
    ((ref_out * target.view(world * B, 2)).sum() / world).backward()
    state = dmp.state_dict()
    torch.testing.assert_close(state["fc.weight"], ref.fc.weight.detach() - LR * ref.fc.weight.grad)
    for t, ps in module_plan.items():
        w = ref.sparse.embedding_bags[t].weight
        expected = (rowwise_adagrad_reference(w.detach(), w.grad, column_blocks(ps, w.size(1)))
                    if t in fused else w.detach() - LR * w.grad)
        check_local_shards(state[f"sparse.embedding_bags.{t}.weight"], expected, t)

    # copy(): same outputs, independent tables (training the original leaves the copy unchanged)
    copied = dmp.copy(torch.device("cpu"))
    with torch.no_grad():
        before = copied(kjts[rank])
        torch.testing.assert_close(before, dmp(kjts[rank]))
    dmp(kjts[rank]).sum().backward()
    with torch.no_grad():
        torch.testing.assert_close(copied(kjts[rank]), before)
    assert set(copied.fused_optimizer.params) == set(dmp.fused_optimizer.params)

    # load_state_dict from the unsharded model (plain tensors) → same outputs as the unsharded model
    fresh = _model(2, fused)
    dmp.load_state_dict(fresh.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(dmp(kjts[rank]), fresh(concat_batches(kjts))[rank * B:(rank + 1) * B])


def _check_default_plan_and_tutorial(rank: int, world: int, env: ShardingEnv) -> None:
    # plan=None: the planner plans, every rank gets the same plan
    model = _model(3, [])
    ref = copy.deepcopy(model)
    dmp = DistributedModelParallel(model, env=env, device=torch.device("cpu"))
    assert "sparse" in dmp.plan.plan
    kjts = global_batch(ebc_tables(PoolingType.SUM), world, B, False, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(dmp(kjts[rank]), ref(concat_batches(kjts))[rank * B:(rank + 1) * B])
    plans = [None] * world
    dist.all_gather_object(plans, str(dmp.plan))
    assert plans[0] == plans[1]

    # tutorial: planner.collective_plan → sharder.shard(ebc, plan.plan[""], env, device) → LazyAwaitable
    from recsys_lib.distributed.planner import EmbeddingShardingPlanner, Topology

    torch.manual_seed(8)
    ebc = EmbeddingBagCollection(ebc_tables(PoolingType.SUM))
    sharder = EmbeddingBagCollectionSharder()
    planner = EmbeddingShardingPlanner(topology=Topology(world_size=world, compute_device="cpu"))
    plan = planner.collective_plan(ebc, [sharder], dist.GroupMember.WORLD)
    sharded = sharder.shard(ebc, plan.plan[""], env, torch.device("cpu"))
    for attr in ("_input_dists", "_lookups", "_output_dists"):
        assert len(getattr(sharded, attr)) == len(sharded.shardings)
    lazy = sharded(kjts[rank])
    assert isinstance(lazy, LazyAwaitable)
    kt = lazy.wait()
    torch.testing.assert_close(kt.values(), ebc(concat_batches(kjts)).values()[rank * B:(rank + 1) * B])


def _check_shard_functions(rank: int, world: int, env: ShardingEnv) -> None:
    torch.manual_seed(6)
    ebc = EmbeddingBagCollection(ebc_tables(PoolingType.MEAN))
    # compute_kernel given: without apply_optimizer_in_backward the helpers would pick "dense", which the
    # comms helper's construct_module_sharding_plan rejects for table_wise (reported)
    sharded = shard(ebc, {"t0": table_wise(rank=0, compute_kernel="fused"), "t1": table_wise(rank=1, compute_kernel="fused"),
                          "t2": column_wise(ranks=[1, 0], compute_kernel="fused"), "t3": data_parallel()},
                    env=env, device=torch.device("cpu"))
    kjts = global_batch(ebc_tables(PoolingType.MEAN), world, B, False, seed=9)
    with torch.no_grad():
        torch.testing.assert_close(sharded(kjts[rank]).wait().values(),
                                   ebc(concat_batches(kjts)).values()[rank * B:(rank + 1) * B])
    model = _model(7, [])
    ref = copy.deepcopy(model)
    plan = ShardingPlan({"sparse": construct_module_sharding_plan(
        model.sparse, {t: table_wise(rank=r, compute_kernel="fused") for t, r in (("t0", 1), ("t1", 0), ("t2", 1),
                                                                                 ("t3", 0))},
        local_size=2, world_size=2, device_type="cpu")})
    out_model = shard_modules(model, env=env, device=torch.device("cpu"), plan=plan)
    assert out_model is model and isinstance(model.sparse, ShardedEmbeddingBagCollection)
    with torch.no_grad():
        torch.testing.assert_close(model(kjts[rank]), ref(concat_batches(kjts))[rank * B:(rank + 1) * B])


def _check_ranks_without_tables(rank: int, world: int, env: ShardingEnv) -> None:
    """Every table on one rank (the other looks up nothing), and EC ``need_indices``."""
    from recsys_lib.distributed.embedding import EmbeddingCollectionSharder
    from recsys_lib.modules.embedding_modules import EmbeddingCollection
    from tests.distributed._sharding_helpers import ec_tables

    tables = ebc_tables(PoolingType.SUM)
    torch.manual_seed(0)
    ebc = EmbeddingBagCollection(tables)
    plan = {t.name: param_sharding("table_wise", t.num_embeddings, t.embedding_dim, [0]) for t in tables}
    rng = torch.get_rng_state()
    sharded = EmbeddingBagCollectionSharder().shard(ebc, plan, env, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), rng)  # sharding leaves the RNG stream alone (same on every rank)
    kjts = global_batch(tables, world, B, False, seed=1)
    kt = sharded(kjts[rank]).wait()
    kt.values().sum().backward()
    torch.testing.assert_close(kt.values(), ebc(concat_batches(kjts)).values()[rank * B:(rank + 1) * B])
    etables = ec_tables(8)
    ec = EmbeddingCollection(etables, need_indices=True)
    plan = {t.name: param_sharding("table_wise", t.num_embeddings, t.embedding_dim, [1]) for t in etables}
    out = EmbeddingCollectionSharder().shard(ec, plan, env, torch.device("cpu"))(kjts[rank]).wait()
    ref = ec(concat_batches(kjts))
    for k, jt in out.items():
        lengths = ref[k].lengths()
        lo, hi = int(lengths[:rank * B].sum()), int(lengths[:(rank + 1) * B].sum())
        torch.testing.assert_close(jt.values(), ref[k].values()[lo:hi])
        torch.testing.assert_close(jt.weights(), ref[k].weights()[lo:hi])


def _check_bad_input(rank: int, world: int, env: ShardingEnv) -> List[str]:
    """Every rank must raise the same clear error; nothing may hang."""
    tables = ebc_tables(PoolingType.SUM)
    ebc = EmbeddingBagCollection(tables)
    good = {t.name: param_sharding("table_wise", t.num_embeddings, t.embedding_dim, [0]) for t in tables}
    sharder = EmbeddingBagCollectionSharder()
    messages = []
    with pytest.raises(ValueError, match="'t9'") as e:
        sharder.shard(ebc, {**good, "t9": good["t0"]}, env, torch.device("cpu"))
    messages.append(str(e.value))
    with pytest.raises(ValueError, match="rank 2") as e:
        sharder.shard(ebc, {**good, "t1": param_sharding("table_wise", 23, 16, [2])}, env, torch.device("cpu"))
    messages.append(str(e.value))
    with pytest.raises(ValueError, match="not divisible") as e:
        shard(ebc, {"t0": column_wise(ranks=[0, 1, 0], compute_kernel="fused"), "t1": table_wise(rank=0, compute_kernel="fused"),
                    "t2": table_wise(rank=0, compute_kernel="fused"), "t3": table_wise(rank=1, compute_kernel="fused")},
              env=env, device=torch.device("cpu"))
    messages.append(str(e.value))
    with pytest.raises(ValueError, match="tile the table") as e:  # hand-built spec missing columns
        sharder.shard(ebc, {**good, "t1": param_sharding("column_wise", 23, 16, [0, 1], widths=[4, 8])}, env,
                      torch.device("cpu"))
    messages.append(str(e.value))
    return messages


def _check_dlrm_lookup_first(rank: int, world: int, env: ShardingEnv) -> None:
    """DLRM starts its sharded lookup before the bottom MLP (the output all-to-all travels meanwhile); one step
    still equals the unsharded model's (logits, dense SGD update, fused row-wise Adagrad tables)."""
    tables = ebc_tables(PoolingType.SUM, dims=(8, 8, 8, 8))
    torch.manual_seed(3)
    model = DLRM(EmbeddingBagCollection(tables), dense_in_features=5, dense_arch_layer_sizes=[6, 8],
                 over_arch_layer_sizes=[7, 1])
    apply_optimizer_in_backward(RowWiseAdagrad, model.sparse_arch.parameters(), {"lr": LR, "eps": EPS})
    ref = copy.deepcopy(model)
    ebc = model.sparse_arch.embedding_bag_collection
    module_plan = construct_module_sharding_plan(
        ebc, {t.name: table_wise(rank=i % world) for i, t in enumerate(tables)}, local_size=2, world_size=2,
        device_type="cpu")
    dmp = DistributedModelParallel(model, env=env, device=torch.device("cpu"),
                                   plan=ShardingPlan({"sparse_arch.embedding_bag_collection": module_plan}))
    order: List[str] = []
    for name, m in (("sparse", dmp.module.sparse_arch.embedding_bag_collection), ("dense", dmp.module.dense_arch)):
        m.register_forward_pre_hook(lambda *_, n=name: order.append(n))
    kjts = global_batch(tables, world, B, False, seed=5)
    dense = torch.randn(world, B, 5, generator=torch.Generator().manual_seed(6))
    sgd = KeyedOptimizerWrapper(dict(in_backward_optimizer_filter(dmp.named_parameters())),
                                lambda ps: torch.optim.SGD(ps, lr=LR))
    out = dmp(dense[rank], kjts[rank])
    assert order == ["sparse", "dense"], order
    out.sum().backward()
    sgd.step()
    ref_out = ref(dense.view(world * B, 5), concat_batches(kjts))
    torch.testing.assert_close(out, ref_out[rank * B:(rank + 1) * B])
    (ref_out.sum() / world).backward()
    state = dmp.state_dict()
    for name, p in ref.named_parameters():
        if not name.startswith("sparse_arch."):
            torch.testing.assert_close(state[name], p.detach() - LR * p.grad, msg=name)
    for t in tables:
        w = ref.sparse_arch.embedding_bag_collection.embedding_bags[t.name].weight
        expected = rowwise_adagrad_reference(w.detach(), w.grad, column_blocks(module_plan[t.name], w.size(1)))
        check_local_shards(state[f"sparse_arch.embedding_bag_collection.embedding_bags.{t.name}.weight"], expected, t.name)


def _all_checks(rank: int, world: int) -> Any:
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    _check_dmp_training(rank, world, env)
    _check_dlrm_lookup_first(rank, world, env)
    _check_default_plan_and_tutorial(rank, world, env)
    _check_shard_functions(rank, world, env)
    _check_ranks_without_tables(rank, world, env)
    return _check_bad_input(rank, world, env)


def test_dmp_shard_tutorial_and_bad_input_world_2() -> None:
    messages = run_multiprocess(_all_checks, 2, timeout_s=600)
    assert "does not have" in messages[0][0]
