"""The default hardware config of the configurable perf estimator (TorchRec's ``estimator.config``).

``EmbeddingPerfEstimatorConfig`` uses TorchRec's GPU bandwidths and coefficients ``(1, 1, 1, 0)`` for
every sharding type, i.e. compute = (input read + lookup + output write) bytes / lookup bandwidth.
"""

from recsys_lib.distributed.planner.constants import (  # noqa: F401  (TorchRec lists these here)
    BWD_COMPUTE_MULTIPLIER,
    DEFAULT_PERF_ESTIMATOR,
    WEIGHTED_FEATURE_BWD_COMPUTE_MULTIPLIER,
    WEIGHTED_KERNEL_MULTIPLIER,
)
from recsys_lib.distributed.planner.estimator.types import (
    EstimatorPerfCoefficients,
    HardwarePerfConfig,
    PerfCoefficient,
    PerfCoefficientConfig,
)


def _unit() -> EstimatorPerfCoefficients:
    return EstimatorPerfCoefficients(fwd=PerfCoefficient())


class EmbeddingPerfEstimatorConfig(HardwarePerfConfig):
    """Registered as ``DEFAULT_PERF_ESTIMATOR`` in ``EmbeddingPerfEstimatorFactory``."""

    name: str = DEFAULT_PERF_ESTIMATOR

    @property
    def coefficients(self) -> PerfCoefficientConfig:
        return PerfCoefficientConfig(
            table_wise=_unit(), row_wise=_unit(), table_row_wise=_unit(), data_parallel=_unit(), column_wise=_unit(),
            bwd_compute_multiplier=BWD_COMPUTE_MULTIPLIER, weighted_kernel_multiplier=WEIGHTED_KERNEL_MULTIPLIER,
            weighted_feature_bwd_compute_multiplier=WEIGHTED_FEATURE_BWD_COMPUTE_MULTIPLIER,
        )
