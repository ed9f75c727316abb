"""Pure helpers shared by the batched (TBE) kernels at construction: table layout, FBGEMM arguments.

The per-batch input helpers (feature/id checks, indices/offsets) live beside the pooled forward in ``pooled.py``.

Layout of a TBE's flat weight buffer (tables in group order, each row-major)::

    | t0: R0 x D0 | t1: R1 x D1 | ... |      table t starts at  sum_{s<t} R_s * D_s

``feature_table_map[f]`` is the table index of feature ``f`` (features in group order).
"""

import inspect
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch

from recsys_lib.distributed._sharded.table_types import (
    EmbeddingComputeKernel,
    GroupedEmbeddingConfig,
    OptimType,
    compute_kernel_to_embedding_location,
)
from recsys_lib.distributed.fused_params import tbe_fused_params
from recsys_lib.modules.embedding_configs import data_type_to_sparse_type

# Optimizers the CPU build of FBGEMM's training TBE can run inside backward.
CPU_FUSED_OPTIMIZERS = ("exact_sgd", "exact_adagrad", "exact_row_wise_adagrad", "ema_in_place_row_wise_adagrad")
# fused_params keys that configure recsys_lib, not the FBGEMM module.
_NON_TBE_KEYS = ("use_one_tbe_per_table",)
# Keys whose value may be given as a recsys_lib DataType and must reach FBGEMM as a SparseType.
_SPARSE_TYPE_KEYS = ("cache_precision", "output_dtype", "weights_precision")


@dataclass(frozen=True)
class TableLayout:
    """Shapes of the tables one kernel serves and where each sits in the flat buffer."""

    table_names: Tuple[str, ...]
    rows: Tuple[int, ...]
    cols: Tuple[int, ...]
    feature_table_map: Tuple[int, ...]
    feature_names: Tuple[str, ...]

    @property
    def weight_offsets(self) -> Tuple[int, ...]:
        """Element offset of each table in the flat buffer."""
        offs, acc = [], 0
        for r, c in zip(self.rows, self.cols):
            offs.append(acc)
            acc += r * c
        return tuple(offs)

    @property
    def uniform_dim(self) -> Optional[int]:
        """The shared column count, or None when tables differ."""
        return self.cols[0] if len(set(self.cols)) == 1 else None

    def rows_per_feature(self) -> List[int]:
        return [self.rows[t] for t in self.feature_table_map]

    def table_of_feature(self, f: int) -> str:
        return self.table_names[self.feature_table_map[f]]


def table_layout(config: GroupedEmbeddingConfig) -> TableLayout:
    """Reads the local shard shapes of ``config`` (``local_rows`` x ``local_cols`` per table)."""
    if len(config.embedding_tables) == 0:
        raise ValueError("a grouped embedding config needs at least one table")
    names, rows, cols, ftm, feats = [], [], [], [], []
    for i, t in enumerate(config.embedding_tables):
        if t.local_cols <= 0 or t.local_rows < 0:
            raise ValueError(
                f"table {t.name!r}: local_rows/local_cols must describe this rank's shard "
                f"(local_rows >= 0, local_cols > 0), got {t.local_rows} x {t.local_cols}"
            )
        if t.num_features() == 0:
            raise ValueError(f"table {t.name!r} has no feature_names; a kernel needs at least one feature per table")
        names.append(t.name)
        rows.append(t.local_rows)
        cols.append(t.local_cols)
        ftm.extend([i] * t.num_features())
        feats.extend(t.feature_names)
    return TableLayout(tuple(names), tuple(rows), tuple(cols), tuple(ftm), tuple(feats))


def compute_device_and_location(compute_kernel: EmbeddingComputeKernel, device: torch.device) -> Tuple[Any, Any]:
    """(ComputeDevice, EmbeddingLocation) for a fused kernel: CPU tables live in HOST memory."""
    from fbgemm_gpu.split_table_batched_embeddings_ops_common import EmbeddingLocation
    from fbgemm_gpu.split_table_batched_embeddings_ops_training import ComputeDevice

    if device.type == "cpu":
        return ComputeDevice.CPU, EmbeddingLocation.HOST
    if device.type == "cuda":
        return ComputeDevice.CUDA, compute_kernel_to_embedding_location(compute_kernel)
    raise ValueError(f"fused embedding kernels run on cpu or cuda devices, got {device}")


