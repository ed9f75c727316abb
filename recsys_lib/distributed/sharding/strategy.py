"""THE sharding-strategy registry: the only place that lists strategies.

Callers ask it instead of branching on the sharding type::

    s = strategy_for("row_wise")                      # or ShardingType.ROW_WISE
    sizes, offsets = s.shard_sizes_and_offsets(rows=10, cols=8, world_size=4, local_world_size=4)
    sharding = s.create_pooled(sharding_infos, env, device)   # the strategy's pooled EmbeddingSharding

Adding a strategy = one folder (``<name>_sharding/`` with ``layout.py``, ``cost.py`` and its classes) + one
entry in ``_REGISTRY`` below. Classes and cost functions are named by folder and imported on first use, so the
registry (and the layout math) is usable before, and independently of, the sharded modules and the planner.

=================  =====  ==========  ========  =======  ===  ===  =====  ===  ========  =====  =====
sharding type      short  partition   sequence  partial  cpu  acc  fused  fp   replicat  hosts  quant
=================  =====  ==========  ========  =======  ===  ===  =====  ===  ========  =====  =====
data_parallel      DP     uniform     yes       no       yes  yes  yes    yes  yes       no     -
table_wise         TW     device      yes       no       yes  yes  yes    yes  no        no     0
column_wise        CW     device      yes       no       yes  yes  yes    yes  no        no     2
table_column_wise  TWCW   host        no        no       yes  yes  yes    yes  no        no     -
row_wise           RW     uniform     yes       yes      no   yes  yes    yes  no        no     1
table_row_wise     TWRW   host        no        yes      no   yes  yes    no   no        yes    -
grid_shard         GS     multi_host  no        no       no   yes  no     no   no        yes    -
=================  =====  ==========  ========  =======  ===  ===  =====  ===  ========  =====  =====

(partial: ``pools_partial_sums``; cpu / acc: ``offered_on_cpu`` / ``offered_on_accelerator``; fused / fp:
``supports_fused_ebc`` / ``supports_feature_processor``; quant: ``quant_inference_order``.)
"""

import importlib
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any, Callable, List, Mapping, Optional, Union

from recsys_lib.distributed._core.enums import ShardingType
from recsys_lib.distributed.sharding._layout_types import Layout, LayoutFn, request_of
from recsys_lib.distributed.sharding.cw_sharding import layout as cw_layout
from recsys_lib.distributed.sharding.dp_sharding import layout as dp_layout
from recsys_lib.distributed.sharding.grid_sharding import layout as grid_layout
from recsys_lib.distributed.sharding.rw_sharding import layout as rw_layout
from recsys_lib.distributed.sharding.tw_sharding import layout as tw_layout
from recsys_lib.distributed.sharding.twcw_sharding import layout as twcw_layout
from recsys_lib.distributed.sharding.twrw_sharding import layout as twrw_layout

_PKG = "recsys_lib.distributed.sharding"


def _load(path: str, what: str, sharding_type: ShardingType) -> Any:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ModuleNotFoundError, AttributeError) as e:
        if isinstance(e, ModuleNotFoundError) and e.name is not None and not module_name.startswith(e.name):
            raise  # a missing dependency inside the module, not the module itself
        raise NotImplementedError(
            f"{what} for sharding type {sharding_type.value!r} ({path}) is not available in this build"
        ) from e


class PartitionBy(str, Enum):
    """How the planner's partitioner places a strategy's shards (TorchRec's ``PartitionByType`` values)."""

    DEVICE = "device"  # each shard on one device, placed greedily
    HOST = "host"  # all shards of a table on the ranks of one host
    UNIFORM = "uniform"  # one shard on every rank
    MULTI_HOST = "multi_host"  # column blocks on several hosts, rows over each host's ranks


