"""State dicts of sharded quantized collections in TorchRec's keys, and the weight specs of their shards.

A sharded quantized EBC / EC keeps one local quantized kernel per rank and sharding type (``_shards``); its state
dict names the *unsharded* tables instead, as TorchRec does::

    tbes.<i>.<buffer>                          every kernel's FBGEMM buffers (when TBEs are registered)
    embedding_bags.<table>.weight              one shard: the kernel's tensor; several: a ShardedTensorBase whose
    embedding_bags.<table>.weight_qscale       local shards are the kernels' views, placed in the table
    embedding_bags.<table>.weight_qbias        (column-wise qscale / qbias: a list, one tensor per column block)

(``embeddings.<table>`` for an EC). Loading accepts the same layout, or unsharded tensors (each shard copies its
block), and writes through to the kernels. ``sharded_tbes_weights_spec`` tells, for every kernel table, which
block of which unsharded weight it holds.
"""

import bisect
import copy
from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharded_tensor import Shard, ShardedTensorBase
from torch.distributed._shard.sharded_tensor.metadata import ShardedTensorMetadata

from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._core.sharder import ShardedModule
from recsys_lib.distributed._infer.state import kernel_table_tensors
from recsys_lib.distributed._sharded.table_types import GroupedEmbeddingConfig
from recsys_lib.distributed.utils import get_bucket_metadata_from_shard_metadata
from recsys_lib.types import DataType
from recsys_lib.tensor_types import UInt2Tensor, UInt4Tensor


def _append_table_shard(d: Dict[str, List[Shard]], table_name: str, shard: Shard) -> None:
    d.setdefault(table_name, []).append(shard)


def post_state_dict_hook(
    module: nn.Module,
    destination: Dict[str, Any],
    prefix: str,
    _local_metadata: Dict[str, Any],
    tables_weights_prefix: str,
) -> None:
    """State-dict hook: add ``<prefix><tables_weights_prefix>.<table>.weight`` (+ ``weight_qscale`` /
    ``weight_qbias``) from the module's ``_table_name_to_*`` maps (see ``ShardedQuantEmbeddingModuleState``)."""
    for table, t in module._table_name_to_sharded_tensor.items():  # type: ignore[union-attr]
        destination[f"{prefix}{tables_weights_prefix}.{table}.weight"] = t
    for sfx, sharded, lists in (
        ("weight_qscale", module._table_name_to_sharded_tensor_qscale, module._table_name_to_tensors_list_qscale),
        ("weight_qbias", module._table_name_to_sharded_tensor_qbias, module._table_name_to_tensors_list_qbias),
    ):
        for table, t in sharded.items():  # type: ignore[union-attr]
            destination[f"{prefix}{tables_weights_prefix}.{table}.{sfx}"] = t
        for table, ts in lists.items():  # type: ignore[union-attr]
            destination[f"{prefix}{tables_weights_prefix}.{table}.{sfx}"] = ts


def _wrap(t: torch.Tensor, data_type: DataType) -> torch.Tensor:
    if isinstance(t, (UInt4Tensor, UInt2Tensor)):
        return t
    if data_type == DataType.INT4:
        return UInt4Tensor(t)
    if data_type == DataType.INT2:
        return UInt2Tensor(t)
    return t


def _bytes(t: torch.Tensor) -> Tuple[torch.Tensor, int]:
    """``(uint8 storage view, elements per byte)`` of a possibly 4/2-bit wrapped tensor."""
    if isinstance(t, (UInt4Tensor, UInt2Tensor)):
        return t.elem, t.N  # type: ignore[attr-defined]
    return t, 1


def _copy_block(dst: torch.Tensor, src: torch.Tensor, offsets: List[int], what: str) -> None:
    """``dst.copy_(src[block at offsets])`` in storage bytes (4/2-bit tensors are sliced in whole bytes)."""
    d, n = _bytes(dst)
    s, m = _bytes(src)
    if n != m:
        raise ValueError(f"{what}: element widths differ (destination {n} per byte, source {m} per byte)")
    if s.dim() != d.dim():
        raise ValueError(f"{what}: source has {s.dim()} dims, the shard {d.dim()}")
    r0 = offsets[0]
    if s.dim() == 1:
        block = s[r0:r0 + d.size(0)]
    else:
        c0 = offsets[1] // n
        block = s[r0:r0 + d.size(0), c0:c0 + d.size(1)]
    if block.shape != d.shape:
        raise ValueError(f"{what}: source block at {offsets} has shape {tuple(block.shape)}, the shard "
                         f"{tuple(d.shape)}")
    d.copy_(block)


