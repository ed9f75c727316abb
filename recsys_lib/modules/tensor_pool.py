"""``TensorPool``: a ``(pool_size, dim)`` tensor whose rows are written and read by id (``torchrec.modules.tensor_pool``).

Rows never written read as zeros (the pool starts zeroed, or from ``loaded_values``), as in TorchRec.
"""

from typing import Optional

import torch

from recsys_lib.modules.object_pool import check_pool_ids, ObjectPool
from recsys_lib.modules.utils import deterministic_dedup


class TensorPool(ObjectPool[torch.Tensor]):
    """Rows of equal width, indexed by id.

    Args:
        pool_size: rows ``P``.
        dim: row width ``D``.
        dtype: row dtype.
        device: pool device (default ``meta``, as in TorchRec).
        loaded_values: initial ``(P, D)`` contents.
        enable_uvm: CUDA unified memory (accepted; the pool is a plain device tensor here).

    Example::

        pool = TensorPool(pool_size=10, dim=2, dtype=torch.float, device=torch.device("cpu"))
        pool.update(ids=torch.tensor([1, 9]), values=torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        pool.lookup(torch.tensor([9]))  # tensor([[3., 4.]])
    """

    def __init__(
        self,
        pool_size: int,
        dim: int,
        dtype: torch.dtype,
        device: Optional[torch.device] = None,
        loaded_values: Optional[torch.Tensor] = None,
        enable_uvm: bool = False,
    ) -> None:
        super().__init__()
        self._pool_size = pool_size
        self._dtype = dtype
        self._device = device if device is not None else torch.device("meta")
        self._dim = dim
        self._enable_uvm = enable_uvm
        self.register_buffer("_pool", torch.zeros((pool_size, dim), dtype=dtype, device=self._device))
        if loaded_values is not None:
            if tuple(loaded_values.shape) != (pool_size, dim):
                raise ValueError(f"TensorPool: loaded_values must be ({pool_size}, {dim}), got "
                                 f"{tuple(loaded_values.shape)}")
            self._pool = loaded_values

    @property
    def pool_size(self) -> int:
        return self._pool_size

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def pool(self) -> torch.Tensor:
        return self._pool

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """Args: ids ``(N,)``. Returns: rows ``(N, D)``."""
        check_pool_ids("TensorPool.lookup", ids, self._device, self._pool_size)
        return self._pool[ids]

    def update(self, ids: torch.Tensor, values: torch.Tensor) -> None:
        """Args: ids ``(N,)``; values ``(N, D)`` of the pool's dtype and device (last of repeated ids wins)."""
        if values.dim() != 2 or values.size(1) != self._dim or values.size(0) != ids.numel():
            raise ValueError(f"TensorPool.update: values must be ({ids.numel()}, {self._dim}), got "
                             f"{tuple(values.shape)}")
        if values.dtype != self._dtype:
            raise TypeError(f"TensorPool.update: values dtype {values.dtype}, pool dtype {self._dtype}")
        if values.device != self._device:
            raise ValueError(f"TensorPool.update: values on {values.device}, pool on {self._device}")
        check_pool_ids("TensorPool.update", ids, self._device, self._pool_size)
        unique_ids, last = deterministic_dedup(ids)
        self._pool[unique_ids] = values[last]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lookup(ids)