@dataclass(frozen=True)
class ShardingStrategy:
    """Everything sharding-type specific, looked up by ``ShardingType``: the only place that knows.

    Attributes:
        sharding_type: the plan string's enum.
        folder: the strategy's folder under ``distributed/sharding/`` (its classes and ``cost.py``).
        short_name: column label in the planner statistics (``"TW"``, ``"RW"``, ...).
        partition_by: how the planner's partitioner places the shards.
        layout: ``LayoutRequest -> (sizes, offsets)`` (pure, ``<folder>/layout.py``).
        pooled_class / sequence_class: class names in the folder of the EBC / EC sharding (``None``: unsupported).
        infer_pooled_class / infer_sequence_class: class names (in the folder's ``infer.py``) of the quantized
            EBC / EC inference sharding (``None``: not offered for inference).
        replicated: every rank holds the whole table (gradients synchronised by DDP, ``dense`` kernel, no spec).
        pools_partial_sums: each rank pools a partial sum of a bag's rows; MEAN pooling then runs as SUM in the
            kernels and the output dist divides after the reduction (sum-then-divide).
        offered_on_cpu / offered_on_accelerator: in ``BaseEmbeddingSharder.sharding_types`` for that device.
        supports_fused_ebc: ``FusedEmbeddingBagCollection`` can be sharded this way.
        supports_feature_processor: ``FeatureProcessedEmbeddingBagCollection`` can be sharded this way.
        quant_inference_order: position in ``BaseQuantEmbeddingSharder.sharding_types`` (None: not offered).
        uses_host_groups: needs the intra-/cross-host process groups (two-level strategies).
        plan_helper: name of the ``sharding_plan`` constructor for this type (``None``: planner-only).
        splits_rows: a table's rows are cut over ranks (row-wise family); the planner offers these types to
            feature-processed modules only when constraints name them (TorchRec's guarded types).
        manages_collisions: managed-collision modules (``distributed/mc_modules.py``) can be sharded this way: each
            rank owns a slice of the remapped rows and of the raw-id space.
        permutes_columns: the sharding classes take ``permute_embeddings`` (column shards put back in column
            order on output); sharded modules pass ``True``, the constructors default to ``False`` as TorchRec's.
    """

    sharding_type: ShardingType
    folder: str
    short_name: str
    partition_by: PartitionBy
    layout: LayoutFn
    pooled_class: Optional[str]
    sequence_class: Optional[str]
    replicated: bool
    pools_partial_sums: bool
    offered_on_cpu: bool
    offered_on_accelerator: bool
    supports_fused_ebc: bool
    supports_feature_processor: bool
    quant_inference_order: Optional[int]
    uses_host_groups: bool
    plan_helper: Optional[str]
    splits_rows: bool = False
    infer_pooled_class: Optional[str] = None
    infer_sequence_class: Optional[str] = None
    manages_collisions: bool = False
    permutes_columns: bool = False

    @property
    def supports_sequence(self) -> bool:
        return self.sequence_class is not None

    def shard_sizes_and_offsets(
        self,
        rows: int,
        cols: int,
        world_size: int,
        local_world_size: int,
        col_wise_shard_dim: Optional[int] = None,
        device_memory_sizes: Optional[List[int]] = None,
        num_buckets: Optional[int] = None,
    ) -> Layout:
        """The layout of one table (positional form of ``layout(LayoutRequest(...))``)."""
        return self.layout(request_of(rows, cols, world_size, local_world_size, col_wise_shard_dim,
                                      device_memory_sizes, num_buckets))

    def _class(self, name: Optional[str], what: str) -> Any:
        if name is None:
            raise ValueError(f"Sharding not supported {self.sharding_type.value}")
        return _load(f"{_PKG}.{self.folder}:{name}", what, self.sharding_type)

    def pooled_sharding_class(self) -> Any:
        return self._class(self.pooled_class, "pooled embedding sharding")

    def sequence_sharding_class(self) -> Any:
        return self._class(self.sequence_class, "sequence embedding sharding")

    def create_pooled(self, *args: Any, **kwargs: Any) -> Any:
        """Constructs the strategy's pooled (EBC) ``EmbeddingSharding``."""
        return self.pooled_sharding_class()(*args, **kwargs)

    def create_sequence(self, *args: Any, **kwargs: Any) -> Any:
        """Constructs the strategy's sequence (EC) ``EmbeddingSharding``; ``ValueError`` if unsupported."""
        return self.sequence_sharding_class()(*args, **kwargs)

    def create_for_module(
        self,
        sequence: bool,
        sharding_infos: List[Any],
        env: Any,
        device: Any = None,
        permute_embeddings: bool = False,
        qcomm_codecs_registry: Optional[Any] = None,
    ) -> Any:
        """The pooled (EBC) or sequence (EC) sharding, given the keyword arguments its constructor takes:
        replicated strategies send nothing and take no codecs; column-splitting ones take ``permute_embeddings``."""
        kwargs = {}
        if not self.replicated:
            kwargs["qcomm_codecs_registry"] = qcomm_codecs_registry
        if self.permutes_columns:
            kwargs["permute_embeddings"] = permute_embeddings
        make = self.create_sequence if sequence else self.create_pooled
        return make(sharding_infos, env, device, **kwargs)

    def _infer_class(self, name: Optional[str], what: str) -> Any:
        if name is None:
            raise ValueError(f"Sharding not supported for quantized inference: {self.sharding_type.value}")
        return _load(f"{_PKG}.{self.folder}.infer:{name}", what, self.sharding_type)

    def create_infer_pooled(self, *args: Any, **kwargs: Any) -> Any:
        """Constructs the strategy's quantized EBC inference sharding (``<folder>/infer.py``)."""
        return self._infer_class(self.infer_pooled_class, "pooled inference sharding")(*args, **kwargs)

    def create_infer_sequence(self, *args: Any, **kwargs: Any) -> Any:
        """Constructs the strategy's quantized EC inference sharding (``<folder>/infer.py``)."""
        return self._infer_class(self.infer_sequence_class, "sequence inference sharding")(*args, **kwargs)

    def cost_function(self) -> Callable[[Any], Any]:
        """The planner's cost function ``ShardCostInputs -> ShardCost`` (``<folder>/cost.py:shard_cost``),
        imported on first use: the cost model lives in the planner package, which imports this registry."""
        return _load(f"{_PKG}.{self.folder}.cost:shard_cost", "cost terms", self.sharding_type)


