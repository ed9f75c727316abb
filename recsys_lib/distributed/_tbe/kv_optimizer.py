"""Keyed views of the in-backward optimizers of key-value (SSD / DRAM) TBEs.

A key-value TBE (``fbgemm_gpu.tbe.ssd.training.SSDTableBatchedEmbeddingBags``) keeps rows in an external store;
its weights are ``PartiallyMaterializedTensor``s and its optimizer state comes from ``get_optimizer_state``
(one ``{name: tensor}`` dict per table shard). These optimizers only *expose* that state as ShardedTensors and
push ``param_groups[0]["lr"]`` to the TBE on ``zero_grad()``/``step()``; FBGEMM updates the rows in backward.

The optimizer-state placements are pure functions of the table's shard metadata:

=================  =====================================  ===========================================
state kind         shard of table shard ``i``             global size
=================  =====================================  ===========================================
single value       ``[i]`` of size ``[1]``                 ``[number of shards]``
row-wise           rows of the shard (column shards are     ``[rows]`` (x column shards for CW)
                   stacked by column order)
point-wise         same as the weight shard                same as the weight
=================  =====================================  ===========================================
"""

import copy
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch.distributed import ProcessGroup
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharded_tensor import Shard, ShardedTensor, ShardedTensorMetadata, TensorProperties

from recsys_lib._public import public_at
from recsys_lib.distributed._sharded.table_types import DTensorMetadata, GroupedEmbeddingConfig, ShardedEmbeddingTable
from recsys_lib.optim.fused import FusedOptimizer


@public_at("recsys_lib.distributed.batched_embedding_kernel")
@dataclass
class ShardParams:
    """The pieces of one table gathered from its shards on this rank (key-value optimizer bookkeeping)."""

    optimizer_states: List[Optional[Tuple[torch.Tensor]]]
    optimizer_states_keys: List[torch.Tensor]
    local_metadata: List[ShardMetadata]
    global_metadata: ShardedTensorMetadata
    embedding_weights: List[torch.Tensor]
    dtensor_metadata: List[DTensorMetadata]


def _state_properties(state: torch.Tensor) -> TensorProperties:
    return TensorProperties(dtype=state.dtype, layout=state.layout, requires_grad=False)


def _placement_on(md: ShardMetadata, device: torch.device) -> Any:
    placement = copy.deepcopy(md.placement)
    if placement is not None:
        placement._device = device  # type: ignore[attr-defined]
    return placement


