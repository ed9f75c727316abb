"""Quantized communication: ``QCommsConfig`` → per-collective FBGEMM codecs (``QuantizedCommCodecs``).

``get_qcomm_codecs_registry(config)`` returns ``{CommOp.value: QuantizedCommCodecs}`` for the output-dist
collectives (pooled all-to-all, pooled reduce-scatter, sequence all-to-all), or ``None`` when both
precisions are FP32 (nothing to encode).

Fallbacks (documented, with a warning):

* reduce-scatter forward in FP8 or MX4 → FP16: these encodings cannot be summed on the wire by a
  native reduce-scatter. (recsys_lib's all-to-all + local-sum path decodes before summing and could
  carry them, but the registry keeps TorchRec's precisions so results match across backends.)
* gloo carries FP16 and BF16 payloads natively for all-to-all and reduce-scatter (checked on torch 2.13),
  so unlike TorchRec no BF16 → FP16 downgrade is applied on CPU.
"""

import logging
from dataclasses import dataclass
from enum import Enum, unique
from typing import Any, Dict, List, Optional

import torch
from fbgemm_gpu.quantize_comm import QuantizedCommCodec as FbgemmQuantizedCommCodec
from fbgemm_gpu.split_embedding_configs import SparseType
from fbgemm_gpu.triton.common import RoundingMode

from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.enums import CommOp

logger = logging.getLogger(__name__)


@unique
class CommType(Enum):
    """Wire precision of a collective payload."""

    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    FP8 = "fp8"
    INT8 = "int8"
    MX4 = "mx4"

    def __str__(self) -> str:
        return self.value


_SPARSE_TYPE = {
    CommType.FP32: SparseType.FP32,
    CommType.FP16: SparseType.FP16,
    CommType.BF16: SparseType.BF16,
    CommType.FP8: SparseType.FP8,
    CommType.INT8: SparseType.INT8,
    CommType.MX4: SparseType.MX4,
}


def comm_type_to_sparse_type(comm_type: CommType) -> SparseType:
    """FBGEMM ``SparseType`` of a ``CommType``."""
    if comm_type not in _SPARSE_TYPE:
        raise ValueError(f"unknown comm type {comm_type!r}; expected one of {[c.value for c in CommType]}")
    return _SPARSE_TYPE[comm_type]


@dataclass
class QCommsConfig:
    """Precisions (and quantizer options) of the forward payload and the backward gradient."""

    forward_precision: CommType = CommType.FP32
    backward_precision: CommType = CommType.FP32
    forward_loss_scale: Optional[float] = None
    backward_loss_scale: Optional[float] = None
    fp8_quantize_dim: Optional[int] = None
    fp8_quantize_dim_bwd: Optional[int] = None
    fp8_bwd_uses_143: Optional[bool] = False
    fp8_output_dtype: Optional[SparseType] = None  # deprecated spelling of output_dtype
    mx4_quantize_dim: Optional[int] = None
    mx4_quantize_dim_bwd: Optional[int] = None
    mx4_rounding_mode: Optional[RoundingMode] = None
    output_dtype: Optional[SparseType] = None  # dtype decoded payloads come back in (default: the input's)

    def __post_init__(self) -> None:
        if self.fp8_output_dtype is not None:
            if self.output_dtype is None:
                self.output_dtype = self.fp8_output_dtype
            logger.warning("QCommsConfig.fp8_output_dtype is deprecated; use output_dtype")
        for name in ("forward_precision", "backward_precision"):
            value = getattr(self, name)
            if not isinstance(value, CommType):
                raise TypeError(f"QCommsConfig.{name} must be a CommType, got {value!r}")
        if self.fp8_quantize_dim is not None and self.forward_precision != CommType.FP8:
            raise ValueError(f"fp8_quantize_dim is set but forward_precision is {self.forward_precision}")
        if self.fp8_quantize_dim_bwd is not None and self.backward_precision != CommType.FP8:
            raise ValueError(f"fp8_quantize_dim_bwd is set but backward_precision is {self.backward_precision}")
        if self.mx4_quantize_dim is not None and self.forward_precision != CommType.MX4:
            raise ValueError(f"mx4_quantize_dim is set but forward_precision is {self.forward_precision}")
        if self.mx4_quantize_dim_bwd is not None and self.backward_precision != CommType.MX4:
            raise ValueError(f"mx4_quantize_dim_bwd is set but backward_precision is {self.backward_precision}")


