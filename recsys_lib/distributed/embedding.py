"""Sharded ``EmbeddingCollection`` and its sharder (TorchRec's ``torchrec.distributed.embedding``).

Same plan, state dict and three-stage protocol as the sharded EBC (shared code in
``_sharded/body.py``); the output is ``Dict[str, JaggedTensor]`` — one row per input id, lengths of
this rank's input — equal to what the unsharded ``EmbeddingCollection`` returns for this rank's batch::

    sharded = EmbeddingCollectionSharder().shard(ec, plan, env, torch.device("cpu"))
    out = sharded(kjt).wait()          # {"f0": JaggedTensor(values [L_f0, D], lengths [B]), ...}

Each sharding's output dist returns ``[ids, D]`` rows, ids in the order of the sharding's ``embedding_names()``
(for each name: this rank's ids of that name's feature, in sample order).

Variable batch per feature (VBE): a KJT built with ``stride_per_key_per_rank=[[b_f] for each key]`` (this rank's
batch of every key) works with every sequence sharding; feature ``f``'s output has ``b_f`` bags, as the unsharded
module's. Rows are per id, so only the cut of the returned rows into (feature, source rank) segments changes
(``tw_sharding.sequence.segment_batches``). Bad input (missing keys, several batch sizes for a key, ranks that
disagree on VBE) raises ``ValueError`` on every rank: a rank whose input is bad still takes part in the split-size
exchange of the input dists, with an error status.
"""

from typing import Any, Dict, List, Optional, Tuple, Type, Union

import torch
from torch import nn

from recsys_lib.distributed._sharded.body import ShardedEmbeddingBody, sharded_table_configs
from recsys_lib.distributed._sharded.common import create_sharding_infos
from recsys_lib.distributed.global_settings import process_settings
from recsys_lib.distributed._sharded.device_groups import get_device_from_parameter_sharding, group_by_sharding_device  # noqa: F401,E501
from recsys_lib.distributed.embedding_sharding import EmbeddingShardingContext
from recsys_lib.distributed._sharded.module_bases import BaseEmbeddingSharder, ShardedEmbeddingModule
from recsys_lib.distributed._sharded.table_types import KJTList
from recsys_lib.distributed._sharded.vbe_lengths import pad_vbe_kjt_lengths  # noqa: F401
from recsys_lib.distributed._core.awaitable import Awaitable, LazyAwaitable
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.modules.embedding_configs import EmbeddingTableConfig, PoolingType
from recsys_lib.modules.embedding_modules import EmbeddingCollection, EmbeddingCollectionInterface
from recsys_lib.optim.fused import FusedOptimizerModule
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor
from recsys_lib.streamable import Multistreamable


class EmbeddingCollectionContext(Multistreamable):
    """Per-batch state of a sharded EC: sharding contexts and the input KJT (its lengths shape the output)."""

    def __init__(
        self,
        sharding_contexts: Optional[List[EmbeddingShardingContext]] = None,
        input_features: Optional[List[KeyedJaggedTensor]] = None,
        reverse_indices: Optional[List[torch.Tensor]] = None,
        seq_vbe_ctx: Optional[List[Any]] = None,
    ) -> None:
        self.sharding_contexts: List[EmbeddingShardingContext] = list(sharding_contexts or [])
        self.input_features: List[KeyedJaggedTensor] = list(input_features or [])
        self.reverse_indices: List[torch.Tensor] = list(reverse_indices or [])
        self.seq_vbe_ctx: List[Any] = list(seq_vbe_ctx or [])

    def record_stream(self, stream: torch.Stream) -> None:
        for ctx in self.sharding_contexts:
            ctx.record_stream(stream)
        for f in self.input_features:
            f.record_stream(stream)


