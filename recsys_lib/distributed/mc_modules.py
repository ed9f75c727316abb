"""Sharded ``ManagedCollisionCollection`` (``torchrec.distributed.mc_modules``): row-wise remapping over ranks.

Rank ``r`` owns rows ``[o_r, o_r + n_r)`` of every MC table and the MC module (eviction state included) that
hands those rows out: the unsharded module rebuilt for that range. One batch, world ``W``::

    input_dist   permute the KJT into the collection's feature order, preprocess (e.g. hash) per table,
                 send each raw id to the owner of its block of the raw-id space (``_mc/layout.py``)
    compute      each owner profiles (training: counts, evictions) and remaps the ids it received, per table
    output_dist  rows go back to the ranks the ids came from, in their original order: a KJT shaped like
                 the (permuted) input, values = global rows of the tables

The remapped KJT then takes the normal row-wise path of the sharded EC/EBC (``mc_embedding_modules.py``). Three
all-to-alls per batch (counts, ids, rows), whatever the number of tables. ``evict()`` returns *local* rows of this
rank's shard. The state dict keeps TorchRec's keys; the remapping buffers are ``ShardedTensor`` s (``_mc/state.py``).
"""

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Type

import torch
from torch import nn

from recsys_lib.distributed._core.awaitable import Awaitable, LazyAwaitable, LazyNoWait, NoWait
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.sharder import ShardedModule
from recsys_lib.distributed._mc.id_exchange import ExchangeFacts, RawIdExchange
from recsys_lib.distributed._mc.layout import bucket_owners, MCTableLayout, mc_table_layout, raw_id_owner
from recsys_lib.distributed._mc.state import as_sharded_tensor, local_value, sharded_buffer_names
from recsys_lib.distributed._sharded.module_bases import BaseEmbeddingSharder
from recsys_lib.distributed._sharded.shard_tables import shard_rank, spec_shards
from recsys_lib.distributed._mc.remapper import ShardedMCCRemapper
from recsys_lib.distributed.embedding_sharding import EmbeddingSharding, EmbeddingShardingInfo, KJTList
from recsys_lib.distributed.sharding.strategy import sharding_types_where, strategy_for
from recsys_lib.modules._mc_base import _mcc_lazy_init_inplace
from recsys_lib.modules.hash_mc_modules import HashZchManagedCollisionModule
from recsys_lib.modules.mc_modules import _rebuild_kjt, ManagedCollisionCollection
from recsys_lib.modules.utils import construct_jagged_tensors
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor
from recsys_lib.streamable import Multistreamable

logger: logging.Logger = logging.getLogger(__name__)


def input_dist_permute(
    features: KeyedJaggedTensor, features_order: List[int], features_order_tensor: torch.Tensor
) -> KeyedJaggedTensor:
    """``features`` with its keys in ``features_order`` (``features_order_tensor``: the same order as a tensor)."""
    return features.permute(features_order, features_order_tensor)


def update_jagged_tensor_dict(
    output: Dict[str, JaggedTensor], new_dict: Dict[str, JaggedTensor]
) -> Dict[str, JaggedTensor]:
    """``output`` updated in place with ``new_dict`` (kept apart so fx treats it as one leaf call)."""
    output.update(new_dict)
    return output


torch.fx.wrap("input_dist_permute")
torch.fx.wrap("update_jagged_tensor_dict")


@dataclass
class EmbeddingCollectionContext(Multistreamable):
    """Per-batch state of a sharded MCC (TorchRec's ``mc_modules`` variant of the EC context).

    Attributes:
        sharding_contexts: one per sharding.
        input_features: the permuted input KJT(s).
        inverse_indices: VBE ``(keys, (F, B) indices)``.
        variable_batch_per_feature: the input has a batch size per feature.
        early_releasable_inputs: inputs a pipeline may free once the input dist has read them.
    """

    sharding_contexts: List[Any]
    input_features: List[KeyedJaggedTensor] = field(default_factory=list)
    inverse_indices: Optional[Tuple[List[str], torch.Tensor]] = None
    variable_batch_per_feature: bool = False
    early_releasable_inputs: List[KeyedJaggedTensor] = field(default_factory=list)

    def record_stream(self, stream: torch.Stream) -> None:
        for ctx in self.sharding_contexts:
            ctx.record_stream(stream)
        for f in self.input_features:
            f.record_stream(stream)
        if self.inverse_indices is not None:
            self.inverse_indices[1].record_stream(stream)


