"""Sharded ``FeatureProcessedEmbeddingBagCollection`` (TorchRec's ``torchrec.distributed.fp_embeddingbag``).

The weighted EBC inside is sharded by an ``EmbeddingBagCollectionSharder``; the position-weight processors
run between its input dist and its lookups, on the rank that looks each feature up (see
``grouped_position_weighted``). Per batch::

    input dist (EBC's; ids carry weight 1, or their bag position for row-split tables)
      -> position weights (every rank holds all of them; their gradients are summed over ranks)
      -> lookups -> output dist (EBC's)

Sharding types: ``data_parallel, table_wise, column_wise, table_column_wise, row_wise`` (row-wise needs the
bag positions, which its input dist sends when a table has ``need_pos``; the sharder sets it). State dict keys
are the unsharded module's: ``_embedding_bag_collection.embedding_bags.<table>.weight`` and
``_feature_processors...``.
"""

import copy
import dataclasses
from functools import partial
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Type

import torch
from torch import nn

from recsys_lib.distributed._sharded.module_bases import ShardedEmbeddingModule
from recsys_lib.distributed.embedding_sharding import KJTList
from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionContext, EmbeddingBagCollectionSharder
from recsys_lib.distributed.grouped_position_weighted import SumGradAcrossRanks, apply_position_weights
from recsys_lib.distributed._core.awaitable import Awaitable, LazyAwaitable
from recsys_lib.distributed._core.sharder import ModuleSharder
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.modules.feature_processor_ import PositionWeightedModule, PositionWeightedModuleCollection
from recsys_lib.modules.fp_embedding_modules import FeatureProcessedEmbeddingBagCollection
from recsys_lib.optim.fused import FusedOptimizerModule
from recsys_lib.optim.keyed import KeyedOptimizer
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor, KeyedTensor



def position_weight_params(processors: nn.Module) -> Dict[str, nn.Parameter]:
    """``{feature: position_weight}`` of a processor dict or collection; other processors → ``TypeError``."""
    if isinstance(processors, PositionWeightedModuleCollection):
        return dict(processors.position_weights.items())
    if isinstance(processors, nn.ModuleDict):
        out: Dict[str, nn.Parameter] = {}
        for f, p in processors.items():
            if not isinstance(p, PositionWeightedModule):
                raise TypeError(f"sharding a FeatureProcessedEmbeddingBagCollection supports position-weighted "
                                f"processors only; feature {f!r} has {type(p).__name__}")
            out[f] = p.position_weight
        return out
    raise TypeError(f"unsupported feature processors {type(processors).__name__} (expected position weights)")


def with_need_pos(ebc: nn.Module, features: List[str]) -> nn.Module:
    """A shallow copy of ``ebc`` (same parameters) whose tables reading ``features`` have ``need_pos=True``."""
    out = copy.copy(ebc)
    out._embedding_bag_configs = [
        dataclasses.replace(c, need_pos=True) if any(f in features for f in c.feature_names) else c
        for c in ebc.embedding_bag_configs()
    ]
    return out


def position_grad_scale(sharding_type: str, lookup: nn.Module, world_size: int) -> float:
    """Factor making the position weights' gradients, summed over ranks, equal the unsharded gradient of the
    mean of the ranks' losses: model-parallel lookups divide per-id weight gradients by their group size
    (undone here); replicated (data-parallel) lookups see only the local batch (averaged here)."""
    from recsys_lib.distributed.sharding.strategy import strategy_for

    if strategy_for(sharding_type).replicated:
        return 1.0 / world_size
    return float(getattr(lookup, "_scale_gradient_factor", 1))


