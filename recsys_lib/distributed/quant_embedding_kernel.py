"""Quantized inference kernels over one group of (sharded) tables: the kernel face of ``GroupedEmbeddingConfig``.

``QuantBatchedEmbeddingBag`` pools, ``QuantBatchedEmbedding`` returns one row per id; each wraps one quantized
collection (``recsys_lib.quant``) over the group's local tables (``local_rows`` x ``local_cols``), so it runs
FBGEMM's inference TBE on CPU and the plain-PyTorch kernels elsewhere. ``from_float`` quantizes a float kernel
(``BatchedDenseEmbeddingBag`` / ``BatchedFusedEmbeddingBag`` ...) whose ``qconfig`` names the dtypes.
"""

from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from recsys_lib.distributed._infer.tbe_with_length import (  # noqa: F401  (TorchRec's name here)
    IntNBitTableBatchedEmbeddingBagsCodegenWithLength,
)
from recsys_lib.distributed._sharded.table_types import GroupedEmbeddingConfig
from recsys_lib.distributed.embedding_kernel import BaseEmbedding
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig
from recsys_lib.quant._prep import module_qconfig, weight_dtype_to_data_type
from recsys_lib.quant._rows import quantize_rows, split_rows
from recsys_lib.quant.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

QuantizedWeights = Dict[str, Tuple[torch.Tensor, Optional[torch.Tensor]]]


def _local_configs(config: GroupedEmbeddingConfig, pooled: bool) -> List[Any]:
    out: List[Any] = []
    for t in config.embedding_tables:
        common = dict(num_embeddings=t.local_rows, embedding_dim=t.local_cols, name=t.name, data_type=config.data_type,
                      feature_names=list(t.feature_names))
        out.append(EmbeddingBagConfig(pooling=config.pooling, **common) if pooled  # type: ignore[arg-type]
                   else EmbeddingConfig(**common))  # type: ignore[arg-type]
    return out


def _output_dtype(fused_params: Optional[Dict[str, Any]]) -> torch.dtype:
    value = (fused_params or {}).get("output_dtype", torch.float32)
    if isinstance(value, torch.dtype):
        return value
    as_dtype = getattr(value, "as_dtype", None)  # an FBGEMM SparseType
    return as_dtype() if as_dtype is not None else torch.float32


class _QuantKernel(BaseEmbedding):
    """The shared part: one quantized collection over the group's local tables."""

    _pooled: bool = True

    def __init__(self, config: GroupedEmbeddingConfig, device: Optional[torch.device],
                 fused_params: Optional[Dict[str, Any]], quantized: Optional[QuantizedWeights]) -> None:
        super().__init__()
        self._config = config
        device = torch.device(device) if device is not None else torch.device("cpu")
        tables = _local_configs(config, self._pooled)
        dtype = _output_dtype(fused_params)
        if self._pooled:
            self._module: nn.Module = EmbeddingBagCollection(tables, config.is_weighted, device, dtype, quantized,
                                                             register_tbes=True)  # type: ignore[arg-type]
        else:
            self._module = EmbeddingCollection(tables, device, False, dtype, quantized,  # type: ignore[arg-type]
                                               register_tbes=True)

    @property
    def config(self) -> GroupedEmbeddingConfig:
        return self._config

    @property
    def emb_module(self) -> nn.Module:
        """The FBGEMM inference TBE (``IntNBitTableBatchedEmbeddingBagsCodegen``); ``ValueError`` without one."""
        tbes = self._module.tbes  # type: ignore[union-attr]
        if len(tbes) == 0:
            raise ValueError(type(self).__name__ + ": no FBGEMM kernel here (FBGEMM missing or not on CPU)")
        return tbes[0]

    def get_tbes_to_register(self) -> Dict[nn.Module, GroupedEmbeddingConfig]:
        return {tbe: self._config for tbe in self._module.tbes}  # type: ignore[union-attr]

    def split_embedding_weights(self) -> List[Tuple[torch.Tensor, Optional[torch.Tensor]]]:
        """Per table ``(data (R, D*bits/8) uint8, scale_shift (R, 4) uint8 or None)`` views of the stored rows."""
        m: Any = self._module
        if self._pooled:
            rows = {t: r for names, rs in zip(m._group_tables, m._group_rows) for t, r in zip(names, rs)}
        else:
            rows = {c.name: r for c, r in zip(m._embedding_configs, m._rows)}
        return [split_rows(rows[t.name], t.local_cols, self._config.data_type) for t in self._config.embedding_tables]

    @classmethod
    def _quantize_float(cls, module: BaseEmbedding) -> Tuple[GroupedEmbeddingConfig, QuantizedWeights]:
        qconfig = module_qconfig(module, cls.__name__)
        config: GroupedEmbeddingConfig = module.config  # type: ignore[assignment]
        data_type = weight_dtype_to_data_type(qconfig.weight().dtype, cls.__name__)
        weights = module.split_embedding_weights()  # type: ignore[operator]
        quantized: QuantizedWeights = {}
        for t, w in zip(config.embedding_tables, weights):
            quantized[t.name] = quantize_rows(w.detach().float(), data_type)
        grouped = GroupedEmbeddingConfig(
            data_type=data_type, pooling=config.pooling, is_weighted=config.is_weighted,
            has_feature_processor=config.has_feature_processor, compute_kernel=config.compute_kernel,
            embedding_tables=config.embedding_tables, fused_params=config.fused_params,
        )
        return grouped, quantized


