"""fx.utils: markers, tracing-safe asserts, DMP-style forward wrappers."""

import pytest
import torch

from recsys_lib.fx import symbolic_trace
from recsys_lib.fx.utils import assert_fx_safe, dmp_fx_trace_forward, fake_range, fx_marker, is_marker_node


class Marked(torch.nn.Module):
    def forward(self, x):
        fx_marker("BEGIN", x)
        assert_fx_safe(x.dim() == 1, "x must be 1-D")
        return x * 3


def test_marker_nodes_and_fx_safe_assert():
    gm = symbolic_trace(Marked())
    assert sum(is_marker_node(n, "BEGIN") for n in gm.graph.nodes) == 1
    assert not any(is_marker_node(n, "END") for n in gm.graph.nodes)
    assert gm(torch.ones(2)).tolist() == [3.0, 3.0]
    with pytest.raises(AssertionError, match="1-D"):
        Marked()(torch.ones(2, 2))


def test_fake_range_is_a_source_range():
    assert isinstance(fake_range(), torch._C._jit_tree_views.SourceRange)


class Wrapper(torch.nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


class Inner(torch.nn.Module):
    def forward(self, dense, sparse):
        return dense + sparse


def test_dmp_fx_trace_forward_keeps_inner_signature():
    w = Wrapper(Inner())
    fn = dmp_fx_trace_forward(w, None)
    import inspect

    assert list(inspect.signature(fn).parameters) == ["dense", "sparse"]
    assert fn(torch.ones(1), torch.ones(1)).tolist() == [2.0]
