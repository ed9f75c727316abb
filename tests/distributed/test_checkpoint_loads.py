"""Every public checkpoint path with bad checkpoints: unsharded EBC/EC, sharded DMP (TW/RW/CW/DP, gloo W=2,
one spawn for every case) and the fused optimizer's state.

Each bad checkpoint (a row too many, a column too few, a dense entry of the wrong shape, a non-tensor value,
missing and extra keys, wrong dtypes) must either raise an error naming the key and both shapes, or give the
documented non-strict report; after a failed load every weight and optimizer state equals what it was before.
The valid entries of each bad checkpoint hold *other* values than the model, so a partial copy is caught.
"""

import copy
import re
from typing import Any, Dict, List

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed._shard.sharded_tensor import ShardedTensor

from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder
from recsys_lib.distributed.model_parallel import DistributedModelParallel
from recsys_lib.distributed.sharding_plan import (
    column_wise,
    construct_module_sharding_plan,
    data_parallel,
    row_wise,
    table_wise,
)
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.distributed.types import ShardingEnv, ShardingPlan
from recsys_lib.modules.embedding_configs import PoolingType
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
from tests.distributed._sharding_helpers import check_local_shards, ebc_tables, ec_tables

KEY = "sparse.embedding_bags.t1.weight"  # t1: 23 x 16
SHARDINGS = ["table_wise", "row_wise", "column_wise", "data_parallel"]