@public_at("recsys_lib.distributed.batched_embedding_kernel")
class KeyValueEmbeddingFusedOptimizer(FusedOptimizer):
    """Keyed optimizer over the tables of one key-value TBE (``"<table>.weight"``, ``"<table>.momentum1"``...).

    Args:
        config: the kernel's grouped config (tables with shard metadata, in kernel order).
        emb_module: the key-value TBE (``get_learning_rate``, ``set_learning_rate``, ``get_optimizer_state``,
            ``split_embedding_weights``).
        pg: process group of the ShardedTensors.
    """

    def __init__(
        self,
        config: GroupedEmbeddingConfig,
        emb_module: Any,
        pg: Optional[ProcessGroup] = None,
    ) -> None:
        self._emb_module = emb_module
        self._pg = pg
        all_states = list(emb_module.get_optimizer_state(None))
        weights = list(emb_module.split_embedding_weights()[0])
        tables = copy.deepcopy(config.embedding_tables)
        by_table: Dict[str, ShardParams] = {}
        for i, table in enumerate(tables):
            if table.local_metadata is None or table.global_metadata is None:
                raise ValueError(f"table {table.name!r}: a key-value optimizer needs shard metadata")
            table.local_metadata.placement._device = torch.device("cpu")  # type: ignore[union-attr]
            sp = by_table.setdefault(
                table.name, ShardParams([], [], [], table.global_metadata, [], [])
            )
            states = all_states[i] if i < len(all_states) else None
            sp.optimizer_states.append(tuple(states.values()) if states else None)  # type: ignore[arg-type]
            if states:
                sp.optimizer_states_keys.append(list(states.keys()))  # type: ignore[arg-type]
            sp.local_metadata.append(table.local_metadata)
            sp.dtensor_metadata.append(table.dtensor_metadata)
            sp.embedding_weights.append(weights[i])
            sp.global_metadata = table.global_metadata
        params: Dict[str, Any] = {}
        state: Dict[Any, Dict[str, Any]] = {}
        seen = set()
        for table in tables:
            if table.name in seen:
                continue
            seen.add(table.name)
            sp = by_table[table.name]
            sp.global_metadata.tensor_properties.dtype = sp.embedding_weights[0].dtype
            shards = [Shard(w, md) for w, md in zip(sp.embedding_weights, sp.local_metadata)]
            weight = ShardedTensor._init_from_local_shards_and_global_metadata(shards, sp.global_metadata, process_group=pg)
            params[f"{table.name}.weight"] = weight
            state[weight] = {}
            self.sharding_dim = 1 if table.local_cols != table.embedding_dim else 0
            self.is_grid_sharded = table.local_cols != table.embedding_dim and table.local_rows != table.num_embeddings
            if any(s is None for s in sp.optimizer_states):
                continue
            num_states = min(len(s) for s in sp.optimizer_states)  # type: ignore[arg-type]
            for idx in range(num_states):
                key = "momentum1" if idx == 0 else str(sp.optimizer_states_keys[0][idx])  # type: ignore[index]
                state[weight][f"{table.name}.{key}"] = self.get_sharded_optim_state(idx + 1, key, sp, table)
        param_group = {"params": list(params.values()), "lr": float(emb_module.get_learning_rate())}
        super().__init__(params, state, [param_group])

    def get_sharded_optim_state(
        self,
        momentum_idx: int,
        state_key: str,
        shard_params: ShardParams,
        table_config: ShardedEmbeddingTable,
    ) -> ShardedTensor:
        """State ``momentum_idx`` (1-based) of a table as a ShardedTensor placed per the module table."""
        first = shard_params.optimizer_states[0][momentum_idx - 1]  # type: ignore[index]
        gmd = shard_params.global_metadata
        if first.nelement() == 1 and state_key != "momentum1":
            mapping, st_md = self.get_optimizer_single_value_shard_metadata_and_global_metadata(gmd, first)
        elif first.dim() == 1:
            mapping, st_md = self.get_optimizer_rowwise_shard_metadata_and_global_metadata(
                gmd, first, self.sharding_dim, self.is_grid_sharded
            )
        else:
            mapping, st_md = self.get_optimizer_pointwise_shard_metadata_and_global_metadata(gmd, first)
        by_offsets = {(tuple(k.shard_offsets), tuple(k.shard_sizes)): v for k, v in mapping.items()}
        shards = [
            Shard(states[momentum_idx - 1], by_offsets[(tuple(md.shard_offsets), tuple(md.shard_sizes))])  # type: ignore[index]
            for states, md in zip(shard_params.optimizer_states, shard_params.local_metadata)
        ]
        return ShardedTensor._init_from_local_shards_and_global_metadata(shards, st_md, process_group=self._pg)

    def get_optimizer_single_value_shard_metadata_and_global_metadata(
        self,
        table_global_metadata: ShardedTensorMetadata,
        optimizer_state: torch.Tensor,
    ) -> Tuple[Dict[ShardMetadata, ShardMetadata], ShardedTensorMetadata]:
        """One value per table shard: shard ``i`` of the state is ``[i]`` of a ``[num_shards]`` tensor."""
        mapping: Dict[ShardMetadata, ShardMetadata] = {}
        for i, md in enumerate(table_global_metadata.shards_metadata):
            mapping[md] = ShardMetadata([i], [1], _placement_on(md, optimizer_state.device))
        size = torch.Size([len(table_global_metadata.shards_metadata)])
        return mapping, ShardedTensorMetadata(list(mapping.values()), size, _state_properties(optimizer_state))

    def get_optimizer_rowwise_shard_metadata_and_global_metadata(
        self,
        table_global_metadata: ShardedTensorMetadata,
        optimizer_state: torch.Tensor,
        sharding_dim: int,
        is_grid_sharded: bool = False,
    ) -> Tuple[Dict[ShardMetadata, ShardMetadata], ShardedTensorMetadata]:
        """One value per row of each shard. Column shards (``sharding_dim == 1``) are stacked in column
        order (each keeps its own per-row state); grid shards are stacked in shard order."""
        shards = list(table_global_metadata.shards_metadata)
        if sharding_dim == 1:
            shards.sort(key=lambda md: md.shard_offsets[1])
        mapping: Dict[ShardMetadata, ShardMetadata] = {}
        rolling = 0
        for i, md in enumerate(shards):
            offset = md.shard_offsets[0]
            if is_grid_sharded:
                offset = rolling
                rolling += md.shard_sizes[0]
            elif sharding_dim == 1:
                offset = i * md.shard_sizes[0]
            mapping[md] = ShardMetadata([offset], [md.shard_sizes[0]], _placement_on(md, optimizer_state.device))
        rows = table_global_metadata.size[0]
        if is_grid_sharded:
            total = rolling
        elif sharding_dim == 1:
            total = rows * len(mapping)
        else:
            total = rows
        md_out = ShardedTensorMetadata(list(mapping.values()), torch.Size([total]), _state_properties(optimizer_state))
        return mapping, md_out

    def get_optimizer_pointwise_shard_metadata_and_global_metadata(
        self,
        table_global_metadata: ShardedTensorMetadata,
        optimizer_state: torch.Tensor,
    ) -> Tuple[Dict[ShardMetadata, ShardMetadata], ShardedTensorMetadata]:
        """One value per weight element: placed exactly like the weight."""
        mapping: Dict[ShardMetadata, ShardMetadata] = {}
        for md in table_global_metadata.shards_metadata:
            mapping[md] = ShardMetadata(
                list(md.shard_offsets), list(md.shard_sizes), _placement_on(md, optimizer_state.device)
            )
        return mapping, ShardedTensorMetadata(
            list(mapping.values()), table_global_metadata.size, _state_properties(optimizer_state)
        )

    def zero_grad(self, set_to_none: bool = False) -> None:
        self._emb_module.set_learning_rate(self.param_groups[0]["lr"])

    def step(self, closure: Any = None) -> None:
        self._emb_module.set_learning_rate(self.param_groups[0]["lr"])


