"""Base of grouped embedding kernels and the state-dict builder for sharded tables.

A kernel serves the tables of one :class:`GroupedEmbeddingConfig` on this rank. Its ``state_dict`` uses the
*unsharded* names (``"<table>.weight"``) so a sharded model checkpoints like the plain one: with a process
group each value is a ``ShardedTensor`` holding this rank's shard(s), without one a plain tensor.
"""

import abc
import copy
from collections import defaultdict
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist
from fbgemm_gpu.split_table_batched_embeddings_ops_training import SplitTableBatchedEmbeddingBagsCodegen
from torch import nn
from torch.distributed import ProcessGroup
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharded_tensor import Shard, ShardedTensor, ShardedTensorMetadata

from recsys_lib.distributed._sharded.table_types import GroupedEmbeddingConfig, ShardedEmbeddingTable


class RawIdTrackerWrapper:
    """The two calls a kernel makes into a ``RawIdTracker``: fetch the raw ids recorded for its tables, and drop
    recorded batches.

    Args:
        get_indexed_lookups: ``(table names, consumer) -> {table: (raw ids per batch, runtime meta per batch)}``.
        delete: ``(up_to_idx) -> None``.
    """

    __slots__ = ("get_indexed_lookups", "delete")

    def __init__(
        self,
        get_indexed_lookups: Callable[[List[str], Optional[str]], Dict[str, List[torch.Tensor]]],
        delete: Callable[[int], None],
    ) -> None:
        self.get_indexed_lookups = get_indexed_lookups
        self.delete = delete


class BaseEmbedding(abc.ABC, nn.Module):
    """One grouped kernel: ``forward(features: KeyedJaggedTensor) -> embeddings``."""

    _raw_id_tracker_wrapper: Optional[RawIdTrackerWrapper] = None

    def __init__(self) -> None:
        super().__init__()
        self._raw_id_tracker_wrapper = None

    def init_raw_id_tracker(
        self,
        get_indexed_lookups: Callable[[List[str], Optional[str]], Dict[str, List[torch.Tensor]]],
        delete: Callable[[int], None],
    ) -> None:
        """Connects a ``RawIdTracker`` (hash-ZCH raw ids of the rows this kernel looks up); kernels over FBGEMM's
        training TBE only (``SplitTableBatchedEmbeddingBagsCodegen``), as in TorchRec; others ignore the call."""
        if isinstance(self._modules.get("_emb_module"), SplitTableBatchedEmbeddingBagsCodegen):
            self._raw_id_tracker_wrapper = RawIdTrackerWrapper(get_indexed_lookups, delete)

    def _get_hash_zch_identities_and_metadata(
        self, features: Any
    ) -> Optional[Tuple[torch.Tensor, Optional[torch.Tensor]]]:
        """``(raw ids (N, ...), runtime meta or None)`` recorded for this kernel's tables since it last asked, in
        table order, or None (no tracker, or nothing recorded)."""
        wrapper = self._raw_id_tracker_wrapper
        tbe = self._modules.get("_emb_module")
        if wrapper is None or not isinstance(tbe, SplitTableBatchedEmbeddingBagsCodegen):
            return None
        table_names = [t.name for t in self.config.embedding_tables]
        lookups: Dict[str, Any] = wrapper.get_indexed_lookups(table_names, tbe.uuid)
        raw: List[torch.Tensor] = []
        meta: List[torch.Tensor] = []
        for table in table_names:
            if table in lookups:
                raw_ids, runtime_meta = lookups[table]
                raw.extend(raw_ids)
                meta.extend(runtime_meta)
        if not raw:
            return None
        identities = torch.cat(raw)
        return identities, (torch.cat(meta) if meta else None)

    @abc.abstractmethod
    def forward(self, features: Any) -> torch.Tensor:
        ...

    @property
    @abc.abstractmethod
    def config(self) -> GroupedEmbeddingConfig:
        ...


def load_kernels_state_dict(kernels: Sequence[nn.Module], state_dict: Mapping[str, Any], strict: bool) -> Any:
    """Loads ``state_dict`` into grouped kernels whose state dicts share one flat namespace (``"<table>.weight"``).

    Each kernel takes the entries it owns; returns ``_IncompatibleKeys``, and with ``strict`` raises ``KeyError``
    naming the missing and unexpected keys.
    """
    missing: List[str] = []
    consumed = set()
    for kernel in kernels:
        own = kernel.state_dict(keep_vars=True)
        consumed.update(k for k in own if k in state_dict)
        missing.extend(kernel.load_state_dict({k: v for k, v in state_dict.items() if k in own}, strict=False).missing_keys)
    unexpected = [k for k in state_dict if k not in consumed]
    if strict and (missing or unexpected):
        raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
    return nn.modules.module._IncompatibleKeys(missing, unexpected)


