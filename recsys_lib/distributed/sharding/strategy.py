"""THE sharding-strategy registry: the only place that lists strategies.

Callers ask it instead of branching on the sharding type::

    s = strategy_for("row_wise")                      # or ShardingType.ROW_WISE
    sizes, offsets = s.shard_sizes_and_offsets(rows=10, cols=8, world_size=4, local_world_size=4)
    sharding = s.create_pooled(sharding_infos, env, device)   # the strategy's pooled EmbeddingSharding

Adding a strategy = one folder (``<name>_sharding/`` with ``layout.py`` and its classes) + one entry in
``_REGISTRY`` below. Classes are named by import path and imported on first use, so the registry
(and the layout math) is usable before, and independently of, the sharded modules.

====================  ==============  ====================================  ===========  ===========
sharding type         folder          pooled (EBC) class                    sequence     host groups
====================  ==============  ====================================  ===========  ===========
data_parallel         dp_sharding     DpPooledEmbeddingSharding             yes          no
table_wise            tw_sharding     TwPooledEmbeddingSharding             yes          no
column_wise           cw_sharding     CwPooledEmbeddingSharding             yes          no
table_column_wise     twcw_sharding   TwCwPooledEmbeddingSharding           no           no
row_wise              rw_sharding     RwPooledEmbeddingSharding             yes          no
table_row_wise        twrw_sharding   TwRwPooledEmbeddingSharding           no           yes
grid_shard            grid_sharding   GridPooledEmbeddingSharding           no           yes
====================  ==============  ====================================  ===========  ===========
"""

import importlib
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, List, Mapping, Optional, Union

from recsys_lib.distributed._core.enums import ShardingType
from recsys_lib.distributed.sharding._layout_types import Layout
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


@dataclass(frozen=True)
class ShardingStrategy:
    """Everything sharding-type specific, looked up by ``ShardingType``.

    Attributes:
        sharding_type: the plan string's enum.
        layout: ``(rows, cols, world_size, local_world_size, col_wise_shard_dim=None,
            device_memory_sizes=None, num_buckets=None) -> (sizes, offsets)``.
        pooled_class / sequence_class: ``"module:Class"`` of the EBC / EC sharding (``None``: unsupported).
        uses_host_groups: needs the intra-/cross-host process groups (two-level strategies).
        replicated: every rank holds the whole table (gradients synchronised by DDP, ``dense`` kernel).
        plan_helper: name of the ``sharding_plan`` constructor for this type (``None``: planner-only).
    """

    sharding_type: ShardingType
    layout: Callable[..., Layout]
    pooled_class: Optional[str]
    sequence_class: Optional[str]
    uses_host_groups: bool
    plan_helper: Optional[str]
    replicated: bool = False

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
        return self.layout(rows, cols, world_size, local_world_size, col_wise_shard_dim, device_memory_sizes,
                           num_buckets)

    def pooled_sharding_class(self) -> Any:
        if self.pooled_class is None:
            raise ValueError(f"Sharding not supported {self.sharding_type.value}")
        return _load(self.pooled_class, "pooled embedding sharding", self.sharding_type)

    def sequence_sharding_class(self) -> Any:
        if self.sequence_class is None:
            raise ValueError(f"Sharding not supported {self.sharding_type.value}")
        return _load(self.sequence_class, "sequence embedding sharding", self.sharding_type)

    def create_pooled(self, *args: Any, **kwargs: Any) -> Any:
        """Constructs the strategy's pooled (EBC) ``EmbeddingSharding``."""
        return self.pooled_sharding_class()(*args, **kwargs)

    def create_sequence(self, *args: Any, **kwargs: Any) -> Any:
        """Constructs the strategy's sequence (EC) ``EmbeddingSharding``; ``ValueError`` if unsupported."""
        return self.sequence_sharding_class()(*args, **kwargs)

    def cost_terms(self) -> Any:
        """The planner's cost terms of this strategy: the ``cost`` module of its folder (``shard_cost``,
        ``PARTITION_BY``, ``SHORT_NAME``), imported on first use."""
        folder = str(self.pooled_class).partition(":")[0]
        return importlib.import_module(f"{folder}.cost")


def _entry(st: ShardingType, folder: str, layout: Callable[..., Layout], pooled: str, sequence: Optional[str],
           host_groups: bool, helper: Optional[str], replicated: bool = False) -> ShardingStrategy:
    return ShardingStrategy(
        sharding_type=st,
        layout=layout,
        pooled_class=f"{_PKG}.{folder}:{pooled}",
        sequence_class=None if sequence is None else f"{_PKG}.{folder}:{sequence}",
        uses_host_groups=host_groups,
        plan_helper=helper,
        replicated=replicated,
    )


_REGISTRY: Mapping[ShardingType, ShardingStrategy] = MappingProxyType({
    ShardingType.DATA_PARALLEL: _entry(
        ShardingType.DATA_PARALLEL, "dp_sharding", dp_layout.shard_sizes_and_offsets,
        "DpPooledEmbeddingSharding", "DpSequenceEmbeddingSharding", False, "data_parallel", replicated=True),
    ShardingType.TABLE_WISE: _entry(
        ShardingType.TABLE_WISE, "tw_sharding", tw_layout.shard_sizes_and_offsets,
        "TwPooledEmbeddingSharding", "TwSequenceEmbeddingSharding", False, "table_wise"),
    ShardingType.COLUMN_WISE: _entry(
        ShardingType.COLUMN_WISE, "cw_sharding", cw_layout.shard_sizes_and_offsets,
        "CwPooledEmbeddingSharding", "CwSequenceEmbeddingSharding", False, "column_wise"),
    ShardingType.TABLE_COLUMN_WISE: _entry(
        ShardingType.TABLE_COLUMN_WISE, "twcw_sharding", twcw_layout.shard_sizes_and_offsets,
        "TwCwPooledEmbeddingSharding", None, False, None),
    ShardingType.ROW_WISE: _entry(
        ShardingType.ROW_WISE, "rw_sharding", rw_layout.shard_sizes_and_offsets,
        "RwPooledEmbeddingSharding", "RwSequenceEmbeddingSharding", False, "row_wise"),
    ShardingType.TABLE_ROW_WISE: _entry(
        ShardingType.TABLE_ROW_WISE, "twrw_sharding", twrw_layout.shard_sizes_and_offsets,
        "TwRwPooledEmbeddingSharding", None, True, "table_row_wise"),
    ShardingType.GRID_SHARD: _entry(
        ShardingType.GRID_SHARD, "grid_sharding", grid_layout.shard_sizes_and_offsets,
        "GridPooledEmbeddingSharding", None, True, "grid_shard"),
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
