"""The sharding-strategy contract (TorchRec's ``torchrec.distributed.embedding_sharding``).

An :class:`EmbeddingSharding` is one strategy applied to the tables of one module that share a sharding type.
It is a factory of the three stages a sharded module runs per batch::

    input dist   (BaseSparseFeaturesDist)   KJT of this rank's batch  -> KJT of the features this rank looks up
    lookup       (BaseEmbeddingLookup)      that KJT                  -> local embeddings
    output dist  (BaseEmbeddingDist)        local embeddings          -> embeddings of this rank's batch

plus the names/dims of what it outputs, in *sharding order* (the order its output dist delivers columns or
rows). Strategies live one per folder under ``distributed/sharding/`` and are found through
``sharding.strategy.strategy_for(sharding_type)``; nothing else branches on the sharding type.

Also here: :class:`FeatureShardingMixIn` (the contract's feature placement), :class:`EmbeddingShardingInfo` (one
table + its plan entry), :class:`EmbeddingShardingContext` (per-batch facts), what input dists deliver
(:class:`KJTList`, one KJT per sharding; :class:`ListOfKJTList`; :class:`InputDistOutputs`) and the awaitables a
sharded module's ``input_dist`` returns, ``group_tables`` and ``bucketize_kjt_before_all2all`` (row-wise input
bucketing, pure + one FBGEMM op). The first four are public at ``embedding_types`` (TorchRec's path).
"""

import abc
from dataclasses import dataclass, field
from typing import Any, Dict, Generic, Iterator, List, Optional, Tuple, TypeVar, Union

import torch
from torch import nn
from torch.distributed import ProcessGroup

from recsys_lib._public import public_at
from recsys_lib.distributed._tbe.grouping import USE_ONE_TBE_PER_TABLE, group_tables  # noqa: F401
from recsys_lib.distributed.logging_handlers import detect_technique, log_tbe_composition  # noqa: F401
from recsys_lib.distributed._sharded.table_types import (
    BaseEmbeddingLookup,
    BaseGroupedFeatureProcessor,
    ShardedEmbeddingTable,
)
from recsys_lib.distributed._core.awaitable import Awaitable
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.modules.embedding_configs import EmbeddingTableConfig
from recsys_lib.streamable import Multistreamable
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

C = TypeVar("C", bound=Multistreamable)
F = TypeVar("F", bound=Multistreamable)
T = TypeVar("T")
W = TypeVar("W")

CACHE_LOAD_FACTOR_STR: str = "cache_load_factor"


@dataclass
class EmbeddingShardingInfo:
    """One table as a strategy sees it: its config, its plan entry, its (unsharded) weight, fused params."""

    embedding_config: EmbeddingTableConfig
    param_sharding: ParameterSharding
    param: torch.Tensor
    fused_params: Optional[Dict[str, Any]] = None


@dataclass
class InputDistFacts:
    """Per-batch facts an input dist derives from this rank's KJT for the output dist of the same sharding.

    Row-split strategies (row-wise, table-row-wise, grid) record them; they travel in the batch's
    :class:`EmbeddingShardingContext`, never on the modules, so batches in flight (pipelines) cannot mix.

    Attributes:
        divisor: bag lengths of MEAN features (1 elsewhere) of this rank's batch, ``[B, F]`` (one entry per bag
            for a variable batch), or None: the output dist divides the combined partial sums by it.
        unbucketize_permute: position of each original id in the bucketized order (sequences), or None.
        bucketized_length_per_key: ids per (bucket, feature) this rank sent (sequences: the return splits).
    """

    divisor: Optional[torch.Tensor] = None
    unbucketize_permute: Optional[torch.Tensor] = None
    bucketized_length_per_key: Optional[List[int]] = None


class SplitsWithFacts(Awaitable[Awaitable[KeyedJaggedTensor]]):
    """Phase-1 awaitable of an input dist (split sizes in flight) that also declares the batch's
    :class:`InputDistFacts`; the sharded module moves ``facts`` into the sharding context."""

    def __init__(self, inner: Awaitable[Awaitable[KeyedJaggedTensor]], facts: InputDistFacts) -> None:
        super().__init__()
        self._inner = inner
        self.facts: InputDistFacts = facts

    def _wait_impl(self) -> Awaitable[KeyedJaggedTensor]:
        return self._inner.wait()