@dataclass
class ManagedCollisionCollectionContext(EmbeddingCollectionContext):
    """Per-batch state of a sharded MCC: the permuted input and how its ids were sent (for the reply)."""

    exchange_facts: Optional[ExchangeFacts] = field(default=None, init=False)
    unbucketize_permute: Optional[torch.Tensor] = field(default=None, init=False)  # inference: back to input order


class ManagedCollisionCollectionAwaitable(LazyAwaitable[KeyedJaggedTensor]):
    """Remapped ids of every sharding, as one KJT keyed by embedding name.

    Args:
        awaitables_per_sharding: per sharding, its remapped ids ``(N_s,)`` (or ``(N_s, 1)``) in feature order.
        features_per_sharding: per sharding, the KJT whose lengths cut those ids per feature.
        embedding_names_per_sharding: per sharding, the output key of each of its features.
        need_indices / features_to_permute_indices / reverse_indices: as ``construct_jagged_tensors``.
    """

    def __init__(
        self,
        awaitables_per_sharding: List[Awaitable[torch.Tensor]],
        features_per_sharding: List[KeyedJaggedTensor],
        embedding_names_per_sharding: List[List[str]],
        need_indices: bool = False,
        features_to_permute_indices: Optional[Dict[str, List[int]]] = None,
        reverse_indices: Optional[List[torch.Tensor]] = None,
    ) -> None:
        super().__init__()
        self._awaitables_per_sharding = awaitables_per_sharding
        self._features_per_sharding = features_per_sharding
        self._embedding_names_per_sharding = embedding_names_per_sharding
        self._need_indices = need_indices
        self._features_to_permute_indices = features_to_permute_indices
        self._reverse_indices = reverse_indices

    def _wait_impl(self) -> KeyedJaggedTensor:
        jt_dict: Dict[str, JaggedTensor] = {}
        for i, (w, f, names) in enumerate(zip(self._awaitables_per_sharding, self._features_per_sharding,
                                                self._embedding_names_per_sharding)):
            reverse = self._reverse_indices[i] if self._reverse_indices else None
            ids = w.wait()
            jts = construct_jagged_tensors(embeddings=ids.view(-1, 1), features=f, embedding_names=names,
                                           need_indices=self._need_indices,
                                           features_to_permute_indices=self._features_to_permute_indices,
                                           reverse_indices=reverse)
            for name, jt in jts.items():
                jt_dict[name] = JaggedTensor(values=jt.values().flatten(), lengths=jt.lengths(),
                                             weights=jt.weights_or_none())
        return KeyedJaggedTensor.from_jt_dict(jt_dict)


def create_mc_sharding(
    sharding_type: str,
    sharding_infos: List[EmbeddingShardingInfo],
    env: ShardingEnv,
    device: Optional[torch.device] = None,
) -> EmbeddingSharding:
    """The sequence sharding of MC tables: only strategies that manage collisions (row-wise).

    Raises:
        ValueError: another sharding type.
    """
    strategy = strategy_for(sharding_type)
    if not strategy.manages_collisions:
        raise ValueError(f"create_mc_sharding: sharding type {sharding_type!r} is not supported for managed-collision "
                         f"tables; use one of {sharding_types_where(lambda s: s.manages_collisions)}")
    return strategy.create_sequence(sharding_infos, env, device=device)


def _layouts(module: ManagedCollisionCollection, plan: Dict[str, ParameterSharding],
             world_size: int) -> Dict[str, MCTableLayout]:
    out: Dict[str, MCTableLayout] = {}
    for table, config in module._table_name_to_config.items():
        if table not in plan:
            raise ValueError(f"ShardedManagedCollisionCollection: the plan has no entry for table {table!r}")
        ps = plan[table]
        if not strategy_for(ps.sharding_type).manages_collisions:
            raise ValueError(
                f"ShardedManagedCollisionCollection: table {table!r} is planned {ps.sharding_type!r}; managed-collision "
                f"tables shard only as {sharding_types_where(lambda s: s.manages_collisions)}"
            )
        shards = [(shard_rank(md), int(md.shard_offsets[0]), int(md.shard_sizes[0])) for md in spec_shards(table, ps)]
        mc = module._managed_collision_modules[table]
        out[table] = mc_table_layout(table, config.num_embeddings, shards, mc.input_size(), world_size)
    return out


