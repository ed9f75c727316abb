import copy

import pytest
import torch

from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.optim.keyed import CombinedOptimizer, KeyedOptimizer, KeyedOptimizerWrapper, OptimizerWrapper


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))


def _batches(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(5, 4, generator=g) for _ in range(n)]


def _train(model, opt, batches):
    for x in batches:
        opt.zero_grad()
        model(x).pow(2).sum().backward()
        opt.step()


def _adam(model):
    return KeyedOptimizerWrapper(dict(model.named_parameters()), lambda ps: torch.optim.Adam(ps, lr=0.05))


def test_wrapper_trains_like_the_torch_optimizer():
    m1, m2 = _model(), _model()
    _train(m1, _adam(m1), _batches(3))
    _train(m2, torch.optim.Adam(m2.parameters(), lr=0.05), _batches(3))
    for a, b in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b)


def test_state_dict_is_keyed_by_fqn():
    m = _model()
    ref_model = _model()
    opt = _adam(m)
    ref = torch.optim.Adam(ref_model.parameters(), lr=0.05)
    _train(m, opt, _batches(2))
    _train(ref_model, ref, _batches(2))
    sd = opt.state_dict()
    assert set(sd) == {"state"}
    assert list(sd["state"]) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    ref_sd = ref.state_dict()["state"]
    for i, name in enumerate(["0.weight", "0.bias", "2.weight", "2.bias"]):
        assert set(sd["state"][name]) == {"step", "exp_avg", "exp_avg_sq"}
        for k in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(sd["state"][name][k], ref_sd[i][k])


def test_param_groups_saved_only_when_asked_and_restored():
    m = _model()
    opt = _adam(m)
    opt.init_state()
    assert "param_groups" not in opt.state_dict()
    opt.save_param_groups(True)
    sd = copy.deepcopy(opt.state_dict())
    assert sd["param_groups"][0]["params"] == sorted(["0.weight", "0.bias", "2.weight", "2.bias"])
    assert sd["param_groups"][0]["lr"] == 0.05
    opt.param_groups[0]["lr"] = 1.0
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["lr"] == 0.05
    del sd["param_groups"]
    with pytest.raises(ValueError, match="no param_groups"):
        opt.load_state_dict(sd)


def test_load_is_in_place_and_resumes_exactly():
    m = _model()
    opt = _adam(m)
    batches = _batches(4)
    _train(m, opt, batches[:2])
    saved_model = copy.deepcopy(m.state_dict())
    saved_opt = copy.deepcopy(opt.state_dict())
    _train(m, opt, batches[2:])

    m2 = _model(seed=5)
    m2.load_state_dict(saved_model)
    opt2 = _adam(m2)
    opt2.init_state()
    live = {k: dict(v) for k, v in opt2.state_dict()["state"].items()}
    opt2.load_state_dict(saved_opt)
    for name, st in opt2.state_dict()["state"].items():
        for k, v in st.items():
            assert v is live[name][k]  # same tensor objects: copied into, not replaced
            torch.testing.assert_close(v, saved_opt["state"][name][k])
    _train(m2, opt2, batches[2:])
    for a, b in zip(m.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b)


def test_load_state_dict_errors():
    m = _model()
    opt = _adam(m)
    fresh = _adam(_model())
    opt.init_state()
    sd = copy.deepcopy(opt.state_dict())
    with pytest.raises(ValueError, match="init_state"):
        fresh.load_state_dict(sd)  # lazy state not materialised
    with pytest.raises(ValueError, match="init_state"):
        opt.load_state_dict({"state": {}})
    bad = copy.deepcopy(sd)
    bad["state"]["nope"] = bad["state"].pop("0.bias")
    with pytest.raises(ValueError, match="nope"):
        opt.load_state_dict(bad)
    bad = copy.deepcopy(sd)
    del bad["state"]["0.bias"]["exp_avg"]
    with pytest.raises(ValueError, match="0.bias"):
        opt.load_state_dict(bad)
    bad = copy.deepcopy(sd)
    bad["state"]["0.bias"]["exp_avg"] = torch.zeros(7)
    with pytest.raises(ValueError, match=r"0.bias/exp_avg.*\[7\]"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="'state'"):
        opt.load_state_dict({"params": []})