@dataclass
class EmbeddingShardingContext(Multistreamable):
    """Per-batch facts an output dist needs (batch size of every rank; variable-batch bookkeeping).

    Besides the fields, sequence shardings record the ids sent to / received from each rank (``input_splits``,
    ``output_splits``), the received lengths and the lengths per key before the input dist; row-split
    shardings record :class:`InputDistFacts` (``input_dist_facts``). ``None`` for a list field means empty.
    """

    batch_size_per_rank: List[int] = field(default_factory=list)
    batch_size_per_rank_per_feature: List[List[int]] = field(default_factory=list)
    batch_size_per_feature_pre_a2a: List[int] = field(default_factory=list)
    variable_batch_per_feature: bool = False

    def __post_init__(self) -> None:
        self.batch_size_per_rank = list(self.batch_size_per_rank or [])
        self.batch_size_per_rank_per_feature = list(self.batch_size_per_rank_per_feature or [])
        self.batch_size_per_feature_pre_a2a = list(self.batch_size_per_feature_pre_a2a or [])
        self.input_splits: List[int] = []
        self.output_splits: List[int] = []
        self.lengths_after_input_dist: Optional[torch.Tensor] = None
        self.length_per_key_before_input_dist: List[int] = []
        # Facts the input dist derived from this rank's batch for its output dist (row splits: MEAN bag lengths,
        # the unbucketize permutation); set by the sharded module from a ``SplitsWithFacts`` awaitable.
        self.input_dist_facts: Optional[InputDistFacts] = None

    def require_input_dist_facts(self, what: str) -> InputDistFacts:
        """The recorded :class:`InputDistFacts`; ``RuntimeError`` naming ``what`` when there are none."""
        if self.input_dist_facts is None:
            raise RuntimeError(
                f"{what}: the sharding context carries no input-dist facts; pass the context the sharded module "
                f"filled from this sharding's input dist"
            )
        return self.input_dist_facts

    def record_stream(self, stream: torch.Stream) -> None:
        if self.lengths_after_input_dist is not None:
            self.lengths_after_input_dist.record_stream(stream)


class BaseSparseFeaturesDist(abc.ABC, nn.Module, Generic[F]):
    """Input dist: ``forward(kjt)`` → awaitable (split sizes) of an awaitable (tensors) of ``F``."""

    @abc.abstractmethod
    def forward(self, sparse_features: KeyedJaggedTensor) -> Awaitable[Awaitable[F]]:
        ...


class BaseEmbeddingDist(abc.ABC, nn.Module, Generic[C, T, W]):
    """Output dist: ``forward(local_embs, sharding_ctx)`` → awaitable of this rank's embeddings."""

    @abc.abstractmethod
    def forward(self, local_embs: T, sharding_ctx: Optional[C] = None) -> Awaitable[W]:
        ...


@public_at("recsys_lib.distributed.embedding_types")
class FeatureShardingMixIn:
    """Feature placement of one sharding: names in rank order and counts per rank."""

    def feature_names(self) -> List[str]:
        raise NotImplementedError

    def feature_names_per_rank(self) -> List[List[str]]:
        raise NotImplementedError

    def features_per_rank(self) -> List[int]:
        raise NotImplementedError


class EmbeddingSharding(abc.ABC, Generic[C, F, T, W], FeatureShardingMixIn):
    """One strategy over the tables of one module that share a sharding type (see the module docstring).

    Names, dims and metadata are in *sharding order*: the order the output dist delivers them.
    """

    def __init__(self, qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None) -> None:
        self._qcomm_codecs_registry = qcomm_codecs_registry

    @property
    def qcomm_codecs_registry(self) -> Optional[Dict[str, QuantizedCommCodecs]]:
        return self._qcomm_codecs_registry

    @abc.abstractmethod
    def create_input_dist(self, device: Optional[torch.device] = None) -> BaseSparseFeaturesDist[F]:
        ...

    @abc.abstractmethod
    def create_output_dist(self, device: Optional[torch.device] = None) -> BaseEmbeddingDist[C, T, W]:
        ...

    @abc.abstractmethod
    def create_lookup(
        self,
        device: Optional[torch.device] = None,
        fused_params: Optional[Dict[str, Any]] = None,
        feature_processor: Optional[BaseGroupedFeatureProcessor] = None,
    ) -> BaseEmbeddingLookup[F, T]:
        ...

    @abc.abstractmethod
    def embedding_dims(self) -> List[int]:
        """Output width of each embedding name (pooled: columns; sequence: row width)."""

    @abc.abstractmethod
    def embedding_names(self) -> List[str]:
        ...

    @abc.abstractmethod
    def embedding_names_per_rank(self) -> List[List[str]]:
        ...

    @abc.abstractmethod
    def embedding_shard_metadata(self) -> List[Optional[Any]]:
        ...

    @abc.abstractmethod
    def embedding_tables(self) -> List[ShardedEmbeddingTable]:
        """Every table shard of this sharding, all ranks (this rank's are those its lookup serves)."""

    def uncombined_embedding_dims(self) -> List[int]:
        return self.embedding_dims()

    def create_write_dist(self, device: Optional[torch.device] = None) -> Any:
        """The distribution of embedding *writes* (embedding-cache updates); a strategy that supports updates
        overrides it (TorchRec: row-wise sequence sharding)."""
        raise NotImplementedError(
            f"{type(self).__name__} does not distribute embedding updates (enable_embedding_update needs a "
            f"row-wise sequence sharding)"
        )

    def create_update(self, grouped_embeddings_lookup: BaseEmbeddingLookup[F, T]) -> Any:
        """The module applying embedding writes to this sharding's lookup; a strategy that supports updates
        overrides it (TorchRec: row-wise sequence sharding)."""
        raise NotImplementedError(
            f"{type(self).__name__} does not apply embedding updates (enable_embedding_update needs a row-wise "
            f"sequence sharding)"
        )

    def uncombined_embedding_names(self) -> List[str]:
        return self.embedding_names()