class ShardedManagedCollisionCollection(
    ShardedModule[KJTList, KJTList, KeyedJaggedTensor, ManagedCollisionCollectionContext]
):
    """A ``ManagedCollisionCollection`` sharded row-wise (see the module docstring).

    Args:
        module: the unsharded collection (its modules are rebuilt per rank; it is not modified).
        table_name_to_parameter_sharding: one row-wise plan entry per table (the embedding tables' plan).
        env: world, rank and process group.
        device: where the local MC modules live.
        embedding_shardings: the sharded EC/EBC's shardings (kept for API compatibility; the row ranges are
            read from the plan).
        qcomm_codecs_registry: accepted for API compatibility (ids travel uncompressed).
        use_index_dedup: accepted for API compatibility (ids are not de-duplicated before sending).

    Raises:
        ValueError: a table not planned row-wise, or with fewer rows than ranks.
    """

    def __init__(
        self,
        module: ManagedCollisionCollection,
        table_name_to_parameter_sharding: Dict[str, ParameterSharding],
        env: ShardingEnv,
        device: torch.device,
        embedding_shardings: List[Any],
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
        use_index_dedup: bool = False,
    ) -> None:
        super().__init__(qcomm_codecs_registry=qcomm_codecs_registry)
        self.need_preprocess: bool = module.need_preprocess
        self._device = device
        self._env = env
        self._embedding_shardings = embedding_shardings
        self._use_index_dedup = use_index_dedup
        self._table_name_to_parameter_sharding = dict(table_name_to_parameter_sharding)
        self._feature_to_table: Dict[str, str] = dict(module._feature_to_table)
        self._table_to_features: Dict[str, List[str]] = dict(module._table_to_features)
        self._table_name_to_config = dict(module._table_name_to_config)
        self._layouts = _layouts(module, self._table_name_to_parameter_sharding, env.world_size)
        self._tables: List[str] = list(self._table_name_to_config)
        self._table_feature_splits: List[int] = [len(self._table_to_features[t]) for t in self._tables]
        self._feature_names: List[str] = [f for t in self._tables for f in self._table_to_features[t]]
        self._features_order: List[int] = []
        self._created_feature_order: List[bool] = [False]
        self._table_to_offset: Dict[str, int] = {}
        self._bucket_owner: Dict[str, torch.Tensor] = {}
        self._managed_collision_modules = nn.ModuleDict()
        for table in self._tables:
            layout = self._layouts[table]
            offset, rows = layout.row_ranges[env.rank]
            self._table_to_offset[table] = offset
            mc = module._managed_collision_modules[table].rebuild_with_output_id_range(
                output_id_range=(offset, offset + rows), output_segments=layout.output_segments, device=device
            )
            self._managed_collision_modules[table] = mc
            owners = bucket_owners(table, mc.buckets(), env.world_size)
            self._bucket_owner[table] = torch.tensor(owners, dtype=torch.int64)
        self._exchange = RawIdExchange(env.process_group, env.world_size, len(self._tables))
        self._sharded_names: Dict[str, List[str]] = {
            t: sharded_buffer_names(m) for t, m in self._managed_collision_modules.items()
        }
        # RawIdTracker: (kjt of local rows per table, empty states, None, raw ids, runtime meta) after each remap
        self.post_lookup_tracker_fn: Optional[Callable[..., None]] = None
        self._register_state_dict_hook(_to_sharded_tensors)
        self._register_load_state_dict_pre_hook(_from_sharded_tensors, with_module=True)

    # ---- the three stages ----

    def create_context(self) -> ManagedCollisionCollectionContext:
        return ManagedCollisionCollectionContext(sharding_contexts=[])

    def input_dist(
        self, ctx: ManagedCollisionCollectionContext, features: KeyedJaggedTensor, skip_permute: bool = False
    ) -> Awaitable[Awaitable[KJTList]]:
        """Sends every raw id to the rank owning its block of the raw-id space; ``(W, T)`` counts first."""
        with torch.no_grad():
            if not skip_permute:
                features = _mcc_lazy_init_inplace(
                    features, self._feature_names, self._features_order, self._created_feature_order
                )
            ctx.input_features.append(features)
            values: List[torch.Tensor] = []
            owners: List[torch.Tensor] = []
            for table, kjt in zip(self._tables, features.split(self._table_feature_splits)):
                ids = kjt.values()
                if self.need_preprocess:
                    mc = self._managed_collision_modules[table]
                    ids = mc.preprocess({table: JaggedTensor(values=ids, lengths=kjt.lengths())})[table].values()
                values.append(ids.to(torch.int64))
                owners.append(raw_id_owner(ids, self._layouts[table].input_size, self._bucket_owner[table]))
            counts = torch.tensor([v.numel() for v in values], dtype=torch.int64)
            table_of = torch.repeat_interleave(torch.arange(len(self._tables), dtype=torch.int64), counts)
            flat = torch.cat(values) if values else torch.empty((0,), dtype=torch.int64)
            owner = torch.cat(owners) if owners else torch.empty((0,), dtype=torch.int64)
            received, facts = self._exchange.send(flat, owner, table_of)
            ctx.exchange_facts = facts
        lengths = torch.tensor([r.numel() for r in received], dtype=torch.int64)
        kjt = KeyedJaggedTensor(keys=list(self._tables), values=torch.cat(received) if received else flat,
                                lengths=lengths, stride=1)
        return NoWait(NoWait(KJTList([kjt])))

    def compute(self, ctx: ManagedCollisionCollectionContext, dist_input: KJTList) -> KJTList:
        """Each table's MC module profiles (training) and remaps the ids this rank owns (global rows out)."""
        kjt = dist_input[0]
        rows: List[torch.Tensor] = []
        for table, ids in zip(self._tables, kjt.values().split(kjt.length_per_key())):
            one = KeyedJaggedTensor(keys=[table], values=ids, lengths=torch.tensor([ids.numel()], dtype=torch.int64),
                                    stride=1)
            with torch.no_grad():
                rows.append(self.get_lookup_value(table, one)[table].values() + self._table_to_offset[table])
        values = torch.cat(rows) if rows else kjt.values()
        return KJTList([KeyedJaggedTensor(keys=kjt.keys(), values=values, lengths=kjt.lengths(), stride=1)])

    def get_lookup_value(
        self, table: str, features: KeyedJaggedTensor, write_weights: Optional[torch.Tensor] = None
    ) -> Dict[str, JaggedTensor]:
        """``{table: JaggedTensor of local rows}`` of the (preprocessed) raw ids ``features`` owned here:
        ``remap(profile(ids))`` minus this rank's first row; reports hash-ZCH raw ids to a registered tracker.

        Args:
            table: the table whose MC module remaps.
            features: one table's ids (every key's values go through that module together).
            write_weights: hash ZCH runtime metadata to write for the ids (``(N,)`` or ``(N, D)``).
        """
        mc = self._managed_collision_modules[table]
        mc_input = {table: JaggedTensor(values=features.values(), lengths=features.lengths())}
        mc_input = mc.profile(mc_input)
        if write_weights is not None:
            mc_input = mc.remap(mc_input, write_weights=write_weights)
        else:
            mc_input = mc.remap(mc_input)
        mc_input = self.global_to_local_index(mc_input)
        self._track_raw_ids(mc, mc_input, mc_input[table].values())
        return mc_input

    def global_to_local_index(self, jt_dict: Dict[str, JaggedTensor]) -> Dict[str, JaggedTensor]:
        """Rows of this rank's shard: each table's global rows minus its first row (in place)."""
        for table, jt in jt_dict.items():
            jt._values = jt.values() - self._table_to_offset[table]
        return jt_dict

    def _track_raw_ids(self, mc: nn.Module, mc_input: Dict[str, JaggedTensor], local_rows: torch.Tensor) -> None:
        record_fn = self.post_lookup_tracker_fn
        if record_fn is None or not isinstance(mc, HashZchManagedCollisionModule):
            return  # only hash ZCH keeps the raw id of each row
        meta = mc._hash_zch_runtime_meta
        runtime_meta = meta.index_select(0, local_rows) if meta is not None else None
        record_fn(KeyedJaggedTensor.from_jt_dict(mc_input), torch.empty(0), None,
                  mc._hash_zch_identities.index_select(0, local_rows), runtime_meta)

    def register_post_lookup_tracker_fn(self, record_fn: Callable[..., None]) -> None:
        """``record_fn(kjt, states, emb_module, raw_ids, runtime_meta)`` runs after every hash-ZCH remap (the
        ``RawIdTracker``): ``kjt`` holds local rows keyed by table, ``raw_ids`` the identity of each row."""
        if self.post_lookup_tracker_fn is not None:
            logger.warning("ShardedManagedCollisionCollection: replacing the registered post-lookup tracker function")
        self.post_lookup_tracker_fn = record_fn

    def output_dist(self, ctx: ManagedCollisionCollectionContext, output: KJTList) -> LazyAwaitable[KeyedJaggedTensor]:
        """Rows back to the ranks the ids came from: a KJT shaped like the permuted input."""
        kjt = output[0]
        facts = ctx.exchange_facts
        assert facts is not None, "output_dist before input_dist"
        per_table = list(kjt.values().split(kjt.length_per_key()))
        rows = self._exchange.reply(per_table, facts)
        features = ctx.input_features[-1]
        return LazyNoWait(_rebuild_kjt(features, rows.to(features.values().dtype), features.lengths()))

    # ---- eviction and state ----

    def evict(self) -> Dict[str, Optional[torch.Tensor]]:
        """``{table: local rows (E,) of this rank's shard to re-initialise, or None}``."""
        out: Dict[str, Optional[torch.Tensor]] = {}
        for table, mc in self._managed_collision_modules.items():
            rows = mc.evict()
            out[table] = None if rows is None else rows - self._table_to_offset[table]
        return out

    def open_slots(self) -> Dict[str, torch.Tensor]:
        return {t: m.open_slots() for t, m in self._managed_collision_modules.items()}

    def sharded_parameter_names(self, prefix: str = "") -> Iterator[str]:
        base = f"{prefix}." if prefix else ""
        for table, names in self._sharded_names.items():
            for n in names:
                yield f"{base}_managed_collision_modules.{table}.{n}"

    @property
    def unsharded_module_type(self) -> Type[ManagedCollisionCollection]:
        return ManagedCollisionCollection


