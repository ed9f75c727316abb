"""Sharding plans as values: per-table ``ParameterSharding``, per-module plans, the whole ``ShardingPlan``.

A plan maps module FQN → table name → ``ParameterSharding``. Shard placement is an
``EnumerableShardingSpec`` of ``ShardMetadata(shard_offsets, shard_sizes, placement="rank:{r}/{device}")``,
the same objects ``ShardedTensor`` uses, so state dicts and plans agree by construction.

Printed form of a plan (``str(plan)``)::

    module: sparse.ebc

     param | sharding type | compute kernel | ranks
     ----- | ------------- | -------------- | ------
     t0    | table_wise    | fused          | [0]
     t1    | row_wise      | dense          | [0, 1]

     param | shard offsets | shard sizes | placement
     ----- | ------------- | ----------- | ----------
     t0    | [0, 0]        | [10, 8]     | rank:0/cpu
     t1    | [0, 0]        | [5, 8]      | rank:0/cpu
     t1    | [5, 0]        | [5, 8]      | rank:1/cpu
"""

import abc
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from fbgemm_gpu.split_table_batched_embeddings_ops_common import (
    BoundsCheckMode,
    CacheAlgorithm,
    MultiPassPrefetchConfig,
)
from fbgemm_gpu.tbe.monitoring.runtime_monitor import TBEStatsReporterConfig
from fbgemm_gpu.tbe.ssd.ssd_config import KVZCHTBEConfig
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec, ShardingSpec

from recsys_lib._public import public_at
from recsys_lib.distributed._core.enums import ObjectPoolShardingType
from recsys_lib.types import DataType


@public_at("recsys_lib.distributed.types")
class CacheStatistics(abc.ABC):
    """Access statistics of a table's ids, used by the planner to size a UVM cache."""

    @property
    @abc.abstractmethod
    def expected_lookups(self) -> float:
        """Expected number of unique ids per global batch."""

    @abc.abstractmethod
    def expected_miss_rate(self, clf: float) -> float:
        """Expected miss rate for a cache holding fraction ``clf`` of the table."""

    @property
    @abc.abstractmethod
    def cacheability(self) -> float:
        """Summary of how cacheable the table is (0 = not at all)."""


@dataclass
@public_at("recsys_lib.distributed.types")
class CacheParams:
    """UVM-caching configuration of one table (``fused_uvm_caching`` kernel)."""

    algorithm: Optional[CacheAlgorithm] = None
    load_factor: Optional[float] = None
    reserved_memory: Optional[float] = None
    precision: Optional[DataType] = None
    prefetch_pipeline: Optional[bool] = None
    stats: Optional[CacheStatistics] = None
    multipass_prefetch_config: Optional[MultiPassPrefetchConfig] = None

    def __hash__(self) -> int:
        return hash(
            (self.algorithm, self.load_factor, self.reserved_memory, self.precision, self.prefetch_pipeline,
             self.multipass_prefetch_config)
        )


@dataclass
@public_at("recsys_lib.distributed.types")
class KeyValueParams:
    """Key-value (SSD / parameter-server) kernel options. Accepted and carried; no CPU kernel uses them."""

    ssd_storage_directory: Optional[str] = None
    ssd_rocksdb_write_buffer_size: Optional[int] = None
    ssd_rocksdb_shards: Optional[int] = None
    gather_ssd_cache_stats: Optional[bool] = None
    stats_reporter_config: Optional[TBEStatsReporterConfig] = None
    use_passed_in_path: bool = True
    l2_cache_size: Optional[int] = None
    max_l1_cache_size: Optional[int] = None
    enable_async_update: Optional[bool] = None
    bulk_init_chunk_size: Optional[int] = None
    lazy_bulk_init_enabled: Optional[bool] = None
    enable_raw_embedding_streaming: Optional[bool] = None
    res_store_shards: Optional[int] = None
    kvzch_tbe_config: Optional[KVZCHTBEConfig] = None
    load_ckpt_without_opt: bool = False
    ps_hosts: Optional[Tuple[Tuple[str, int], ...]] = None
    ps_client_thread_num: Optional[int] = None
    ps_max_key_per_request: Optional[int] = None
    ps_max_local_index_length: Optional[int] = None

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, repr(v)) for k, v in self.__dict__.items())))


