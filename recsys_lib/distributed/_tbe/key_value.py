"""Key-value (SSD / DRAM) batched kernels over FBGEMM's ``SSDTableBatchedEmbeddingBags``.

Rows live in an external key-value store (RocksDB on SSD, or a DRAM hash map) behind a device cache; weights
come back as ``PartiallyMaterializedTensor``s. FBGEMM builds these stores only in its CUDA package: the CPU
package (``fbgemm-gpu-cpu``) registers neither ``torch.classes.fbgemm.EmbeddingRocksDBWrapper`` nor
``torch.classes.fbgemm.DramKVEmbeddingCacheWrapper``, so constructing a kernel there raises
``RuntimeError`` naming the missing class and CUDA (:func:`require_kv_backend`).

* :class:`KeyValueEmbeddingBag` (pooled) / :class:`KeyValueEmbedding` (sequence): ``key_value`` tables.
* zero-collision kernels (virtual tables, ``_tbe/zero_collision.py``) build on the same helpers.
"""

import inspect
import tempfile
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from torch import nn
from torch.distributed import ProcessGroup

from recsys_lib._public import public_at
from recsys_lib.distributed._sharded.table_types import GroupedEmbeddingConfig
from recsys_lib.distributed._tbe.pooled import check_features, tbe_indices_offsets
from recsys_lib.distributed._tbe.common import check_fused_dims, weights_precision
from recsys_lib.distributed._tbe.kv_optimizer import KeyValueEmbeddingFusedOptimizer
from recsys_lib.distributed._tbe.pooled import BaseBatchedEmbeddingBag
from recsys_lib.distributed._tbe.sequence import BaseBatchedEmbedding
from recsys_lib.distributed.embedding_kernel import get_state_dict
from recsys_lib.optim.fused import EmptyFusedOptimizer, FusedOptimizerModule

# FBGEMM's cache associativity (rows per cache set).
_ASSOC = 32


def kv_backend_class(backend_type: Any = None) -> str:
    """The TorchScript class FBGEMM needs for a key-value backend (``BackendType.SSD`` when None)."""
    name = getattr(backend_type, "name", "SSD")
    return "DramKVEmbeddingCacheWrapper" if name in ("DRAM", "DRAM_SSD") else "EmbeddingRocksDBWrapper"


def require_kv_backend(kernel: str, backend_type: Any = None) -> None:
    """Raises ``RuntimeError`` unless this FBGEMM build registers the key-value store ``kernel`` needs."""
    cls = kv_backend_class(backend_type)
    try:
        getattr(torch.classes.fbgemm, cls)
    except (RuntimeError, AttributeError):
        raise RuntimeError(
            f"{kernel} needs FBGEMM's key-value store torch.classes.fbgemm.{cls}, which this fbgemm_gpu build "
            f"does not register (the CPU package has none); install fbgemm-gpu for CUDA and place the tables on a "
            f"CUDA device, or use the 'fused' compute kernel"
        ) from None


def ssd_tbe_params(config: GroupedEmbeddingConfig) -> Dict[str, Any]:
    """``SSDTableBatchedEmbeddingBags`` keyword arguments from ``config.fused_params``.

    Keys the SSD TBE does not take are dropped; ``cache_sets`` defaults to ``cache_load_factor`` (0.2) of the
    local rows over the associativity, the uniform init range to the tables' mean bounds, the storage directory
    to a fresh temporary directory.
    """
    from fbgemm_gpu.tbe.ssd.training import SSDTableBatchedEmbeddingBags

    fused = dict(config.fused_params or {})
    accepted = inspect.signature(SSDTableBatchedEmbeddingBags.__init__).parameters
    params = {k: v for k, v in fused.items() if k in accepted}
    if "cache_sets" not in params:
        load = fused.get("cache_load_factor") or 0.2
        rows = sum(t.local_rows for t in config.embedding_tables)
        params["cache_sets"] = max(int(load * rows / _ASSOC), 1)
    if "ssd_uniform_init_lower" not in params or "ssd_uniform_init_upper" not in params:
        tables = config.embedding_tables
        params["ssd_uniform_init_lower"] = sum(t.get_weight_init_min() for t in tables) / len(tables)
        params["ssd_uniform_init_upper"] = sum(t.get_weight_init_max() for t in tables) / len(tables)
    params.setdefault("ssd_storage_directory", tempfile.mkdtemp())
    params.setdefault("weights_precision", weights_precision(config))
    params["table_names"] = config.table_names()
    return params


def make_kv_tbe(kernel: str, config: GroupedEmbeddingConfig, layout: Any, device: Optional[torch.device],
                pooling_mode: Any, pg: Optional[ProcessGroup], extra: Optional[Dict[str, Any]] = None,
                rows: Optional[List[int]] = None) -> nn.Module:
    """Checks the backend and builds the key-value TBE of ``config`` (equal dims, multiples of 4); ``rows``
    overrides the local row counts (virtual tables span their whole id space)."""
    require_kv_backend(kernel, (extra or {}).get("backend_type"))
    from fbgemm_gpu.tbe.ssd.training import SSDTableBatchedEmbeddingBags

    if not config.embedding_tables:
        raise ValueError(f"{kernel}: a key-value kernel needs at least one table")
    if len({t.embedding_dim for t in config.embedding_tables}) != 1:
        raise ValueError(f"{kernel}: every table of a key-value kernel must have one embedding dim, got "
                         f"{[(t.name, t.embedding_dim) for t in config.embedding_tables]}")
    check_fused_dims(layout)
    params = ssd_tbe_params(config)
    params.update(extra or {})
    tbe = SSDTableBatchedEmbeddingBags(
        embedding_specs=list(zip(rows if rows is not None else layout.rows, layout.cols)),
        feature_table_map=list(layout.feature_table_map),
        pooling_mode=pooling_mode,
        pg=pg,
        **params,
    )
    return tbe.to(device) if device is not None else tbe