class EmbeddingCollectionAwaitable(LazyAwaitable[Dict[str, JaggedTensor]]):
    """Waits every sharding's rows and cuts them into one ``JaggedTensor`` per embedding name.

    Args:
        awaitables: per sharding, ``[ids, D]`` rows in the order of ``names_per_sharding[i]``.
        features: this rank's input KJT (lengths and, with ``need_indices``, ids of the output).
        names_per_sharding: embedding names of each sharding, in its row order.
        feature_of: embedding name → input feature.
        output_names: keys of the result, in the unsharded module's order.
    """

    def __init__(
        self,
        awaitables: List[Awaitable[torch.Tensor]],
        features: KeyedJaggedTensor,
        names_per_sharding: List[List[str]],
        feature_of: Dict[str, str],
        output_names: List[str],
        need_indices: bool = False,
    ) -> None:
        super().__init__()
        self._awaitables = awaitables
        self._features = features
        self._embedding_names_per_sharding = names_per_sharding
        self._feature_of = feature_of
        self._output_names = output_names
        self._need_indices = need_indices

    def _wait_impl(self) -> Dict[str, JaggedTensor]:
        per_feature = self._features.to_dict()
        out: Dict[str, JaggedTensor] = {}
        for rows_aw, names in zip(self._awaitables, self._embedding_names_per_sharding):
            rows = rows_aw.wait()
            jts = [per_feature[self._feature_of[n]] for n in names]
            counts = [int(jt.values().numel()) for jt in jts]
            if sum(counts) != rows.size(0):
                raise RuntimeError(f"sequence output: {rows.size(0)} rows for {sum(counts)} ids of {names}")
            for name, jt, values in zip(names, jts, rows.split(counts, dim=0)):
                out[name] = JaggedTensor(
                    values=values, lengths=jt.lengths(), weights=jt.values() if self._need_indices else None
                )
        return {n: out[n] for n in self._output_names}


def sequence_table_configs(module: nn.Module) -> List[EmbeddingTableConfig]:
    """``EmbeddingTableConfig`` s of an (fused) EC's tables (pooling NONE) with their output names."""
    return sharded_table_configs(module.embedding_configs(), PoolingType.NONE, is_weighted=False)


class ShardedEmbeddingCollection(
    ShardedEmbeddingModule[KJTList, List[torch.Tensor], Dict[str, JaggedTensor], EmbeddingCollectionContext],
    FusedOptimizerModule,
):
    """An ``EmbeddingCollection`` whose tables are spread over ranks (see the module docstring).

    Args:
        module / table_name_to_parameter_sharding / env / fused_params / device / qcomm_codecs_registry /
        module_fqn: as ``ShardedEmbeddingBagCollection``.
        use_index_dedup: accepted for API compatibility; ids are not de-duplicated before the all-to-all.
    """

    def __init__(
        self,
        module: nn.Module,
        table_name_to_parameter_sharding: Dict[str, ParameterSharding],
        env: ShardingEnv,
        fused_params: Optional[Dict[str, Any]] = None,
        device: Optional[torch.device] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
        use_index_dedup: bool = False,
        module_fqn: Optional[str] = None,
    ) -> None:
        super().__init__(qcomm_codecs_registry=qcomm_codecs_registry)
        self._env = env
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        self._module_fqn = module_fqn
        self._use_index_dedup = use_index_dedup or get_ec_index_dedup()
        self._need_indices: bool = bool(module.need_indices())
        self._embedding_configs = module.embedding_configs()
        self._table_name_to_config: Dict[str, Any] = {c.name: c for c in self._embedding_configs}
        configs = sequence_table_configs(module)
        params = {c.name: module.embeddings[c.name].weight for c in configs}
        self._table_name_to_parameter_sharding = dict(table_name_to_parameter_sharding)
        body = ShardedEmbeddingBody(
            configs, params, table_name_to_parameter_sharding, env, self._device, fused_params,
            qcomm_codecs_registry, sequence=True, weights_attr="embeddings", owner_name=type(self).__name__,
        )
        self._body = body
        self._sharding_type_to_sharding = body.sharding_type_to_sharding
        self._features_order = body.router.feature_names
        self._feature_splits = body.router.feature_splits
        self._input_dists = body.input_dists
        self._lookups = body.lookups
        self._output_dists = body.output_dists
        self.embeddings = body.tables
        self._table_names = [c.name for c in configs]
        self.register_load_state_dict_post_hook(body.missing_keys_hook())
        self._embedding_names = [n for c in configs for n in c.embedding_names]
        self._feature_of = {n: f for c in configs for n, f in zip(c.embedding_names, c.feature_names)}
        self._embedding_names_per_sharding = [s.embedding_names() for s in body.sharding_type_to_sharding.values()]
        self._embedding_dim = module.embedding_dim()

    def create_context(self) -> EmbeddingCollectionContext:
        return EmbeddingCollectionContext()

    def input_dist(self, ctx: EmbeddingCollectionContext, features: KeyedJaggedTensor) -> Awaitable[Awaitable[KJTList]]:
        ctx.input_features.append(features)
        return self._body.input_dist(ctx, features, sequence=True)

    def compute(self, ctx: EmbeddingCollectionContext, dist_input: KJTList) -> List[torch.Tensor]:
        out = []
        for lookup, features, sctx in zip(self._lookups, dist_input, ctx.sharding_contexts):
            sctx.lengths_after_input_dist = features.lengths().view(-1)
            embs = lookup(features)
            if self.post_lookup_tracker_fn is not None:  # model delta tracker: the ids this rank looked up
                self.post_lookup_tracker_fn(features, embs, self, None)
            out.append(embs)
        return out

    def output_dist(
        self, ctx: EmbeddingCollectionContext, output: List[torch.Tensor]
    ) -> LazyAwaitable[Dict[str, JaggedTensor]]:
        awaitables = [dist(rows, sctx) for dist, rows, sctx in zip(self._output_dists, output, ctx.sharding_contexts)]
        if self.post_odist_tracker_fn is not None:
            self.post_odist_tracker_fn()
        return EmbeddingCollectionAwaitable(
            awaitables, ctx.input_features[0], self._embedding_names_per_sharding, self._feature_of, self._embedding_names,
            self._need_indices,
        )

    # ---- optimizer and shardings (state dict and parameters: ShardedEmbeddingModule asks the body) ----

    @property
    def fused_optimizer(self) -> Any:
        return self._body.fused_optimizer()

    @property
    def shardings(self) -> Dict[str, Any]:
        return dict(self._sharding_type_to_sharding)

    @property
    def unsharded_module_type(self) -> Type[nn.Module]:
        return EmbeddingCollection

    def embedding_configs(self) -> List[Any]:
        return self._embedding_configs

    def embedding_dim(self) -> int:
        return self._embedding_dim

    def need_indices(self) -> bool:
        return self._need_indices