# Keyword fields only: an entry reads as a table row. Defaults are the common case (a model-parallel strategy
# offered everywhere, one process group, no partial sums); each entry states what differs.
def _entry(sharding_type: ShardingType, *, folder: str, short_name: str, partition_by: PartitionBy,
           layout: LayoutFn, pooled_class: str, sequence_class: Optional[str] = None, replicated: bool = False,
           pools_partial_sums: bool = False, offered_on_cpu: bool = True, offered_on_accelerator: bool = True,
           supports_fused_ebc: bool = True, supports_feature_processor: bool = True,
           quant_inference_order: Optional[int] = None, uses_host_groups: bool = False,
           plan_helper: Optional[str] = None, splits_rows: bool = False, infer_pooled_class: Optional[str] = None,
           infer_sequence_class: Optional[str] = None, manages_collisions: bool = False,
           permutes_columns: bool = False) -> ShardingStrategy:
    return ShardingStrategy(
        sharding_type=sharding_type, folder=folder, short_name=short_name, partition_by=partition_by, layout=layout,
        pooled_class=pooled_class, sequence_class=sequence_class, replicated=replicated,
        pools_partial_sums=pools_partial_sums, offered_on_cpu=offered_on_cpu,
        offered_on_accelerator=offered_on_accelerator, supports_fused_ebc=supports_fused_ebc,
        supports_feature_processor=supports_feature_processor,
        quant_inference_order=quant_inference_order, uses_host_groups=uses_host_groups,
        plan_helper=plan_helper, splits_rows=splits_rows, infer_pooled_class=infer_pooled_class,
        infer_sequence_class=infer_sequence_class, manages_collisions=manages_collisions,
        permutes_columns=permutes_columns,
    )