class ShardedQuantEmbeddingModuleState(ShardedModule):
    """A sharded quantized collection's state in TorchRec's keys (see the module docstring).

    Subclasses call ``_initialize_torch_state`` once their kernels exist.
    """

    def _initialize_torch_state(
        self,
        tbes: Dict[nn.Module, GroupedEmbeddingConfig],
        table_name_to_parameter_sharding: Dict[str, ParameterSharding],
        tables_weights_prefix: str,
    ) -> None:
        """Build the per-table state from the kernels.

        Args:
            tbes: ``{kernel: its GroupedEmbeddingConfig}``; a kernel is a local quantized collection or an FBGEMM
                inference TBE; each table's ``local_metadata`` places its shard in the logical ``(R, D)`` table.
            table_name_to_parameter_sharding: the plan entries (accepted; the shards' places come from ``tbes``).
            tables_weights_prefix: ``"embedding_bags"`` or ``"embeddings"``.
        """
        if tables_weights_prefix not in ("embedding_bags", "embeddings"):
            raise ValueError(f"tables_weights_prefix must be 'embedding_bags' or 'embeddings', got "
                             f"{tables_weights_prefix!r}")
        self._table_name_to_local_shards: Dict[str, List[Shard]] = {}
        self._table_name_to_sharded_tensor: Dict[str, Any] = {}
        self._table_name_to_local_shards_qscale: Dict[str, List[Shard]] = {}
        self._table_name_to_sharded_tensor_qscale: Dict[str, Any] = {}
        self._table_name_to_tensors_list_qscale: Dict[str, List[torch.Tensor]] = {}
        self._table_name_to_local_shards_qbias: Dict[str, List[Shard]] = {}
        self._table_name_to_sharded_tensor_qbias: Dict[str, Any] = {}
        self._table_name_to_tensors_list_qbias: Dict[str, List[torch.Tensor]] = {}

        # Column blocks of a table are placed side by side in the state-dict weight's own columns (bytes, or 4/2-bit
        # elements), ordered by their logical column offset.
        entries: Dict[str, List[Tuple[int, int, torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor], Any]]]
        entries = {}
        for kernel, config in tbes.items():
            for table in config.embedding_tables:
                w, qscale, qbias = kernel_table_tensors(kernel, table.name)
                md = table.local_metadata
                if md is None:
                    raise ValueError(f"table {table.name!r}: its GroupedEmbeddingConfig entry has no local_metadata")
                entries.setdefault(table.name, []).append(
                    (int(md.shard_offsets[0]), int(md.shard_offsets[1]), _wrap(w, table.data_type), qscale, qbias,
                     md))
        for name, shards in entries.items():
            col_starts = sorted({c for _, c, _, _, _, _ in shards})
            column_wise = len(col_starts) > 1  # column blocks: each holds every row's qscale / qbias (a list)
            widths: Dict[int, int] = {}
            for _, c, w, _, _, _ in shards:
                widths[c] = int(w.size(1))
            placed = {c: sum(widths[x] for x in col_starts[:i]) for i, c in enumerate(col_starts)}
            for r0, c0, w, qscale, qbias, md in sorted(shards, key=lambda e: (e[0], e[1])):
                meta = ShardMetadata(shard_offsets=[r0, placed[c0]], shard_sizes=[int(w.size(0)), int(w.size(1))],
                                     placement=torch.distributed._remote_device(w.device))
                _append_table_shard(self._table_name_to_local_shards, name, Shard(tensor=w, metadata=meta))
                for q, local, lists in ((qscale, self._table_name_to_local_shards_qscale,
                                         self._table_name_to_tensors_list_qscale),
                                        (qbias, self._table_name_to_local_shards_qbias,
                                         self._table_name_to_tensors_list_qbias)):
                    if q is None:
                        continue
                    if column_wise:
                        lists.setdefault(name, [torch.empty([])] * len(col_starts))[col_starts.index(c0)] = q
                    else:
                        qmeta = ShardMetadata(shard_offsets=[r0, 0], shard_sizes=[int(q.size(0)), int(q.size(1))],
                                              placement=torch.distributed._remote_device(q.device))
                        _append_table_shard(local, name, Shard(tensor=q, metadata=qmeta))
        self._build_sharded_tensors()
        self._kernels: List[nn.Module] = list(tbes)
        self._state_load_prefix: str = ""
        self._register_state_dict_hook(_kernel_keys_hook)
        self._register_state_dict_hook(partial(post_state_dict_hook, tables_weights_prefix=tables_weights_prefix))
        self.register_load_state_dict_post_hook(_forget_kernel_keys)

    def _build_sharded_tensors(self) -> None:
        """``_table_name_to_sharded_tensor*`` from the local shards: one shard → its tensor, several → a
        ``ShardedTensorBase`` over them."""
        for local, out in ((self._table_name_to_local_shards, self._table_name_to_sharded_tensor),
                           (self._table_name_to_local_shards_qscale, self._table_name_to_sharded_tensor_qscale),
                           (self._table_name_to_local_shards_qbias, self._table_name_to_sharded_tensor_qbias)):
            out.clear()
            for name, shards in local.items():
                if len(shards) == 1:
                    out[name] = shards[0].tensor
                    continue
                rows = max(s.metadata.shard_offsets[0] + s.metadata.shard_sizes[0] for s in shards)
                cols = max(s.metadata.shard_offsets[1] + s.metadata.shard_sizes[1] for s in shards)
                global_md = ShardedTensorMetadata(shards_metadata=[s.metadata for s in shards],
                                                  size=torch.Size([rows, cols]))
                out[name] = ShardedTensorBase._init_from_local_shards_and_global_metadata(
                    local_shards=shards, sharded_tensor_metadata=global_md)

    def __deepcopy__(self, memo: Dict[int, Any]) -> "ShardedQuantEmbeddingModuleState":
        # ShardedTensorBase cannot be deep-copied: copy everything else (the local shards' tensors keep aliasing the
        # copied kernels' storage through ``memo``) and rebuild the sharded tensors over the copies.
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        skip = {"_table_name_to_sharded_tensor", "_table_name_to_sharded_tensor_qscale",
                "_table_name_to_sharded_tensor_qbias"}
        for key, value in self.__dict__.items():
            new.__dict__[key] = {} if key in skip else copy.deepcopy(value, memo)
        if "_table_name_to_local_shards" in new.__dict__:
            new._build_sharded_tensors()
        return new

    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, Any],
        prefix: str,
        local_metadata: Any,
        strict: bool,
        missing_keys: List[str],
        unexpected_keys: List[str],
        error_msgs: List[str],
    ) -> None:
        self._state_load_prefix = prefix
        # keys under a child module (the kernels' ``_shards``, a feature processor, ...) are the child's to load
        unexpected = [k for k in state_dict.keys() if k[len(prefix):].split(".")[0] not in self._modules]
        for name, dst in self.state_dict().items():
            if name.split(".")[0] in self._modules:
                continue
            key = prefix + name
            if key not in state_dict:
                missing_keys.append(key)
                continue
            src = state_dict[key]
            if isinstance(dst, ShardedTensorBase) and isinstance(src, ShardedTensorBase):
                for d in dst.local_shards():
                    match = [s for s in src.local_shards() if s.metadata.shard_offsets == d.metadata.shard_offsets
                             and s.metadata.shard_sizes == d.metadata.shard_sizes]
                    if not match:
                        raise ValueError(f"{key}: the source has no shard at {d.metadata.shard_offsets} of size "
                                         f"{d.metadata.shard_sizes} (only identically sharded state dicts load)")
                    _copy_block(d.tensor, match[0].tensor, [0, 0], key)
            elif isinstance(dst, ShardedTensorBase):
                for d in dst.local_shards():
                    _copy_block(d.tensor, src.detach(), list(d.metadata.shard_offsets), key)
            elif isinstance(dst, list):
                srcs = src if isinstance(src, list) else [src] * len(dst)
                if len(srcs) != len(dst):
                    raise ValueError(f"{key}: {len(srcs)} tensors for {len(dst)} column blocks")
                for d, s in zip(dst, srcs):
                    d.copy_(s)
            else:
                _copy_block(dst, src.detach(), [0, 0], key)
            unexpected.remove(key)
        unexpected_keys.extend(unexpected)


