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

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Type, Union

import torch
from torch import nn

from recsys_lib.distributed._sharded.body import ShardedEmbeddingBody, sharded_table_configs
from recsys_lib.distributed._sharded.common import create_sharding_infos
from recsys_lib.distributed.global_settings import process_settings
from recsys_lib.distributed._sharded.device_groups import get_device_from_parameter_sharding, group_by_sharding_device  # noqa: F401,E501
from recsys_lib.distributed.embedding_sharding import EmbeddingShardingContext, KJTList, KJTListSplitsAwaitable
from recsys_lib.distributed.embeddingbag import broadcast_replicated_lookups, create_rocksdb_hard_link_snapshots
from recsys_lib.distributed.sharding.strategy import strategy_for
from recsys_lib.distributed._sharded.module_bases import BaseEmbeddingSharder, ShardedEmbeddingModule
from recsys_lib.distributed._core.awaitable import Awaitable, LazyAwaitable
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.modules.embedding_configs import EmbeddingTableConfig, PoolingType
from recsys_lib.modules.embedding_modules import EmbeddingCollection, EmbeddingCollectionInterface
from recsys_lib.optim.fused import FusedOptimizerModule
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor
from recsys_lib.streamable import Multistreamable


def pad_vbe_kjt_lengths(features: KeyedJaggedTensor) -> KeyedJaggedTensor:
    """A variable-batch KJT as a uniform-batch one: every key padded with empty bags to the largest batch.

    ``values`` are unchanged (the padding bags are empty)::

        a: bags [1, 2] | [3]        (batch 2)       a: [1, 2] | [3] | []
        b: bags [4]                 (batch 1)  ->   b: [4]    | []  | []     stride 3 (= max batch)
        c: bags [] | [5] | [6, 7]   (batch 3)       c: []     | [5] | [6, 7]
    """
    strides = features.stride_per_key()
    max_stride = max(strides)
    lengths = features.lengths()
    new_lengths = torch.zeros(max_stride * len(features.keys()), device=features.device(), dtype=lengths.dtype)
    start = 0
    for i, stride in enumerate(strides):
        new_lengths[i * max_stride : i * max_stride + stride] = lengths[start : start + stride]
        start += stride
    return KeyedJaggedTensor(
        keys=features.keys(),
        values=features.values(),
        lengths=new_lengths,
        stride=max_stride,
        length_per_key=features.length_per_key(),
        offset_per_key=features.offset_per_key(),
    )


@dataclass
class EmbeddingCollectionContext(Multistreamable):
    """Per-batch state of a sharded EC: sharding contexts and the input KJT (its lengths shape the output).

    ``None`` for a list field means empty (subclasses pass their arguments through).
    """

    sharding_contexts: List[EmbeddingShardingContext] = field(default_factory=list)
    input_features: List[KeyedJaggedTensor] = field(default_factory=list)
    reverse_indices: List[torch.Tensor] = field(default_factory=list)
    seq_vbe_ctx: List[Any] = field(default_factory=list)
    table_name_to_unpruned_hash_sizes: Dict[str, int] = field(default_factory=dict)
    early_releasable_inputs: List[KeyedJaggedTensor] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("sharding_contexts", "input_features", "reverse_indices", "seq_vbe_ctx",
                     "early_releasable_inputs"):
            value = getattr(self, name)
            setattr(self, name, [] if value is None else list(value))
        if self.table_name_to_unpruned_hash_sizes is None:
            self.table_name_to_unpruned_hash_sizes = {}

    def record_stream(self, stream: torch.Stream) -> None:
        for ctx in self.sharding_contexts:
            ctx.record_stream(stream)
        for f in self.input_features:
            f.record_stream(stream)


