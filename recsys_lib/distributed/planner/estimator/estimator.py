"""The configurable perf estimator (TorchRec's ``planner.estimator.estimator``).

One evaluator per sharding type turns a :class:`ShardPerfContext` into a ``Perf``:

* compute (fwd, bwd, prefetch): byte counts weighted by the config's coefficients over the lookup
  bandwidth (see ``estimator.types``), x the block penalty of narrow shards;
* output communication (fwd, bwd): the outputs' bytes over the collective's bandwidth (all-to-all;
  reduce-scatter for row-wise; intra-host then 1/L across hosts for table-row-wise and grid; a
  gradient all-reduce plus element-wise optimizer kernels for data-parallel), as TorchRec's model;
* input distribution: all ids' bytes over the all-to-all bandwidth.

What an evaluator's shard sees, for ``W`` ranks and ``G`` ranks per group::

    evaluator        ids per shard            outputs per shard
    table/column     all W batches            W x poolings
    row-wise         all W batches / W        W x poolings
    table-row/grid   all W batches / G        W x poolings
    data-parallel    the local batch          local poolings (no comms)

A config method marked with ``@forward_compute`` etc. (``estimator.annotations``) replaces a term.
"""

import abc
from typing import Callable, Dict, List, Optional, Type

from recsys_lib.distributed.planner._sharder_data import SharderData
from recsys_lib.distributed.planner.constants import (  # noqa: F401  (TorchRec lists these here)
    BATCHED_COPY_PERF_FACTOR,
    DP_ELEMENTWISE_KERNELS_PERF_FACTOR,
    FULL_BLOCK_EMB_DIM,
    HALF_BLOCK_PENALTY,
    QUARTER_BLOCK_PENALTY,
)
from recsys_lib.distributed.planner.estimator import annotations as A
from recsys_lib.distributed.planner.estimator.config import EmbeddingPerfEstimatorConfig
from recsys_lib.distributed.planner.estimator.types import (
    HardwarePerfConfig,
    PerfCoefficient,
    PrefetchCoefficients,
    ShardPerfContext,
)
from recsys_lib.distributed.planner._hardware import CollectiveType, Perf, Topology
from recsys_lib.distributed.planner.types import ParameterConstraints, ShardEstimator, ShardingOption
from recsys_lib.distributed.planner.estimator.annotations import (  # noqa: F401,E402
    get_backward_compute,
    get_bwd_comms,
    get_forward_compute,
    get_fwd_comms,
    get_input_dist_comms,
    get_output_write_size,
    get_prefetch_compute,
)
from recsys_lib.distributed.planner.types import SharderDataMap  # noqa: F401,E402

_MIN_LOOKUP_DIM = 32  # a lookup reads at least this many columns per row


def compute_block_usage_penalty(embedding_dim: int) -> float:
    """Slowdown of a shard narrower than a full 128-column block: 1.15 from 64 columns, else 1.75."""
    if embedding_dim >= FULL_BLOCK_EMB_DIM:
        return 1.0
    return HALF_BLOCK_PENALTY if embedding_dim >= 64 else QUARTER_BLOCK_PENALTY


