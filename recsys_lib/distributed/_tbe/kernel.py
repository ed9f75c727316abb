"""Building FBGEMM TBE modules for a grouped config, and the per-table views every batched kernel exposes.

:class:`TableBatch` is held (not inherited) by the four batched kernels: it knows the table layout, the
TBE module and the process group, and answers the per-table questions (weights, slices, state dict,
initialisation) the same way for pooled and sequence, fused and dense kernels.
"""

from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
from torch import nn
from torch.distributed import ProcessGroup

from recsys_lib.distributed._tbe.fused_optimizer import EmbeddingFusedOptimizer
from recsys_lib.distributed._tbe.common import (
    TableLayout,
    check_fused_dims,
    compute_device_and_location,
    fused_tbe_kwargs,
    table_layout,
    weights_precision,
)
from recsys_lib.distributed.composable.table_batched_embedding_slice import TableBatchedEmbeddingSlice
from recsys_lib.distributed.embedding_kernel import get_state_dict, load_into_state_dict
from recsys_lib.distributed._sharded.table_types import GroupedEmbeddingConfig


def _append_prefix(prefix: str, name: str) -> str:
    if prefix == "" or prefix.endswith("."):
        return prefix + name
    return f"{prefix}.{name}"


def make_fused_tbe(
    config: GroupedEmbeddingConfig, layout: TableLayout, device: torch.device, pooling_mode: Any
) -> Tuple[nn.Module, bool]:
    """A ``SplitTableBatchedEmbeddingBagsCodegen`` for ``config`` and whether ids must be checked in Python.

    On CPU the TBE's own bounds check is replaced by :func:`check_features` (which raises naming the table;
    FBGEMM's would clamp or abort); ``fused_params["bounds_check_mode"] = BoundsCheckMode.NONE`` turns both off.
    """
    from fbgemm_gpu.split_table_batched_embeddings_ops_common import BoundsCheckMode
    from fbgemm_gpu.split_table_batched_embeddings_ops_training import SplitTableBatchedEmbeddingBagsCodegen

    check_fused_dims(layout)
    kwargs = fused_tbe_kwargs(config, device)
    compute_device, location = compute_device_and_location(config.compute_kernel, device)
    check_ids = False
    if device.type == "cpu":
        check_ids = kwargs.get("bounds_check_mode", None) != BoundsCheckMode.NONE
        kwargs["bounds_check_mode"] = BoundsCheckMode.NONE
    tbe = SplitTableBatchedEmbeddingBagsCodegen(
        embedding_specs=[(r, c, location, compute_device) for r, c in zip(layout.rows, layout.cols)],
        feature_table_map=list(layout.feature_table_map),
        pooling_mode=pooling_mode,
        weights_precision=weights_precision(config),
        device=device,
        table_names=list(layout.table_names),
        **kwargs,
    )
    return tbe, check_ids


def make_dense_tbe(
    config: GroupedEmbeddingConfig, layout: TableLayout, device: torch.device, pooling_mode: Any
) -> nn.Module:
    """A ``DenseTableBatchedEmbeddingBagsCodegen`` (one autograd parameter ``weights``) for ``config``."""
    from fbgemm_gpu.split_table_batched_embeddings_ops_training import DenseTableBatchedEmbeddingBagsCodegen

    tbe = DenseTableBatchedEmbeddingBagsCodegen(
        list(zip(layout.rows, layout.cols)),
        feature_table_map=list(layout.feature_table_map),
        weights_precision=weights_precision(config),
        pooling_mode=pooling_mode,
        use_cpu=device.type == "cpu",
    )
    return tbe if device.type == "cpu" else tbe.to(device)


def fused_flat_weights(tbe: nn.Module) -> torch.Tensor:
    """The flat buffer holding a fused TBE's tables (host, device or UVM, whichever is in use)."""
    for name in ("weights_host", "weights_dev", "weights_uvm"):
        t = getattr(tbe, name, None)
        if t is not None and t.numel() > 0:
            return t
    return tbe.weights_host


