"""Building sharding plans by hand: per-table generators and ``construct_module_sharding_plan``.

A generator (``ParameterShardingGenerator``) is called as ``gen(param, local_size, world_size,
device_type, sharder)`` and returns that table's ``ParameterSharding``::

    plan = construct_module_sharding_plan(
        ebc,
        {"t0": table_wise(rank=0), "t1": row_wise(), "t2": column_wise(ranks=[0, 1])},
        world_size=2, local_size=2, device_type="cpu",
    )

Shard sizes come from the strategy registry (``strategy_for(type).shard_sizes_and_offsets``);
there is no per-type branching here.
"""

import importlib
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, Union

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec

from recsys_lib.distributed._core.enums import ShardingType
from recsys_lib.distributed._core.plan import EmbeddingModuleShardingPlan, ParameterSharding
from recsys_lib.distributed._core.sharder import ModuleSharder, ParameterShardingGenerator
from recsys_lib.distributed.comm import get_local_size
from recsys_lib.distributed.sharding.cw_sharding import layout as cw_layout
from recsys_lib.distributed.sharding.cw_sharding.layout import MIN_CW_DIM  # noqa: F401
from recsys_lib.distributed.sharding.grid_sharding import layout as grid_layout
from recsys_lib.distributed.sharding.rw_sharding import layout as rw_layout
from recsys_lib.distributed.sharding.strategy import as_sharding_type, strategy_for
from recsys_lib.distributed.sharding.twrw_sharding import layout as twrw_layout

# Kernel names (``EmbeddingComputeKernel`` values) picked when a helper is not told one.
_DENSE = "dense"
_FUSED = "fused"


def placement(compute_device: str, rank: int, local_size: int) -> str:
    """Shard placement string: ``rank:{r}/cpu`` or ``rank:{r}/{device}:{r % local_size}``."""
    if compute_device == "cpu":
        return f"rank:{rank}/cpu"
    return f"rank:{rank}/{compute_device}:{rank % local_size}"


def placement_helper(device_type: str, index: int = 0, rank: int = 0) -> str:
    """Placement of an explicit device: ``rank:{rank}/cpu`` or ``rank:{rank}/{device_type}:{index}``."""
    if device_type == "cpu":
        return f"rank:{rank}/cpu"
    return f"rank:{rank}/{device_type}:{index}"


def calculate_shard_sizes_and_offsets(
    tensor: torch.Tensor,
    world_size: int,
    local_world_size: int,
    sharding_type: str,
    col_wise_shard_dim: Optional[int] = None,
    device_memory_sizes: Optional[List[int]] = None,
    num_buckets: Optional[int] = None,
) -> Tuple[List[List[int]], List[List[int]]]:
    """``(sizes, offsets)`` of the shards of a ``[rows, cols]`` table (shared with the planner)."""
    if tensor.dim() != 2:
        raise ValueError(f"calculate_shard_sizes_and_offsets: expected a 2-D table, got shape {tuple(tensor.shape)}")
    rows, cols = tensor.shape
    return strategy_for(sharding_type).shard_sizes_and_offsets(
        rows, cols, world_size, local_world_size, col_wise_shard_dim, device_memory_sizes, num_buckets
    )


def _get_compute_kernel(
    sharder: Optional[ModuleSharder[nn.Module]], param: nn.Parameter, sharding_type: str, device_type: str
) -> str:
    """``dense`` for data parallel; otherwise ``fused`` iff the parameter has an in-backward optimizer.

    As in TorchRec, the choice is not checked against ``sharder.compute_kernels()`` (which lists what the
    planner may pick): a plan helper's ``dense`` table-wise / column-wise / row-wise sharding is valid and the
    sharded modules run it. ``sharder`` and ``device_type`` are kept for signature parity.
    """
    if strategy_for(sharding_type).replicated:
        return _DENSE
    return _FUSED if hasattr(param, "_in_backward_optimizers") else _DENSE


def _check_ranks(ranks: List[int], world_size: int) -> None:
    bad = [r for r in ranks if not 0 <= r < world_size]
    if bad:
        raise ValueError(f"ranks {bad} are outside the world of size {world_size} (valid: 0..{world_size - 1})")