class ShardedFeatureProcessedEmbeddingBagCollection(
    ShardedEmbeddingModule[KJTList, List[torch.Tensor], KeyedTensor, EmbeddingBagCollectionContext],
    FusedOptimizerModule,
):
    """A ``FeatureProcessedEmbeddingBagCollection`` with a sharded EBC (see the module docstring).

    Args:
        module: the unsharded FP-EBC (position-weighted processors).
        table_name_to_parameter_sharding: plan of its EBC's tables.
        ebc_sharder: shards the weighted EBC.
        env / device / module_fqn: as ``ShardedEmbeddingBagCollection``.
    """

    def __init__(
        self,
        module: FeatureProcessedEmbeddingBagCollection,
        table_name_to_parameter_sharding: Dict[str, ParameterSharding],
        ebc_sharder: EmbeddingBagCollectionSharder,
        env: ShardingEnv,
        device: torch.device,
        module_fqn: Optional[str] = None,
    ) -> None:
        super().__init__(qcomm_codecs_registry=ebc_sharder.qcomm_codecs_registry)
        processors, ebc = module.split()
        self._feature_processors = copy.deepcopy(processors)
        self._fp_params = position_weight_params(self._feature_processors)
        self._pg = env.process_group
        self._embedding_bag_collection = ebc_sharder.shard(
            with_need_pos(ebc, list(self._fp_params)), table_name_to_parameter_sharding, env, device,
            module_fqn=None if module_fqn is None else f"{module_fqn}._embedding_bag_collection",
        )
        shardings = list(self._embedding_bag_collection.shardings.items())
        self._positions_in_weights = [bool(getattr(s, "need_pos", False)) for _, s in shardings]
        self._grad_scales = [position_grad_scale(st, lookup, env.world_size)
                             for (st, _), lookup in zip(shardings, self._embedding_bag_collection._lookups)]

    def create_context(self) -> EmbeddingBagCollectionContext:
        return self._embedding_bag_collection.create_context()

    def input_dist(self, ctx: EmbeddingBagCollectionContext, features: KeyedJaggedTensor) -> Awaitable[Awaitable[KJTList]]:
        if features.weights_or_none() is None:  # the EBC is weighted; the processors set the real weights
            features = KeyedJaggedTensor(
                keys=features.keys(), values=features.values(), lengths=features.lengths(),
                weights=torch.ones(features.values().numel(), device=features.values().device),
                stride=None if features.variable_stride_per_key() else features.stride(),
                stride_per_key_per_rank=features.stride_per_key_per_rank() if features.variable_stride_per_key() else None,
                inverse_indices=features.inverse_indices_or_none(),
            )
        return self._embedding_bag_collection.input_dist(ctx, features)

    def _synced_position_weights(self) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """The position weights flattened through :class:`SumGradAcrossRanks` (gradients summed over ranks),
        and per feature views of that flat tensor."""
        names = list(self._fp_params)
        flat = SumGradAcrossRanks.apply(torch.cat([self._fp_params[n].view(-1) for n in names]), self._pg)
        return flat, dict(zip(names, flat.split([self._fp_params[n].numel() for n in names])))

    def _process(self, dist_input: KJTList, synced: Dict[str, torch.Tensor]) -> KJTList:
        return KJTList([apply_position_weights(kjt, synced, pos, scale)
                        for kjt, pos, scale in zip(dist_input, self._positions_in_weights, self._grad_scales)])

    def apply_feature_processors_to_kjt_list(self, dist_input: KJTList) -> KJTList:
        """Each sharding's received KJT with its position weights applied (positions from the bag offsets, or
        from the weights a row-split input dist sent)."""
        return self._process(dist_input, self._synced_position_weights()[1])

    def add_fp_params_grad_sync_callback(self, lazy_awaitable_kt: LazyAwaitable[KeyedTensor]) -> LazyAwaitable[KeyedTensor]:
        """Ties every feature-processor parameter into the awaited ``KeyedTensor`` with a zero term, so each
        rank produces a (possibly zero) gradient for all of them and gradient synchronisation never waits on a
        rank that looked none of them up."""
        no_op = torch.cat([p.flatten() for p in self._feature_processors.parameters()]).sum() * 0.0
        lazy_awaitable_kt.callbacks.append(partial(param_dp_sync, no_op_tensor=no_op))
        return lazy_awaitable_kt

    def preprocess_input(self, args: List[Any], kwargs: Mapping[str, Any]) -> Tuple[List[Any], Mapping[str, Any]]:
        """Inputs need no change before the input dist: row-split shardings send each id's bag position with
        it (``need_pos``), so the positions are known wherever the id is looked up."""
        return args, kwargs

    def compute(self, ctx: EmbeddingBagCollectionContext, dist_input: KJTList) -> List[torch.Tensor]:
        flat, synced = self._synced_position_weights()
        out = self._embedding_bag_collection.compute(ctx, self._process(dist_input, synced))
        # every rank must run the gradient all-reduce, also where no position-weighted feature is looked up
        out[0] = out[0] + 0.0 * flat.sum()
        return out

    def output_dist(self, ctx: EmbeddingBagCollectionContext, output: List[torch.Tensor]) -> LazyAwaitable[KeyedTensor]:
        return self._embedding_bag_collection.output_dist(ctx, output)

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, nn.Parameter]]:
        base = f"{prefix}." if prefix else ""
        yield from self._embedding_bag_collection.named_parameters(f"{base}_embedding_bag_collection", recurse)
        yield from self._feature_processors.named_parameters(f"{base}_feature_processors", recurse)

    def sharded_parameter_names(self, prefix: str = "") -> Iterator[str]:
        """The EBC's tables and the position weights: both are kept in sync here, not by DDP."""
        base = f"{prefix}." if prefix else ""
        yield from self._embedding_bag_collection.sharded_parameter_names(f"{base}_embedding_bag_collection")
        for name, _ in self._feature_processors.named_parameters(f"{base}_feature_processors"):
            yield name

    @property
    def fused_optimizer(self) -> KeyedOptimizer:
        return self._embedding_bag_collection.fused_optimizer

    @property
    def shardings(self) -> Dict[str, Any]:
        return self._embedding_bag_collection.shardings

    @property
    def unsharded_module_type(self) -> Type[nn.Module]:
        return FeatureProcessedEmbeddingBagCollection