def test_init_state_sparse_grads():
    emb = torch.nn.Embedding(6, 2, sparse=True)
    lin = torch.nn.Linear(2, 1)
    params = {"emb.weight": emb.weight, "lin.weight": lin.weight, "lin.bias": lin.bias}
    opt = KeyedOptimizerWrapper(params, lambda ps: torch.optim.Adagrad(ps, lr=0.1))
    before = {k: v.detach().clone() for k, v in params.items()}
    opt.init_state({"emb.weight"})
    assert emb.weight.grad.is_sparse and not lin.weight.grad.is_sparse
    assert set(opt.state_dict()["state"]) == set(params)
    for k, v in params.items():
        torch.testing.assert_close(v.detach(), before[k])  # zero grads: Adagrad leaves weights unchanged
    with pytest.raises(ValueError, match="unknown sparse parameter names"):
        opt.init_state({"missing"})


def test_keyed_optimizer_bad_input():
    p = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(TypeError, match="mapping"):
        KeyedOptimizer([p], {}, [])
    with pytest.raises(TypeError, match="keys must be str"):
        KeyedOptimizer({1: p}, {}, [])
    with pytest.raises(TypeError, match="must be a tensor"):
        KeyedOptimizer({"p": 3.0}, {}, [])
    with pytest.raises(ValueError, match="not among the named params"):
        KeyedOptimizer({"p": p}, {}, [{"params": [torch.nn.Parameter(torch.ones(3))]}])
    with pytest.raises(ValueError, match="'params'"):
        KeyedOptimizer({"p": p}, {}, [{"lr": 0.1}])
    opt = KeyedOptimizer({"p": p}, {}, [{"params": [p]}])
    with pytest.raises(NotImplementedError):
        opt.add_param_group({"params": [p]})


def test_state_with_unnamed_param_is_an_error():
    p, q = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = KeyedOptimizer({"p": p}, {q: {"m": torch.zeros(2)}}, [{"params": [p]}])
    with pytest.raises(ValueError, match="no name"):
        opt.state_dict()


def test_keyed_wrapper_options_and_bad_input():
    m = _model()
    seen = {}

    def factory(ps):
        seen["arg"] = ps
        return torch.optim.SGD(ps, lr=0.1)

    opt = KeyedOptimizerWrapper(dict(m.named_parameters()), factory, pass_params_dict=True)
    assert [n for n, _ in seen["arg"]] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    opt.update_hyper_parameters({"lr": 0.3})
    assert opt.param_groups[0]["lr"] == 0.3
    with pytest.raises(ValueError, match="'nope'"):
        opt.update_hyper_parameters({"nope": 1})
    with pytest.raises(TypeError, match="callable"):
        KeyedOptimizerWrapper(dict(m.named_parameters()), None)
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        KeyedOptimizerWrapper(dict(m.named_parameters()), lambda ps: object())
    with pytest.raises(TypeError, match="mapping"):
        KeyedOptimizerWrapper(list(m.parameters()), factory)


def test_step_hooks_fire():
    m = _model()
    opt = _adam(m)
    calls = []
    opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: calls.append("post"))
    _train(m, opt, _batches(1))
    assert calls == ["pre", "post"]


def test_prepend_opt_key():
    assert CombinedOptimizer.prepend_opt_key("w", "") == "w"
    assert CombinedOptimizer.prepend_opt_key("w", "dense") == "dense.w"
    assert CombinedOptimizer.prepend_opt_key("", "dense") == "dense"
    assert CombinedOptimizer.prepend_opt_key("", "") == ""


def test_combined_optimizer_steps_children_and_prefixes_keys():
    m1, m2 = _model(), _model()
    first = KeyedOptimizerWrapper({"0.weight": m1[0].weight, "0.bias": m1[0].bias},
                                  lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9))
    second = KeyedOptimizerWrapper({"2.weight": m1[2].weight, "2.bias": m1[2].bias},
                                   lambda ps: torch.optim.Adam(ps, lr=0.05))
    combined = CombinedOptimizer([("a", first), second])
    assert [k for k, _ in combined.optimizers] == ["a", ""]
    ref1 = torch.optim.SGD(m2[0].parameters(), lr=0.1, momentum=0.9)
    ref2 = torch.optim.Adam(m2[2].parameters(), lr=0.05)
    for x in _batches(3):
        combined.zero_grad()
        ref1.zero_grad()
        ref2.zero_grad()
        m1(x).sum().backward()
        m2(x).sum().backward()
        combined.step()
        ref1.step()
        ref2.step()
    for a, b in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b)
    assert list(combined.params) == ["a.0.weight", "a.0.bias", "2.weight", "2.bias"]
    sd = combined.state_dict()
    assert set(sd["state"]) == {"a.0.weight", "a.0.bias", "2.weight", "2.bias"}
    torch.testing.assert_close(sd["state"]["a.0.bias"]["momentum_buffer"], ref1.state[m2[0].bias]["momentum_buffer"])
    assert len(combined.param_groups) == 2
    combined.save_param_groups(True)
    assert first.defaults["_save_param_groups"] and second.defaults["_save_param_groups"]
    sd = copy.deepcopy(combined.state_dict())
    assert [g["params"] for g in sd["param_groups"]] == [["a.0.bias", "a.0.weight"], ["2.bias", "2.weight"]]
    second.param_groups[0]["lr"] = 9.0
    first.state[m1[0].bias]["momentum_buffer"].zero_()
    combined.load_state_dict(sd)
    assert second.param_groups[0]["lr"] == 0.05
    torch.testing.assert_close(first.state[m1[0].bias]["momentum_buffer"], ref1.state[m2[0].bias]["momentum_buffer"])
    combined.update_hyper_parameters({"lr": 0.01})
    assert [g["lr"] for g in combined.param_groups] == [0.01, 0.01]