def _parameter_sharding(
    sharding_type: ShardingType,
    sizes: List[List[int]],
    offsets: List[List[int]],
    ranks: List[int],
    placements: List[str],
    compute_kernel: str,
) -> ParameterSharding:
    shards = [ShardMetadata(shard_offsets=o, shard_sizes=s, placement=p) for s, o, p in zip(sizes, offsets, placements)]
    return ParameterSharding(
        sharding_type=sharding_type.value,
        compute_kernel=compute_kernel,
        ranks=ranks,
        sharding_spec=EnumerableShardingSpec(shards),
    )


def _rows_cols(param: torch.Tensor) -> Tuple[int, int]:
    if param.dim() != 2:
        raise ValueError(f"expected a 2-D embedding table, got shape {tuple(param.shape)}")
    return int(param.shape[0]), int(param.shape[1])


def data_parallel() -> ParameterShardingGenerator:
    """Every rank holds the whole table (kernel ``dense``, no sharding spec)."""

    def gen(param: nn.Parameter, local_size: int, world_size: int, device_type: str,
            sharder: ModuleSharder[nn.Module]) -> ParameterSharding:
        kernel = _get_compute_kernel(sharder, param, ShardingType.DATA_PARALLEL.value, device_type)
        return ParameterSharding(ShardingType.DATA_PARALLEL.value, kernel, ranks=list(range(world_size)))

    return gen


def table_wise(rank: int, device: Optional[str] = None, compute_kernel: Optional[str] = None) -> ParameterShardingGenerator:
    """The whole table on ``rank`` (placed on ``device`` type if given)."""

    def gen(param: nn.Parameter, local_size: int, world_size: int, device_type: str,
            sharder: ModuleSharder[nn.Module]) -> ParameterSharding:
        _check_ranks([rank], world_size)
        rows, cols = _rows_cols(param)
        sizes, offsets = strategy_for(ShardingType.TABLE_WISE).shard_sizes_and_offsets(rows, cols, world_size, local_size)
        kernel = compute_kernel or _get_compute_kernel(sharder, param, ShardingType.TABLE_WISE.value, device_type)
        return _parameter_sharding(ShardingType.TABLE_WISE, sizes, offsets, [rank],
                                   [placement(device or device_type, rank, local_size)], kernel)

    return gen


def row_wise(
    sizes_placement: Optional[Tuple[List[int], Union[str, List[str]]]] = None,
    compute_kernel: Optional[str] = None,
    num_buckets: Optional[int] = None,
) -> ParameterShardingGenerator:
    """Row blocks of ``ceil(rows / world)`` on every rank, or explicit ``(row_sizes, device(s))``; with
    ``num_buckets`` (zero-collision tables) whole buckets per rank (``rw_sharding/layout.py``)."""

    def gen(param: nn.Parameter, local_size: int, world_size: int, device_type: str,
            sharder: ModuleSharder[nn.Module]) -> ParameterSharding:
        rows, cols = _rows_cols(param)
        if sizes_placement is None:
            sizes, offsets = strategy_for(ShardingType.ROW_WISE).shard_sizes_and_offsets(
                rows, cols, world_size, local_size, num_buckets=num_buckets)
            devices = [device_type] * world_size
        else:
            row_counts, devs = sizes_placement
            if sum(row_counts) != rows or any(n < 0 for n in row_counts):
                raise ValueError(f"row_wise: sizes {row_counts} must be non-negative and sum to the {rows} rows")
            sizes, offsets = rw_layout.sizes_to_layout(list(row_counts), cols)
            devices = [devs] * len(row_counts) if isinstance(devs, str) else list(devs)
            if len(devices) != len(row_counts):
                raise ValueError(f"row_wise: {len(devices)} devices for {len(row_counts)} shards")
        ranks = list(range(len(sizes)))
        _check_ranks(ranks, world_size)
        kernel = compute_kernel or _get_compute_kernel(sharder, param, ShardingType.ROW_WISE.value, device_type)
        places = [placement(d, r, local_size) for r, d in zip(ranks, devices)]
        return _parameter_sharding(ShardingType.ROW_WISE, sizes, offsets, ranks, places, kernel)

    return gen