def _kernel_keys_hook(module: nn.Module, destination: Dict[str, Any], prefix: str, _local_metadata: Any) -> None:
    """Replace the kernels' own keys (``_shards.*``) by TorchRec's ``tbes.<i>.<buffer>`` (registered TBEs only)."""
    for key in [k for k in destination if k.startswith(prefix + "_shards.")]:
        del destination[key]
    i = 0
    for kernel in module._kernels:  # type: ignore[union-attr]
        for tbe in getattr(kernel, "tbes", []):
            for name, buf in tbe.named_buffers(recurse=False):
                if name not in tbe._non_persistent_buffers_set:
                    destination[f"{prefix}tbes.{i}.{name}"] = buf.detach()
            i += 1


def _forget_kernel_keys(module: nn.Module, incompatible_keys: Any) -> None:
    """The kernels' own keys are not part of the state dict: not missing when absent."""
    own = module._state_load_prefix + "_shards."  # type: ignore[operator]
    incompatible_keys.missing_keys[:] = [k for k in incompatible_keys.missing_keys if not k.startswith(own)]


@dataclass
class WeightSpec:
    """Where one kernel tensor sits in an unsharded weight: ``fqn`` (e.g. ``"ebc.embedding_bags.t0.weight"``),
    its block's ``shard_offsets`` / ``shard_sizes``, the ``sharding_type``, and for virtual tables the columns of the
    embedding inside the stored row (``virtual_table_dim_offsets``)."""

    fqn: str
    shard_offsets: List[int]
    shard_sizes: List[int]
    sharding_type: Optional[str]
    virtual_table_dim_offsets: Optional[List[int]] = None