def _codec(precision: CommType, loss_scale: Optional[float], row_dim: Optional[int], is_fwd: bool,
           rounding_mode: Optional[RoundingMode], output_dtype: Optional[SparseType]) -> FbgemmQuantizedCommCodec:
    kwargs: Dict[str, Any] = {}
    if output_dtype is not None:  # only when set: older FBGEMM codecs lack the argument
        kwargs["output_dtype"] = output_dtype
    return FbgemmQuantizedCommCodec(
        comm_precision=comm_type_to_sparse_type(precision),
        loss_scale=loss_scale,
        row_dim=row_dim,
        is_fwd=is_fwd,
        rounding_mode=rounding_mode,
        **kwargs,
    )


def get_qcomm_codecs(qcomms_config: Optional[QCommsConfig]) -> QuantizedCommCodecs:
    """The FBGEMM codec pair of a config (identity codecs when ``qcomms_config`` is ``None``)."""
    if qcomms_config is None:
        return QuantizedCommCodecs()
    c = qcomms_config
    fwd_dim = c.fp8_quantize_dim if c.forward_precision == CommType.FP8 else c.mx4_quantize_dim
    bwd_dim = c.fp8_quantize_dim_bwd if c.backward_precision == CommType.FP8 else c.mx4_quantize_dim_bwd
    return QuantizedCommCodecs(
        forward=_codec(c.forward_precision, c.forward_loss_scale, fwd_dim, True, c.mx4_rounding_mode, c.output_dtype),
        backward=_codec(c.backward_precision, c.backward_loss_scale, bwd_dim,
                        not bool(c.fp8_bwd_uses_143), c.mx4_rounding_mode, c.output_dtype),
    )


_RS_UNSUMMABLE = (CommType.FP8, CommType.MX4)


def get_qcomm_codecs_registry(
    qcomms_config: QCommsConfig,
    comm_ops: Optional[List[CommOp]] = None,
    device: Optional[torch.device] = None,
) -> Optional[Dict[str, QuantizedCommCodecs]]:
    """``{CommOp.value: codecs}`` for ``comm_ops`` (default: the three output-dist collectives).

    Returns ``None`` when both precisions are FP32.
    """
    if qcomms_config.forward_precision == CommType.FP32 and qcomms_config.backward_precision == CommType.FP32:
        return None
    ops = comm_ops if comm_ops is not None else [
        CommOp.POOLED_EMBEDDINGS_ALL_TO_ALL, CommOp.POOLED_EMBEDDINGS_REDUCE_SCATTER, CommOp.SEQUENCE_EMBEDDINGS_ALL_TO_ALL,
    ]
    registry: Dict[str, QuantizedCommCodecs] = {}
    for op in ops:
        config = qcomms_config
        if op == CommOp.POOLED_EMBEDDINGS_REDUCE_SCATTER and config.forward_precision in _RS_UNSUMMABLE:
            logger.warning(
                "reduce-scatter forward cannot carry %s; using fp16 for %s", config.forward_precision, op.value
            )
            config = QCommsConfig(
                forward_precision=CommType.FP16, backward_precision=config.backward_precision,
                forward_loss_scale=config.forward_loss_scale, backward_loss_scale=config.backward_loss_scale,
                fp8_quantize_dim_bwd=config.fp8_quantize_dim_bwd, fp8_bwd_uses_143=config.fp8_bwd_uses_143,
                mx4_quantize_dim_bwd=config.mx4_quantize_dim_bwd, mx4_rounding_mode=config.mx4_rounding_mode,
            )
        registry[op.value] = get_qcomm_codecs(config)
    return registry
