import pytest
import torch

from recsys_lib.optim import optimizers
from recsys_lib.optim.optimizers import in_backward_optimizer_filter

PLACEHOLDERS = [
    optimizers.SGD, optimizers.LarsSGD, optimizers.LAMB, optimizers.PartialRowWiseLAMB,
    optimizers.Adam, optimizers.PartialRowWiseAdam, optimizers.Adagrad,
]


@pytest.mark.parametrize("cls", PLACEHOLDERS, ids=lambda c: c.__name__)
def test_placeholder_keeps_kwargs_and_refuses_to_step(cls):
    p = torch.nn.Parameter(torch.ones(3, 2))
    opt = cls([p], lr=0.5, eps=1e-3)
    assert opt.kwargs == {"lr": 0.5, "eps": 1e-3}
    assert opt.param_groups[0]["params"] == [p] and opt.param_groups[0]["lr"] == 0.5
    p.grad = torch.ones_like(p)
    with pytest.raises(NotImplementedError, match=cls.__name__):
        opt.step()
    assert torch.equal(p, torch.ones(3, 2))


@pytest.mark.parametrize("cls", PLACEHOLDERS, ids=lambda c: c.__name__)
def test_placeholder_bad_params(cls):
    with pytest.raises(ValueError, match="empty parameter list"):
        cls([], lr=0.1)
    with pytest.raises(TypeError):
        cls(torch.ones(2), lr=0.1)  # a bare tensor, not an iterable of tensors


def test_placeholders_are_distinct_types():
    assert len(set(PLACEHOLDERS)) == 7
    assert all(issubclass(c, torch.optim.Optimizer) for c in PLACEHOLDERS)


def test_in_backward_optimizer_filter():
    m = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    m[0].weight._in_backward_optimizers = []
    names_out = [n for n, _ in in_backward_optimizer_filter(m.named_parameters())]
    names_in = [n for n, _ in in_backward_optimizer_filter(m.named_parameters(), include=True)]
    assert names_out == ["0.bias", "1.weight", "1.bias"]
    assert names_in == ["0.weight"]
    pairs = dict(in_backward_optimizer_filter(m.named_parameters()))
    assert pairs["1.weight"] is m[1].weight


def test_in_backward_optimizer_filter_bad_input():
    with pytest.raises(TypeError, match="name, parameter"):
        list(in_backward_optimizer_filter(iter([torch.ones(1)])))
