"""A per-table view into the flat weight buffer of a table-batched-embedding (TBE) kernel.

A TBE stores all its tables in one 1-D buffer: table ``t`` occupies ``[start_offset, end_offset)`` as
``num_embeddings x embedding_dim`` rows. :class:`TableBatchedEmbeddingSlice` is an ``nn.Parameter``
that *is* that region (shared storage, no copy), so ``named_parameters()`` can show one parameter per
table with TorchRec's names while the kernel keeps its single buffer. Its ``.grad`` is the matching
region of the buffer's gradient, so a dense optimizer handed the slices updates the buffer.

Example::

    flat = nn.Parameter(torch.arange(10.0))
    t1 = TableBatchedEmbeddingSlice(flat, 4, 10, 3, 2)   # rows 4..9 of the buffer as a 3 x 2 table
    with torch.no_grad():
        t1[0, 0] = -1.0
    assert flat[4] == -1.0
"""

from typing import Optional

import torch
from torch import nn


class TableBatchedEmbeddingSlice(nn.Parameter):
    """``data[start_offset:end_offset].view(num_embeddings, embedding_dim)`` as a Parameter.

    Args:
        data: the TBE's flat buffer (1-D).
        start_offset / end_offset: element range of this table in the buffer.
        num_embeddings / embedding_dim: the table's shape ``R x D`` (``R * D == end_offset - start_offset``).
    """

    def __new__(
        cls,
        data: torch.Tensor,
        start_offset: int,
        end_offset: int,
        num_embeddings: int,
        embedding_dim: int,
    ) -> "TableBatchedEmbeddingSlice":
        if data.dim() != 1:
            raise ValueError(f"data must be the 1-D TBE buffer, got shape {list(data.shape)}")
        if not 0 <= start_offset <= end_offset <= data.numel():
            raise ValueError(f"slice [{start_offset}, {end_offset}) does not fit a buffer of {data.numel()} elements")
        if (end_offset - start_offset) != num_embeddings * embedding_dim:
            raise ValueError(
                f"slice [{start_offset}, {end_offset}) holds {end_offset - start_offset} elements, "
                f"expected num_embeddings * embedding_dim = {num_embeddings} * {embedding_dim}"
            )
        view = data.detach()[start_offset:end_offset].view(num_embeddings, embedding_dim)
        self = torch.Tensor._make_subclass(cls, view, data.requires_grad)
        self._original_tensor = data
        self._start_offset = start_offset
        self._end_offset = end_offset
        self._num_embeddings = num_embeddings
        self._embedding_dim = embedding_dim
        return self

    def __init__(
        self,
        data: torch.Tensor,
        start_offset: int,
        end_offset: int,
        num_embeddings: int,
        embedding_dim: int,
    ) -> None:
        # All the work is in __new__ (nn.Parameter's own __init__ takes no arguments).
        pass

    @property
    def grad(self) -> Optional[torch.Tensor]:  # type: ignore[override]
        g = self._original_tensor.grad
        if g is None:
            return None
        return g[self._start_offset : self._end_offset].view(self._num_embeddings, self._embedding_dim)

    @grad.setter
    def grad(self, value: Optional[torch.Tensor]) -> None:
        if value is None:
            # Gradients live on the whole buffer; dropping one table's drops the buffer's (zero_grad).
            self._original_tensor.grad = None
            return
        if self._original_tensor.grad is None:
            self._original_tensor.grad = torch.zeros_like(self._original_tensor)
        with torch.no_grad():
            self._original_tensor.grad[self._start_offset : self._end_offset].copy_(value.reshape(-1))

    @property
    def original_tensor(self) -> torch.Tensor:
        return self._original_tensor

    def __deepcopy__(self, memo: dict) -> nn.Parameter:
        # A copy is a plain, independent parameter with this table's values.
        if id(self) in memo:
            return memo[id(self)]
        result = nn.Parameter(self.detach().clone(), requires_grad=self.requires_grad)
        memo[id(self)] = result
        return result

    def __reduce_ex__(self, proto: int) -> object:
        # Pickling (torch.save) stores the table's values as a plain Parameter.
        return (nn.Parameter, (self.detach().clone(), self.requires_grad))

    def __repr__(self) -> str:
        return f"TableBatchedEmbeddingSlice({self.detach()!r}, rows={self._num_embeddings}, dim={self._embedding_dim})"