class FeatureProcessedEmbeddingBagCollectionSharder(ModuleSharder[FeatureProcessedEmbeddingBagCollection]):
    """Shards ``FeatureProcessedEmbeddingBagCollection`` s (see the module docstring).

    Args:
        ebc_sharder: shards the inner EBC (default ``EmbeddingBagCollectionSharder()``).
        qcomm_codecs_registry: wire codecs (used when ``ebc_sharder`` is not given).
    """

    def __init__(
        self,
        ebc_sharder: Optional[EmbeddingBagCollectionSharder] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        super().__init__(qcomm_codecs_registry=qcomm_codecs_registry)
        self._ebc_sharder = ebc_sharder if ebc_sharder is not None else EmbeddingBagCollectionSharder(
            qcomm_codecs_registry=qcomm_codecs_registry)

    def shard(
        self,
        module: FeatureProcessedEmbeddingBagCollection,
        params: Dict[str, ParameterSharding],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        module_fqn: Optional[str] = None,
    ) -> ShardedFeatureProcessedEmbeddingBagCollection:
        from recsys_lib.distributed.sharding.strategy import sharding_types_where

        supported = sharding_types_where(lambda s: s.supports_feature_processor)
        for name, ps in params.items():
            if ps.sharding_type not in supported:
                raise ValueError(f"table {name!r}: sharding type {ps.sharding_type!r} is not supported for feature-"
                                 f"processed EBCs; supported: {supported}")
        return ShardedFeatureProcessedEmbeddingBagCollection(module, params, self._ebc_sharder, env, device, module_fqn)

    def shardable_parameters(self, module: FeatureProcessedEmbeddingBagCollection) -> Dict[str, nn.Parameter]:
        return self._ebc_sharder.shardable_parameters(module.split()[1])

    def sharding_types(self, compute_device_type: str) -> List[str]:
        from recsys_lib.distributed.sharding.strategy import sharding_types_where, strategy_for

        # Types the EBC sharder keeps off CPU (row-wise) are offered here on CPU too: the FP input dist sends
        # bag positions with the ids.
        offered = self._ebc_sharder.sharding_types(compute_device_type)
        return [t for t in sharding_types_where(lambda s: s.supports_feature_processor)
                if t in offered or not strategy_for(t).offered_on_cpu]

    def compute_kernels(self, sharding_type: str, compute_device_type: str) -> List[str]:
        return self._ebc_sharder.compute_kernels(sharding_type, compute_device_type)

    @property
    def module_type(self) -> Type[FeatureProcessedEmbeddingBagCollection]:
        return FeatureProcessedEmbeddingBagCollection

    @property
    def sharded_module_type(self) -> Type[ShardedFeatureProcessedEmbeddingBagCollection]:
        return ShardedFeatureProcessedEmbeddingBagCollection

    @property
    def fused_params(self) -> Optional[Dict[str, Any]]:
        """The inner EBC sharder's FBGEMM arguments (they configure this module's kernels)."""
        return self._ebc_sharder.fused_params


def param_dp_sync(kt: KeyedTensor, no_op_tensor: torch.Tensor) -> KeyedTensor:
    """Adds ``no_op_tensor`` (a zero that depends on the data-parallel feature-processor parameters) to ``kt``'s
    values in place, so those parameters join the autograd graph and their gradients get all-reduced."""
    kt._values.add_(no_op_tensor)
    return kt
