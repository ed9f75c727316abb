"""Sharded EC/EBC behind managed collision (``torchrec.distributed.mc_embedding_modules``): the shared base.

A sharded MC-EC/EBC composes a :class:`ShardedManagedCollisionCollection` and the row-wise sharded EC/EBC with the
same plan. Per batch::

    input_dist   MCC: raw ids to the owners of their raw-id blocks            (2 all-to-alls: counts, ids)
    compute      MCC: owners profile + remap; rows back to the source ranks   (1 all-to-all)
                 re-initialise this rank's evicted rows (the table's init_fn, zero without one)
                 EC/EBC: the normal row-wise path on the remapped KJT: input dist + local lookup
    output_dist  EC/EBC output dist; result ``(embeddings, remapped KJT or None)``

Remap and eviction run in ``compute`` so a pipeline that starts batch ``i+1``'s input dist early never
re-initialises rows batch ``i`` still reads. Outputs equal the unsharded module whose MCC holds the same per-rank MC
state (each rank's slice of rows with the raw ids of its raw-id block).
"""

import abc
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, TypeVar

import torch
import torch.distributed as dist
from fbgemm_gpu.split_embedding_configs import EmbOptimType as OptimType
from torch import nn

from recsys_lib.distributed._core.awaitable import Awaitable, LazyAwaitable
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._sharded.common import kernels_of
from recsys_lib.distributed._sharded.module_bases import BaseEmbeddingSharder, ShardedEmbeddingModule
from recsys_lib.distributed.embedding_sharding import KJTList
from recsys_lib.distributed.mc_modules import ManagedCollisionCollectionSharder, ShardedManagedCollisionCollection
from recsys_lib.modules.mc_embedding_modules import BaseManagedCollisionEmbeddingCollection
from recsys_lib.optim.fused import FusedOptimizerModule
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

ShrdCtx = TypeVar("ShrdCtx")
M = TypeVar("M", bound=BaseManagedCollisionEmbeddingCollection)


def record_mc_streams(evictions_per_table: Optional[Dict[str, Optional[torch.Tensor]]], remapped_kjt: Optional[Any],
                      stream: torch.Stream) -> None:
    """``record_stream`` of the MC part of a sharded MC-EC/EBC context (evicted rows, remapped KJT)."""
    for rows in (evictions_per_table or {}).values():
        if rows is not None:
            rows.record_stream(stream)
    if remapped_kjt is not None:
        remapped_kjt.record_stream(stream)


class _MCOutput(LazyAwaitable[Tuple[Any, Optional[KeyedJaggedTensor]]]):
    """``(embedding output, remapped KJT or None)`` once the EC/EBC output dist finishes."""

    def __init__(self, embeddings: Awaitable[Any], remapped: Optional[KeyedJaggedTensor]) -> None:
        super().__init__()
        self._embeddings = embeddings
        self._remapped = remapped

    def _wait_impl(self) -> Tuple[Any, Optional[KeyedJaggedTensor]]:
        return self._embeddings.wait(), self._remapped