class KernelStateViews:
    """State dict and parameters of a lookup as its kernels' entries, merged in one flat namespace (no
    ``_emb_modules.i`` prefixes); a flat mix-in over ``self._emb_modules``."""

    _emb_modules: nn.ModuleList

    def state_dict(  # type: ignore[override]
        self, destination: Optional[Dict[str, Any]] = None, prefix: str = "", keep_vars: bool = False
    ) -> Dict[str, Any]:
        if destination is None:
            destination = {}
        for kernel in self._emb_modules:
            kernel.state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)
        return destination

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any:  # type: ignore[override]
        return load_kernels_state_dict(list(self._emb_modules), state_dict, strict)

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, nn.Parameter]]:
        for kernel in self._emb_modules:
            yield from kernel.named_parameters(prefix, recurse)

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, torch.Tensor]]:
        for kernel in self._emb_modules:
            yield from kernel.named_buffers(prefix, recurse)


def create_virtual_table_local_metadata(
    local_metadata: ShardMetadata,
    param: torch.Tensor,
    my_rank: int,
    offset: Optional[int] = None,
    weight_count_per_rank: Optional[List[int]] = None,
) -> None:
    """Rewrites ``local_metadata`` in place for a virtual (key-value) table shard holding ``param``.

    A virtual table has as many rows as ids seen so far, so its shard is ``param.shape`` at row ``offset``
    (default: the rows of the lower ranks, ``sum(weight_count_per_rank[:my_rank])``, or ``my_rank`` without
    counts), column 0.
    """
    if offset is None:
        offset = my_rank if weight_count_per_rank is None else sum(weight_count_per_rank[:my_rank])
    local_metadata.shard_sizes = list(param.size())
    local_metadata.shard_offsets = [offset if dim == 0 else 0 for dim in range(param.dim())]


def create_virtual_table_global_metadata(
    metadata: ShardedTensorMetadata,
    my_rank: int,
    param: torch.Tensor,
    weight_count_per_rank: Optional[List[int]],
    use_param_size_as_rows: bool,
) -> None:
    """Rewrites a virtual table's global ``metadata`` in place: shards stacked by rank along dim 0.

    Rank ``r`` holds ``weight_count_per_rank[r]`` rows (1 without counts; with ``use_param_size_as_rows``,
    ``param.size(0)`` scaled by the ratio of the planned shard sizes); this rank's shard is ``param.shape``.
    The global size becomes ``[sum of rows, *param.shape[1:]]`` and dtype / requires_grad follow ``param``.
    """
    metadata.tensor_properties.dtype = param.dtype
    metadata.tensor_properties.requires_grad = param.requires_grad
    my_planned_rows = metadata.shards_metadata[my_rank].shard_sizes[0]
    offset = 0
    for rank, shard in enumerate(metadata.shards_metadata):
        if rank == my_rank:
            rows = param.size(0)
            create_virtual_table_local_metadata(shard, param, my_rank, offset)
        else:
            if use_param_size_as_rows:
                rows = param.size(0) * shard.shard_sizes[0] // my_planned_rows
            else:
                rows = weight_count_per_rank[rank] if weight_count_per_rank is not None else 1
            shard.shard_sizes = [rows if dim == 0 else param.size(dim) for dim in range(param.dim())]
            shard.shard_offsets = [offset if dim == 0 else 0 for dim in range(param.dim())]
        offset += rows
    metadata.size = torch.Size([offset if dim == 0 else param.size(dim) for dim in range(param.dim())])


def create_virtual_sharded_tensors(
    embedding_tables: List[ShardedEmbeddingTable],
    params: List[torch.Tensor],
    pg: Optional[ProcessGroup] = None,
    prefix: str = "",
    table_name_to_weight_count_per_rank: Optional[Dict[str, List[int]]] = None,
    use_param_size_as_rows: bool = False,
) -> List[ShardedTensor]:
    """One ShardedTensor per virtual table (key ``prefix + table name``) over this rank's ``params``.

    The metadata of each table is recomputed from the current row counts (see
    :func:`create_virtual_table_global_metadata`); without a process group the result is empty (there is no
    group to build ShardedTensors over).
    """
    local_shards: Dict[str, List[Shard]] = defaultdict(list)
    global_metadata: Dict[str, ShardedTensorMetadata] = {}
    my_rank = dist.get_rank(pg) if pg is not None else (dist.get_rank() if dist.is_initialized() else 0)
    counts = table_name_to_weight_count_per_rank or {}
    for table, param in zip(embedding_tables, params):
        if not table.use_virtual_table:
            raise ValueError(f"table {table.name!r} is not a virtual table (use_virtual_table=False)")
        if table.global_metadata is None or table.local_metadata is None:
            raise ValueError(f"table {table.name!r}: virtual sharded tensors need local and global shard metadata")
        key = f"{prefix}{table.name}"
        md = copy.deepcopy(table.global_metadata)
        create_virtual_table_global_metadata(md, my_rank, param, counts.get(table.name), use_param_size_as_rows)
        global_metadata[key] = md
        local_md = copy.deepcopy(md.shards_metadata[my_rank])
        local_md.placement = table.local_metadata.placement
        local_shards[key].append(Shard(tensor=param, metadata=local_md))
    if pg is None:
        return []
    return [
        ShardedTensor._init_from_local_shards_and_global_metadata(shards, global_metadata[key], process_group=pg)
        for key, shards in local_shards.items()
    ]


