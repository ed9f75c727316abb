"""fx: modules that build/index/permute KJTs trace into graphs equal to eager, and the graphs script."""

from typing import Dict

import torch

from recsys_lib.fx import Tracer, is_fx_tracing, symbolic_trace
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, KeyedTensor


class BuildPermute(torch.nn.Module):
    def forward(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        kjt = KeyedJaggedTensor(keys=["f1", "f2"], values=features["values"], lengths=features["lengths"])
        p = kjt.permute([1, 0])
        jt = p["f1"]
        return jt.to_padded_dense(3).float().sum(1) + p.values()[:3].float()


def _features():
    return {"values": torch.arange(1, 8), "lengths": torch.tensor([2, 0, 1, 1, 1, 2])}


def test_trace_matches_eager_and_records_kjt_calls():
    m = BuildPermute()
    gm = symbolic_trace(m)
    torch.testing.assert_close(gm(_features()), m(_features()))
    # f1 padded rows [1,2,0],[0,0,0],[3,0,0] -> sums [3,0,3]; permuted values start [4,5,6]
    assert gm(_features()).tolist() == [7.0, 5.0, 9.0]
    targets = [n.target for n in gm.graph.nodes]
    assert KeyedJaggedTensor in targets and "permute" in targets


def test_traced_graph_scripts():
    gm = symbolic_trace(BuildPermute())
    scripted = torch.jit.script(gm)
    torch.testing.assert_close(scripted(_features()), BuildPermute()(_features()))


class Inner(torch.nn.Module):
    def forward(self, x):
        return x.relu() * 2


class Outer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Inner()

    def forward(self, x):
        return self.inner(x) + 1


def test_leaf_modules_by_class_name():
    m = Outer()
    x = torch.tensor([[-1.0, 2.0]])
    inlined = symbolic_trace(m)
    assert not any(n.op == "call_module" for n in inlined.graph.nodes)
    kept = symbolic_trace(m, leaf_modules=["Inner"])
    assert [n.target for n in kept.graph.nodes if n.op == "call_module"] == ["inner"]
    torch.testing.assert_close(kept(x), m(x))
    torch.testing.assert_close(inlined(x), torch.tensor([[1.0, 5.0]]))


class UsesConstantKJT(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.kjt = KeyedJaggedTensor(["a"], torch.tensor([5, 6, 7]), lengths=torch.tensor([1, 2]))
        self.kt = KeyedTensor(["k"], [2], torch.ones(2, 2))
        self.jt = JaggedTensor(torch.tensor([1.0, 2.0]), lengths=torch.tensor([2]))

    def forward(self, x: torch.Tensor):
        return x, self.kjt, self.kt, self.jt


def test_constant_jagged_objects_become_constructor_calls():
    gm = symbolic_trace(UsesConstantKJT())
    targets = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert KeyedJaggedTensor in targets and KeyedTensor in targets and JaggedTensor in targets
    _, kjt, kt, jt = gm(torch.zeros(1))
    assert kjt.values().tolist() == [5, 6, 7] and kjt.lengths().tolist() == [1, 2]
    assert kt.keys() == ["k"] and jt.values().tolist() == [1.0, 2.0]


def test_is_fx_tracing_flag():
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(is_fx_tracing())
            return x + 1

    symbolic_trace(Probe())
    Probe()(torch.zeros(1))
    assert seen == [True, False]