class TableBatch:
    """Per-table views over one TBE module (composition helper of the batched kernels).

    Args:
        config: the grouped config; ``layout``: its shapes; ``tbe``: the FBGEMM module;
        flat_weights: the TBE's 1-D weight buffer; pg: process group for ShardedTensor state dicts.
    """

    def __init__(
        self,
        config: GroupedEmbeddingConfig,
        layout: TableLayout,
        tbe: nn.Module,
        flat_weights: torch.Tensor,
        pg: Optional[ProcessGroup],
    ) -> None:
        self.config = config
        self.layout = layout
        self.tbe = tbe
        self.pg = pg
        offsets = layout.weight_offsets
        # A list, not a dict: several column shards of one table may sit on this rank under one name.
        self.slices: List[Tuple[str, TableBatchedEmbeddingSlice]] = [
            (name, TableBatchedEmbeddingSlice(flat_weights, off, off + r * c, r, c))
            for name, off, r, c in zip(layout.table_names, offsets, layout.rows, layout.cols)
        ]

    def split_weights(self) -> List[torch.Tensor]:
        """Per-table ``local_rows x local_cols`` views (no copies)."""
        return list(self.tbe.split_embedding_weights())

    def init_parameters(self) -> None:
        """Applies each table's ``init_fn`` (default ``uniform(±sqrt(1/num_embeddings))``) to its rows."""
        with torch.no_grad():
            for table, weight in zip(self.config.embedding_tables, self.split_weights()):
                if weight.numel() == 0:
                    continue
                if table.init_fn is not None:
                    table.init_fn(weight)
                else:
                    weight.uniform_(table.get_weight_init_min(), table.get_weight_init_max())

    def state_dict(
        self, destination: Optional[Dict[str, Any]], prefix: str, keep_vars: bool
    ) -> Dict[str, Any]:
        weights = self.split_weights()
        if not keep_vars:
            weights = [w.detach() for w in weights]
        return get_state_dict(self.config.embedding_tables, weights, self.pg, destination, prefix)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool) -> Tuple[List[str], List[str]]:
        return load_into_state_dict(self.state_dict(None, "", True), state_dict, strict)

    def named_split_embedding_weights(self, prefix: str = "") -> Iterator[Tuple[str, torch.Tensor]]:
        for name, weight in zip(self.layout.table_names, self.split_weights()):
            yield _append_prefix(prefix, f"{name}.weight"), weight

    def named_parameters_by_table(self) -> Iterator[Tuple[str, TableBatchedEmbeddingSlice]]:
        yield from self.slices

    def named_slices(self, prefix: str = "") -> Iterator[Tuple[str, nn.Parameter]]:
        for name, param in self.slices:
            yield _append_prefix(prefix, f"{name}.weight"), param