def column_wise(
    ranks: Optional[List[int]] = None,
    size_per_rank: Optional[List[int]] = None,
    compute_kernel: Optional[str] = None,
    device_types: Optional[List[str]] = None,
) -> ParameterShardingGenerator:
    """Column blocks on ``ranks`` (equal widths, ranks may repeat) or of widths ``size_per_rank``."""
    if ranks is None and size_per_rank is None:
        raise ValueError("column_wise: give ranks, size_per_rank, or both")

    def gen(param: nn.Parameter, local_size: int, world_size: int, device_type: str,
            sharder: ModuleSharder[nn.Module]) -> ParameterSharding:
        rows, cols = _rows_cols(param)
        shard_ranks = list(ranks) if ranks is not None else list(range(len(size_per_rank or [])))
        if size_per_rank is None:
            widths = cw_layout.even_column_split(cols, len(shard_ranks))
        else:
            widths = cw_layout.explicit_column_split(cols, size_per_rank)
            if len(widths) != len(shard_ranks):
                raise ValueError(f"column_wise: {len(widths)} widths for {len(shard_ranks)} ranks")
        _check_ranks(shard_ranks, world_size)
        devices = list(device_types) if device_types is not None else [device_type] * len(shard_ranks)
        if len(devices) != len(shard_ranks):
            raise ValueError(f"column_wise: {len(devices)} device_types for {len(shard_ranks)} shards")
        sizes, offsets = cw_layout.widths_to_layout(rows, widths)
        kernel = compute_kernel or _get_compute_kernel(sharder, param, ShardingType.COLUMN_WISE.value, device_type)
        places = [placement(d, r, local_size) for r, d in zip(shard_ranks, devices)]
        return _parameter_sharding(ShardingType.COLUMN_WISE, sizes, offsets, shard_ranks, places, kernel)

    return gen


def table_row_wise(host_index: int) -> ParameterShardingGenerator:
    """Row blocks over the ``local_size`` ranks of host ``host_index``."""

    def gen(param: nn.Parameter, local_size: int, world_size: int, device_type: str,
            sharder: ModuleSharder[nn.Module]) -> ParameterSharding:
        rows, cols = _rows_cols(param)
        shard_ranks = twrw_layout.shard_ranks(host_index, local_size, world_size)
        sizes, offsets = strategy_for(ShardingType.TABLE_ROW_WISE).shard_sizes_and_offsets(
            rows, cols, world_size, local_size)
        kernel = _get_compute_kernel(sharder, param, ShardingType.TABLE_ROW_WISE.value, device_type)
        places = [placement(device_type, r, local_size) for r in shard_ranks]
        return _parameter_sharding(ShardingType.TABLE_ROW_WISE, sizes, offsets, shard_ranks, places, kernel)

    return gen


def grid_shard(host_indexes: List[int]) -> ParameterShardingGenerator:
    """Equal column blocks, one per host in ``host_indexes``, each split row-wise over that host's ranks."""
    if not host_indexes:
        raise ValueError("grid_shard: host_indexes must not be empty")

    def gen(param: nn.Parameter, local_size: int, world_size: int, device_type: str,
            sharder: ModuleSharder[nn.Module]) -> ParameterSharding:
        rows, cols = _rows_cols(param)
        shard_ranks = grid_layout.shard_ranks(host_indexes, local_size, world_size)
        sizes, offsets = grid_layout.host_grid(rows, cols, host_indexes, world_size, local_size)
        kernel = _get_compute_kernel(sharder, param, ShardingType.GRID_SHARD.value, device_type)
        places = [placement(device_type, r, local_size) for r in shard_ranks]
        return _parameter_sharding(ShardingType.GRID_SHARD, sizes, offsets, shard_ranks, places, kernel)

    return gen


def get_sharding_constructor_from_type(sharding_type: ShardingType) -> Callable[..., ParameterShardingGenerator]:
    """The helper above that builds generators of ``sharding_type`` (``ValueError`` if there is none)."""
    helper = strategy_for(sharding_type).plan_helper
    if helper is None:
        raise ValueError(f"no sharding-plan helper for {as_sharding_type(sharding_type).value}; use the planner")
    return getattr(sys.modules[__name__], helper)