class EmbeddingCollectionSharder(BaseEmbeddingSharder[EmbeddingCollection]):
    """Shards ``EmbeddingCollection`` s: ``data_parallel, table_wise, column_wise`` (+ ``row_wise`` where its
    strategy is registered); kernels ``dense`` for data parallel, else ``fused`` (``dense`` also runs on CPU).

    Args:
        fused_params / qcomm_codecs_registry: as ``BaseEmbeddingSharder``.
        use_index_dedup: accepted for API compatibility (no de-duplication).
    """

    def __init__(
        self,
        fused_params: Optional[Dict[str, Any]] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
        use_index_dedup: bool = False,
    ) -> None:
        super().__init__(fused_params, qcomm_codecs_registry)
        self._use_index_dedup = use_index_dedup

    def shard(
        self,
        module: EmbeddingCollection,
        params: Dict[str, ParameterSharding],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        module_fqn: Optional[str] = None,
    ) -> ShardedEmbeddingCollection:
        return ShardedEmbeddingCollection(
            module, params, env, self.fused_params, device, self.qcomm_codecs_registry, self._use_index_dedup,
            module_fqn,
        )

    def shardable_parameters(self, module: EmbeddingCollection) -> Dict[str, nn.Parameter]:
        return {name: emb.weight for name, emb in module.embeddings.items()}

    def sharding_types(self, compute_device_type: str) -> List[str]:
        from recsys_lib.distributed.sharding.strategy import sharding_types_where

        super().sharding_types(compute_device_type)  # validates the device type
        return sharding_types_where(lambda s: s.supports_sequence)

    @property
    def module_type(self) -> Type[EmbeddingCollection]:
        return EmbeddingCollection

    @property
    def sharded_module_type(self) -> Type[ShardedEmbeddingCollection]:
        return ShardedEmbeddingCollection


def create_sharding_infos_by_sharding_device_group(
    module: EmbeddingCollectionInterface,
    table_name_to_parameter_sharding: Dict[str, ParameterSharding],
    fused_params: Optional[Dict[str, Any]],
) -> Dict[Tuple[str, Union[str, Tuple[str, ...]]], List[Any]]:
    """``{(sharding_type, device group): [EmbeddingShardingInfo]}`` of an EC's tables (plan checked)."""
    configs = sequence_table_configs(module)
    params = {c.name: module.embeddings[c.name].weight for c in configs}
    infos = create_sharding_infos(configs, params, table_name_to_parameter_sharding, fused_params, type(module).__name__)
    return group_by_sharding_device(infos, [c.name for c in configs])


def set_ec_index_dedup(val: bool) -> None:
    """Process-wide default for ``use_index_dedup`` of sharded ECs built afterwards. Results are the same either
    way: ids are not de-duplicated before the all-to-all here (docs/deviations.md)."""
    process_settings().ec_index_dedup = bool(val)


def get_ec_index_dedup() -> bool:
    """The process-wide ``use_index_dedup`` default (False)."""
    return process_settings().ec_index_dedup