# ---- what the input dists deliver, and the awaitables over several shardings' input dists (what
#      ShardedModule.input_dist returns) ----


@public_at("recsys_lib.distributed.embedding_types")
class KJTList(Multistreamable):
    """A list of KeyedJaggedTensors (one per sharding of a module), streamable as a whole."""

    def __init__(self, features: List[Any]) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __setitem__(self, key: int, item: Any) -> None:
        self.features[key] = item

    def __getitem__(self, key: int) -> Any:
        return self.features[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.features)

    def record_stream(self, stream: Any) -> None:
        for f in self.features:
            f.record_stream(stream)

    def __repr__(self) -> str:
        return f"KJTList({self.features!r})"


@public_at("recsys_lib.distributed.embedding_types")
class ListOfKJTList(Multistreamable):
    """A list of :class:`KJTList` (one per sub-module of a fused sharded module)."""

    def __init__(self, features: List[KJTList]) -> None:
        self.features_list = features

    def __len__(self) -> int:
        return len(self.features_list)

    def __setitem__(self, key: int, item: KJTList) -> None:
        self.features_list[key] = item

    def __getitem__(self, key: int) -> KJTList:
        return self.features_list[key]

    def __iter__(self) -> Iterator[KJTList]:
        return iter(self.features_list)

    def record_stream(self, stream: Any) -> None:
        for f in self.features_list:
            f.record_stream(stream)


@public_at("recsys_lib.distributed.embedding_types")
@dataclass
class InputDistOutputs(Multistreamable):
    """What an input distribution hands to the lookup: features plus row-wise bucketization extras."""

    features: KJTList
    unbucketize_permute_tensor: Optional[torch.Tensor] = None
    bucket_mapping_tensor: Optional[torch.Tensor] = None
    bucketized_length: Optional[torch.Tensor] = None

    def record_stream(self, stream: Any) -> None:
        self.features.record_stream(stream)
        for t in (self.unbucketize_permute_tensor, self.bucket_mapping_tensor, self.bucketized_length):
            if t is not None:
                t.record_stream(stream)




class KJTListAwaitable(Awaitable[KJTList]):
    """Waits each sharding's tensor awaitable; ``ctx.sharding_contexts[i]`` gets facts of sharding ``i``."""

    def __init__(self, awaitables: List[Awaitable[KeyedJaggedTensor]], ctx: Any) -> None:
        super().__init__()
        self.awaitables = awaitables
        self.ctx = ctx

    def _wait_impl(self) -> KJTList:
        kjts = [w.wait() for w in self.awaitables]
        contexts = getattr(self.ctx, "sharding_contexts", None) or []
        for kjt, sctx in zip(kjts, contexts):
            if sctx is not None and sctx.variable_batch_per_feature:
                record_variable_batch_sizes(sctx, kjt)
        return KJTList(kjts)


def record_variable_batch_sizes(sctx: EmbeddingShardingContext, kjt: KeyedJaggedTensor) -> None:
    """``sctx.batch_size_per_rank_per_feature[i][f]``: the batch of source ``i`` (in the order the input dist
    delivered them, e.g. staggered for two-level shardings) for local feature ``f`` of the received VBE KJT."""
    per_feature = kjt.stride_per_key_per_rank()
    sources = len(per_feature[0]) if per_feature else 0
    sctx.batch_size_per_rank_per_feature = [[int(b[i]) for b in per_feature] for i in range(sources)]


