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

from typing import Any, Dict, List, Optional, Tuple, Type, Union

import torch
from torch import nn

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
from recsys_lib.distributed.sharding.strategy import strategy_for
from recsys_lib.distributed._core.awaitable import Awaitable, LazyAwaitable, LazyGetItemMixin
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.modules.embedding_configs import EmbeddingTableConfig
from recsys_lib.modules._lookup import process_pooled_embeddings, reorder_inverse_indices
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingBagCollectionInterface
from recsys_lib.optim.fused import FusedOptimizerModule
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor, KeyedTensor
from recsys_lib.streamable import Multistreamable


class EmbeddingBagCollectionContext(Multistreamable):
    """Per-batch state of a sharded EBC: one ``EmbeddingShardingContext`` per sharding."""

    def __init__(
        self,
        sharding_contexts: Optional[List[Optional[EmbeddingShardingContext]]] = None,
        inverse_indices: Optional[Tuple[List[str], torch.Tensor]] = None,
        variable_batch_per_feature: bool = False,
        divisor: Optional[torch.Tensor] = None,
    ) -> None:
        self.sharding_contexts: List[Optional[EmbeddingShardingContext]] = list(sharding_contexts or [])
        self.inverse_indices = inverse_indices
        self.variable_batch_per_feature = variable_batch_per_feature
        self.divisor = divisor
        self.batch_size_per_feature: Dict[str, int] = {}  # variable batch: this rank's batch of every input key

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


class EmbeddingBagCollectionAwaitable(LazyGetItemMixin[str, torch.Tensor], LazyAwaitable[KeyedTensor]):
    """Waits every sharding's output dist and builds the ``KeyedTensor`` (unsharded key and column order)."""

    def __init__(
        self,
        awaitables: List[Awaitable[torch.Tensor]],
        embedding_names: List[str],
        embedding_dims: List[int],
        permute: Optional[torch.Tensor] = None,
    ) -> None:
        super().__init__()
        self._awaitables = awaitables
        self._embedding_names = embedding_names
        self._embedding_dims = embedding_dims
        self._permute = permute

    def _wait_impl(self) -> KeyedTensor:
        embeddings = [w.wait() for w in self._awaitables]
        values = embeddings[0] if len(embeddings) == 1 else torch.cat(embeddings, dim=1)
        if self._permute is not None:
            values = values.index_select(1, self._permute.to(values.device))
        return KeyedTensor(keys=self._embedding_names, length_per_key=self._embedding_dims, values=values)


class VariableBatchLayout:
    """Where a variable-batch (VBE) output comes from: each sharding delivers this rank's rows flat and
    feature-major (``[b_f, D_f]`` per embedding name, the sharding's order); the module cuts them per name,
    puts them in the unsharded order and expands every name to the full batch with ``inverse_indices``."""

    def __init__(
        self,
        embedding_names: List[str],
        embedding_dims: List[int],
        feature_of: Dict[str, str],
        per_sharding: List[Tuple[List[str], List[int]]],
    ) -> None:
        self.embedding_names = embedding_names
        self.embedding_dims = embedding_dims
        self.feature_of = feature_of
        self.per_sharding = per_sharding
        self.features = [feature_of[n] for n in embedding_names]

    def assemble(self, flats: List[torch.Tensor], batch_size_per_feature: Dict[str, int],
                 inverse_indices: Tuple[List[str], torch.Tensor]) -> KeyedTensor:
        pooled: Dict[str, torch.Tensor] = {}
        for flat, (names, dims) in zip(flats, self.per_sharding):
            batches = [batch_size_per_feature[self.feature_of[n]] for n in names]
            pooled.update(zip(names, split_features(flat, batches, dims)))
        inverse = reorder_inverse_indices(inverse_indices, self.features)
        values = process_pooled_embeddings([pooled[n] for n in self.embedding_names], inverse)
        return KeyedTensor(keys=self.embedding_names, length_per_key=self.embedding_dims, values=values)


class VariableBatchEmbeddingBagCollectionAwaitable(LazyGetItemMixin[str, torch.Tensor], LazyAwaitable[KeyedTensor]):
    """Waits every sharding's variable-batch output dist and builds the full-batch ``KeyedTensor``."""

    def __init__(self, awaitables: List[Awaitable[torch.Tensor]], ctx: "EmbeddingBagCollectionContext",
                 layout: VariableBatchLayout) -> None:
        super().__init__()
        self._awaitables = awaitables
        self._ctx = ctx
        self._layout = layout

    def _wait_impl(self) -> KeyedTensor:
        flats = [w.wait() for w in self._awaitables]
        assert self._ctx.inverse_indices is not None
        return self._layout.assemble(flats, self._ctx.batch_size_per_feature, self._ctx.inverse_indices)


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
    ) -> None:
        super().__init__(qcomm_codecs_registry=qcomm_codecs_registry)
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
        self._vbe_layout = VariableBatchLayout(
            self._embedding_names, self._embedding_dims,
            {n: f for c in configs for n, f in zip(c.embedding_names, c.feature_names)},
            [(s.embedding_names(), s.embedding_dims()) for s in shardings],
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
        if ctx.variable_batch_per_feature:
            return VariableBatchEmbeddingBagCollectionAwaitable(awaitables, ctx, self._vbe_layout)
        return EmbeddingBagCollectionAwaitable(awaitables, self._embedding_names, self._embedding_dims, self._permute)

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
            module, params, env, self.fused_params, device, self.qcomm_codecs_registry, module_fqn
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
