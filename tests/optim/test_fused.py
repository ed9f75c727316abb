import pytest
import torch

from recsys_lib.optim.fused import EmptyFusedOptimizer, FusedOptimizer, FusedOptimizerModule
from recsys_lib.optim.keyed import CombinedOptimizer, KeyedOptimizerWrapper


class _ScaledFused(FusedOptimizer):
    """A toy fused optimizer: its 'backward update' is done by hand in the test; step only counts."""

    def __init__(self, params):
        self.steps = 0
        state = {p: {"momentum1": torch.zeros(p.shape[0])} for p in params.values()}
        super().__init__(params, state, [{"params": list(params.values()), "lr": 0.1}])

    def step(self, closure=None):
        self.steps += 1

    def zero_grad(self, set_to_none=False):
        pass


def test_fused_optimizer_is_abstract():
    with pytest.raises(TypeError):
        FusedOptimizer({}, {}, [])
    with pytest.raises(TypeError):
        FusedOptimizerModule()


def test_empty_fused_optimizer():
    opt = EmptyFusedOptimizer()
    assert opt.state_dict() == {"state": {}}
    assert opt.step() is None and opt.zero_grad() is None
    assert dict(opt.params) == {} and list(opt.param_groups) == []
    opt.load_state_dict({"state": {}})


def test_fused_in_combined_checkpoint_roundtrip():
    w = torch.nn.Parameter(torch.randn(4, 2))
    fused = _ScaledFused({"t0.weight": w})
    dense = KeyedOptimizerWrapper({"b": torch.nn.Parameter(torch.randn(3))}, lambda ps: torch.optim.SGD(ps, lr=0.1))
    combined = CombinedOptimizer([("sparse", fused), dense])
    combined.step()
    assert fused.steps == 1
    fused.state[w]["momentum1"].copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    sd = combined.state_dict()
    assert list(sd["state"]) == ["sparse.t0.weight"]
    saved = sd["state"]["sparse.t0.weight"]["momentum1"].clone()
    live = fused.state[w]["momentum1"]
    live.zero_()
    combined.load_state_dict({"state": {"sparse.t0.weight": {"momentum1": saved}}})
    assert fused.state[w]["momentum1"] is live  # loaded in place
    torch.testing.assert_close(live, torch.tensor([1.0, 2.0, 3.0, 4.0]))


class _Module(torch.nn.Module, FusedOptimizerModule):
    def __init__(self):
        super().__init__()
        self._opt = EmptyFusedOptimizer()

    @property
    def fused_optimizer(self):
        return self._opt


def test_fused_optimizer_module_property():
    m = _Module()
    assert isinstance(m.fused_optimizer, EmptyFusedOptimizer)
