"""Byte layout of one quantized embedding row, and plain-PyTorch (de)quantisation of rows.

A quantized table is ``(R, row_bytes)`` uint8, one row per embedding, laid out as FBGEMM's
``IntNBitTableBatchedEmbeddingBagsCodegen`` stores it::

    INT8/INT4/INT2   | scale fp16 | bias fp16 | D*bits/8 data bytes | zero padding |
    FP16 / FP32      | D*2 or D*4 data bytes                         | zero padding |
                     '---------- row_bytes: rounded up to row_alignment (16) -------'

Integer elements are packed low bits first (INT4: element ``2k`` is the low nibble of data byte ``k``).
An element dequantises to ``q * scale + bias``. Quantisation is row-wise min/max::

    bias  = fp16(min(row))
    scale = fp16((max(row) - bias) / (2**bits - 1))
    q     = clamp(round((x - bias) / scale), 0, 2**bits - 1)

which is bit-identical to FBGEMM's ``FloatOrHalfToFusedNBitRowwiseQuantizedSBHalf`` (used when installed).
Shapes: ``R`` rows, ``D`` embedding dim.
"""

from typing import List, Optional, Tuple

import torch

from recsys_lib.modules.embedding_configs import DATA_TYPE_NUM_BITS
from recsys_lib.types import DataType
from recsys_lib.ops._fbgemm import fbgemm_available

INT_TYPES = (DataType.INT8, DataType.INT4, DataType.INT2)
SUPPORTED_TYPES = (DataType.FP32, DataType.FP16, DataType.INT8, DataType.INT4, DataType.INT2)
QPARAM_BYTES = 4  # fp16 scale + fp16 bias


def check_quant_table(name: str, dim: int, data_type: DataType) -> None:
    """Raise ``ValueError`` unless FBGEMM's inference TBE can hold a ``dim``-wide ``data_type`` table."""
    if data_type not in SUPPORTED_TYPES:
        raise ValueError(
            "quantized table '" + name + "': data_type " + str(data_type) + " is not supported; use one of "
            + str([t.value for t in SUPPORTED_TYPES])
        )
    # FBGEMM's inference kernels read rows in 4-element steps; 2-bit rows also need whole fp16 words of data.
    multiple = 8 if data_type == DataType.INT2 else 4
    if dim <= 0 or dim % multiple != 0:
        raise ValueError(
            "quantized table '" + name + "': embedding_dim " + str(dim) + " must be a positive multiple of "
            + str(multiple) + " for data_type " + data_type.value
        )


def data_bytes(dim: int, data_type: DataType) -> int:
    """Bytes of the packed elements of one row (no scale/bias, no padding)."""
    return dim * DATA_TYPE_NUM_BITS[data_type] // 8


def row_bytes(dim: int, data_type: DataType, row_alignment: int) -> int:
    """Bytes of one stored row: data + (scale, bias) for integer types, rounded up to ``row_alignment``."""
    n = data_bytes(dim, data_type) + (QPARAM_BYTES if data_type in INT_TYPES else 0)
    return (n + row_alignment - 1) // row_alignment * row_alignment


def _pack_bits(q: torch.Tensor, bits: int) -> torch.Tensor:
    """``(R, D)`` integers in ``[0, 2**bits)`` → ``(R, D*bits/8)`` uint8, low bits first."""
    per = 8 // bits
    q = q.to(torch.int32).view(q.size(0), -1, per)
    packed = torch.zeros(q.size(0), q.size(1), dtype=torch.int32, device=q.device)
    for j in range(per):
        packed |= q[:, :, j] << (bits * j)
    return packed.to(torch.uint8)


def _unpack_bits(data: torch.Tensor, bits: int, dim: int) -> torch.Tensor:
    """``(R, D*bits/8)`` uint8 → ``(R, D)`` int32 elements."""
    per = 8 // bits
    d = data.to(torch.int32)
    parts: List[torch.Tensor] = []
    for j in range(per):
        parts.append((d >> (bits * j)) & ((1 << bits) - 1))
    return torch.stack(parts, dim=2).reshape(data.size(0), dim)