class BaseShardedManagedCollisionEmbeddingCollection(
    ShardedEmbeddingModule[KJTList, List[torch.Tensor], Tuple[Any, Optional[KeyedJaggedTensor]], ShrdCtx],
    FusedOptimizerModule,
):
    """Sharded MC-EC/EBC (see the module docstring).

    Args:
        module: the unsharded ``ManagedCollisionEmbeddingCollection`` / ``...BagCollection``.
        table_name_to_parameter_sharding: row-wise plan entries of every table.
        e_sharder: shards the EC/EBC.
        mc_sharder: shards the MCC.
        env: world, rank and process group.
        device: where shards and MC state live.
    """

    def __init__(
        self,
        module: BaseManagedCollisionEmbeddingCollection,
        table_name_to_parameter_sharding: Dict[str, ParameterSharding],
        e_sharder: BaseEmbeddingSharder[Any],
        mc_sharder: ManagedCollisionCollectionSharder,
        env: ShardingEnv,
        device: torch.device,
    ) -> None:
        super().__init__()
        self._device = device
        self._env = env
        self._embedding_module: Any = e_sharder.shard(
            module._embedding_module, table_name_to_parameter_sharding, env=env, device=device
        )
        shardings = list(self._embedding_module._sharding_type_to_sharding.values())
        self._managed_collision_collection: ShardedManagedCollisionCollection = mc_sharder.shard(
            module._managed_collision_collection, table_name_to_parameter_sharding, env=env,
            embedding_shardings=shardings, device=device,
        )
        self._return_remapped_features: bool = module._return_remapped_features
        self._allow_in_place_embed_weight_update: bool = module._allow_in_place_embed_weight_update
        self._init_fns = {c.name: c.init_fn for c in module._managed_collision_collection.embedding_configs()}

    # ---- the three stages ----

    def input_dist(self, ctx: Any, features: KeyedJaggedTensor) -> Awaitable[Awaitable[KJTList]]:
        ctx.mc_ctx = self._managed_collision_collection.create_context()
        return self._managed_collision_collection.input_dist(ctx.mc_ctx, features)

    def compute(self, ctx: Any, dist_input: KJTList) -> List[torch.Tensor]:
        mcc = self._managed_collision_collection
        remapped = mcc.output_dist(ctx.mc_ctx, mcc.compute(ctx.mc_ctx, dist_input)).wait()
        evictions = mcc.evict()
        self._evict(evictions)
        ctx.evictions_per_table = evictions
        ctx.remapped_kjt = KJTList([remapped])
        ctx.e_ctx = self._embedding_module.create_context()
        e_input = self._embedding_module.input_dist(ctx.e_ctx, remapped).wait().wait()
        return self._embedding_module.compute(ctx.e_ctx, e_input)

    def output_dist(self, ctx: Any, output: List[torch.Tensor]) -> LazyAwaitable[Tuple[Any, Optional[KeyedJaggedTensor]]]:
        embeddings = self._embedding_module.output_dist(ctx.e_ctx, output)
        remapped = ctx.remapped_kjt[0] if self._return_remapped_features else None
        return _MCOutput(embeddings, remapped)

    # ---- eviction ----

    @torch.no_grad()
    def _evict(self, evictions_per_table: Dict[str, Optional[torch.Tensor]]) -> None:
        """Re-initialises the evicted local rows of this rank's shards (as the unsharded module does)."""
        local = self._embedding_module._body.table_state.local
        for table, rows in evictions_per_table.items():
            if rows is None or rows.numel() == 0:
                continue
            for _md, weight in local[table]:
                fresh = torch.empty((rows.numel(), weight.shape[1]), dtype=weight.dtype, device=weight.device)
                init_fn = self._init_fns[table]
                if init_fn is not None:
                    init_fn(fresh)
                else:
                    fresh.zero_()
                weight.index_copy_(0, rows.to(device=weight.device, dtype=torch.int64), fresh)
            self._reset_optimizer_rows(table, rows)

    def _reset_optimizer_rows(self, table: str, rows: torch.Tensor) -> None:
        """Zeroes the fused optimizer state of evicted local rows, as FBGEMM's ``reset_embedding_weight_momentum``
        does under TorchRec: the row-wise Adagrad accumulator (``momentum1``) of exact row-wise Adagrad kernels;
        other optimizers keep their state (TorchRec resets nothing for them)."""
        for kernel in kernels_of(self._embedding_module._body.lookups):
            if not isinstance(kernel, FusedOptimizerModule):
                continue
            tbe = kernel.emb_module
            if tbe.optimizer != OptimType.EXACT_ROWWISE_ADAGRAD:
                continue
            names = [t.name for t in kernel.config.embedding_tables]
            if table not in names:
                continue
            momentum1 = tbe.split_optimizer_states()[names.index(table)][0]  # a view of the kernel's buffer
            momentum1[rows.to(device=momentum1.device, dtype=torch.int64)] = 0

    # ---- 2D sharding: replicas of one shard ----

    def _table_kernel(self, table: str) -> Tuple[Any, int]:
        for kernel in kernels_of(self._embedding_module._body.lookups):
            names = [t.name for t in kernel.config.embedding_tables]
            if table in names:
                return kernel, names.index(table)
        raise KeyError(f"{type(self).__name__}: no kernel on this rank serves table {table!r}")

    @torch.no_grad()
    def sync_hash_zch_weights(
        self,
        table_name: str,
        rank_to_global: torch.Tensor,
        survived: torch.Tensor,
        include_optimizer_state: bool,
        allreduce_fn: Callable[[Dict[torch.dtype, List[torch.Tensor]], str, dist.AllreduceCoalescedOptions], None],
        indices_slots: Optional[torch.Tensor] = None,
    ) -> None:
        """Averages a hash-ZCH table's rows over 2D-sharding replicas after ``sync_identities``.

        Each replica first moves its surviving rows to their merged positions (``rank_to_global``) and zeroes the
        rows whose id did not survive; then rows (and, with ``include_optimizer_state``, the row-wise Adagrad
        ``sum``) are summed with ``allreduce_fn`` and divided by how many replicas hold each row (rows
        ``indices_slots``, e.g. reserved slots, count on every replica).

        Args:
            table_name: the table.
            rank_to_global: ``(Z,)`` from ``sync_identities``.
            survived: ``(Z,)`` bool from ``sync_identities``.
            include_optimizer_state: also average the optimizer state.
            allreduce_fn: ``({dtype: [tensors]}, name, options)`` summing in place over the replicas.
            indices_slots: rows every replica counts as holding.
        """
        kernel, i = self._table_kernel(table_name)
        emb = kernel.split_embedding_weights()[i]
        optim: Optional[torch.Tensor] = None
        if isinstance(kernel, FusedOptimizerModule):
            states = kernel.emb_module.get_optimizer_state()
            optim = states[i]["sum"] if states and "sum" in states[i] else None
        moved = rank_to_global[survived]
        emb[moved] = emb[survived].clone()
        if optim is not None:
            optim[moved] = optim[survived].clone()
        gone = (rank_to_global == -1).nonzero().squeeze(1)
        emb[gone] = 0.0
        if optim is not None:
            optim[gone] = 0.0
        opts = dist.AllreduceCoalescedOptions()
        opts.reduceOp = dist.ReduceOp.SUM
        allreduce_fn({emb.dtype: [emb]}, "## 2d_hash_weight_sync ##", opts)
        if include_optimizer_state and optim is not None:
            allreduce_fn({optim.dtype: [optim]}, "## 2d_hash_optimizer_sync ##", opts)
        holders = torch.zeros((emb.shape[0], 1), dtype=torch.int32, device=emb.device)
        holders[moved] = 1
        if indices_slots is not None:
            holders[indices_slots] = 1
        allreduce_fn({holders.dtype: [holders]}, "## 2d_hash_counts_sync ##", opts)
        holders[holders == 0] = 1
        emb /= holders.to(emb.dtype)
        if include_optimizer_state and optim is not None:
            optim /= holders.to(optim.dtype).view(-1) if optim.dim() == 1 else holders.to(optim.dtype)

    # ---- parameters ----

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, nn.Parameter]]:
        base = f"{prefix}." if prefix else ""
        yield from self._embedding_module.named_parameters(f"{base}_embedding_module", recurse, remove_duplicate)
        yield from self._managed_collision_collection.named_parameters(
            f"{base}_managed_collision_collection", recurse, remove_duplicate
        )

    def sharded_parameter_names(self, prefix: str = "") -> Iterator[str]:
        base = f"{prefix}." if prefix else ""
        for fqn, _ in self.named_parameters():
            yield base + fqn
        for fqn, _ in self.named_buffers():
            yield base + fqn

    @property
    def fused_optimizer(self) -> Any:
        return self._embedding_module.fused_optimizer