class TableBatchMethods:
    """Per-table methods shared by the pooled and sequence batched kernels (a flat mix-in over
    ``self._batch: TableBatch``; the kernels' class hierarchy stays one level below ``BaseEmbedding``)."""

    _batch: TableBatch
    _config: GroupedEmbeddingConfig
    _emb_module: nn.Module

    def _init_fields(
        self,
        config: GroupedEmbeddingConfig,
        pg: Optional[ProcessGroup],
        device: Optional[torch.device],
        sharding_type: Optional[Any],
    ) -> None:
        """The fields every batched kernel sets right after ``nn.Module.__init__``."""
        self._config = config
        self._pg = pg
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        self._sharding_type = sharding_type
        self._layout = table_layout(config)
        self._check_ids = True

    @property
    def config(self) -> GroupedEmbeddingConfig:
        return self._config

    @property
    def emb_module(self) -> nn.Module:
        return self._emb_module

    def init_parameters(self) -> None:
        self._batch.init_parameters()

    def state_dict(  # type: ignore[override]
        self, destination: Optional[Dict[str, Any]] = None, prefix: str = "", keep_vars: bool = False
    ) -> Dict[str, Any]:
        """``{prefix + "<table>.weight": local weight or ShardedTensor}`` (unsharded key names)."""
        return self._batch.state_dict(destination, prefix, keep_vars)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any:  # type: ignore[override]
        """Copies ``"<table>.weight"`` entries (tensors or ShardedTensors) into the tables in place."""
        missing, unexpected = self._batch.load_state_dict(state_dict, strict)
        return nn.modules.module._IncompatibleKeys(missing, unexpected)

    def split_embedding_weights(self) -> List[torch.Tensor]:
        """Per-table ``local_rows x local_cols`` views of the TBE buffer."""
        return self._batch.split_weights()

    def named_split_embedding_weights(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, torch.Tensor]]:
        yield from self._batch.named_split_embedding_weights(prefix)

    def named_parameters_by_table(self) -> Iterator[Tuple[str, TableBatchedEmbeddingSlice]]:
        """``(table_name, TableBatchedEmbeddingSlice)`` per table (views into the TBE buffer)."""
        yield from self._batch.named_parameters_by_table()

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, torch.Tensor]]:
        # The TBE's buffers (offsets, optimizer state) are internal; tables are reported as parameters and
        # the fused optimizer's state through ``fused_optimizer``.
        yield from ()

    def flush(self) -> None:
        """Writes cached rows back (caching kernels); a no-op otherwise."""

    def purge(self) -> None:
        """Drops cached rows (caching kernels); a no-op otherwise."""


class FusedTableBatchMethods:
    """What fused kernels add (mix-in): table slices as parameters, no buffers, the fused optimizer."""

    _batch: TableBatch
    _emb_module: nn.Module
    _optim: Any

    def _build_tables(self, pooling_mode: Any) -> None:
        """Creates the fused TBE, its per-table views and the fused optimizer, then initialises the tables."""
        config, layout, pg = self._config, self._layout, self._pg
        self._emb_module, self._check_ids = make_fused_tbe(config, layout, self._device, pooling_mode)
        self._batch = TableBatch(config, layout, self._emb_module, fused_flat_weights(self._emb_module), pg)
        tag_in_backward(self._batch)
        self.init_parameters()
        self._optim = EmbeddingFusedOptimizer(config, self._emb_module, pg=pg)

    def refresh_tables(self) -> None:
        """Rebuilds the per-table views after the TBE's weight buffers were replaced (e.g. a precision change)."""
        self._batch = TableBatch(self._config, self._layout, self._emb_module, fused_flat_weights(self._emb_module),
                                 self._pg)
        tag_in_backward(self._batch)

    @property
    def fused_optimizer(self) -> Any:
        return self._optim

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, nn.Parameter]]:
        yield from self._batch.named_slices(prefix)

    def flush(self) -> None:
        self._emb_module.flush()

    def purge(self) -> None:
        self._emb_module.reset_cache_states()


def tag_in_backward(batch: TableBatch) -> None:
    """Marks the table slices as optimised in backward (``_in_backward_optimizers``), so dense optimizers
    and DDP leave them alone."""
    from recsys_lib.optim.fused import EmptyFusedOptimizer

    for _, param in batch.slices:
        param._in_backward_optimizers = [EmptyFusedOptimizer()]  # type: ignore[attr-defined]


class DenseTableBatchMethods:
    """What dense kernels add (mix-in): one flat autograd parameter, named ``"<t0>/<t1>/....weight"``."""

    _batch: TableBatch
    _emb_module: nn.Module

    def _build_tables(self, pooling_mode: Any) -> None:
        """Creates the dense TBE and its per-table views, then initialises the tables."""
        self._emb_module = make_dense_tbe(self._config, self._layout, self._device, pooling_mode)
        self._batch = TableBatch(self._config, self._layout, self._emb_module, self._emb_module.weights, self._pg)
        self.init_parameters()

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, nn.Parameter]]:
        name = "/".join(self._batch.layout.table_names) + ".weight"
        yield _append_prefix(prefix, name), self._emb_module.weights