class KeyValueMethods:
    """What every key-value kernel exposes (mix-in over ``self._emb_module``, ``self._optim``)."""

    _emb_module: Any
    _optim: Any
    _config: GroupedEmbeddingConfig
    _pg: Optional[ProcessGroup]

    def init_parameters(self) -> None:
        """Rows are initialised by the store on first access: nothing to do."""

    @property
    def emb_module(self) -> Any:
        return self._emb_module

    @property
    def fused_optimizer(self) -> Any:
        return self._optim

    def split_embedding_weights(self, no_snapshot: bool = True) -> Tuple[Any, Any, Any, Any]:
        """``(weights, weight ids, bucket counts, metadata)`` per table, as the TBE returns them."""
        return self._emb_module.split_embedding_weights(no_snapshot)

    def state_dict(  # type: ignore[override]
        self,
        destination: Optional[Dict[str, Any]] = None,
        prefix: str = "",
        keep_vars: bool = False,
        no_snapshot: bool = True,
    ) -> Dict[str, Any]:
        weights = self.split_embedding_weights(no_snapshot=no_snapshot)[0]
        return get_state_dict(self._config.embedding_tables, list(weights), self._pg, destination, prefix)

    def named_split_embedding_weights(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, Any]]:
        for table, weight in zip(self._config.embedding_tables, self.split_embedding_weights()[0]):
            yield (f"{prefix}." if prefix and not prefix.endswith(".") else prefix) + f"{table.name}.weight", weight

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, nn.Parameter]]:
        for name, weight in self.named_split_embedding_weights(prefix, recurse, remove_duplicate):
            param = nn.Parameter(weight)
            param._in_backward_optimizers = [EmptyFusedOptimizer()]  # type: ignore[attr-defined]
            yield name, param

    def get_named_split_embedding_weights_snapshot(self, prefix: str = "") -> Iterator[Tuple[str, Any, Any, Any, Any]]:
        """``(table name, weights with a store snapshot, None, None, None)`` per table."""
        for table, weight in zip(self._config.embedding_tables, self.split_embedding_weights(no_snapshot=False)[0]):
            yield f"{prefix}{table.name}", weight, None, None, None

    def flush(self) -> None:
        """Writes the cached rows back to the store."""
        self._emb_module.flush()

    def purge(self) -> None:
        """Empties the device cache (after loading a state dict)."""
        self._emb_module.lxu_cache_weights.zero_()
        self._emb_module.lxu_cache_state.fill_(-1)

    def create_rocksdb_hard_link_snapshot(self) -> None:
        """A RocksDB checkpoint of the store (taken before a publishing ``state_dict``)."""
        self._emb_module.create_rocksdb_hard_link_snapshot()


@public_at("recsys_lib.distributed.batched_embedding_kernel")
class KeyValueEmbeddingBag(KeyValueMethods, BaseBatchedEmbeddingBag, FusedOptimizerModule):
    """Pooled key-value kernel (``compute_kernel="key_value"``); CUDA package of FBGEMM only (module doc)."""

    def __init__(
        self,
        config: GroupedEmbeddingConfig,
        pg: Optional[ProcessGroup] = None,
        device: Optional[torch.device] = None,
        sharding_type: Optional[Any] = None,
    ) -> None:
        require_kv_backend(type(self).__name__)
        super().__init__(config, pg, device, sharding_type)
        self._supports_vbe = True
        self._emb_module = make_kv_tbe(type(self).__name__, config, self._layout, device, self._pooling_mode, pg)
        self._optim = KeyValueEmbeddingFusedOptimizer(config, self._emb_module, pg)


@public_at("recsys_lib.distributed.batched_embedding_kernel")
class KeyValueEmbedding(KeyValueMethods, BaseBatchedEmbedding, FusedOptimizerModule):
    """Sequence key-value kernel (``compute_kernel="key_value"``); CUDA package of FBGEMM only (module doc)."""

    def __init__(
        self,
        config: GroupedEmbeddingConfig,
        pg: Optional[ProcessGroup] = None,
        device: Optional[torch.device] = None,
    ) -> None:
        require_kv_backend(type(self).__name__)
        from fbgemm_gpu.split_table_batched_embeddings_ops_common import PoolingMode

        super().__init__(config, pg, device)
        self._emb_module = make_kv_tbe(type(self).__name__, config, self._layout, device, PoolingMode.NONE, pg)
        self._optim = KeyValueEmbeddingFusedOptimizer(config, self._emb_module, pg)

    def forward(self, features: Any) -> torch.Tensor:
        check_features(features, self._layout, self._check_ids)
        indices, offsets = tbe_indices_offsets(features)
        return self._emb_module(indices=indices, offsets=offsets)