def quantize_rows_reference(weight: torch.Tensor, data_type: DataType) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Plain-PyTorch quantisation of ``(R, D)`` float rows.

    Returns:
        ``(data (R, D*bits/8) uint8, scale_shift (R, 4) uint8 or None)``; ``scale_shift`` holds fp16 scale then
        fp16 bias (``None`` for FP16/FP32 tables, whose data are the float bytes).
    """
    if data_type == DataType.FP32:
        return weight.float().contiguous().view(torch.uint8), None
    if data_type == DataType.FP16:
        return weight.half().contiguous().view(torch.uint8), None
    bits = DATA_TYPE_NUM_BITS[data_type]
    w = weight.float()
    lo = w.min(dim=1, keepdim=True).values
    hi = w.max(dim=1, keepdim=True).values
    bias = lo.half()
    scale = ((hi - bias.float()) / float((1 << bits) - 1)).half()
    inv = torch.where(scale.float() == 0, torch.zeros_like(lo), 1.0 / scale.float())
    q = torch.clamp(torch.round((w - bias.float()) * inv), 0, (1 << bits) - 1)
    scale_shift = torch.cat([scale, bias], dim=1).contiguous().view(torch.uint8)
    return _pack_bits(q, bits), scale_shift


def quantize_rows(weight: torch.Tensor, data_type: DataType) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """:func:`quantize_rows_reference`, through FBGEMM's quantisation op for integer types when installed."""
    if data_type not in INT_TYPES or not fbgemm_available() or weight.dtype not in (torch.float32, torch.float16):
        return quantize_rows_reference(weight, data_type)
    fused = torch.ops.fbgemm.FloatOrHalfToFusedNBitRowwiseQuantizedSBHalf(
        weight.contiguous(), DATA_TYPE_NUM_BITS[data_type]
    )
    n = fused.size(1) - QPARAM_BYTES
    return fused[:, :n].contiguous(), fused[:, n:].contiguous()


def pack_rows(
    data: torch.Tensor, scale_shift: Optional[torch.Tensor], dim: int, data_type: DataType, row_alignment: int
) -> torch.Tensor:
    """Lay ``(data, scale_shift)`` out as stored rows ``(R, row_bytes)`` (qparams first, zero padding last)."""
    out = torch.zeros(data.size(0), row_bytes(dim, data_type, row_alignment), dtype=torch.uint8, device=data.device)
    start = 0
    if data_type in INT_TYPES:
        if scale_shift is None:
            raise ValueError("pack_rows: " + data_type.value + " rows need a (R, 4) scale_shift")
        out[:, :QPARAM_BYTES] = scale_shift
        start = QPARAM_BYTES
    out[:, start: start + data_bytes(dim, data_type)] = data
    return out


def split_rows(rows: torch.Tensor, dim: int, data_type: DataType) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Views ``(data (R, D*bits/8), scale_shift (R, 4) or None)`` of stored rows (no copy)."""
    if data_type in INT_TYPES:
        return rows[:, QPARAM_BYTES: QPARAM_BYTES + data_bytes(dim, data_type)], rows[:, :QPARAM_BYTES]
    return rows[:, : data_bytes(dim, data_type)], None


def dequantize_rows(rows: torch.Tensor, dim: int, data_type: DataType) -> torch.Tensor:
    """Stored rows ``(N, row_bytes)`` uint8 → ``(N, D)`` float32 (the reference the kernels are tested against)."""
    data, scale_shift = split_rows(rows, dim, data_type)
    if data_type == DataType.FP32:
        return data.contiguous().view(torch.float32)
    if data_type == DataType.FP16:
        return data.contiguous().view(torch.float16).float()
    assert scale_shift is not None
    qparams = scale_shift.contiguous().view(torch.float16).float()  # (N, 2): scale, bias
    q = _unpack_bits(data, DATA_TYPE_NUM_BITS[data_type], dim).float()
    return q * qparams[:, 0:1] + qparams[:, 1:2]