class SparseDense(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.sparse = EmbeddingBagCollection(ebc_tables(PoolingType.SUM))
        self.fc = nn.Linear(8, 2)


def _local(value: Any) -> List[torch.Tensor]:
    if isinstance(value, ShardedTensor):
        return [s.tensor.detach().clone() for s in value.local_shards()]
    return [value.detach().clone()]


def _snapshot(dmp: DistributedModelParallel) -> Dict[str, Any]:
    """Every local weight and every fused-optimizer state tensor (cloned)."""
    out: Dict[str, Any] = {k: _local(v) for k, v in dmp.state_dict().items()}
    for key, states in dmp.fused_optimizer.state_dict()["state"].items():
        for name, v in states.items():
            if isinstance(v, (torch.Tensor, ShardedTensor)):
                out[f"opt:{key}/{name}"] = _local(v)
    return out


def _assert_same(a: Dict[str, Any], b: Dict[str, Any], what: str) -> None:
    assert a.keys() == b.keys(), what
    for k in a:
        for x, y in zip(a[k], b[k]):
            torch.testing.assert_close(x, y, rtol=0, atol=0, msg=lambda m: f"{what}: {k} changed: {m}")


def _mismatch(key: str, got: List[int], want: List[int]) -> str:
    return rf"size mismatch for {re.escape(key)}: .*{re.escape(str(got))}.*{re.escape(str(want))}"


def _plan(sharding: str, model: SparseDense, sharder: Any) -> ShardingPlan:
    gens = {}
    for i in range(4):
        gens[f"t{i}"] = {
            "table_wise": lambda: table_wise(rank=i % 2),
            "row_wise": lambda: row_wise(),
            "column_wise": lambda: column_wise(ranks=[0, 1]),
            "data_parallel": lambda: data_parallel(),
        }[sharding]()
    return ShardingPlan({"sparse": construct_module_sharding_plan(
        model.sparse, gens, sharder=sharder, local_size=2, world_size=2, device_type="cpu")})


def _check_sharding(sharding: str, env: ShardingEnv) -> None:
    from fbgemm_gpu.split_embedding_configs import EmbOptimType

    torch.manual_seed(0)
    model = SparseDense()
    full_t1 = model.sparse.embedding_bags["t1"].weight.detach().clone()
    sharder = EmbeddingBagCollectionSharder(
        fused_params={"optimizer": EmbOptimType.EXACT_ROWWISE_ADAGRAD, "learning_rate": 0.1})
    dmp = DistributedModelParallel(model, env=env, device=torch.device("cpu"), plan=_plan(sharding, model, sharder),
                                   sharders=[sharder])
    torch.manual_seed(1)
    other = {k: v.detach().clone() for k, v in SparseDense().state_dict().items()}  # other values, same shapes
    before = _snapshot(dmp)
    model_full_t1 = full_t1.clone()
    what = f"{sharding}"

    bad_cases = {
        "a row too many": ({**other, KEY: torch.randn(24, 16)}, _mismatch(KEY, [24, 16], [23, 16])),
        "a column too few": ({**other, KEY: torch.randn(23, 15)}, _mismatch(KEY, [23, 15], [23, 16])),
        "a row too few": ({**other, KEY: torch.randn(22, 16)}, _mismatch(KEY, [22, 16], [23, 16])),
        "dense entry": ({**other, "fc.weight": torch.randn(3, 8)}, _mismatch("fc.weight", [3, 8], [2, 8])),
        "not a tensor": ({**other, KEY: [[0.0] * 16] * 23}, re.escape(KEY)),
    }
    for name, (state, pattern) in bad_cases.items():
        for strict in (True, False):
            with pytest.raises(RuntimeError, match=pattern):
                dmp.load_state_dict(state, strict=strict)
            _assert_same(before, _snapshot(dmp), f"{what}, {name}, strict={strict}")
    # the sharded module alone (no whole-model pre-check): checks its own entries before copying any
    inner = {k[len("sparse."):]: v for k, v in other.items() if k.startswith("sparse.")}
    with pytest.raises(RuntimeError, match=_mismatch(KEY[len("sparse."):], [24, 16], [23, 16])):
        dmp.module.sparse.load_state_dict({**inner, KEY[len("sparse."):]: torch.randn(24, 16)})
    _assert_same(before, _snapshot(dmp), f"{what}, inner module")

    # missing key: strict raises (nothing copied); non-strict reports it and loads the rest
    partial = {k: v for k, v in other.items() if k != KEY}
    with pytest.raises(RuntimeError, match=re.escape(f'Missing key(s) in state_dict: "{KEY}"')):
        dmp.load_state_dict(partial)
    _assert_same(before, _snapshot(dmp), f"{what}, missing key, strict")
    result = dmp.load_state_dict(partial, strict=False)
    assert result.missing_keys == [KEY] and result.unexpected_keys == [], (what, result)
    state = dmp.state_dict()
    check_local_shards(state[KEY], model_full_t1, what)
    for k, v in partial.items():
        check_local_shards(state[k], v, f"{what} {k}")

    # extra keys: strict raises naming them (nothing copied); non-strict reports each once
    extra = {**other, "sparse.embedding_bags.zz.weight": torch.zeros(2, 2), "zz": torch.zeros(1)}
    snap = _snapshot(dmp)
    with pytest.raises(RuntimeError, match='Unexpected key.*"sparse.embedding_bags.zz.weight", "zz"'):
        dmp.load_state_dict({**extra, **{k: v + 5 for k, v in other.items()}})
    _assert_same(snap, _snapshot(dmp), f"{what}, extra key, strict")
    result = dmp.load_state_dict(extra, strict=False)
    assert result.missing_keys == [] and sorted(result.unexpected_keys) == ["sparse.embedding_bags.zz.weight", "zz"], (
        what, result)

    # wrong dtype: cast on copy, as nn.Module does (float64 -> the table's float32)
    as64 = {k: v.double() + 1 for k, v in other.items()}
    assert str(dmp.load_state_dict(as64)) == "<All keys matched successfully>"
    state = dmp.state_dict()
    for k, v in as64.items():
        check_local_shards(state[k], v.float(), f"{what} {k}")

    _check_fused_optimizer(dmp, what)


def _check_fused_optimizer(dmp: DistributedModelParallel, what: str) -> None:
    opt = dmp.fused_optimizer
    good = opt.state_dict()
    keys = list(good["state"])
    if not keys:  # this rank holds no fused table
        return
    before = _snapshot(dmp)

    def shifted() -> Dict[str, Any]:
        out = copy.deepcopy(good)
        for states in out["state"].values():
            for name, v in states.items():
                if isinstance(v, ShardedTensor):
                    for s in v.local_shards():
                        s.tensor.add_(1)
                elif isinstance(v, torch.Tensor):
                    states[name] = v + 1
        return out

    last = keys[-1]  # the bad entry comes last: a load that copies as it checks would have changed the others
    name = next(n for n, v in good["state"][last].items() if isinstance(v, (torch.Tensor, ShardedTensor)))
    value = good["state"][last][name]
    size = list(value.metadata().size) if isinstance(value, ShardedTensor) else list(value.shape)
    wrong = shifted()
    wrong["state"][last][name] = torch.zeros([size[0] + 1] + size[1:])
    with pytest.raises(ValueError, match=re.escape(f"{last}/{name}")):
        opt.load_state_dict(wrong)
    _assert_same(before, _snapshot(dmp), f"{what}, optimizer wrong shape")
    missing = shifted()
    del missing["state"][last]
    with pytest.raises(ValueError, match="state for"):
        opt.load_state_dict(missing)
    extra = shifted()
    extra["state"]["sparse.embedding_bags.zz.weight"] = {}
    with pytest.raises(ValueError, match="zz"):
        opt.load_state_dict(extra)
    _assert_same(before, _snapshot(dmp), f"{what}, optimizer missing/extra")
    opt.load_state_dict(shifted())  # a good one still loads
    after = _snapshot(dmp)
    changed = [k for k in after if k.startswith("opt:") and not torch.equal(after[k][0], before[k][0])]
    assert changed, f"{what}: a good optimizer checkpoint changed nothing"


def _all_shardings(rank: int, world: int) -> str:
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    for sharding in SHARDINGS:
        _check_sharding(sharding, env)
    return "ok"


def test_sharded_checkpoint_loads_world_2() -> None:
    assert run_multiprocess(_all_shardings, 2, timeout_s=600) == ["ok", "ok"]


@pytest.mark.parametrize("module", ["ebc", "ec"])
def test_unsharded_checkpoint_loads(module: str) -> None:
    torch.manual_seed(0)
    make = (lambda: EmbeddingBagCollection(ebc_tables(PoolingType.SUM))) if module == "ebc" else (
        lambda: EmbeddingCollection(ec_tables()))
    m = make()
    attr = "embedding_bags" if module == "ebc" else "embeddings"
    key = f"{attr}.t1.weight"
    shape = list(m.state_dict()[key].shape)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    for strict in (True, False):
        with pytest.raises(RuntimeError, match=_mismatch(key, [shape[0] + 1, shape[1]], shape)):
            m.load_state_dict({key: torch.randn(shape[0] + 1, shape[1])}, strict=strict)
    for k, v in m.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    # missing / extra keys: the nn.Module report
    result = m.load_state_dict({k: v for k, v in before.items() if k != key}, strict=False)
    assert result.missing_keys == [key] and result.unexpected_keys == []
    result = m.load_state_dict({**before, f"{attr}.zz.weight": torch.zeros(1)}, strict=False)
    assert result.unexpected_keys == [f"{attr}.zz.weight"]
    # wrong dtype: cast on copy
    m.load_state_dict({k: v.double() + 1 for k, v in before.items()})
    for k, v in m.state_dict().items():
        torch.testing.assert_close(v, before[k] + 1)
