"""Quantized communication codecs: how a collective's payload is encoded on the wire.

A codec pair (``QuantizedCommCodecs``) holds one codec for the forward payload and one for the
gradient payload of the backward collective. ``NoOpQuantizedCommCodec`` sends tensors unchanged.
FBGEMM-backed codecs come from ``recsys_lib.distributed.fbgemm_qcomm_codec``.
"""

from dataclasses import dataclass, field
from typing import Any, Generic, Optional, TypeVar

import torch

from recsys_lib._public import public_at

QuantizationContext = TypeVar("QuantizationContext")


@public_at("recsys_lib.distributed.types")
class QuantizedCommCodec(Generic[QuantizationContext]):
    """Interface of a payload codec (encode before sending, decode after receiving).

    ``calc_quantized_size(n)`` is the number of elements that ``encode`` produces for ``n`` input
    elements, so split sizes can be computed before the payload exists.
    """

    def encode(self, input_tensor: torch.Tensor, ctx: Optional[QuantizationContext] = None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__}.encode")

    def decode(self, input_grad: torch.Tensor, ctx: Optional[QuantizationContext] = None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__}.decode")

    @property
    def quantized_dtype(self) -> torch.dtype:
        raise NotImplementedError(f"{type(self).__name__}.quantized_dtype")

    def calc_quantized_size(self, input_len: int, ctx: Optional[QuantizationContext] = None) -> int:
        raise NotImplementedError(f"{type(self).__name__}.calc_quantized_size")

    def create_context(self) -> Optional[QuantizationContext]:
        return None

    def padded_size(
        self,
        input_tensor: torch.Tensor,
        dim_per_rank: Any,
        my_rank: int,
        qcomm_ctx: Optional[QuantizationContext],
    ) -> Any:
        # Codecs without row padding keep the tensor's own size.
        return input_tensor.size(1), 0


@public_at("recsys_lib.distributed.types")
class NoOpQuantizedCommCodec(QuantizedCommCodec[None]):
    """Identity codec: the payload travels in its own dtype."""

    def encode(self, input_tensor: torch.Tensor, ctx: Optional[None] = None) -> torch.Tensor:
        return input_tensor

    def decode(self, input_grad: torch.Tensor, ctx: Optional[None] = None) -> torch.Tensor:
        return input_grad

    @property
    def quantized_dtype(self) -> torch.dtype:
        return torch.float32

    def calc_quantized_size(self, input_len: int, ctx: Optional[None] = None) -> int:
        return input_len

    def create_context(self) -> Optional[None]:
        return None


@dataclass
@public_at("recsys_lib.distributed.types")
class QuantizedCommCodecs:
    """Codec pair of one collective: ``forward`` for the payload, ``backward`` for its gradient."""

    # one shared identity codec as the default, as TorchRec (it is stateless)
    forward: QuantizedCommCodec = NoOpQuantizedCommCodec()
    backward: QuantizedCommCodec = NoOpQuantizedCommCodec()
