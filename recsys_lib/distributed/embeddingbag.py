"""Sharded ``EmbeddingBagCollection`` and its sharder (TorchRec's ``torchrec.distributed.embeddingbag``).

``EmbeddingBagCollectionSharder().shard(ebc, plan, env)`` returns a :class:`ShardedEmbeddingBagCollection`:
the tables are split per the plan (one ``EmbeddingSharding`` per sharding type, from the registry), and
``forward(kjt)`` runs, per sharding, input dist → lookup → output dist, returning a ``LazyAwaitable`` of the
same ``KeyedTensor`` the unsharded module returns (keys and columns in the unsharded order)::

    sharded = EmbeddingBagCollectionSharder().shard(ebc, plan.plan[""], env, torch.device("cpu"))
    kt = sharded(kjt).wait()            # KeyedTensor [B_local, sum(D)], same as ebc(kjt) on this batch

State dict keys are the unsharded ones (``embedding_bags.<table>.weight``) with ``ShardedTensor`` values for
sharded tables (plain tensors for data-parallel ones). The shared machinery lives in
``_sharded/body.py`` (``ShardedEmbeddingBody``, written once for pooled and sequence modules).
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Type, Union

import torch
import torch.distributed as dist
from fbgemm_gpu.permute_pooled_embedding_modules import PermutePooledEmbeddings
from torch import nn

from recsys_lib.distributed._dist.column_permute import inverse_permutation, permute_columns
from recsys_lib.distributed._sharded.body import ShardedEmbeddingBody, sharded_table_configs
from recsys_lib.distributed._sharded.common import create_sharding_infos
from recsys_lib.distributed._sharded.device_groups import (  # noqa: F401
    get_device_from_parameter_sharding,
    group_by_sharding_device,
    replace_placement_with_meta_device,
)
from recsys_lib.distributed._dist.vbe_layout import split_features
from recsys_lib.distributed.embedding_sharding import EmbeddingShardingContext, KJTList
from recsys_lib.distributed._sharded.module_bases import BaseEmbeddingSharder, ShardedEmbeddingModule
from recsys_lib.distributed.embedding_lookup import GroupedEmbeddingsLookup, GroupedPooledEmbeddingsLookup
from recsys_lib.distributed.sharding.strategy import strategy_for
from recsys_lib.distributed._core.awaitable import Awaitable, LazyAwaitable, LazyGetItemMixin
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.modules.embedding_configs import EmbeddingTableConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingBagCollectionInterface
from recsys_lib.optim.fused import FusedOptimizerModule
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor, KeyedTensor
from recsys_lib.streamable import Multistreamable


@dataclass
class EmbeddingBagCollectionContext(Multistreamable):
    """Per-batch state of a sharded EBC: one ``EmbeddingShardingContext`` per sharding, and the variable-batch
    inputs (``inverse_indices``; ``batch_size_per_feature``: this rank's batch of every input key)."""

    sharding_contexts: List[Optional[EmbeddingShardingContext]] = field(default_factory=list)
    inverse_indices: Optional[Tuple[List[str], torch.Tensor]] = None
    variable_batch_per_feature: bool = False
    divisor: Optional[torch.Tensor] = None
    early_releasable_inputs: List[KeyedJaggedTensor] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sharding_contexts = [] if self.sharding_contexts is None else list(self.sharding_contexts)
        self.early_releasable_inputs = list(self.early_releasable_inputs or [])
        self.batch_size_per_feature: Dict[str, int] = {}

    def record_stream(self, stream: torch.Stream) -> None:
        for ctx in self.sharding_contexts:
            if ctx is not None:
                ctx.record_stream(stream)


def construct_output_kt(
    embeddings: List[torch.Tensor], embedding_names: List[str], embedding_dims: List[int]
) -> KeyedTensor:
    """``KeyedTensor`` of the per-sharding outputs concatenated along dim 1."""
    values = embeddings[0] if len(embeddings) == 1 else torch.cat(embeddings, dim=1)
    return KeyedTensor(keys=embedding_names, length_per_key=embedding_dims, values=values)


def output_column_permute(
    sharding_names: List[str], sharding_dims: List[int], names: List[str]
) -> Optional[List[int]]:
    """Column index putting the concatenated sharding outputs into ``names`` order (None: already in order)."""
    start: Dict[str, Tuple[int, int]] = {}
    col = 0
    for n, d in zip(sharding_names, sharding_dims):
        start[n] = (col, d)
        col += d
    index = [c for n in names for c in range(start[n][0], start[n][0] + start[n][1])]
    return None if index == list(range(col)) else index


def _wait_all(awaitables: List[Awaitable[torch.Tensor]]) -> List[torch.Tensor]:
    return [w.wait() for w in awaitables]


class EmbeddingBagCollectionAwaitable(LazyGetItemMixin[str, torch.Tensor], LazyAwaitable[KeyedTensor]):
    """Waits every sharding's output dist and builds the ``KeyedTensor`` (outputs concatenated along dim 1).

    Args:
        awaitables: per sharding, ``[B, sum D]`` pooled rows.
        embedding_dims / embedding_names: the columns of the concatenation.
        module_fqn / sharding_types: names for profiling ranges.
        resize_awaitables: waited after the rows (fully sharded kernels free their weights there).
    """

    def __init__(
        self,
        awaitables: List[Awaitable[torch.Tensor]],
        embedding_dims: List[int],
        embedding_names: List[str],
        module_fqn: Optional[str] = None,
        sharding_types: Optional[List[str]] = None,
        resize_awaitables: Optional[List[Awaitable[torch.Tensor]]] = None,
    ) -> None:
        super().__init__()
        self._awaitables = awaitables
        self._embedding_dims = embedding_dims
        self._embedding_names = embedding_names
        self._module_fqn = module_fqn
        self._sharding_types = sharding_types
        self._resize_awaitables = resize_awaitables
        self._permute: Optional[torch.Tensor] = None
        self._permute_inverse: Optional[torch.Tensor] = None

    def with_column_permute(
        self, permute: Optional[torch.Tensor], inverse: Optional[torch.Tensor] = None
    ) -> "EmbeddingBagCollectionAwaitable":
        """Picks the concatenation's columns with ``permute`` (a permutation of them, along dim 1) before keying
        them (the sharded EBC puts sharding-ordered columns back into the unsharded order); ``inverse``: its
        inverse, computed here when not given."""
        self._permute = permute
        self._permute_inverse = inverse
        return self

    def _wait_impl(self) -> KeyedTensor:
        embeddings = _wait_all(self._awaitables)
        values = embeddings[0] if len(embeddings) == 1 else torch.cat(embeddings, dim=1)
        if self._permute is not None:
            inverse = self._permute_inverse if self._permute_inverse is not None else inverse_permutation(self._permute)
            values = permute_columns(values, self._permute.to(values.device), inverse.to(values.device))
        if self._resize_awaitables is not None:
            _wait_all(self._resize_awaitables)
        return KeyedTensor(keys=self._embedding_names, length_per_key=self._embedding_dims, values=values)


class VariableBatchEmbeddingBagCollectionAwaitable(LazyGetItemMixin[str, torch.Tensor], LazyAwaitable[KeyedTensor]):
    """Waits every sharding's variable-batch (VBE) output and expands it to the full batch.

    Each sharding delivers this rank's rows flat and feature-major (``b_f x D_f`` per feature, in the shardings'
    concatenated order). Feature ``f``'s rows are picked with its row of ``inverse_indices`` (``[F, B]``; rows
    reordered by ``inverse_indices_permute_indices`` into the shardings' feature order), giving ``[B, sum D]`` in
    that order; ``permute_op`` (a ``PermutePooledEmbeddings``) then orders the columns as ``embedding_names``.

    Args:
        awaitables: per sharding, the flat VBE rows.
        inverse_indices: ``(keys, [F, B] indices)`` of the input KJT.
        inverse_indices_permute_indices: rows of ``inverse_indices`` in the shardings' feature order (None: as is).
        batch_size_per_feature_pre_a2a: ``b_f`` per feature, shardings' order.
        uncombined_embedding_dims: ``D_f`` per feature, shardings' order.
        embedding_names / embedding_dims: the output's keys and widths.
        permute_op: column reorder from the shardings' order to ``embedding_names``.
        module_fqn / sharding_types / resize_awaitables: as :class:`EmbeddingBagCollectionAwaitable`.
    """

    def __init__(
        self,
        awaitables: List[Awaitable[torch.Tensor]],
        inverse_indices: Tuple[List[str], torch.Tensor],
        inverse_indices_permute_indices: Optional[torch.Tensor],
        batch_size_per_feature_pre_a2a: List[int],
        uncombined_embedding_dims: List[int],
        embedding_names: List[str],
        embedding_dims: List[int],
        permute_op: nn.Module,
        module_fqn: Optional[str] = None,
        sharding_types: Optional[List[str]] = None,
        resize_awaitables: Optional[List[Awaitable[torch.Tensor]]] = None,
    ) -> None:
        super().__init__()
        self._awaitables = awaitables
        self._inverse_indices = inverse_indices
        self._inverse_indices_permute_indices = inverse_indices_permute_indices
        self._batch_size_per_feature_pre_a2a = batch_size_per_feature_pre_a2a
        self._uncombined_embedding_dims = uncombined_embedding_dims
        self._embedding_names = embedding_names
        self._embedding_dims = embedding_dims
        self._permute_op = permute_op
        self._module_fqn = module_fqn
        self._sharding_types = sharding_types
        self._resize_awaitables = resize_awaitables

    def _wait_impl(self) -> KeyedTensor:
        flats = _wait_all(self._awaitables)
        flat = flats[0] if len(flats) == 1 else torch.cat(flats)
        indices = self._inverse_indices[1]
        if self._inverse_indices_permute_indices is not None:
            indices = indices.index_select(0, self._inverse_indices_permute_indices.to(indices.device))
        rows = flat.view(-1).split([b * d for b, d in zip(self._batch_size_per_feature_pre_a2a,
                                                           self._uncombined_embedding_dims)])
        columns = [
            r.view(b, d).index_select(0, indices[f].long())
            for f, (r, b, d) in enumerate(zip(rows, self._batch_size_per_feature_pre_a2a, self._uncombined_embedding_dims))
        ]
        values = self._permute_op(torch.cat(columns, dim=1)) if columns else flat.new_zeros(indices.size(-1), 0)
        if self._resize_awaitables is not None:
            _wait_all(self._resize_awaitables)
        return construct_output_kt([values], self._embedding_names, self._embedding_dims)


def _grouped_lookups(lookups: nn.ModuleList) -> List[nn.Module]:
    """The grouped lookups inside ``lookups`` (unwrapping DDP and other wrappers)."""
    return [m for lookup in lookups for m in lookup.modules()
            if isinstance(m, (GroupedPooledEmbeddingsLookup, GroupedEmbeddingsLookup))]


def create_rocksdb_hard_link_snapshots(lookups: nn.ModuleList) -> None:
    """A RocksDB checkpoint of every key-value kernel behind ``lookups`` (other kernels have no store)."""
    for lookup in _grouped_lookups(lookups):
        lookup.create_rocksdb_hard_link_snapshot()


def broadcast_replicated_lookups(sharding_types: List[str], lookups: nn.ModuleList, env: ShardingEnv) -> None:
    """Copies rank 0's weights of every replicated (data-parallel) lookup to the other ranks of ``env``, so the
    replicas start equal (what wrapping them in ``DistributedDataParallel`` does at construction)."""
    pg = env.process_group
    if pg is None or env.world_size == 1:
        return
    src = dist.get_global_rank(pg, 0)
    for sharding_type, lookup in zip(sharding_types, lookups):
        if not strategy_for(sharding_type).replicated:
            continue
        with torch.no_grad():
            for param in lookup.parameters():
                dist.broadcast(param.data, src=src, group=pg)


def pooled_table_configs(module: nn.Module) -> List[EmbeddingTableConfig]:
    """``EmbeddingTableConfig`` s of an (fused) EBC's tables, with output names and weighting."""
    return sharded_table_configs(module.embedding_bag_configs(), None, module.is_weighted())


class ShardedEmbeddingBagCollection(
    ShardedEmbeddingModule[KJTList, List[torch.Tensor], KeyedTensor, EmbeddingBagCollectionContext],
    FusedOptimizerModule,
):
    """An ``EmbeddingBagCollection`` whose tables are spread over ranks (see the module docstring).

    Args:
        module: the unsharded (fused) EBC; its weights are copied in unless they are on ``meta``.
        table_name_to_parameter_sharding: the module's plan (table name → ``ParameterSharding``).
        env: world, rank and process group.
        fused_params: FBGEMM arguments for fused kernels (optimizer, learning rate, ...).
        device: where tables and outputs live (default cpu).
        qcomm_codecs_registry: wire codecs keyed by ``CommOp.value``.
        module_fqn: the module's name in the model (for logging).
        sharded_module_order_overwrite: sharding types (any case) to run first, in this order.
    """

    def __init__(
        self,
        module: nn.Module,
        table_name_to_parameter_sharding: Dict[str, ParameterSharding],
        env: ShardingEnv,
        fused_params: Optional[Dict[str, Any]] = None,
        device: Optional[torch.device] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
        module_fqn: Optional[str] = None,
        sharded_module_order_overwrite: Optional[List[str]] = None,
    ) -> None:
        super().__init__(qcomm_codecs_registry=qcomm_codecs_registry)
        self._sharded_module_order_overwrite: Optional[List[str]] = (
            None if sharded_module_order_overwrite is None else [s.lower() for s in sharded_module_order_overwrite]
        )
        self._env = env
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        self._module_fqn = module_fqn
        self._is_weighted = module.is_weighted()
        self._embedding_bag_configs = module.embedding_bag_configs()
        self._table_name_to_config: Dict[str, Any] = {c.name: c for c in self._embedding_bag_configs}
        configs = pooled_table_configs(module)
        params = {c.name: module.embedding_bags[c.name].weight for c in configs}
        self._table_name_to_parameter_sharding = dict(table_name_to_parameter_sharding)
        body = ShardedEmbeddingBody(
            configs, params, table_name_to_parameter_sharding, env, self._device, fused_params,
            qcomm_codecs_registry, sequence=False, weights_attr="embedding_bags", owner_name=type(self).__name__,
            sharding_order=self._sharded_module_order_overwrite,
        )
        self._body = body
        self._sharding_type_to_sharding = body.sharding_type_to_sharding
        self._embedding_shardings = list(body.sharding_type_to_sharding.values())
        self._features_order = body.router.feature_names
        self._feature_splits = body.router.feature_splits
        self._input_dists = body.input_dists
        self._lookups = body.lookups
        self._output_dists = body.output_dists
        self.embedding_bags = body.tables
        self._table_names = [c.name for c in configs]
        self.register_load_state_dict_post_hook(body.missing_keys_hook())
        self._embedding_names = [n for c in configs for n in c.embedding_names]
        self._embedding_dims = [c.embedding_dim for c in configs for _ in c.embedding_names]
        shardings = self._embedding_shardings
        permute = output_column_permute(
            [n for s in shardings for n in s.embedding_names()],
            [d for s in shardings for d in s.embedding_dims()],
            self._embedding_names,
        )
        self._permute: Optional[torch.Tensor] = None if permute is None else torch.tensor(permute, device=self._device)
        self._permute_inverse: Optional[torch.Tensor] = (
            None if self._permute is None else inverse_permutation(self._permute)
        )
        # Variable batch: features in the shardings' order, and the column reorder back to the unsharded order.
        self._feature_of = {n: f for c in configs for n, f in zip(c.embedding_names, c.feature_names)}
        self._uncombined_names = [n for s in shardings for n in s.embedding_names()]
        self._uncombined_embedding_dims = [d for s in shardings for d in s.embedding_dims()]
        position = {n: i for i, n in enumerate(self._uncombined_names)}
        self._permute_op = PermutePooledEmbeddings(
            self._uncombined_embedding_dims, [position[n] for n in self._embedding_names], self._device
        )

    # ---- TorchRec's construction helpers ----

    @classmethod
    def create_grouped_sharding_infos(
        cls,
        module: nn.Module,
        table_name_to_parameter_sharding: Dict[str, ParameterSharding],
        prefix: str,
        fused_params: Optional[Dict[str, Any]],
        suffix: Optional[str] = "weight",
    ) -> Dict[str, List[Any]]:
        """``{sharding_type: [EmbeddingShardingInfo]}`` of ``module``'s tables (plan checked)."""
        configs = pooled_table_configs(module)
        params = {c.name: module.embedding_bags[c.name].weight for c in configs}
        return create_sharding_infos(configs, params, table_name_to_parameter_sharding, fused_params, cls.__name__)

    @classmethod
    def create_embedding_bag_sharding(
        cls,
        sharding_infos: List[Any],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        permute_embeddings: bool = False,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> Any:
        """The registry's pooled sharding for the (single) sharding type of ``sharding_infos``."""
        types = {i.param_sharding.sharding_type for i in sharding_infos}
        if len(types) != 1:
            raise ValueError(f"create_embedding_bag_sharding: infos of one sharding type expected, got {sorted(types)}")
        return strategy_for(types.pop()).create_for_module(
            False, sharding_infos, env, device, permute_embeddings, qcomm_codecs_registry
        )

    @staticmethod
    def extend_shard_name(shard_name: str) -> str:
        return f"embedding_bags.{shard_name}.weight"

    def reset_parameters(self) -> None:
        """Re-initialises every local shard with its table's ``init_fn`` (default uniform)."""
        self._body.reset_parameters()

    def init_data_parallel(self) -> None:
        """Makes the data-parallel tables equal on every rank (rank 0's weights); their lookups already
        average gradients with ``DistributedDataParallel``."""
        broadcast_replicated_lookups(list(self._sharding_type_to_sharding.keys()), self._lookups, self._env)

    def create_rocksdb_hard_link_snapshot(self) -> None:
        """A RocksDB checkpoint of every key-value table shard on this rank (no-op without key-value tables)."""
        create_rocksdb_hard_link_snapshots(self._lookups)

    # ---- the three stages ----

    def create_context(self) -> EmbeddingBagCollectionContext:
        return EmbeddingBagCollectionContext()

    def input_dist(self, ctx: EmbeddingBagCollectionContext, features: KeyedJaggedTensor) -> Awaitable[Awaitable[KJTList]]:
        if features.variable_stride_per_key() and features.inverse_indices_or_none() is not None:
            ctx.variable_batch_per_feature = True
            ctx.inverse_indices = features.inverse_indices()
            ctx.batch_size_per_feature = dict(zip(features.keys(), features.stride_per_key()))
        return self._body.input_dist(ctx, features, sequence=False, weighted=self._is_weighted, pooled=True)

    def compute(self, ctx: EmbeddingBagCollectionContext, dist_input: KJTList) -> List[torch.Tensor]:
        out = []
        for lookup, features in zip(self._lookups, dist_input):
            embs = lookup(features)
            if self.post_lookup_tracker_fn is not None:  # model delta tracker: the ids this rank looked up
                self.post_lookup_tracker_fn(features, embs, self, None)
            out.append(embs)
        return out

    def output_dist(self, ctx: EmbeddingBagCollectionContext, output: List[torch.Tensor]) -> LazyAwaitable[KeyedTensor]:
        awaitables = [dist(embs, sctx) for dist, embs, sctx in zip(self._output_dists, output, ctx.sharding_contexts)]
        if self.post_odist_tracker_fn is not None:
            self.post_odist_tracker_fn()
        sharding_types = list(self._sharding_type_to_sharding.keys())
        if ctx.variable_batch_per_feature:
            assert ctx.inverse_indices is not None
            keys = ctx.inverse_indices[0]
            row = {k: i for i, k in enumerate(keys)}
            rows = [row[self._feature_of[n]] for n in self._uncombined_names]
            return VariableBatchEmbeddingBagCollectionAwaitable(
                awaitables=awaitables,
                inverse_indices=ctx.inverse_indices,
                inverse_indices_permute_indices=None if rows == list(range(len(keys))) else torch.tensor(rows),
                batch_size_per_feature_pre_a2a=[
                    ctx.batch_size_per_feature[self._feature_of[n]] for n in self._uncombined_names
                ],
                uncombined_embedding_dims=self._uncombined_embedding_dims,
                embedding_names=self._embedding_names,
                embedding_dims=self._embedding_dims,
                permute_op=self._permute_op,
                module_fqn=self._module_fqn,
                sharding_types=sharding_types,
            )
        return EmbeddingBagCollectionAwaitable(
            awaitables, self._embedding_dims, self._embedding_names, self._module_fqn, sharding_types
        ).with_column_permute(self._permute, self._permute_inverse)

    # ---- optimizer and shardings (state dict and parameters: ShardedEmbeddingModule asks the body) ----

    @property
    def fused_optimizer(self) -> Any:
        return self._body.fused_optimizer()

    @property
    def shardings(self) -> Dict[str, Any]:
        return dict(self._sharding_type_to_sharding)

    @property
    def unsharded_module_type(self) -> Type[nn.Module]:
        return EmbeddingBagCollection

    def is_weighted(self) -> bool:
        return self._is_weighted

    def embedding_bag_configs(self) -> List[Any]:
        return self._embedding_bag_configs

    def update_shards(
        self, changed_sharding_params: Dict[str, ParameterSharding], env: ShardingEnv, device: Optional[torch.device]
    ) -> None:
        """Moves the tables named in ``changed_sharding_params`` to their new placement, weights and fused optimizer
        state carried (collective; ``_reshard/module.py``). Fetch ``fused_optimizer`` again afterwards."""
        from recsys_lib.distributed._reshard.module import reshard_sharded_module

        reshard_sharded_module(self, changed_sharding_params, env, device)

    @property
    def module_sharding_plan(self) -> Dict[str, ParameterSharding]:
        """Table name → ``ParameterSharding`` the module is sharded by now."""
        return dict(self._table_name_to_parameter_sharding)


class EmbeddingBagCollectionSharder(BaseEmbeddingSharder[EmbeddingBagCollection]):
    """Shards ``EmbeddingBagCollection`` s. Sharding types: cpu ``data_parallel, table_wise, column_wise,
    table_column_wise``; kernels: ``dense`` for data parallel, else ``fused`` (see ``BaseEmbeddingSharder``).

    Example::

        sharder = EmbeddingBagCollectionSharder(fused_params={"optimizer": EmbOptimType.EXACT_ROWWISE_ADAGRAD,
                                                              "learning_rate": 0.02, "eps": 0.002})
        sharded = sharder.shard(ebc, plan.plan[""], ShardingEnv.from_process_group(pg), torch.device("cpu"))
    """

    def shard(
        self,
        module: EmbeddingBagCollection,
        params: Dict[str, ParameterSharding],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        module_fqn: Optional[str] = None,
    ) -> ShardedEmbeddingBagCollection:
        return ShardedEmbeddingBagCollection(
            module, params, env, self.fused_params, device, self.qcomm_codecs_registry, module_fqn,
            self._sharded_module_order_overwrite,
        )

    def reshard(
        self,
        sharded_module: ShardedEmbeddingBagCollection,
        changed_shard_to_params: Dict[str, ParameterSharding],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
    ) -> ShardedEmbeddingBagCollection:
        """Updates ``sharded_module`` in place so the tables of ``changed_shard_to_params`` (only those that move)
        take their new placement, weights and optimizer state carried; returns it."""
        if len(changed_shard_to_params) > 0:
            sharded_module.update_shards(changed_shard_to_params, env, device)
        return sharded_module

    def shardable_parameters(self, module: EmbeddingBagCollection) -> Dict[str, nn.Parameter]:
        """``{table_name: weight}``."""
        return {name: bag.weight for name, bag in module.embedding_bags.items()}

    @property
    def module_type(self) -> Type[EmbeddingBagCollection]:
        return EmbeddingBagCollection

    @property
    def sharded_module_type(self) -> Type[ShardedEmbeddingBagCollection]:
        return ShardedEmbeddingBagCollection


def create_sharding_infos_by_sharding_device_group(
    module: EmbeddingBagCollectionInterface,
    table_name_to_parameter_sharding: Dict[str, ParameterSharding],
    prefix: str,
    fused_params: Optional[Dict[str, Any]],
    suffix: Optional[str] = "weight",
) -> Dict[Tuple[str, Union[str, Tuple[str, ...]]], List[Any]]:
    """``{(sharding_type, device group): [EmbeddingShardingInfo]}`` of an EBC's tables (plan checked); the device
    group is ``get_device_from_parameter_sharding`` of the table's plan entry."""
    configs = pooled_table_configs(module)
    params = {c.name: module.embedding_bags[c.name].weight for c in configs}
    infos = create_sharding_infos(configs, params, table_name_to_parameter_sharding, fused_params, type(module).__name__)
    return group_by_sharding_device(infos, [c.name for c in configs])


class EmbeddingAwaitable(LazyAwaitable[torch.Tensor]):
    """Lazy view of an awaitable tensor: ``wait()`` returns ``awaitable.wait()``."""

    def __init__(self, awaitable: Awaitable[torch.Tensor]) -> None:
        super().__init__()
        self._awaitable = awaitable

    def _wait_impl(self) -> torch.Tensor:
        return self._awaitable.wait()


# A single ``nn.EmbeddingBag`` (defined in ``_sharded/single_bag.py``; TorchRec's path is this module).
from recsys_lib.distributed._sharded.single_bag import EmbeddingBagSharder, ShardedEmbeddingBag  # noqa: E402,F401