@dataclass
@public_at("recsys_lib.distributed.types")
class ParameterSharding:
    """How one table is sharded.

    Args:
        sharding_type: a ``ShardingType`` value, e.g. ``"table_wise"``.
        compute_kernel: an ``EmbeddingComputeKernel`` value, e.g. ``"fused"`` or ``"dense"``.
        ranks: ranks holding a shard, in shard order (``None`` until placed).
        sharding_spec: ``EnumerableShardingSpec`` of the shards (``None`` for data parallel).
        cache_params / enforce_hbm / stochastic_rounding / bounds_check_mode / output_dtype /
        key_value_params: kernel options carried to the table's kernel.
    """

    sharding_type: str
    compute_kernel: str
    ranks: Optional[List[int]] = None
    sharding_spec: Optional[ShardingSpec] = None
    cache_params: Optional[CacheParams] = None
    enforce_hbm: Optional[bool] = None
    stochastic_rounding: Optional[bool] = None
    bounds_check_mode: Optional[BoundsCheckMode] = None
    output_dtype: Optional[DataType] = None
    key_value_params: Optional[KeyValueParams] = None


@public_at("recsys_lib.distributed.types")
class ModuleShardingPlan:
    """Plan of one module (base type; embedding modules use ``EmbeddingModuleShardingPlan``)."""


def _render_table(header: List[str], rows: List[List[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append(" | ".join("-" * w for w in widths))
    lines.extend(" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)
    return "\n".join(" " + line.rstrip() for line in lines)


@public_at("recsys_lib.distributed.types")
class EmbeddingModuleShardingPlan(ModuleShardingPlan, Dict[str, ParameterSharding]):
    """Table name → ``ParameterSharding`` for one embedding module; ``str()`` renders two tables."""

    def __str__(self) -> str:
        plan_rows: List[List[str]] = []
        shard_rows: List[List[str]] = []
        for name, ps in self.items():
            plan_rows.append([name, ps.sharding_type, ps.compute_kernel, str(ps.ranks)])
            spec = ps.sharding_spec
            if isinstance(spec, EnumerableShardingSpec):
                for shard in spec.shards:
                    shard_rows.append(
                        [name, str(list(shard.shard_offsets)), str(list(shard.shard_sizes)), str(shard.placement)]
                    )
        out = "\n" + _render_table(["param", "sharding type", "compute kernel", "ranks"], plan_rows)
        if shard_rows:
            out += "\n\n" + _render_table(["param", "shard offsets", "shard sizes", "placement"], shard_rows)
        return out


@dataclass
@public_at("recsys_lib.distributed.types")
class ShardingPlan:
    """Module FQN → that module's plan (``""`` is the root module)."""

    plan: Dict[str, ModuleShardingPlan]

    def get_plan_for_module(self, module_path: str) -> Optional[ModuleShardingPlan]:
        """The plan of the module at ``module_path``, or ``None`` if it is not sharded."""
        return self.plan.get(module_path, None)

    def __str__(self) -> str:
        parts = [f"module: {fqn}\n{module_plan}" for fqn, module_plan in self.plan.items()]
        return "\n\n".join(parts)


@public_at("recsys_lib.distributed.types")
@dataclass
class ObjectPoolShardingPlan(ModuleShardingPlan):
    """Plan of an object pool (``TensorPool`` / ``KeyedJaggedTensorPool``).

    Args:
        sharding_type: row-wise, or row-wise replicated per host.
        inference: whether the pool serves inference.
        memory_capacity_per_rank: rows each rank may hold (``None``: split evenly).
    """

    sharding_type: ObjectPoolShardingType
    inference: bool = False
    memory_capacity_per_rank: Optional[list[int]] = None