class KJTListSplitsAwaitable(Awaitable[Awaitable[KJTList]]):
    """Waits each sharding's split-size awaitable (phase 1) and returns the tensor phase as one awaitable."""

    def __init__(
        self,
        awaitables: List[Awaitable[Awaitable[KeyedJaggedTensor]]],
        ctx: Any,
        module_fqn: Optional[str] = None,
        sharding_types: Optional[List[str]] = None,
    ) -> None:
        super().__init__()
        self.awaitables = awaitables
        self.ctx = ctx
        self._module_fqn = module_fqn  # names for profiling ranges
        self._sharding_types = sharding_types

    def _wait_impl(self) -> KJTListAwaitable:
        tensors = []
        for i, w in enumerate(self.awaitables):
            try:
                tensors.append(w.wait())
            except Exception:
                # A bad batch (every rank sees its error status): wait this batch's other exchanges too, so that
                # no collective of it is left in flight and the next batch starts in step on every rank.
                for rest in self.awaitables[i + 1:]:
                    try:
                        rest.wait()
                    except Exception:
                        pass
                raise
        for i, t in enumerate(tensors):
            record_batch_sizes(self.ctx, i, getattr(t, "_stride_per_rank", None))
        return KJTListAwaitable(tensors, self.ctx)


def record_batch_sizes(ctx: Any, i: int, batch_size_per_rank: Optional[List[int]]) -> None:
    """Stores the batch size of every rank (learnt in the split-size exchange) in sharding context ``i``.

    Ranks may have different batch sizes: the output dists send each rank its own ``batch_size_per_rank[r]``
    rows (table-wise / column-wise all-to-all, row-wise reduce-scatter with per-rank splits).
    """
    contexts = getattr(ctx, "sharding_contexts", None)
    sctx = contexts[i] if contexts is not None and i < len(contexts) else None
    if batch_size_per_rank is None or (sctx is not None and sctx.variable_batch_per_feature):
        return  # variable batch: the sizes per (rank, feature) come with the tensors (record_variable_batch_sizes)
    if sctx is not None:
        sctx.batch_size_per_rank = [int(b) for b in batch_size_per_rank]


class ListOfKJTListAwaitable(Awaitable[ListOfKJTList]):
    """A list of :class:`KJTListAwaitable` s waited together (modules made of several sharded modules)."""

    def __init__(self, awaitables: List[Awaitable[KJTList]]) -> None:
        super().__init__()
        self.awaitables = awaitables

    def _wait_impl(self) -> ListOfKJTList:
        return ListOfKJTList([w.wait() for w in self.awaitables])


class ListOfKJTListSplitsAwaitable(Awaitable[Awaitable[ListOfKJTList]]):
    def __init__(self, awaitables: List[Awaitable[Awaitable[KJTList]]]) -> None:
        super().__init__()
        self.awaitables = awaitables

    def _wait_impl(self) -> ListOfKJTListAwaitable:
        return ListOfKJTListAwaitable([w.wait() for w in self.awaitables])


class FusedKJTListSplitsAwaitable(Awaitable[List[KJTListAwaitable]]):
    """Several :class:`KJTListSplitsAwaitable` s waited as one (their collectives already issued)."""

    def __init__(
        self, requests: List[KJTListSplitsAwaitable], contexts: List[Any], pg: Optional[ProcessGroup]
    ) -> None:
        super().__init__()
        self._requests = requests
        self._contexts = contexts
        self._pg = pg  # the group the fused split exchanges ran on

    def _wait_impl(self) -> List[KJTListAwaitable]:
        return [r.wait() for r in self._requests]


# ---- row-wise bucketing (used by the row-split strategies) ----