class EmbeddingCollectionAwaitable(LazyAwaitable[Dict[str, JaggedTensor]]):
    """Waits every sharding's rows and cuts them into one ``JaggedTensor`` per embedding name.

    Args:
        awaitables_per_sharding: per sharding, ``[ids, D]`` rows in the order of its embedding names.
        features_per_sharding: per sharding, this rank's input KJT with one key per embedding name (key ``j``
            feeds name ``j``): its lengths (and, with ``need_indices``, ids) shape the output.
        embedding_names_per_sharding: embedding names of each sharding, in its row order.
        ctx: the batch's context.
        need_indices: put each feature's ids in the output's ``weights``.
        features_to_permute_indices / use_gather_select / use_gather_select_per_sharding: layout options of
            TorchRec's de-duplicating paths; ids here are not de-duplicated, so they do not change the result.
        module_fqn / sharding_types: names for profiling ranges.
        resize_awaitables: waited after the rows (fully sharded kernels free their weights there).

    The result lists the names sharding by sharding, as TorchRec does (``with_output_order`` changes that; the
    sharded EC asks for the unsharded module's order).
    """

    def __init__(
        self,
        awaitables_per_sharding: List[Awaitable[torch.Tensor]],
        features_per_sharding: List[KeyedJaggedTensor],
        embedding_names_per_sharding: List[List[str]],
        ctx: EmbeddingCollectionContext,
        need_indices: bool = False,
        features_to_permute_indices: Optional[Dict[str, List[int]]] = None,
        module_fqn: Optional[str] = None,
        sharding_types: Optional[List[str]] = None,
        use_gather_select: bool = False,
        use_gather_select_per_sharding: Optional[Dict[str, bool]] = None,
        resize_awaitables: Optional[List[Awaitable[torch.Tensor]]] = None,
    ) -> None:
        super().__init__()
        self._awaitables_per_sharding = awaitables_per_sharding
        self._features_per_sharding = features_per_sharding
        self._embedding_names_per_sharding = embedding_names_per_sharding
        self._ctx = ctx
        self._need_indices = need_indices
        self._features_to_permute_indices = features_to_permute_indices or {}
        self._module_fqn = module_fqn
        self._sharding_types = sharding_types
        self._use_gather_select = use_gather_select
        self._use_gather_select_per_sharding = use_gather_select_per_sharding
        self._resize_awaitables = resize_awaitables
        self._output_names: Optional[List[str]] = None

    def with_output_order(self, names: List[str]) -> "EmbeddingCollectionAwaitable":
        """Lists the result's names in ``names`` order (the unsharded module's) instead of sharding order."""
        self._output_names = list(names)
        return self

    def _wait_impl(self) -> Dict[str, JaggedTensor]:
        out: Dict[str, JaggedTensor] = {}
        for rows_aw, features, names in zip(
            self._awaitables_per_sharding, self._features_per_sharding, self._embedding_names_per_sharding
        ):
            rows = rows_aw.wait()
            counts = features.length_per_key()
            if len(counts) != len(names) or sum(counts) != rows.size(0):
                raise RuntimeError(
                    f"sequence output: {rows.size(0)} rows for {sum(counts)} ids of {names} "
                    f"(features {features.keys()})"
                )
            lengths = features.lengths().split(features.stride_per_key())
            ids = features.values().split(counts) if self._need_indices else None
            for j, (name, values) in enumerate(zip(names, rows.split(counts, dim=0))):
                out[name] = JaggedTensor(
                    values=values, lengths=lengths[j], weights=ids[j] if ids is not None else None
                )
        if self._resize_awaitables is not None:
            for pending in self._resize_awaitables:
                pending.wait()
        if self._output_names is not None:
            return {n: out[n] for n in self._output_names}
        return out


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

    # ---- TorchRec's construction helpers ----

    @staticmethod
    def create_grouped_sharding_infos(
        module: EmbeddingCollectionInterface,
        table_name_to_parameter_sharding: Dict[str, ParameterSharding],
        fused_params: Optional[Dict[str, Any]],
    ) -> Dict[str, List[Any]]:
        """``{sharding_type: [EmbeddingShardingInfo]}`` of ``module``'s tables (plan checked)."""
        configs = sequence_table_configs(module)
        params = {c.name: module.embeddings[c.name].weight for c in configs}
        return create_sharding_infos(configs, params, table_name_to_parameter_sharding, fused_params,
                                     type(module).__name__)

    @staticmethod
    def create_embedding_sharding(
        sharding_type: str,
        sharding_infos: List[Any],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> Any:
        """The registry's sequence sharding of ``sharding_type`` over ``sharding_infos``."""
        return strategy_for(sharding_type).create_sequence(
            sharding_infos, env, device=device, qcomm_codecs_registry=qcomm_codecs_registry
        )

    def reset_parameters(self) -> None:
        """Re-initialises every local shard with its table's ``init_fn`` (default uniform)."""
        self._body.reset_parameters()

    def init_data_parallel(self) -> None:
        """Makes the data-parallel tables equal on every rank (rank 0's weights)."""
        broadcast_replicated_lookups(list(self._sharding_type_to_sharding.keys()), self._lookups, self._env)

    def create_rocksdb_hard_link_snapshot(self) -> None:
        """A RocksDB checkpoint of every key-value table shard on this rank (no-op without key-value tables)."""
        create_rocksdb_hard_link_snapshots(self._lookups)

    # ---- embedding writes (caches of key-value tables with enable_embedding_update) ----

    @property
    def enable_embedding_update(self) -> bool:
        return any(c.enable_embedding_update for c in self._embedding_configs)

    def _writable_shardings(self) -> List[Tuple[Any, nn.Module]]:
        return [
            (sharding, lookup)
            for sharding, lookup in zip(self._sharding_type_to_sharding.values(), self._lookups)
            if any(t.enable_embedding_update for t in sharding.embedding_tables())
        ]

    def write_dist(
        self, ctx: EmbeddingCollectionContext, embeddings: KeyedJaggedTensor
    ) -> Awaitable[Awaitable[KJTList]]:
        """Sends rows to write (``embeddings``: ids as values, rows as weights) to the ranks holding them."""
        if not self.enable_embedding_update:
            raise ValueError("enable_embedding_update is False for this collection")
        writable = self._writable_shardings()
        names = {n for sharding, _ in writable for n in sharding.embedding_names()}
        if set(embeddings.keys()) != names:
            raise ValueError(f"write_dist feature names {embeddings.keys()} do not match expected {sorted(names)}")
        splits = [len(sharding.embedding_names()) for sharding, _ in writable]
        with torch.no_grad():
            parts = embeddings.split(splits) if len(splits) > 1 else [embeddings]
            awaitables = [sharding.create_write_dist(self._device)(part) for (sharding, _), part in zip(writable, parts)]
        return KJTListSplitsAwaitable(awaitables, ctx, self._module_fqn, None)

    def update(self, ctx: EmbeddingCollectionContext, dist_input: KJTList) -> None:
        """Applies the distributed writes to this rank's key-value caches."""
        for (sharding, lookup), embeddings in zip(self._writable_shardings(), dist_input):
            sharding.create_update(lookup)(embeddings)

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
        features = ctx.input_features[0]
        return EmbeddingCollectionAwaitable(
            awaitables_per_sharding=awaitables,
            features_per_sharding=[features.permute(idx) for idx in self._feature_index_per_sharding(features)],
            embedding_names_per_sharding=self._embedding_names_per_sharding,
            ctx=ctx,
            need_indices=self._need_indices,
            module_fqn=self._module_fqn,
            sharding_types=list(self._sharding_type_to_sharding.keys()),
        ).with_output_order(self._embedding_names)

    def _feature_index_per_sharding(self, features: KeyedJaggedTensor) -> List[List[int]]:
        """Per sharding, the input key index feeding each of its embedding names."""
        index = {k: i for i, k in enumerate(features.keys())}
        return [[index[self._feature_of[n]] for n in names] for names in self._embedding_names_per_sharding]

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