class BaseManagedCollisionEmbeddingCollectionSharder(BaseEmbeddingSharder[M]):
    """Shards MC-EC/EBCs: an EC/EBC sharder plus a ``ManagedCollisionCollectionSharder``.

    Args:
        e_sharder: the EC/EBC sharder.
        mc_sharder: the MCC sharder.
        qcomm_codecs_registry: wire codecs.
    """

    def __init__(
        self,
        e_sharder: BaseEmbeddingSharder[Any],
        mc_sharder: ManagedCollisionCollectionSharder,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        super().__init__(qcomm_codecs_registry=qcomm_codecs_registry)
        self._e_sharder: BaseEmbeddingSharder[Any] = e_sharder
        self._mc_sharder: ManagedCollisionCollectionSharder = mc_sharder

    def shard(
        self,
        module: M,
        params: Dict[str, ParameterSharding],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        module_fqn: Optional[str] = None,
    ) -> Any:
        """The sharded module (``sharded_module_type``) of ``module`` for the row-wise plan ``params``."""
        return self.sharded_module_type(module, params, self._e_sharder, self._mc_sharder, env,
                                        device if device is not None else torch.device("cpu"))

    @property
    @abc.abstractmethod
    def sharded_module_type(self) -> Any:
        """The sharded class this sharder builds."""

    def shardable_parameters(self, module: M) -> Dict[str, nn.Parameter]:
        return self._e_sharder.shardable_parameters(module._embedding_module)

    def compute_kernels(self, sharding_type: str, compute_device_type: str) -> List[str]:
        return self._e_sharder.compute_kernels(sharding_type, compute_device_type)

    def sharding_types(self, compute_device_type: str) -> List[str]:
        # the MC sharder's types; the EC/EBC sharders can shard those on every device type
        return self._mc_sharder.sharding_types(compute_device_type)

    @property
    def fused_params(self) -> Optional[Dict[str, Any]]:
        return self._e_sharder.fused_params