def bucketize_kjt_before_all2all(
    kjt: KeyedJaggedTensor,
    num_buckets: int,
    block_sizes: torch.Tensor,
    total_num_blocks: Optional[torch.Tensor] = None,
    output_permute: bool = False,
    bucketize_pos: bool = False,
    block_bucketize_row_pos: Optional[List[torch.Tensor]] = None,
    keep_original_indices: bool = False,
) -> Tuple[KeyedJaggedTensor, Optional[torch.Tensor]]:
    """Splits every feature's ids into ``num_buckets`` row blocks: id ``i`` of feature ``f`` goes to bucket
    ``i // block_sizes[f]`` and becomes ``i % block_sizes[f]`` (unless ``keep_original_indices``).

    Output keys are the input keys repeated per bucket (bucket-major: all features of bucket 0, then bucket
    1, ...), ready for a ``KJTAllToAll`` with ``splits = [F] * num_buckets``::

        keys [f0], block 5, ids per sample [[1, 7], [9]], 2 buckets
        -> bucket 0: f0 [[1], []]      bucket 1: f0 [[2], [4]]

    Returns:
        ``(bucketized_kjt, unbucketize_permute)``; the permute (``output_permute=True``) maps each original id
        position to its position in the bucketized values.
    """
    if kjt.variable_stride_per_key():
        raise ValueError("bucketize_kjt_before_all2all: variable-batch KJTs are not supported")
    num_features = len(kjt.keys())
    if block_sizes.numel() != num_features:
        raise ValueError(
            f"bucketize_kjt_before_all2all: block_sizes has {block_sizes.numel()} entries for {num_features} keys"
        )
    if num_buckets < 1:
        raise ValueError(f"bucketize_kjt_before_all2all: num_buckets must be >= 1, got {num_buckets}")
    values = kjt.values()
    lengths = kjt.lengths().view(-1)
    weights = kjt.weights_or_none()
    (
        bucketized_lengths,
        bucketized_indices,
        bucketized_weights,
        pos,
        unbucketize_permute,
    ) = torch.ops.fbgemm.block_bucketize_sparse_features(
        lengths=lengths.to(values.dtype),
        indices=values,
        bucketize_pos=bucketize_pos,
        sequence=output_permute,
        block_sizes=block_sizes.to(values.dtype),
        my_size=num_buckets,
        weights=weights,
        block_bucketize_pos=block_bucketize_row_pos,
        keep_orig_idx=keep_original_indices,
        total_num_blocks=total_num_blocks,
    )
    out = KeyedJaggedTensor(
        keys=kjt.keys() * num_buckets,
        values=bucketized_indices,
        weights=pos if bucketize_pos else bucketized_weights,
        lengths=bucketized_lengths.view(-1).to(lengths.dtype),
        stride=kjt.stride(),
    )
    return out, unbucketize_permute


# Variants for inference and embedding writes (defined in ``_dist/bucketize_variants.py``).
from recsys_lib.distributed._dist.bucketize_variants import (  # noqa: E402,F401
    bucketize_embeddings_before_all2all_write,
    bucketize_kjt_inference,
)

__all__ = [
    "BaseEmbeddingDist",
    "BaseSparseFeaturesDist",
    "CACHE_LOAD_FACTOR_STR",
    "EmbeddingSharding",
    "EmbeddingShardingContext",
    "EmbeddingShardingInfo",
    "FusedKJTListSplitsAwaitable",
    "KJTListAwaitable",
    "KJTListSplitsAwaitable",
    "ListOfKJTListAwaitable",
    "ListOfKJTListSplitsAwaitable",
    "USE_ONE_TBE_PER_TABLE",
    "bucketize_embeddings_before_all2all_write",
    "bucketize_kjt_before_all2all",
    "bucketize_kjt_inference",
    "group_tables",
]


class BaseSparseFeaturesWriteDist(abc.ABC, nn.Module, Generic[F]):
    """Write dist (key-value tables): ``forward(embeddings)`` sends rows to be written to the ranks owning them,
    returning an awaitable (split sizes) of an awaitable (tensors), or the value itself when no exchange is needed."""

    @abc.abstractmethod
    def forward(self, embeddings: F) -> Union[Awaitable[Awaitable[F]], F]:
        ...


@dataclass
class KJTSplitsAllToAllMeta:
    """What a fused KJT splits all-to-all needs from one input dist (several are exchanged in one collective).

    Args:
        pg: the process group.
        _input: the KJT being distributed.
        splits: features per rank.
        splits_tensors: the split-size tensors sent.
        input_splits: per tensor (lengths, values, weights, ...) the sizes sent to each rank.
        input_tensors: the tensors to send after the splits.
        labels: names of ``input_tensors`` (``"lengths"``, ``"values"``, ...).
        keys: the KJT's keys.
        device: the KJT's device.
        stagger: source-rank stagger of the exchange (table-row-wise: ``W / L``).
    """

    pg: torch.distributed.ProcessGroup
    _input: KeyedJaggedTensor
    splits: List[int]
    splits_tensors: List[torch.Tensor]
    input_splits: List[List[int]]
    input_tensors: List[torch.Tensor]
    labels: List[str]
    keys: List[str]
    device: torch.device
    stagger: int