class EmbeddingShardingPerfEvaluator(abc.ABC):
    """Rates one shard of one sharding type (see the module docstring). ``SHARDING_TYPE`` names it;
    ``SPLIT`` says how the ids spread over shards: ``"none"``, ``"world"``, ``"group"`` or ``"local"``
    (data-parallel: only the local batch, no communication)."""

    SHARDING_TYPE: str = "table_wise"
    SPLIT: str = "none"
    # whole-table lookups (table/column-wise) read at least 32 columns and pay the narrow-block penalty
    WHOLE_TABLE_LOOKUPS: bool = False

    def get_batch_inputs(self, ctx: ShardPerfContext, config: HardwarePerfConfig) -> float:
        """Ids this shard looks up per step."""
        if self.SPLIT == "local":
            return ctx.batch_inputs
        return ctx.batch_inputs * ctx.world_size / self.get_batch_inputs_divisor(ctx)

    def get_batch_inputs_divisor(self, ctx: ShardPerfContext) -> int:
        return {"world": ctx.world_size, "group": ctx.intra_group_size}.get(self.SPLIT, 1)

    def get_prefetch_divisor(self, ctx: ShardPerfContext) -> int:
        return self.get_batch_inputs_divisor(ctx)

    def use_min_dim_for_lookup(self, config: HardwarePerfConfig) -> bool:
        return bool(getattr(config, "_use_min_dim_for_lookup", self.WHOLE_TABLE_LOOKUPS))

    def use_block_usage_penalty(self, config: HardwarePerfConfig) -> bool:
        return bool(getattr(config, "_use_block_usage_penalty", self.WHOLE_TABLE_LOOKUPS))

    def use_bytes_for_input_read_size(self, config: HardwarePerfConfig) -> bool:
        return bool(getattr(config, "_use_bytes_for_input_read_size", True))

    def _sizes(self, ctx: ShardPerfContext, config: HardwarePerfConfig) -> List[float]:
        """``[input read, lookup, output write, table]`` bytes of one step."""
        ids = self.get_batch_inputs(ctx, config)
        read = ids * (ctx.input_data_type_size if self.use_bytes_for_input_read_size(config) else 1.0)
        dim = max(ctx.emb_dim, _MIN_LOOKUP_DIM) if self.use_min_dim_for_lookup(config) else ctx.emb_dim
        lookup = ids * dim * ctx.table_data_type_size
        custom = A.get_output_write_size(config, ctx.sharding_type)
        if custom is not None:
            write = float(custom(ctx))
        elif not ctx.is_pooled:
            write = ids * ctx.emb_dim * ctx.output_data_type_size
        else:
            outputs = ctx.batch_outputs * (1 if self.SPLIT == "local" else ctx.world_size)
            write = outputs * ctx.emb_dim * ctx.output_data_type_size
        return [read, lookup, write, ctx.hash_size * ctx.emb_dim * ctx.table_data_type_size]

    def _weighted(self, ctx: ShardPerfContext, config: HardwarePerfConfig, coef: PerfCoefficient) -> float:
        r, lk, w, h = self._sizes(ctx, config)
        total = (coef.input_read_size_multiplier * r + coef.lookup_size_multiplier * lk
                 + coef.embedding_output_multiplier * w + coef.hash_size_multiplier * h)
        ms = total / ctx.device_bw
        if self.use_block_usage_penalty(config):
            ms *= compute_block_usage_penalty(ctx.emb_dim)
        if ctx.is_weighted:
            ms *= config.coefficients.weighted_kernel_multiplier
        return ms

    def compute_fwd_comp(self, ctx: ShardPerfContext, config: HardwarePerfConfig) -> float:
        custom = A.get_forward_compute(config, ctx.sharding_type)
        if custom is not None:
            return float(custom(ctx))
        coef = A.get_fwd_coefficient(config, ctx.sharding_type)
        if coef is None:
            coef = config.get_coefficients_for_sharding(ctx.sharding_type, ctx.compute_kernel).fwd
        return self._weighted(ctx, config, coef)

    def compute_bwd_comp(self, ctx: ShardPerfContext, config: HardwarePerfConfig) -> float:
        custom = A.get_backward_compute(config, ctx.sharding_type)
        if custom is not None:
            return float(custom(ctx))
        coef = A.get_bwd_coefficient(config, ctx.sharding_type)
        if coef is None:
            coef = config.get_coefficients_for_sharding(ctx.sharding_type, ctx.compute_kernel).bwd
        if coef is not None:
            return self._weighted(ctx, config, coef)
        mult = ctx.bwd_compute_multiplier * (ctx.weighted_feature_bwd_compute_multiplier if ctx.is_weighted else 1.0)
        return self.compute_fwd_comp(ctx, config) * mult

    def get_expected_lookups_for_prefetch(self, ctx: ShardPerfContext, config: HardwarePerfConfig) -> float:
        """Unique ids a UVM cache must hold per step: the cache statistics' estimate, else all ids."""
        if ctx.cache_stats_expected_lookups is not None and not ctx.use_batch_inputs_for_expected_cache_fetches:
            return float(ctx.cache_stats_expected_lookups) / self.get_prefetch_divisor(ctx)
        return self.get_batch_inputs(ctx, config)

    def compute_prefetch_comp(self, ctx: ShardPerfContext, config: HardwarePerfConfig) -> float:
        """Moving the cache misses from host memory (UVM caching kernels only)."""
        custom = A.get_prefetch_compute(config)
        if custom is not None:
            return float(custom(ctx))
        if not ctx.is_uvm_caching:
            return 0.0
        lookups = self.get_expected_lookups_for_prefetch(ctx, config)
        miss = ctx.expected_miss_rate if ctx.expected_miss_rate is not None else 1.0 - (ctx.caching_ratio or 0.2)
        fetch_bytes = lookups * miss * ctx.emb_dim * ctx.table_data_type_size
        coef: Optional[PrefetchCoefficients] = A.get_prefetch_coefficient(config) or config.coefficients.prefetch
        if ctx.use_linear_regression_prefetch_estimate and coef is not None:
            return (coef.expected_num_lookups_coefficient * self.get_batch_inputs(ctx, config)
                    + coef.expected_num_unique_lookups_coefficient * lookups
                    + coef.expected_size_cache_fetches_coefficient * fetch_bytes)
        return fetch_bytes / ctx.hbm_to_ddr_mem_bw

    def _bw(self, ctx: ShardPerfContext, collective: CollectiveType) -> float:
        if ctx.comms_bandwidths is not None:
            return float(ctx.comms_bandwidths.get_bw(ctx.local_world_size, ctx.world_size, collective))
        return ctx.intra_host_bw if ctx.world_size <= ctx.local_world_size else ctx.inter_host_bw

    def _output_bytes(self, ctx: ShardPerfContext, elem: float) -> float:
        """Bytes of the outputs this shard sends: every rank's pooled outputs, or the rows it looked up."""
        if not ctx.is_pooled:
            return self.get_batch_inputs(ctx, HardwarePerfConfig()) * ctx.emb_dim * elem
        return ctx.batch_outputs * ctx.world_size * ctx.emb_dim * elem

    def _default_comms(self, ctx: ShardPerfContext, elem: float) -> float:
        """All-to-all of the outputs (table/column-wise)."""
        return self._output_bytes(ctx, elem) / self._bw(ctx, CollectiveType.ALL_TO_ALL)

    def _batched_copy(self, ctx: ShardPerfContext, elem: float) -> float:
        return self._output_bytes(ctx, elem) * BATCHED_COPY_PERF_FACTOR / ctx.device_bw

    def compute_fwd_comms(self, ctx: ShardPerfContext, config: HardwarePerfConfig) -> float:
        custom = A.get_fwd_comms(config, ctx.sharding_type)
        if custom is not None:
            return float(custom(ctx))
        return self._fwd_comms(ctx)

    def compute_bwd_comms(self, ctx: ShardPerfContext, config: HardwarePerfConfig) -> float:
        custom = A.get_bwd_comms(config, ctx.sharding_type)
        if custom is not None:
            return float(custom(ctx))
        return self._bwd_comms(ctx)

    def _fwd_comms(self, ctx: ShardPerfContext) -> float:
        return self._default_comms(ctx, ctx.fwd_a2a_comm_data_type_size)

    def _bwd_comms(self, ctx: ShardPerfContext) -> float:
        return self._default_comms(ctx, ctx.bwd_a2a_comm_data_type_size)

    def compute_input_dist_comms(self, ctx: ShardPerfContext, config: HardwarePerfConfig) -> float:
        """All-to-all of the ids (and lengths) this shard receives from the other ranks."""
        custom = A.get_input_dist_comms(config, ctx.sharding_type)
        if custom is not None:
            return float(custom(ctx))
        if self.SPLIT == "local":
            return 0.0
        ids = ctx.batch_inputs * ctx.world_size
        return ids * ctx.input_data_type_size / self._bw(ctx, CollectiveType.ALL_TO_ALL)

    def compute_perf(self, ctx: ShardPerfContext, config: HardwarePerfConfig) -> Perf:
        return Perf(
            fwd_compute=self.compute_fwd_comp(ctx, config),
            fwd_comms=self.compute_fwd_comms(ctx, config),
            bwd_compute=self.compute_bwd_comp(ctx, config),
            bwd_comms=self.compute_bwd_comms(ctx, config),
            input_dist_comms=self.compute_input_dist_comms(ctx, config),
            prefetch_compute=self.compute_prefetch_comp(ctx, config),
        )


