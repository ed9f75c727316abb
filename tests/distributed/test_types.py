"""distributed.types: awaitables, plan printing, ShardingEnv checks, the ShardedModule protocol, sharder defaults."""

import pytest
import torch
from torch import nn
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec, ShardMetadata

from recsys_lib.distributed.types import (
    Awaitable,
    EmbeddingModuleShardingPlan,
    GetItemLazyAwaitable,
    LazyAwaitable,
    LazyGetItemMixin,
    LazyNoWait,
    ModuleSharder,
    NoWait,
    ParameterSharding,
    ShardedModule,
    ShardingEnv,
    ShardingPlan,
    ShardingType,
    get_tensor_size_bytes,
    rank_device,
)


class _Counted(LazyAwaitable):
    def __init__(self, value):
        super().__init__()
        self.value = value
        self.waits = 0

    def _wait_impl(self):
        self.waits += 1
        return self.value


class _LazyDict(LazyGetItemMixin, _Counted):
    pass


def test_awaitable_callbacks_run_in_order():
    a = NoWait(torch.tensor([1.0, 2.0]))
    a.callbacks.append(lambda t: t + 1)
    a.callbacks.append(lambda t: t * 10)
    assert a.wait().tolist() == [20.0, 30.0]
    assert isinstance(a, Awaitable)


def test_lazy_awaitable_waits_once_on_first_use():
    t = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    lazy = _Counted(t)
    assert lazy.waits == 0
    assert torch.equal(torch.sum(lazy, dim=0), torch.tensor([4.0, 6.0]))  # __torch_function__
    assert lazy.shape == (2, 2)  # attribute access
    assert torch.equal(lazy[1], t[1])  # indexing
    assert torch.equal(lazy + 1, t + 1) and torch.equal(2 * lazy, 2 * t)  # operators
    assert torch.equal(torch.cat([lazy, _Counted(t)]), torch.cat([t, t]))  # nested in a list
    assert lazy.waits == 1


def test_lazy_getitem_stays_lazy():
    parent = _LazyDict({"a": torch.ones(2), "b": torch.zeros(2)})
    item = parent["a"]
    assert isinstance(item, GetItemLazyAwaitable) and parent.waits == 0
    assert torch.equal(item * 3, torch.full((2,), 3.0))
    assert parent.waits == 1
    assert torch.equal(LazyNoWait(torch.ones(1)) + 1, torch.full((1,), 2.0))


def test_sharding_plan_prints_two_tables():
    spec = EnumerableShardingSpec([ShardMetadata([0, 0], [5, 8], "rank:0/cpu"), ShardMetadata([5, 0], [5, 8], "rank:1/cpu")])
    mod = EmbeddingModuleShardingPlan({
        "t0": ParameterSharding("table_wise", "fused", [0], EnumerableShardingSpec([ShardMetadata([0, 0], [10, 8], "rank:0/cpu")])),
        "t1": ParameterSharding("row_wise", "dense", [0, 1], spec),
    })
    plan = ShardingPlan({"sparse.ebc": mod})
    expected = "\n".join([
        "module: sparse.ebc",
        "",
        " param | sharding type | compute kernel | ranks",
        " ----- | ------------- | -------------- | ------",
        " t0    | table_wise    | fused          | [0]",
        " t1    | row_wise      | dense          | [0, 1]",
        "",
        " param | shard offsets | shard sizes | placement",
        " ----- | ------------- | ----------- | ----------",
        " t0    | [0, 0]        | [10, 8]     | rank:0/cpu",
        " t1    | [0, 0]        | [5, 8]      | rank:0/cpu",
        " t1    | [5, 0]        | [5, 8]      | rank:1/cpu",
    ])
    assert str(plan) == expected
    assert plan.get_plan_for_module("sparse.ebc") is mod and plan.get_plan_for_module("x") is None
    assert ShardingType("row_wise") is ShardingType.ROW_WISE


def test_sharding_env_checks_and_local():
    env = ShardingEnv.from_local(4, 3)
    assert (env.world_size, env.rank, env.process_group, env.output_dtensor) == (4, 3, None, False)
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\), got 2"):
        ShardingEnv(2, 2)
    with pytest.raises(ValueError, match="local_world_size=3 must be >= 1 and divide world_size=4"):
        ShardingEnv(4, 0)._set_local_world_size(3)
    assert ShardingEnv(4, 0)._set_local_world_size(2).local_world_size == 2


class _Doubler(ShardedModule):
    """A toy sharded module: input_dist splits the batch, compute doubles, output_dist sums lazily."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(2.0))
        self.calls = []

    def create_context(self):
        return {"seen": []}

    def input_dist(self, ctx, x):
        self.calls.append("input_dist")
        return NoWait(NoWait(x.chunk(2)))

    def compute(self, ctx, dist_input):
        self.calls.append("compute")
        return [t * self.w for t in dist_input]

    def output_dist(self, ctx, output):
        self.calls.append("output_dist")
        return LazyNoWait(torch.cat(output))

    @property
    def unsharded_module_type(self):
        return nn.Linear


def test_sharded_module_forward_chains_the_three_stages():
    m = _Doubler()
    out = m(torch.arange(4.0))
    assert isinstance(out, LazyAwaitable)
    assert torch.equal(out * 1, torch.arange(4.0) * 2)
    assert m.calls == ["input_dist", "compute", "output_dist"]
    assert list(m.sharded_parameter_names(prefix="ebc")) == ["ebc.w"]
    assert m.copy(torch.device("cpu")) is m  # ModuleNoCopyMixin


class _Sharder(ModuleSharder):
    def shard(self, module, params, env, device=None, module_fqn=None):
        raise NotImplementedError

    @property
    def module_type(self):
        return nn.Linear


def test_module_sharder_defaults():
    s = _Sharder()
    lin = nn.Linear(3, 2)
    assert set(s.shardable_parameters(lin)) == {"weight", "bias"}
    assert s.sharding_types("cpu") == ["data_parallel"] and s.compute_kernels("data_parallel", "cpu") == ["default"]
    assert s.storage_usage(lin.weight, "cpu", "dense") == {"ddr": 24}
    assert s.storage_usage(lin.weight, "cuda", "dense") == {"hbm": 24}
    with pytest.raises(ValueError, match="unknown compute_device_type 'tpu'"):
        s.storage_usage(lin.weight, "tpu", "dense")
    assert get_tensor_size_bytes(torch.zeros(3, dtype=torch.float16)) == 6
    assert rank_device("cpu", 3) == torch.device("cpu") and rank_device("cuda", 1) == torch.device("cuda:1")
