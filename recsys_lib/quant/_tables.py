"""Storage of quantized tables: FBGEMM inference TBEs where installed, plain uint8 rows otherwise.

Every table's rows are one ``(R_post_pruning, row_bytes)`` uint8 view (layout: ``_rows``). With FBGEMM the views
alias the TBE's host buffer (``split_embedding_weights``), so loading a state dict into them updates what the
kernel reads; without FBGEMM each table owns its rows and the plain-PyTorch kernels in ``_kernels`` read them.

State-dict entries (TorchRec's keys, under ``embedding_bags.<table>.`` / ``embeddings.<table>.``)::

    split_scale_bias=False   weight         (R, row_bytes) uint8   (INT4: UInt4Tensor, INT2: UInt2Tensor)
    split_scale_bias=True    weight         (R, data bytes) uint8  (same wrappers)
                             weight_qscale  (R, 1) fp16            (integer types only)
                             weight_qbias   (R, 1) fp16
"""

from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from recsys_lib.modules.embedding_configs import BaseEmbeddingConfig, data_type_to_sparse_type
from recsys_lib.types import DataType
from recsys_lib.ops._fbgemm import fbgemm_available
from recsys_lib.quant._rows import check_quant_table, pack_rows, row_bytes, split_rows
from recsys_lib.tensor_types import UInt2Tensor, UInt4Tensor


def table_rows(table: BaseEmbeddingConfig) -> int:
    """Stored rows of a table: ``num_embeddings_post_pruning`` when set, else ``num_embeddings``."""
    if table.num_embeddings_post_pruning is not None:
        return int(table.num_embeddings_post_pruning)
    return table.num_embeddings


def _sparse_type_of_output(output_dtype: torch.dtype) -> object:
    from fbgemm_gpu.split_embedding_configs import SparseType

    mapping = {torch.float32: SparseType.FP32, torch.float16: SparseType.FP16, torch.bfloat16: SparseType.BF16}
    if output_dtype not in mapping:
        raise ValueError("output_dtype must be one of " + str(list(mapping)) + ", got " + str(output_dtype))
    return mapping[output_dtype]


def check_output_dtype(output_dtype: torch.dtype) -> None:
    if output_dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError("output_dtype must be torch.float32, torch.float16 or torch.bfloat16, got " + str(output_dtype))


def build_tbe(
    tables: List[BaseEmbeddingConfig],
    feature_table_map: List[int],
    pooling_mode: object,
    output_dtype: torch.dtype,
    row_alignment: int,
) -> nn.Module:
    """One ``IntNBitTableBatchedEmbeddingBagsCodegen`` on CPU host memory over ``tables`` (weights zeroed)."""
    from fbgemm_gpu.split_table_batched_embeddings_ops_common import BoundsCheckMode, EmbeddingLocation
    from fbgemm_gpu.split_table_batched_embeddings_ops_inference import IntNBitTableBatchedEmbeddingBagsCodegen

    specs = [
        (t.name, table_rows(t), t.embedding_dim, data_type_to_sparse_type(t.data_type), EmbeddingLocation.HOST)
        for t in tables
    ]
    tbe = IntNBitTableBatchedEmbeddingBagsCodegen(
        embedding_specs=specs,
        feature_table_map=feature_table_map,
        pooling_mode=pooling_mode,
        device="cpu",
        # Ids are range-checked before the kernel runs (a clear error instead of FBGEMM's silent row 0).
        bounds_check_mode=BoundsCheckMode.NONE,
        output_dtype=_sparse_type_of_output(output_dtype),
        row_alignment=row_alignment,
    )
    tbe.initialize_weights()
    tbe.weights_host.zero_()
    return tbe


def tbe_table_rows(tbe: nn.Module) -> List[torch.Tensor]:
    """The TBE's per-table ``(R, row_bytes)`` uint8 views (no copy)."""
    return [w for w, _ in tbe.split_embedding_weights(split_scale_shifts=False)]  # type: ignore[operator]


def own_table_rows(table: BaseEmbeddingConfig, row_alignment: int, device: torch.device) -> torch.Tensor:
    """Zeroed storage for one table when no TBE holds it."""
    return torch.zeros(
        table_rows(table), row_bytes(table.embedding_dim, table.data_type, row_alignment),
        dtype=torch.uint8, device=device,
    )


def _wrap(data: torch.Tensor, data_type: DataType) -> torch.Tensor:
    if data_type == DataType.INT4:
        return UInt4Tensor(data)
    if data_type == DataType.INT2:
        return UInt2Tensor(data)
    return data


class TableWeights(nn.Module):
    """Holds one table's state-dict tensors (``weight`` [+ ``weight_qscale``, ``weight_qbias``]) as views of its
    stored rows ``(R, row_bytes)``; loading a state dict writes through to the rows."""

    def __init__(self, rows: torch.Tensor, table: BaseEmbeddingConfig, split_scale_bias: bool) -> None:
        super().__init__()
        if split_scale_bias:
            data, scale_shift = split_rows(rows, table.embedding_dim, table.data_type)
            self.register_buffer("weight", _wrap(data, table.data_type))
            if scale_shift is not None:
                self.register_buffer("weight_qscale", scale_shift[:, 0:2].view(torch.float16))
                self.register_buffer("weight_qbias", scale_shift[:, 2:4].view(torch.float16))
        else:
            self.register_buffer("weight", _wrap(rows, table.data_type))

    def _get_name(self) -> str:
        return "Module"


def make_table_storage(
    groups: List[List[BaseEmbeddingConfig]],
    pooling_modes: List[object],
    features_per_group: List[List[int]],
    output_dtype: torch.dtype,
    row_alignment: int,
    device: torch.device,
) -> Tuple[List[nn.Module], Dict[str, torch.Tensor]]:
    """TBEs (one per group; none without FBGEMM or off CPU) and every table's ``(R, row_bytes)`` rows by name."""
    for g in groups:
        for t in g:
            check_quant_table(t.name, t.embedding_dim, t.data_type)
    tbes: List[nn.Module] = []
    rows: Dict[str, torch.Tensor] = {}
    use_tbe = fbgemm_available() and device.type == "cpu"
    for i, g in enumerate(groups):
        if use_tbe:
            tbe = build_tbe(g, features_per_group[i], pooling_modes[i], output_dtype, row_alignment)
            tbes.append(tbe)
            for t, r in zip(g, tbe_table_rows(tbe)):
                rows[t.name] = r
        else:
            for t in g:
                rows[t.name] = own_table_rows(t, row_alignment, device)
    return tbes, rows


def hide_tbe_buffers(tbe: nn.Module) -> None:
    """Keep a TBE's bookkeeping buffers out of the owner's state dict (TorchRec shows them only with
    ``register_tbes``)."""
    tbe._non_persistent_buffers_set.update(tbe._buffers.keys())  # type: ignore[union-attr]


def assign_quantized(
    rows: torch.Tensor, table: BaseEmbeddingConfig, data: torch.Tensor, scale_shift: Optional[torch.Tensor],
    row_alignment: int,
) -> None:
    """Write ``(data, scale_shift)`` (as :func:`~recsys_lib.quant._rows.quantize_rows` returns) into stored rows."""
    if data.size(0) != rows.size(0):
        raise ValueError(
            "table '" + table.name + "': quantized weights have " + str(data.size(0)) + " rows, the table stores "
            + str(rows.size(0))
        )
    rows.copy_(pack_rows(data, scale_shift, table.embedding_dim, table.data_type, row_alignment))