def get_bucket_offsets_per_virtual_table(
    grouped_embedding_config: List[GroupedEmbeddingConfig],
    virtual_table_name_to_bucket_lengths: Dict[str, List[int]],
) -> Dict[str, List[int]]:
    """``{virtual table: first bucket of each of its shards}`` (every config must agree on a table's shards)."""
    shards_per_table: Dict[str, List[ShardMetadata]] = defaultdict(list)
    for config in grouped_embedding_config:
        for table in config.embedding_tables:
            if table.global_metadata is None:
                raise ValueError(f"table {table.name!r} has no global metadata in its grouped embedding config")
            if table.name not in virtual_table_name_to_bucket_lengths:
                continue
            shards = table.global_metadata.shards_metadata
            if table.name in shards_per_table and shards_per_table[table.name] != shards:
                raise ValueError(f"virtual table {table.name!r}: grouped configs disagree on its shards")
            shards_per_table[table.name] = shards
    return {
        name: get_bucket_metadata_from_shard_metadata(shards, len(virtual_table_name_to_bucket_lengths[name]))
        .bucket_offsets_per_shard
        for name, shards in shards_per_table.items()
    }


def get_param_id_from_type(is_sqebc: bool, is_sqmcec: bool, is_sfpebc: bool) -> str:
    """The unsharded module's attribute holding the tables (``embedding_bags``, ``embeddings``, ...)."""
    if is_sqebc:
        return "embedding_bags"
    if is_sqmcec:
        return "_embedding_module.embeddings"
    if is_sfpebc:
        return "_embedding_bag_collection.embedding_bags"
    return "embeddings"


def _virtual_rows(table: Any, buckets: Dict[str, List[int]], bucket_lengths: List[int],
                  cumulative: Dict[str, int]) -> Tuple[int, int]:
    """``(row offset, rows)`` of a bucket-wise sharded virtual table's shard: its buckets' lengths, cumulated."""
    starts = [md.shard_offsets[0] for md in table.global_metadata.shards_metadata]
    i = bisect.bisect_left(starts, table.local_metadata.shard_offsets[0])
    if i >= len(starts) or starts[i] != table.local_metadata.shard_offsets[0]:
        raise ValueError(f"virtual table {table.name!r}: local shard at {table.local_metadata.shard_offsets} is not one "
                         "of its global shards")
    first = buckets[table.name][i]
    last = buckets[table.name][i + 1] if i + 1 < len(buckets[table.name]) else None
    rows = int(sum(bucket_lengths[first:last]))
    offset = cumulative.get(table.name, 0)
    cumulative[table.name] = offset + rows
    return offset, rows