def test_combined_optimizer_bad_input():
    m = _model()
    a = _adam(m)
    with pytest.raises(ValueError, match="duplicate parameter key '0.weight'"):
        CombinedOptimizer([a, _adam(m)])
    CombinedOptimizer([("x", a), ("y", _adam(m))])  # prefixes make the keys unique
    with pytest.raises(TypeError, match=r"optims\[0\]"):
        CombinedOptimizer([torch.optim.SGD(m.parameters(), lr=0.1)])
    with pytest.raises(TypeError, match=r"optims\[1\]"):
        CombinedOptimizer([a, (1, a)])
    with pytest.raises(TypeError, match="list"):
        CombinedOptimizer(a)


def test_optimizer_wrapper_forwards():
    m1, m2 = _model(), _model()
    inner = _adam(m1)
    w = OptimizerWrapper(inner)
    _train(m1, w, _batches(2))
    _train(m2, torch.optim.Adam(m2.parameters(), lr=0.05), _batches(2))
    for a, b in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b)
    assert dict(w.params) == dict(inner.params) and w.param_groups is inner.param_groups
    sd = w.state_dict()
    assert sd.keys() == inner.state_dict().keys() and list(sd["state"]) == list(inner.state_dict()["state"])
    w.save_param_groups(True)
    assert "param_groups" in w.state_dict()
    with pytest.raises(TypeError, match="KeyedOptimizer"):
        OptimizerWrapper(torch.optim.SGD(m1.parameters(), lr=0.1))


# --- ShardedTensor state (2 ranks, gloo) ---------------------------------------------------------


def _sharded_state_load(rank, world_size):
    from torch.distributed._shard.sharded_tensor import empty as st_empty
    from torch.distributed._shard.sharding_spec import ChunkShardingSpec

    spec = ChunkShardingSpec(dim=0, placements=[f"rank:{r}/cpu" for r in range(world_size)])
    weight = st_empty(spec, 6, 3)
    momentum = st_empty(spec, 6, 3)
    momentum.local_shards()[0].tensor.fill_(-1.0)
    opt = KeyedOptimizer({"t0.weight": weight}, {weight: {"t0.momentum1": momentum}}, [{"params": [weight]}])
    full = torch.arange(18, dtype=torch.float32).reshape(6, 3)
    # (a) from an unsharded checkpoint tensor: each rank takes its own rows
    opt.load_state_dict({"state": {"t0.weight": {"t0.momentum1": full}}})
    got_a = momentum.local_shards()[0].tensor.clone()
    # (b) from a ShardedTensor with the same layout
    other = st_empty(spec, 6, 3)
    other.local_shards()[0].tensor.copy_(full[rank * 3:(rank + 1) * 3] * 10)
    opt.load_state_dict({"state": {"t0.weight": {"t0.momentum1": other}}})
    got_b = momentum.local_shards()[0].tensor.clone()
    live = opt.state_dict()["state"]["t0.weight"]["t0.momentum1"] is momentum
    try:
        opt.load_state_dict({"state": {"t0.weight": {"t0.momentum1": torch.zeros(5, 3)}}})
        err = ""
    except ValueError as e:
        err = str(e)
    return got_a, got_b, live, err


@pytest.mark.dist
def test_sharded_tensor_state_loads_in_place():
    out = run_multiprocess(_sharded_state_load, 2)
    full = torch.arange(18, dtype=torch.float32).reshape(6, 3)
    for rank, (got_a, got_b, live, err) in enumerate(out):
        rows = full[rank * 3:(rank + 1) * 3]
        torch.testing.assert_close(got_a, rows)
        torch.testing.assert_close(got_b, rows * 10)
        assert live
        assert "t0.weight/t0.momentum1" in err and "[5, 3]" in err