def _to_emb_optim_type(value: Any, tables: List[str]) -> Any:
    from fbgemm_gpu.split_embedding_configs import EmbOptimType

    if isinstance(value, EmbOptimType):
        return value
    by_name = {
        OptimType.SGD: EmbOptimType.EXACT_SGD,
        OptimType.ADAGRAD: EmbOptimType.EXACT_ADAGRAD,
        OptimType.ROWWISE_ADAGRAD: EmbOptimType.EXACT_ROWWISE_ADAGRAD,
        OptimType.ADAM: EmbOptimType.ADAM,
        OptimType.PARTIAL_ROWWISE_ADAM: EmbOptimType.PARTIAL_ROWWISE_ADAM,
        OptimType.LAMB: EmbOptimType.LAMB,
        OptimType.PARTIAL_ROWWISE_LAMB: EmbOptimType.PARTIAL_ROWWISE_LAMB,
        OptimType.LARS_SGD: EmbOptimType.LARS_SGD,
    }
    if isinstance(value, OptimType) and value in by_name:
        return by_name[value]
    if isinstance(value, str):
        try:
            return EmbOptimType(value.lower())
        except ValueError:
            pass
    raise ValueError(
        f"tables {tables}: fused_params['optimizer'] = {value!r} is not an FBGEMM EmbOptimType "
        f"(e.g. EmbOptimType.EXACT_ROWWISE_ADAGRAD) or a supported OptimType"
    )


def fused_tbe_kwargs(config: GroupedEmbeddingConfig, device: torch.device) -> Dict[str, Any]:
    """FBGEMM keyword arguments from ``config.fused_params``, checked.

    Private switches and recsys_lib-only keys are dropped, ``DataType`` values become ``SparseType``, the
    optimizer becomes an ``EmbOptimType``; unknown keys and optimizers the CPU build cannot run raise
    ``ValueError`` naming the tables.
    """
    from fbgemm_gpu.split_table_batched_embeddings_ops_training import SplitTableBatchedEmbeddingBagsCodegen

    tables = config.table_names()
    kwargs = dict(tbe_fused_params(config.fused_params) or {})
    for key in _NON_TBE_KEYS:
        kwargs.pop(key, None)
    for key in _SPARSE_TYPE_KEYS:
        if key in kwargs and kwargs[key] is not None and not hasattr(kwargs[key], "as_dtype"):
            kwargs[key] = data_type_to_sparse_type(kwargs[key])
    if "optimizer" in kwargs:
        kwargs["optimizer"] = _to_emb_optim_type(kwargs["optimizer"], tables)
    accepted = set(inspect.signature(SplitTableBatchedEmbeddingBagsCodegen.__init__).parameters) - {"self"}
    unknown = sorted(k for k in kwargs if k not in accepted)
    if unknown:
        raise ValueError(f"tables {tables}: fused_params keys {unknown} are not arguments of FBGEMM's training TBE")
    if device.type == "cpu":
        opt = kwargs.get("optimizer", None)
        name = opt.value if opt is not None else "exact_sgd"
        if name not in CPU_FUSED_OPTIMIZERS:
            raise ValueError(
                f"tables {tables}: fused optimizer {name!r} is not supported on CPU; "
                f"the CPU kernel supports {list(CPU_FUSED_OPTIMIZERS)} (run on a GPU for the others, "
                f"or use the dense kernel with a regular optimizer)"
            )
    return kwargs


def weights_precision(config: GroupedEmbeddingConfig) -> Any:
    return data_type_to_sparse_type(config.data_type)


def check_fused_dims(layout: TableLayout) -> None:
    """FBGEMM's fused kernels vectorise rows by 4 floats: every local dim must be a multiple of 4."""
    bad = [(n, c) for n, c in zip(layout.table_names, layout.cols) if c % 4 != 0]
    if bad:
        raise ValueError(
            f"fused embedding kernels need local embedding dims divisible by 4; tables (name, dim) {bad} are not"
        )