class TableWiseEvaluator(EmbeddingShardingPerfEvaluator):
    SHARDING_TYPE = "table_wise"
    WHOLE_TABLE_LOOKUPS = True


class ColumnWiseEvaluator(EmbeddingShardingPerfEvaluator):
    SHARDING_TYPE = "column_wise"
    WHOLE_TABLE_LOOKUPS = True


class TableColumnWiseEvaluator(EmbeddingShardingPerfEvaluator):
    SHARDING_TYPE = "table_column_wise"
    WHOLE_TABLE_LOOKUPS = True


class RowWiseEvaluator(EmbeddingShardingPerfEvaluator):
    """Partial outputs are reduce-scattered (pooled) or all-to-all'd (sequence); the backward also
    copies the gradients into one batch."""

    SHARDING_TYPE = "row_wise"
    SPLIT = "world"

    def _fwd_comms(self, ctx: ShardPerfContext) -> float:
        if not ctx.is_pooled:
            return super()._fwd_comms(ctx)
        return self._output_bytes(ctx, ctx.fwd_sr_comm_data_type_size) / self._bw(ctx, CollectiveType.REDUCE_SCATTER)

    def _bwd_comms(self, ctx: ShardPerfContext) -> float:
        elem = ctx.bwd_sr_comm_data_type_size if ctx.is_pooled else ctx.bwd_a2a_comm_data_type_size
        kind = CollectiveType.REDUCE_SCATTER if ctx.is_pooled else CollectiveType.ALL_TO_ALL
        return self._output_bytes(ctx, elem) / self._bw(ctx, kind) + self._batched_copy(ctx, elem)