_REGISTRY: Mapping[ShardingType, ShardingStrategy] = MappingProxyType({
    ShardingType.DATA_PARALLEL: _entry(
        ShardingType.DATA_PARALLEL, folder="dp_sharding", short_name="DP", partition_by=PartitionBy.UNIFORM,
        layout=dp_layout.layout, pooled_class="DpPooledEmbeddingSharding",
        sequence_class="DpSequenceEmbeddingSharding", replicated=True, plan_helper="data_parallel"),
    ShardingType.TABLE_WISE: _entry(
        ShardingType.TABLE_WISE, folder="tw_sharding", short_name="TW", partition_by=PartitionBy.DEVICE,
        layout=tw_layout.layout, pooled_class="TwPooledEmbeddingSharding",
        sequence_class="TwSequenceEmbeddingSharding", quant_inference_order=0, plan_helper="table_wise",
        infer_pooled_class="InferTwEmbeddingSharding", infer_sequence_class="InferTwSequenceEmbeddingSharding"),
    ShardingType.COLUMN_WISE: _entry(
        ShardingType.COLUMN_WISE, folder="cw_sharding", short_name="CW", partition_by=PartitionBy.DEVICE,
        layout=cw_layout.layout, pooled_class="CwPooledEmbeddingSharding",
        sequence_class="CwSequenceEmbeddingSharding", quant_inference_order=2, plan_helper="column_wise",
        permutes_columns=True,
        infer_pooled_class="InferCwPooledEmbeddingSharding", infer_sequence_class="InferCwSequenceEmbeddingSharding"),
    ShardingType.TABLE_COLUMN_WISE: _entry(
        ShardingType.TABLE_COLUMN_WISE, folder="twcw_sharding", short_name="TWCW", partition_by=PartitionBy.HOST,
        layout=twcw_layout.layout, pooled_class="TwCwPooledEmbeddingSharding", permutes_columns=True),
    ShardingType.ROW_WISE: _entry(
        ShardingType.ROW_WISE, folder="rw_sharding", short_name="RW", partition_by=PartitionBy.UNIFORM,
        layout=rw_layout.layout, pooled_class="RwPooledEmbeddingSharding",
        sequence_class="RwSequenceEmbeddingSharding", pools_partial_sums=True, offered_on_cpu=False,
        quant_inference_order=1, plan_helper="row_wise", splits_rows=True, manages_collisions=True,
        infer_pooled_class="InferRwPooledEmbeddingSharding", infer_sequence_class="InferRwSequenceEmbeddingSharding"),
    ShardingType.TABLE_ROW_WISE: _entry(
        ShardingType.TABLE_ROW_WISE, folder="twrw_sharding", short_name="TWRW", partition_by=PartitionBy.HOST,
        layout=twrw_layout.layout, pooled_class="TwRwPooledEmbeddingSharding", pools_partial_sums=True,
        offered_on_cpu=False, supports_feature_processor=False, uses_host_groups=True,
        plan_helper="table_row_wise", splits_rows=True),
    # Grid pools partial sums too, but TorchRec keeps MEAN in its kernels (pools_partial_sums=False keeps that).
    ShardingType.GRID_SHARD: _entry(
        ShardingType.GRID_SHARD, folder="grid_sharding", short_name="GS", partition_by=PartitionBy.MULTI_HOST,
        layout=grid_layout.layout, pooled_class="GridPooledEmbeddingSharding", offered_on_cpu=False,
        supports_fused_ebc=False, supports_feature_processor=False, uses_host_groups=True,
        plan_helper="grid_shard", splits_rows=True),
})


def as_sharding_type(sharding_type: Union[str, ShardingType]) -> ShardingType:
    """``ShardingType`` from an enum or its plan string; ``ValueError`` naming the valid values otherwise."""
    if isinstance(sharding_type, ShardingType):
        return sharding_type
    try:
        return ShardingType(sharding_type)
    except ValueError:
        valid = [t.value for t in ShardingType]
        raise ValueError(f"unknown sharding type {sharding_type!r}; expected one of {valid}") from None


def strategy_for(sharding_type: Union[str, ShardingType]) -> ShardingStrategy:
    """The registered strategy of ``sharding_type`` (enum or plan string)."""
    st = as_sharding_type(sharding_type)
    if st not in _REGISTRY:
        raise ValueError(f"no strategy registered for sharding type {st.value!r}")
    return _REGISTRY[st]


def registered_sharding_types() -> List[ShardingType]:
    """All sharding types with a strategy, in registry order."""
    return list(_REGISTRY)


def sharding_types_where(predicate: Callable[[ShardingStrategy], bool]) -> List[str]:
    """Plan strings of the registered types whose strategy satisfies ``predicate``, in registry order."""
    return [st.value for st, s in _REGISTRY.items() if predicate(s)]


def quant_inference_sharding_types() -> List[str]:
    """Plan strings offered by quantized (inference) sharders, in their order."""
    offered = [s for s in _REGISTRY.values() if s.quant_inference_order is not None]
    return [s.sharding_type.value for s in sorted(offered, key=lambda s: s.quant_inference_order)]


# Embedding towers live on one host: a two-level (host) plan entry is sharded over that host's ranks with the
# one-level strategy it is made of (``distributed/_tower/``).
_HOST_LOCAL: Mapping[ShardingType, ShardingType] = MappingProxyType({
    ShardingType.TABLE_ROW_WISE: ShardingType.ROW_WISE,
    ShardingType.TABLE_COLUMN_WISE: ShardingType.COLUMN_WISE,
})


def tower_sharding_types() -> List[str]:
    """Plan strings an embedding-tower sharder offers (TorchRec's order: table-row-wise, table-column-wise)."""
    return [st.value for st in _HOST_LOCAL]


def host_local_sharding_type(sharding_type: Union[str, ShardingType]) -> str:
    """The plan string of the one-host form of a tower's sharding type; ``ValueError`` for other types."""
    st = as_sharding_type(sharding_type)
    if st not in _HOST_LOCAL:
        raise ValueError(f"Sharding type not supported {st.value}: embedding towers take {tower_sharding_types()}")
    return _HOST_LOCAL[st].value