class QuantBatchedEmbeddingBag(_QuantKernel):
    """Pooled quantized lookups of a group's tables: ``forward(KJT) -> (B, sum of local D)`` (features in the
    group's order)."""

    _pooled = True

    def __init__(self, config: GroupedEmbeddingConfig, pg: Optional[Any] = None, device: Optional[torch.device] = None,
                 fused_params: Optional[Dict[str, Any]] = None, shard_index: Optional[int] = None) -> None:
        super().__init__(config, device, fused_params, None)

    def forward(self, features: KeyedJaggedTensor, vbe_output: Optional[torch.Tensor] = None,
                vbe_output_offsets: Optional[torch.Tensor] = None) -> torch.Tensor:
        if vbe_output is not None or vbe_output_offsets is not None:
            raise ValueError("QuantBatchedEmbeddingBag: variable-batch (VBE) output buffers are not supported")
        return self._module(features).values()

    def init_parameters(self) -> None:
        return None  # quantized weights come from the float kernel or a state dict

    @classmethod
    def from_float(cls, module: BaseEmbedding, use_precomputed_fake_quant: bool = False) -> "QuantBatchedEmbeddingBag":
        """Quantize a float pooled kernel (``module.qconfig`` names the weight dtype)."""
        config, quantized = cls._quantize_float(module)
        out = cls.__new__(cls)
        _QuantKernel.__init__(out, config, next(iter(module.parameters()), torch.empty(0)).device,
                              config.fused_params, quantized)
        return out


class QuantBatchedEmbedding(_QuantKernel):
    """Sequence quantized lookups of a group's tables (one embedding dim): ``forward(KJT) -> (N, D)``."""

    _pooled = False

    def __init__(self, config: GroupedEmbeddingConfig, pg: Optional[Any] = None, device: Optional[torch.device] = None,
                 fused_params: Optional[Dict[str, Any]] = None, shard_index: Optional[int] = None) -> None:
        super().__init__(config, device, fused_params, None)

    def forward(self, features: KeyedJaggedTensor) -> torch.Tensor:
        out = self._module(features)
        names: List[str] = self._module._embedding_names  # type: ignore[assignment, union-attr]
        return torch.cat([out[n].values() for n in names], dim=0)

    @classmethod
    def from_float(cls, module: BaseEmbedding, use_precomputed_fake_quant: bool = False) -> "QuantBatchedEmbedding":
        """Quantize a float sequence kernel (``module.qconfig`` names the weight dtype)."""
        config, quantized = cls._quantize_float(module)
        out = cls.__new__(cls)
        _QuantKernel.__init__(out, config, next(iter(module.parameters()), torch.empty(0)).device,
                              config.fused_params, quantized)
        return out