@public_at("recsys_lib.distributed.batched_embedding_kernel")
class ZeroCollisionKeyValueEmbeddingFusedOptimizer(FusedOptimizer):
    """Keyed optimizer of a zero-collision key-value TBE: weights are the virtual ShardedTensors the kernel
    built (rows = ids seen), states are read from the TBE for exactly those ids.

    Args:
        config: the kernel's grouped config.
        emb_module: the key-value TBE (``split_optimizer_states(sorted_id_tensor)``, learning rate accessors).
        sharded_embedding_weights_by_table: one virtual ShardedTensor per table.
        table_name_to_weight_count_per_rank: rows per rank of each table (for the state metadata).
        sharded_embedding_weight_ids: the ids of those rows (one ShardedTensor per table).
        pg: process group of the ShardedTensors.
    """

    def __init__(
        self,
        config: GroupedEmbeddingConfig,
        emb_module: Any,
        sharded_embedding_weights_by_table: List[ShardedTensor],
        table_name_to_weight_count_per_rank: Dict[str, List[int]],
        sharded_embedding_weight_ids: Optional[List[ShardedTensor]] = None,
        pg: Optional[ProcessGroup] = None,
    ) -> None:
        from recsys_lib.distributed.embedding_kernel import create_virtual_sharded_tensors

        self._emb_module = emb_module
        self._pg = pg
        self._config = config
        self._table_name_to_weight_count_per_rank = table_name_to_weight_count_per_rank
        self._sharded_embedding_weight_ids = sharded_embedding_weight_ids
        names = config.table_names()
        if len(sharded_embedding_weights_by_table) != len(names):
            raise ValueError(f"{len(sharded_embedding_weights_by_table)} weights for {len(names)} tables {names}")
        params = {f"{n}.weight": w for n, w in zip(names, sharded_embedding_weights_by_table)}
        sorted_ids = None
        if sharded_embedding_weight_ids is not None:
            sorted_ids = [st.local_shards()[0].tensor.view(-1) for st in sharded_embedding_weight_ids]
        all_states = emb_module.split_optimizer_states(sorted_ids)
        state: Dict[Any, Dict[str, Any]] = {w: {} for w in params.values()}
        for table, weight, states in zip(config.embedding_tables, params.values(), all_states):
            for idx, st in enumerate(states):
                key = "momentum1" if idx == 0 else f"momentum{idx + 1}"
                sharded = create_virtual_sharded_tensors(
                    [table], [st], pg, "", table_name_to_weight_count_per_rank
                )
                state[weight][f"{table.name}.{key}"] = sharded[0] if sharded else st
        param_group = {"params": list(params.values()), "lr": float(emb_module.get_learning_rate())}
        super().__init__(params, state, [param_group])

    def zero_grad(self, set_to_none: bool = False) -> None:
        self._emb_module.set_learning_rate(self.param_groups[0]["lr"])

    def step(self, closure: Any = None) -> None:
        self._emb_module.set_learning_rate(self.param_groups[0]["lr"])

    def set_sharded_embedding_weight_ids(self, sharded_embedding_weight_ids: Optional[List[ShardedTensor]]) -> None:
        """The ids whose rows the next state dict reads."""
        self._sharded_embedding_weight_ids = sharded_embedding_weight_ids