def get_state_dict(
    embedding_tables: List[ShardedEmbeddingTable],
    params: Union[nn.ModuleList, Sequence[Union[nn.Module, torch.Tensor]]],
    pg: Optional[ProcessGroup] = None,
    destination: Optional[Dict[str, Any]] = None,
    prefix: str = "",
) -> Dict[str, Any]:
    """Writes ``prefix + "<table>.weight"`` for each table into ``destination``.

    Args:
        embedding_tables: this rank's table shards, in the order of ``params``.
        params: one local weight (or module with ``.weight``) per shard, ``local_rows x local_cols``.
        pg: with a process group and ``global_metadata`` set, values are ShardedTensors built from the local
            shards (several shards of one table on this rank become one ShardedTensor); otherwise the local
            tensor itself.

    Returns:
        ``destination`` (a new dict when None).
    """
    if destination is None:
        destination = {}
    if len(embedding_tables) != len(params):
        raise ValueError(f"get_state_dict: {len(embedding_tables)} tables but {len(params)} weights")
    local_shards: Dict[str, List[Shard]] = defaultdict(list)
    global_metadata: Dict[str, Any] = {}
    for table, param in zip(embedding_tables, params):
        weight = param.weight if isinstance(param, nn.Module) else param
        if not isinstance(weight, torch.Tensor):
            raise TypeError(f"table {table.name!r}: expected a weight tensor, got {type(weight).__name__}")
        key = f"{prefix}{table.name}.weight"
        if pg is None or table.global_metadata is None:
            destination[key] = weight
            continue
        if table.local_metadata is None:
            raise ValueError(f"table {table.name!r}: global_metadata is set but local_metadata is missing")
        local_shards[key].append(Shard(tensor=weight, metadata=table.local_metadata))
        global_metadata[key] = table.global_metadata
    for key, shards in local_shards.items():
        destination[key] = ShardedTensor._init_from_local_shards_and_global_metadata(
            shards, global_metadata[key], process_group=pg
        )
    return destination


def _copy_into(dst: Any, src: Any, key: str) -> None:
    """Copies a tensor or ShardedTensor ``src`` into ``dst`` of the same kind and local shapes."""
    with torch.no_grad():
        if isinstance(dst, ShardedTensor):
            if not isinstance(src, ShardedTensor):
                raise TypeError(f"state_dict[{key!r}]: expected a ShardedTensor, got {type(src).__name__}")
            dst_shards, src_shards = dst.local_shards(), src.local_shards()
            if len(dst_shards) != len(src_shards):
                raise ValueError(f"state_dict[{key!r}]: {len(src_shards)} local shards, expected {len(dst_shards)}")
            for d, s in zip(dst_shards, src_shards):
                _check_shape(d.tensor, s.tensor, key)
                d.tensor.detach().copy_(s.tensor)
            return
        if isinstance(src, ShardedTensor):
            shards = src.local_shards()
            if len(shards) != 1:
                raise ValueError(f"state_dict[{key!r}]: cannot load {len(shards)} shards into one tensor")
            src = shards[0].tensor
        _check_shape(dst, src, key)
        dst.detach().copy_(src)


def _check_shape(dst: torch.Tensor, src: torch.Tensor, key: str) -> None:
    if tuple(dst.shape) != tuple(src.shape):
        raise ValueError(f"state_dict[{key!r}]: shape {list(src.shape)} does not match {list(dst.shape)}")


def load_into_state_dict(
    own: Mapping[str, Any], state_dict: Mapping[str, Any], strict: bool = True
) -> Tuple[List[str], List[str]]:
    """Copies ``state_dict`` values into the tensors of ``own`` (a ``state_dict(keep_vars=True)``).

    Returns ``(missing_keys, unexpected_keys)``; with ``strict`` either being non-empty raises ``KeyError``.
    """
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if strict and (missing or unexpected):
        raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
    for key, dst in own.items():
        if key in state_dict:
            _copy_into(dst, state_dict[key], key)
    return missing, unexpected