# Default sharders by import path; an entry whose module is not in this build yet is skipped.
_DEFAULT_SHARDERS: Tuple[Tuple[str, str], ...] = (
    ("recsys_lib.distributed.embeddingbag", "EmbeddingBagCollectionSharder"),
    ("recsys_lib.distributed.fp_embeddingbag", "FeatureProcessedEmbeddingBagCollectionSharder"),
    ("recsys_lib.distributed.embedding", "EmbeddingCollectionSharder"),
    ("recsys_lib.distributed.fused_embeddingbag", "FusedEmbeddingBagCollectionSharder"),
    ("recsys_lib.distributed.quant_embeddingbag", "QuantEmbeddingBagCollectionSharder"),
    ("recsys_lib.distributed.quant_embedding", "QuantEmbeddingCollectionSharder"),
    ("recsys_lib.distributed.mc_embeddingbag", "ManagedCollisionEmbeddingBagCollectionSharder"),
    ("recsys_lib.distributed.mc_embedding", "ManagedCollisionEmbeddingCollectionSharder"),
)


def get_default_sharders() -> List[ModuleSharder[nn.Module]]:
    """One instance of every default sharder available in this build (TorchRec's list and order)."""
    out: List[ModuleSharder[nn.Module]] = []
    for module_name, cls_name in _DEFAULT_SHARDERS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name == module_name:
                continue  # lands with a later issue
            raise
        out.append(getattr(module, cls_name)())
    return out


def get_module_to_default_sharders() -> Dict[Type[nn.Module], ModuleSharder[nn.Module]]:
    """``{sharder.module_type: sharder}`` of ``get_default_sharders()``."""
    return {s.module_type: s for s in get_default_sharders()}


def apply_to_all(
    module: nn.Module,
    parameter_sharding_generator: ParameterShardingGenerator,
    sharder: Optional[ModuleSharder[nn.Module]] = None,
) -> Dict[str, ParameterShardingGenerator]:
    """The same generator for every shardable parameter of ``module``."""
    sharder = sharder if sharder is not None else _default_sharder(module)
    return {name: parameter_sharding_generator for name in sharder.shardable_parameters(module)}


def _default_sharder(module: nn.Module) -> ModuleSharder[nn.Module]:
    sharders = get_module_to_default_sharders()
    if type(module) not in sharders:
        raise ValueError(
            f"no default sharder for {type(module).__name__} in this build; pass sharder= explicitly "
            f"(available: {[t.__name__ for t in sharders]})"
        )
    return sharders[type(module)]


def construct_module_sharding_plan(
    module: nn.Module,
    per_param_sharding: Dict[str, ParameterShardingGenerator],
    sharder: Optional[ModuleSharder[nn.Module]] = None,
    local_size: Optional[int] = None,
    world_size: Optional[int] = None,
    device_type: Optional[str] = None,
) -> EmbeddingModuleShardingPlan:
    """Plan of one module from a generator per table; every shardable table must be named exactly once.

    ``local_size``/``world_size`` default to ``get_local_size()`` / the world group's size;
    ``device_type`` to ``cuda`` when available, else ``cpu``.
    """
    sharder = sharder if sharder is not None else _default_sharder(module)
    if world_size is None:
        if not dist.is_initialized():
            raise ValueError("construct_module_sharding_plan: pass world_size (torch.distributed is not initialised)")
        world_size = dist.get_world_size()
    local_size = local_size if local_size is not None else get_local_size(world_size)
    device_type = device_type if device_type is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    shardable = sharder.shardable_parameters(module)
    unknown = sorted(set(per_param_sharding) - set(shardable))
    missing = sorted(set(shardable) - set(per_param_sharding))
    if unknown or missing:
        raise ValueError(
            f"construct_module_sharding_plan: plan names unknown tables {unknown} and misses tables {missing}; "
            f"shardable tables of {type(module).__name__}: {sorted(shardable)}"
        )
    plan = EmbeddingModuleShardingPlan()
    for name, gen in per_param_sharding.items():
        try:
            plan[name] = gen(shardable[name], local_size, world_size, device_type, sharder)
        except ValueError as e:
            raise ValueError(f"table {name!r}: {e}") from None
    return plan


__all__: List[Any] = [
    "MIN_CW_DIM", "apply_to_all", "calculate_shard_sizes_and_offsets", "column_wise", "construct_module_sharding_plan",
    "data_parallel", "get_default_sharders", "get_module_to_default_sharders", "get_sharding_constructor_from_type",
    "grid_shard", "placement", "placement_helper", "row_wise", "table_row_wise", "table_wise",
]
