import torch
from torch import nn

from recsys_lib.modules.lazy_extension import LazyModuleExtensionMixin, lazy_apply


def test_lazy_apply_runs_after_first_forward_only():
    calls = []

    def init(m):
        if isinstance(m, nn.Linear):
            calls.append(tuple(m.weight.shape))
            nn.init.constant_(m.weight, 0.5)

    model = nn.Sequential(nn.LazyLinear(3), nn.ReLU())
    lazy_apply(model, init)
    assert calls == []
    model(torch.randn(2, 4))
    assert calls == [(3, 4)] and (model[0].weight == 0.5).all()
    model(torch.randn(2, 4))
    assert calls == [(3, 4)]


def test_lazy_extension_passes_kwargs_to_initialize_parameters():
    class Scaled(LazyModuleExtensionMixin, nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.UninitializedParameter()

        def initialize_parameters(self, x, scale=1.0):
            self.w.materialize((x.shape[-1],))
            with torch.no_grad():
                self.w.fill_(scale)

        def forward(self, x, scale=1.0):
            return x * self.w

    m = Scaled()
    assert m(torch.ones(2, 3), scale=2.0).tolist() == [[2.0] * 3] * 2
    assert m.w.shape == (3,) and not m.has_uninitialized_params()
