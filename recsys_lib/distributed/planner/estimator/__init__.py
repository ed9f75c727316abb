"""Configurable perf estimator (TorchRec's ``planner.estimator``): hardware configs with coefficients
(``types``, ``config``), decorators to override formulas (``annotations``), and the per-sharding-type
evaluators with ``EmbeddingPerfEstimatorFactory`` (``estimator``)."""

from recsys_lib.distributed.planner.estimator.annotations import (  # noqa: F401
    backward_compute,
    bwd_coefficient,
    device_bw,
    forward_compute,
    fwd_coefficient,
    output_write_size,
    prefetch_coefficient,
    ssd_mem_bw,
    supported_sharding_types,
)
from recsys_lib.distributed.planner.estimator.config import EmbeddingPerfEstimatorConfig  # noqa: F401
from recsys_lib.distributed.planner.estimator.estimator import (  # noqa: F401
    EmbeddingPerfEstimatorFactory,
    EmbeddingPerfEstimatorV2,
)
from recsys_lib.distributed.planner.estimator.types import (  # noqa: F401
    EstimatorPerfCoefficients,
    HardwarePerfConfig,
    PerfCoefficient,
    PerfCoefficientConfig,
    PrefetchCoefficients,
    ShardPerfContext,
)
