import pytest
import torch

from recsys_lib.optim import optimizers
from recsys_lib.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
from recsys_lib.optim.optimizers import in_backward_optimizer_filter
from recsys_lib.optim.rowwise_adagrad import RowWiseAdagrad


def test_sets_attributes_read_by_sharders():
    lin = torch.nn.Linear(3, 2)
    apply_optimizer_in_backward(RowWiseAdagrad, [lin.weight], {"lr": 0.5})
    w = lin.weight
    assert w._optimizer_classes == [RowWiseAdagrad]
    assert w._optimizer_kwargs == [{"lr": 0.5}]
    assert len(w._in_backward_optimizers) == 1 and isinstance(w._in_backward_optimizers[0], RowWiseAdagrad)
    assert not hasattr(lin.bias, "_in_backward_optimizers")
    assert [n for n, _ in in_backward_optimizer_filter(lin.named_parameters())] == ["bias"]


def test_sgd_runs_in_backward():
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    w0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
    x = torch.randn(4, 3)
    apply_optimizer_in_backward(torch.optim.SGD, lin.parameters(), {"lr": 0.1})
    lin(x).sum().backward()
    # d/dW sum(xW^T + b) = 1^T x for each output row; d/db = batch size
    torch.testing.assert_close(lin.weight.detach(), w0 - 0.1 * x.sum(0).expand(2, 3))
    torch.testing.assert_close(lin.bias.detach(), b0 - 0.1 * 4)
    assert lin.weight.grad is None  # torch clears grads of in-backward params


def test_rowwise_adagrad_in_backward_matches_explicit_step():
    torch.manual_seed(0)
    e1 = torch.nn.EmbeddingBag(6, 3, mode="sum")
    e2 = torch.nn.EmbeddingBag(6, 3, mode="sum", _weight=e1.weight.detach().clone())
    apply_optimizer_in_backward(RowWiseAdagrad, e1.parameters(), {"lr": 0.2})
    explicit = RowWiseAdagrad(e2.parameters(), lr=0.2)
    ids, offsets = torch.tensor([0, 2, 2, 5]), torch.tensor([0, 1])
    for _ in range(2):
        e1(ids, offsets).pow(2).sum().backward()
        explicit.zero_grad()
        e2(ids, offsets).pow(2).sum().backward()
        explicit.step()
    torch.testing.assert_close(e1.weight, e2.weight)


def test_placeholder_in_backward_fails_unless_sharded():
    lin = torch.nn.Linear(2, 1)
    apply_optimizer_in_backward(optimizers.LarsSGD, [lin.weight], {"lr": 0.1})
    assert lin.weight._optimizer_classes == [optimizers.LarsSGD]
    with pytest.raises(NotImplementedError, match="LarsSGD"):
        lin(torch.ones(1, 2)).sum().backward()


def test_bad_input():
    p = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(TypeError, match="optimizer_class"):
        apply_optimizer_in_backward("sgd", [p], {"lr": 0.1})
    with pytest.raises(TypeError, match="optimizer_class"):
        apply_optimizer_in_backward(torch.nn.Linear, [p], {"lr": 0.1})
    with pytest.raises(TypeError, match="optimizer_kwargs"):
        apply_optimizer_in_backward(torch.optim.SGD, [p], [("lr", 0.1)])
    with pytest.raises(TypeError, match="single tensor"):
        apply_optimizer_in_backward(torch.optim.SGD, p, {"lr": 0.1})
    with pytest.raises(TypeError, match=r"params\[0\]"):
        apply_optimizer_in_backward(torch.optim.SGD, [torch.ones(2)], {"lr": 0.1})
    assert not hasattr(p, "_in_backward_optimizers")
