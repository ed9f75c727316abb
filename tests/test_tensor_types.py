import pytest
import torch

from recsys_lib.tensor_types import UInt2Tensor, UInt4Tensor, down_size, up_size


def test_packed_shapes_and_bytes():
    b = torch.arange(12, dtype=torch.uint8).view(3, 4)
    t4, t2 = UInt4Tensor(b), UInt2Tensor(b)
    assert t4.shape == (3, 8) and t2.shape == (3, 16) and t4.dtype == torch.uint8
    assert torch.equal(t4.view(torch.uint8), b)
    assert up_size(2, b.shape) == (3, 8) and down_size(4, t2.shape) == (3, 4)
    assert torch.equal(t4[1:3].view(torch.uint8), b[1:3])
    assert t4.tolist() == b.tolist()


def test_copy_detach_clone_write_through():
    b = torch.zeros(2, 3, dtype=torch.uint8)
    t = UInt4Tensor(b)
    t.copy_(UInt4Tensor(torch.full((2, 3), 7, dtype=torch.uint8)))
    assert int(b.sum()) == 42  # wrote into the wrapped bytes
    c = t.clone()
    assert isinstance(c, UInt4Tensor) and torch.equal(c.view(torch.uint8), b)
    c.view(torch.uint8).zero_()
    assert int(b.sum()) == 42  # clone is a copy
    assert isinstance(t.detach(), UInt4Tensor)


def test_unsupported_ops_and_bad_elems_raise():
    with pytest.raises(TypeError, match="wraps uint8"):
        UInt4Tensor(torch.zeros(2, 2))
    with pytest.raises(NotImplementedError, match="does not support"):
        UInt4Tensor(torch.zeros(2, 2, dtype=torch.uint8)) + 1