class TableRowWiseEvaluator(EmbeddingShardingPerfEvaluator):
    SHARDING_TYPE = "table_row_wise"
    SPLIT = "group"

    def _two_level(self, ctx: ShardPerfContext, elem: float) -> float:
        """Within the host, then across hosts: pooled outputs are reduce-scattered first, so only 1/L of
        the bytes cross hosts; sequence rows cross whole."""
        data = self._output_bytes(ctx, elem)
        if ctx.world_size <= ctx.local_world_size:
            return data / self._bw(ctx, CollectiveType.REDUCE_SCATTER)
        across = data / ctx.local_world_size if ctx.is_pooled else data
        return data / ctx.intra_host_bw + across / ctx.inter_host_bw

    def _fwd_comms(self, ctx: ShardPerfContext) -> float:
        return self._two_level(ctx, ctx.fwd_sr_comm_data_type_size)

    def _bwd_comms(self, ctx: ShardPerfContext) -> float:
        elem = ctx.bwd_sr_comm_data_type_size
        return self._two_level(ctx, elem) + self._batched_copy(ctx, elem)


class GridShardEvaluator(TableRowWiseEvaluator):
    SHARDING_TYPE = "grid_shard"


class DataParallelEvaluator(EmbeddingShardingPerfEvaluator):
    """Local lookups; the gradient all-reduce is the only communication."""

    SHARDING_TYPE = "data_parallel"
    SPLIT = "local"

    def _fwd_comms(self, ctx: ShardPerfContext) -> float:
        return 0.0

    def _bwd_comms(self, ctx: ShardPerfContext) -> float:
        """Gradient all-reduce of the whole table plus the element-wise optimizer kernels."""
        table = ctx.hash_size * ctx.emb_dim * ctx.table_data_type_size
        all_reduce = table * (ctx.world_size - 1) / ctx.world_size / ctx.inter_host_bw
        return all_reduce + table * DP_ELEMENTWISE_KERNELS_PERF_FACTOR / ctx.device_bw