def _to_sharded_tensors(module: ShardedManagedCollisionCollection, destination: Dict[str, Any], prefix: str,
                        local_metadata: Any) -> None:
    pg, rank = module._env.process_group, module._env.rank
    for table, names in module._sharded_names.items():
        for n in names:
            key = f"{prefix}_managed_collision_modules.{table}.{n}"
            if key in destination:
                destination[key] = as_sharded_tensor(destination[key], module._layouts[table], rank, pg)


def _from_sharded_tensors(module: ShardedManagedCollisionCollection, state_dict: Dict[str, Any], prefix: str,
                          *args: Any) -> None:
    for table, names in module._sharded_names.items():
        for n in names:
            key = f"{prefix}_managed_collision_modules.{table}.{n}"
            if key in state_dict:
                state_dict[key] = local_value(state_dict[key], key)


class ManagedCollisionCollectionSharder(BaseEmbeddingSharder[ManagedCollisionCollection]):
    """Shards a ``ManagedCollisionCollection`` alongside the embedding tables it feeds (row-wise only).

    Args:
        qcomm_codecs_registry: accepted for API compatibility.
    """

    def __init__(self, qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None) -> None:
        super().__init__(qcomm_codecs_registry=qcomm_codecs_registry)

    def shard(  # type: ignore[override]
        self,
        module: ManagedCollisionCollection,
        params: Dict[str, ParameterSharding],
        env: ShardingEnv,
        embedding_shardings: List[Any],
        device: Optional[torch.device] = None,
        use_index_dedup: bool = False,
    ) -> ShardedManagedCollisionCollection:
        return ShardedManagedCollisionCollection(
            module, params, env=env, device=device if device is not None else torch.device("cpu"),
            embedding_shardings=embedding_shardings, use_index_dedup=use_index_dedup,
        )

    def shardable_parameters(self, module: ManagedCollisionCollection) -> Dict[str, nn.Parameter]:
        """The MC modules' parameters (MCH modules keep buffers only, so usually none)."""
        return dict(module._managed_collision_modules.named_parameters())

    @property
    def module_type(self) -> Type[ManagedCollisionCollection]:
        return ManagedCollisionCollection

    def sharding_types(self, compute_device_type: str) -> List[str]:
        return sharding_types_where(lambda s: s.manages_collisions)


