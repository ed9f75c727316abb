"""The keyed view of a TBE's in-backward optimizer (``EmbeddingFusedOptimizer``).

FBGEMM updates the rows inside backward; this class only *exposes* that optimizer: its parameters are the
tables (``"<table>.weight"``), its state the TBE's optimizer buffers (``"<table>.momentum1"``, ...), and
``param_groups[0]["lr"]`` is pushed to the kernel with ``set_learning_rate`` on every ``zero_grad()`` and
``step()`` (so an LR scheduler's write reaches the next backward).

With a process group, weights and states are ``ShardedTensor``s placed like the table shards. A row-wise
state (one value per row) of a table split by columns gets one column per column shard: its global shape is
``rows x num_column_shards`` (each column shard keeps its own per-row state).
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch.distributed import ProcessGroup
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharded_tensor import Shard, ShardedTensor, ShardedTensorMetadata, TensorProperties

from recsys_lib._public import public_at
from recsys_lib.distributed._parallel2d.placements import sharded_tensor
from recsys_lib.distributed._sharded.table_types import GroupedEmbeddingConfig, ShardedEmbeddingTable
from recsys_lib.optim.fused import FusedOptimizer

_STATE_NAMES = ("momentum1", "momentum2", "prev_iter", "row_counter")


def _props(t: torch.Tensor) -> TensorProperties:
    return TensorProperties(dtype=t.dtype, layout=t.layout, requires_grad=False, memory_format=torch.contiguous_format)


def _rowwise_placement(table: ShardedEmbeddingTable) -> Tuple[ShardMetadata, List[ShardMetadata], torch.Size, bool]:
    """(this shard, all shards, global size, 2-D?) of a per-row state of ``table`` (see module docstring)."""
    assert table.global_metadata is not None and table.local_metadata is not None
    shards = table.global_metadata.shards_metadata
    local_md = table.local_metadata
    col_offsets = sorted({md.shard_offsets[1] for md in shards})
    rows = table.global_metadata.size[0]
    if len(col_offsets) == 1:
        as_1d = [ShardMetadata([md.shard_offsets[0]], [md.shard_sizes[0]], md.placement) for md in shards]
        local = ShardMetadata([local_md.shard_offsets[0]], [local_md.shard_sizes[0]], local_md.placement)
        return local, as_1d, torch.Size([rows]), False
    col_index = {off: i for i, off in enumerate(col_offsets)}
    as_2d = [
        ShardMetadata([md.shard_offsets[0], col_index[md.shard_offsets[1]]], [md.shard_sizes[0], 1], md.placement)
        for md in shards
    ]
    local = ShardMetadata(
        [local_md.shard_offsets[0], col_index[local_md.shard_offsets[1]]], [local_md.shard_sizes[0], 1], local_md.placement
    )
    return local, as_2d, torch.Size([rows, len(col_offsets)]), True


def _state_shard(state: torch.Tensor, table: ShardedEmbeddingTable) -> Tuple[Shard, ShardedTensorMetadata]:
    """This rank's shard of one optimizer state and the state's global metadata."""
    assert table.global_metadata is not None and table.local_metadata is not None
    if state.dim() == 2:  # element-wise state: placed exactly like the weight
        gmd = ShardedTensorMetadata(table.global_metadata.shards_metadata, table.global_metadata.size, _props(state))
        return Shard(tensor=state, metadata=table.local_metadata), gmd
    local_md, shards, size, as_2d = _rowwise_placement(table)
    local = state.view(-1, 1) if as_2d else state
    return Shard(tensor=local, metadata=local_md), ShardedTensorMetadata(shards, size, _props(state))


def _sharded(shards: List[Shard], global_md: ShardedTensorMetadata, pg: ProcessGroup) -> ShardedTensor:
    return sharded_tensor(shards, global_md, pg)  # placements on global ranks (2-D: group ranks differ)


@public_at("recsys_lib.distributed.batched_embedding_kernel")
class EmbeddingFusedOptimizer(FusedOptimizer):
    """Keyed optimizer over the tables of one fused TBE kernel.

    Args:
        config: the kernel's grouped config (tables in kernel order).
        emb_module: the FBGEMM ``SplitTableBatchedEmbeddingBagsCodegen``.
        pg: process group for ShardedTensor weights/states (None: plain tensors).
        create_for_table: restrict to this one table (per-parameter in-backward optimizers).
        param_weight_for_table: the parameter to key that table's state by (with ``create_for_table``).
        embedding_weights_by_table / all_optimizer_states: precomputed ``split_embedding_weights()`` /
            ``split_optimizer_states()``.

    Example::

        opt = kernel.fused_optimizer
        opt.param_groups[0]["lr"] = 0.05   # reaches the TBE at the next zero_grad()/step()
        opt.state_dict()["state"]["t0.weight"].keys()   # {"t0.momentum1"} for row-wise Adagrad
    """

    def __init__(
        self,
        config: GroupedEmbeddingConfig,
        emb_module: torch.nn.Module,
        pg: Optional[ProcessGroup] = None,
        create_for_table: Optional[str] = None,
        param_weight_for_table: Optional[torch.Tensor] = None,
        embedding_weights_by_table: Optional[List[torch.Tensor]] = None,
        all_optimizer_states: Optional[List[List[torch.Tensor]]] = None,
    ) -> None:
        self._emb_module = emb_module
        self._pg = pg
        tables = config.embedding_tables
        if create_for_table is not None and create_for_table not in config.table_names():
            raise ValueError(f"create_for_table={create_for_table!r} is not one of {config.table_names()}")
        weights: Sequence[torch.Tensor] = (
            embedding_weights_by_table if embedding_weights_by_table is not None else emb_module.split_embedding_weights()
        )
        states: Sequence[Sequence[torch.Tensor]] = (
            all_optimizer_states if all_optimizer_states is not None else emb_module.split_optimizer_states()
        )
        by_table: Dict[str, List[int]] = {}
        for i, table in enumerate(tables):
            by_table.setdefault(table.name, []).append(i)
        params: Dict[str, Any] = {}
        state: Dict[Any, Dict[str, Any]] = {}
        for name, idxs in by_table.items():
            if create_for_table is not None and name != create_for_table:
                continue
            table_states = [states[i] if i < len(states) else [] for i in idxs]
            sharded = pg is not None and all(
                tables[i].global_metadata is not None and tables[i].local_metadata is not None for i in idxs
            )
            if not sharded and len(idxs) > 1:
                raise ValueError(
                    f"table {name!r} has {len(idxs)} shards on this rank; exposing them as one parameter needs a "
                    f"process group and shard metadata (ShardedTensor)"
                )
            if create_for_table is not None and param_weight_for_table is not None:
                param: Any = param_weight_for_table
            elif sharded:
                assert pg is not None
                shards = [Shard(tensor=weights[i], metadata=tables[i].local_metadata) for i in idxs]
                param = _sharded(shards, tables[idxs[0]].global_metadata, pg)  # type: ignore[arg-type]
            else:
                param = weights[idxs[0]]
            params[f"{name}.weight"] = param
            state[param] = {}
            for j in range(len(table_states[0])):
                key = f"{name}.{_STATE_NAMES[j]}"
                if not sharded:
                    state[param][key] = table_states[0][j]
                    continue
                assert pg is not None
                pieces = [_state_shard(table_states[k][j], tables[i]) for k, i in enumerate(idxs)]
                state[param][key] = _sharded([p[0] for p in pieces], pieces[0][1], pg)
        param_groups = [{"params": list(params.values()), "lr": float(emb_module.get_learning_rate())}]
        super().__init__(params, state, param_groups)

    def _push_learning_rate(self) -> None:
        self._emb_module.set_learning_rate(float(self.param_groups[0]["lr"]))

    def zero_grad(self, set_to_none: bool = False) -> None:
        # No gradients to clear (rows were updated in backward); keep the kernel's LR current.
        self._push_learning_rate()

    def step(self, closure: Optional[Any] = None) -> None:  # type: ignore[override]
        self._push_learning_rate()

    def set_optimizer_step(self, step: int) -> None:
        """Sets the kernel's iteration counter (optimizers with bias correction or schedules use it)."""
        self._emb_module.set_optimizer_step(step)

    def update_hyper_parameters(self, params_dict: Dict[str, float]) -> None:
        """Forwards ``{"lr": ..., "eps": ..., ...}`` to the kernel; ``lr`` also updates ``param_groups``."""
        self._emb_module.update_hyper_parameters(params_dict)
        if "lr" in params_dict:
            for group in self.param_groups:
                group["lr"] = float(params_dict["lr"])