class InferenceShardingPerfEvaluator(EmbeddingShardingPerfEvaluator):
    """Forward only: no backward compute or communication."""

    def compute_bwd_comp(self, ctx: ShardPerfContext, config: HardwarePerfConfig) -> float:
        return 0.0

    def compute_bwd_comms(self, ctx: ShardPerfContext, config: HardwarePerfConfig) -> float:
        return 0.0


def _inference(evaluator: Type[EmbeddingShardingPerfEvaluator], name: str) -> Type[InferenceShardingPerfEvaluator]:
    """``evaluator`` without the backward pass (the forward-only overrides come first in the MRO)."""
    cls = type(name, (InferenceShardingPerfEvaluator, evaluator), {
        "__module__": __name__, "__doc__": f"Inference (forward-only) rating of {evaluator.SHARDING_TYPE} shards.",
    })
    return cls  # type: ignore[return-value]


TableWiseInferenceEvaluator = _inference(TableWiseEvaluator, "TableWiseInferenceEvaluator")
RowWiseInferenceEvaluator = _inference(RowWiseEvaluator, "RowWiseInferenceEvaluator")
TableRowWiseInferenceEvaluator = _inference(TableRowWiseEvaluator, "TableRowWiseInferenceEvaluator")
ColumnWiseInferenceEvaluator = _inference(ColumnWiseEvaluator, "ColumnWiseInferenceEvaluator")
DataParallelInferenceEvaluator = _inference(DataParallelEvaluator, "DataParallelInferenceEvaluator")
TableColumnWiseInferenceEvaluator = _inference(TableColumnWiseEvaluator, "TableColumnWiseInferenceEvaluator")
GridShardInferenceEvaluator = _inference(GridShardEvaluator, "GridShardInferenceEvaluator")

TRAINING_EVALUATORS: Dict[str, EmbeddingShardingPerfEvaluator] = {
    c.SHARDING_TYPE: c() for c in (TableWiseEvaluator, RowWiseEvaluator, TableRowWiseEvaluator, ColumnWiseEvaluator,
                                   DataParallelEvaluator, TableColumnWiseEvaluator, GridShardEvaluator)
}
INFERENCE_EVALUATORS: Dict[str, EmbeddingShardingPerfEvaluator] = {
    c.SHARDING_TYPE: c() for c in (TableWiseInferenceEvaluator, RowWiseInferenceEvaluator,
                                   TableRowWiseInferenceEvaluator, ColumnWiseInferenceEvaluator,
                                   DataParallelInferenceEvaluator, TableColumnWiseInferenceEvaluator,
                                   GridShardInferenceEvaluator)
}


def get_embedding_perf_sharding_evaluator(sharding_type: str, is_inference: bool = False) -> EmbeddingShardingPerfEvaluator:
    """The evaluator of ``sharding_type`` (an unknown type is rated as table-wise, as TorchRec does)."""
    table = INFERENCE_EVALUATORS if is_inference else TRAINING_EVALUATORS
    return table.get(sharding_type, table["table_wise"])