def sharded_tbes_weights_spec(
    sharded_model: nn.Module,
    virtual_table_name_to_bucket_lengths: Optional[Dict[str, List[int]]] = None,
) -> Dict[str, WeightSpec]:
    """For every kernel table of every sharded quantized EBC / EC in ``sharded_model``:
    ``{"<module>.tbes.<i>.<j>.<table>.weight" (+ "_qscale", "_qbias"): WeightSpec}`` naming the unsharded weight
    (``"<module>.embedding_bags.<table>.weight"``) and the block the kernel holds (rows, logical columns; qscale /
    qbias: all rows of the block, 2 byte columns)."""
    out: Dict[str, WeightSpec] = {}
    for fqn, module in sharded_model.named_modules():
        type_name = type(module).__name__
        is_sqebc = "ShardedQuantEmbeddingBagCollection" in type_name
        is_sqec = "ShardedQuantEmbeddingCollection" in type_name
        is_sqmcec = "ShardedQuantManagedCollisionEmbeddingCollection" in type_name
        is_sfpebc = "ShardedQuantFeatureProcessedEmbeddingBagCollection" in type_name
        is_sqmcebc = "ShardedQuantManagedCollisionEmbeddingBagCollection" in type_name
        if not (is_sqebc or is_sqec or is_sqmcec or is_sqmcebc):
            continue
        configs: Dict[nn.Module, GroupedEmbeddingConfig] = module.tbes_configs()  # type: ignore[operator]
        sharding_of: Dict[str, str] = {}
        for (sharding_type, _), infos in module.sharding_type_device_group_to_sharding_infos().items():  # type: ignore
            for info in infos:
                sharding_of[info.embedding_config.name] = sharding_type
        buckets = None
        if virtual_table_name_to_bucket_lengths is not None:
            buckets = get_bucket_offsets_per_virtual_table(list(configs.values()), virtual_table_name_to_bucket_lengths)
        cumulative: Dict[str, int] = {}
        param = get_param_id_from_type(is_sqebc, is_sqmcec, is_sfpebc)
        for i, config in enumerate(configs.values()):
            for j, table in enumerate(config.embedding_tables):
                md = table.local_metadata
                dim_offsets: Optional[List[int]] = [0, table.embedding_dim] if table.use_virtual_table else None
                if table.virtual_table_eviction_policy is not None:
                    head = table.virtual_table_eviction_policy.get_meta_header_len()
                    dim_offsets = [head, head + table.embedding_dim]
                row_offset, rows = int(md.shard_offsets[0]), int(table.local_rows)  # type: ignore[union-attr]
                virtual = virtual_table_name_to_bucket_lengths is not None and \
                    table.name in virtual_table_name_to_bucket_lengths
                if virtual:
                    row_offset, rows = _virtual_rows(table, buckets or {},  # type: ignore[arg-type]
                                                     virtual_table_name_to_bucket_lengths[table.name], cumulative)
                offsets = [row_offset, int(md.shard_offsets[1])]  # type: ignore[union-attr]
                sizes = [rows, int(table.local_cols)]
                unsharded = f"{fqn}.{param}.{table.name}"
                sharded = f"{fqn}.tbes.{i}.{j}.{table.name}"
                st = sharding_of[table.name]
                out[sharded + ".weight"] = WeightSpec(unsharded + ".weight", offsets, sizes, st, dim_offsets)
                if virtual:
                    out[sharded + ".weight_id"] = WeightSpec(unsharded + ".weight_id", [row_offset, 0], [rows, 1], st)
                for q in ("qscale", "qbias"):
                    q_offsets = copy.deepcopy(offsets)
                    q_offsets[1] = 0  # column blocks each keep every row's scale / bias
                    q_sizes = [sizes[0], 2]  # one fp16 = 2 bytes
                    out[f"{sharded}.weight_{q}"] = WeightSpec(f"{unsharded}.weight_{q}", q_offsets, q_sizes, st)
    return out