class ShardedQuantManagedCollisionCollection(ShardedModule[KJTList, KJTList, KeyedJaggedTensor, ManagedCollisionCollectionContext]):
    """A ``ManagedCollisionCollection`` sharded row-wise for inference over the devices of one process.

    Rank ``r`` holds each table's MC module rebuilt for its row slice (as training sharding does, so a sharded
    training checkpoint's per-rank MC state loads here rank by rank). Raw ids go to the rank owning their raw-id
    block (``_mc/layout.py``) and are remapped read-only there::

        forward(KJT of raw ids) -> KJT of global rows, same keys, lengths and weights

    Args:
        module: the unsharded collection (not modified).
        table_name_to_parameter_sharding: one row-wise plan entry per table.
        env: ``world_size`` "ranks" (``ShardingEnv.from_local``), or ``{device: env}`` (one env used).
        device: where the MC modules live.
        embedding_shardings: the sharded EC/EBC's shardings (row ranges come from the plan).
        qcomm_codecs_registry: accepted for API compatibility.
    """

    def __init__(
        self,
        module: ManagedCollisionCollection,
        table_name_to_parameter_sharding: Dict[str, ParameterSharding],
        env: Any,
        device: torch.device,
        embedding_shardings: List[Any],
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        super().__init__(qcomm_codecs_registry=qcomm_codecs_registry)
        if isinstance(env, dict):
            env = list(env.values())[0]
        self._env = env
        self._device = device
        self._embedding_shardings = embedding_shardings
        self.need_preprocess: bool = module.need_preprocess
        self._table_name_to_config = dict(module._table_name_to_config)
        self._tables: List[str] = list(self._table_name_to_config)
        self._table_to_features: Dict[str, List[str]] = dict(module._table_to_features)
        self._feature_to_table: Dict[str, str] = dict(module._feature_to_table)
        self._feature_names: List[str] = [f for t in self._tables for f in self._table_to_features[t]]
        self._layouts = _layouts(module, dict(table_name_to_parameter_sharding), env.world_size)
        self._managed_collision_modules_per_rank = nn.ModuleList([nn.ModuleDict() for _ in range(env.world_size)])
        self._shard_metadata_per_rank: List[Dict[str, List[int]]] = [{} for _ in range(env.world_size)]
        self._bucket_owner: Dict[str, torch.Tensor] = {}
        for table in self._tables:
            layout = self._layouts[table]
            base = module._managed_collision_modules[table]
            for r, (offset, rows) in enumerate(layout.row_ranges):
                mc = base.rebuild_with_output_id_range(output_id_range=(offset, offset + rows),
                                                       output_segments=layout.output_segments, device=device)
                mc.reset_inference_mode()
                self._managed_collision_modules_per_rank[r][table] = mc
                self._shard_metadata_per_rank[r][table] = [offset, rows]
            buckets = self._managed_collision_modules_per_rank[0][table].buckets()
            self._bucket_owner[table] = torch.tensor(bucket_owners(table, buckets, env.world_size), dtype=torch.int64)

    def create_context(self) -> ManagedCollisionCollectionContext:
        return ManagedCollisionCollectionContext(sharding_contexts=[])

    def input_dist(  # type: ignore[override]
        self, ctx: ManagedCollisionCollectionContext, features: KeyedJaggedTensor, is_sequence_embedding: bool = True
    ) -> KJTList:
        """Per rank, the (preprocessed) raw ids it owns: a KJT with the input's keys (``stride 1``, one bag per
        key); ``ctx`` keeps how to put the results back in input order."""
        ctx.input_features.append(features)
        w = len(self._managed_collision_modules_per_rank)
        per_rank_ids: List[List[torch.Tensor]] = [[] for _ in range(w)]
        per_rank_pos: List[List[torch.Tensor]] = [[] for _ in range(w)]
        start = 0
        for key, ids in zip(features.keys(), features.values().split(features.length_per_key())):
            if key not in self._feature_to_table:
                raise KeyError(f"ShardedQuantManagedCollisionCollection: feature {key!r} has no table; "
                               f"known {sorted(self._feature_to_table)}")
            table = self._feature_to_table[key]
            if self.need_preprocess:
                mc = self._managed_collision_modules_per_rank[0][table]
                one = torch.tensor([ids.numel()], dtype=torch.int64)
                ids = mc.preprocess({table: JaggedTensor(values=ids, lengths=one)})[table].values()
            owner = raw_id_owner(ids, self._layouts[table].input_size, self._bucket_owner[table])
            for r in range(w):
                sel = (owner == r).nonzero().squeeze(1)
                per_rank_ids[r].append(ids.index_select(0, sel))
                per_rank_pos[r].append(sel + start)
            start += ids.numel()
        order = torch.cat([torch.cat(p) for p in per_rank_pos]) if start > 0 else torch.empty((0,), dtype=torch.int64)
        unbucketize = torch.empty_like(order)
        unbucketize[order] = torch.arange(order.numel(), dtype=torch.int64)
        ctx.unbucketize_permute = unbucketize
        return KJTList([
            KeyedJaggedTensor(keys=features.keys(), values=torch.cat(v) if v else features.values()[:0],
                              lengths=torch.tensor([x.numel() for x in v], dtype=torch.int64), stride=1)
            for v in per_rank_ids
        ])

    def compute(  # type: ignore[override]
        self, ctx: ManagedCollisionCollectionContext, rank: int, dist_input: KJTList
    ) -> KJTList:
        """Rank ``rank`` remaps (read-only) the ids it owns, ``dist_input[rank]``: global rows, same layout."""
        kjt = dist_input[rank]
        mcs = self._managed_collision_modules_per_rank[rank]
        rows: List[torch.Tensor] = []
        with torch.no_grad():
            for key, ids in zip(kjt.keys(), kjt.values().split(kjt.length_per_key())):
                table = self._feature_to_table[key]
                jt = {table: JaggedTensor(values=ids, lengths=torch.tensor([ids.numel()], dtype=torch.int64))}
                rows.append(mcs[table].remap(jt)[table].values().to(torch.int64))
        values = torch.cat(rows) if rows else kjt.values()
        return KJTList([KeyedJaggedTensor(keys=kjt.keys(), values=values, lengths=kjt.lengths(), stride=1)])

    def output_dist(self, ctx: ManagedCollisionCollectionContext, output: KJTList) -> KeyedJaggedTensor:  # type: ignore[override]  # noqa: E501
        """Every rank's rows (``output[r]``) back in input order, as a KJT shaped like the input."""
        features = ctx.input_features[-1]
        assert ctx.unbucketize_permute is not None, "output_dist before input_dist"
        rows = torch.cat([kjt.values() for kjt in output]).index_select(0, ctx.unbucketize_permute)
        return KeyedJaggedTensor(keys=features.keys(), values=rows.to(features.values().dtype),
                                 lengths=features.lengths(), weights=features.weights_or_none(),
                                 stride=features.stride())

    def forward(self, features: KeyedJaggedTensor) -> KeyedJaggedTensor:  # type: ignore[override]
        """Global rows of every id (see the class docstring)."""
        ctx = self.create_context()
        dist_input = self.input_dist(ctx, features)
        outs = [self.compute(ctx, r, dist_input)[0] for r in range(len(dist_input))]
        return self.output_dist(ctx, KJTList(outs))

    def create_mcc_remappers(self) -> List[List[ShardedMCCRemapper]]:
        """Per sharding (one: row-wise), per rank, the remap step of that rank's share of the features."""
        splits = [len(self._table_to_features[t]) for t in self._tables]
        return [[ShardedMCCRemapper(splits, list(self._feature_names), mcs, self._shard_metadata_per_rank[r])
                 for r, mcs in enumerate(self._managed_collision_modules_per_rank)]]

    @property
    def unsharded_module_type(self) -> Type[ManagedCollisionCollection]:
        return ManagedCollisionCollection


class InferManagedCollisionCollectionSharder(ManagedCollisionCollectionSharder):
    """Shards a ``ManagedCollisionCollection`` for inference (``ShardedQuantManagedCollisionCollection``)."""

    def shard(  # type: ignore[override]
        self,
        module: ManagedCollisionCollection,
        params: Dict[str, ParameterSharding],
        env: Any,
        embedding_shardings: List[Any],
        device: Optional[torch.device] = None,
    ) -> ShardedQuantManagedCollisionCollection:
        return ShardedQuantManagedCollisionCollection(
            module, params, env=env, device=device if device is not None else torch.device("cpu"),
            embedding_shardings=embedding_shardings,
        )