class EmbeddingPerfEstimator(ShardEstimator):
    """Fills ``shard.perf`` with the evaluators and ``config`` (default: ``EmbeddingPerfEstimatorConfig``).

    Example::

        est = EmbeddingPerfEstimator(Topology(world_size=2, compute_device="cuda"))
        est.estimate(options, build_sharder_data_map(sharder_map))
    """

    def __init__(
        self,
        topology: Topology,
        constraints: Optional[Dict[str, ParameterConstraints]] = None,
        is_inference: bool = False,
        config: Optional[HardwarePerfConfig] = None,
        use_batch_inputs_for_expected_cache_fetches: bool = False,
        use_linear_regression_prefetch_estimate: bool = False,
    ) -> None:
        self._topology = topology
        self._constraints = constraints
        self._is_inference = is_inference
        self._config = config if config is not None else EmbeddingPerfEstimatorConfig()
        self._use_batch_inputs = use_batch_inputs_for_expected_cache_fetches
        self._use_linear_prefetch = use_linear_regression_prefetch_estimate

    @property
    def config(self) -> HardwarePerfConfig:
        return self._config

    @property
    def is_inference(self) -> bool:
        return self._is_inference

    def estimate(self, sharding_options: List[ShardingOption], sharder_data_map: Dict[str, SharderData]) -> None:
        for so in sharding_options:
            self._config.validate_sharding_type(so.sharding_type)
            data = sharder_data_map.get(so.module_type_key)
            if data is None:
                raise ValueError(f"no SharderData for module type {so.module_type_key!r} of table {so.fqn!r}")
            sizes = [list(s.size) for s in so.shards]
            evaluator = get_embedding_perf_sharding_evaluator(so.sharding_type, self._is_inference)
            contexts = ShardPerfContext.build_shard_perf_contexts(
                self._config, sizes, so, self._topology, self._constraints, data, self._is_inference,
                self._use_batch_inputs, self._use_linear_prefetch,
            )
            perfs = [evaluator.compute_perf(ctx, self._config) for ctx in contexts]
            perfs = self._config.post_process_perfs(perfs, sizes, so.sharding_type,
                                                    self._topology.uneven_sharding_perf_multiplier)
            for shard, perf in zip(so.shards, perfs):
                shard.perf = perf
            so.estimates_changed()


EmbeddingPerfEstimatorV2 = EmbeddingPerfEstimator


class EmbeddingPerfEstimatorFactory:
    """Named hardware configs → estimators. ``DEFAULT_PERF_ESTIMATOR`` ("default_estimator") is built in;
    ``@EmbeddingPerfEstimatorFactory.register("name")`` adds a ``HardwarePerfConfig`` subclass."""

    _registry: Dict[str, Type[HardwarePerfConfig]] = {"default_estimator": EmbeddingPerfEstimatorConfig}

    @classmethod
    def register(cls, name: str) -> Callable[[Type[HardwarePerfConfig]], Type[HardwarePerfConfig]]:
        def decorator(config_cls: Type[HardwarePerfConfig]) -> Type[HardwarePerfConfig]:
            if not (isinstance(config_cls, type) and issubclass(config_cls, HardwarePerfConfig)):
                raise TypeError(f"register({name!r}): {config_cls!r} is not a HardwarePerfConfig subclass")
            cls._registry[name] = config_cls
            return config_cls

        return decorator

    @classmethod
    def create(
        cls,
        hardware_name: str,
        is_inference: bool = False,
        topology: Optional[Topology] = None,
        constraints: Optional[Dict[str, ParameterConstraints]] = None,
        use_batch_inputs_for_expected_cache_fetches: bool = False,
        use_linear_regression_prefetch_estimate: bool = False,
    ) -> EmbeddingPerfEstimator:
        if hardware_name not in cls._registry:
            raise ValueError(f"unknown perf estimator {hardware_name!r}; registered: {cls.list_registered()}")
        return cls.create_with_config(
            cls._registry[hardware_name](), is_inference, topology, constraints,
            use_batch_inputs_for_expected_cache_fetches, use_linear_regression_prefetch_estimate,
        )

    @classmethod
    def create_with_config(
        cls,
        config: HardwarePerfConfig,
        is_inference: bool = False,
        topology: Optional[Topology] = None,
        constraints: Optional[Dict[str, ParameterConstraints]] = None,
        use_batch_inputs_for_expected_cache_fetches: bool = False,
        use_linear_regression_prefetch_estimate: bool = False,
    ) -> EmbeddingPerfEstimator:
        if topology is None:
            raise ValueError("EmbeddingPerfEstimatorFactory: topology is required")
        return EmbeddingPerfEstimator(topology, constraints, is_inference, config,
                                      use_batch_inputs_for_expected_cache_fetches, use_linear_regression_prefetch_estimate)

    @classmethod
    def list_registered(cls) -> List[str]:
        return sorted(cls._registry)

    @classmethod
    def is_registered(cls, name: str) -> bool:
        return name in cls._registry

