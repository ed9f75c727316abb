"""``RecMetricModule``: the one object a training loop talks to for metrics, and its factory.

A training loop::

    module = generate_metric_module(RecMetricModule, metrics_config, batch_size=B, world_size=W,
                                    my_rank=rank, state_metrics_mapping={}, device=device)
    for step, batch in enumerate(loader):
        model_out = {...}                # prediction / label / weight tensors (B,) named by RecTaskInfo
        module.update(model_out)
        if module.should_compute():      # every compute_interval_steps updates
            metrics = module.compute()   # {"ne-t1|window_ne": tensor(0.93), ...}; collective on all ranks

``state_dict()`` holds every lifetime and window state (including the window's per-batch entries) and the
step counter, so a job restored mid-window reports the same numbers as one that never stopped.
"""

import abc
import logging
import math
import time
from types import MappingProxyType
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple, Type, TypeVar, Union

import torch
import torch.distributed as dist
from torch import nn
from recsys_lib.distributed.logging_handlers import EventLoggingHandler, TorchrecComponent  # noqa: F401 - public here, as in TorchRec

from recsys_lib.metrics.accuracy import AccuracyMetric
from recsys_lib.metrics.auc import AUCMetric
from recsys_lib.metrics.auprc import AUPRCMetric
from recsys_lib.metrics.average import AverageMetric
from recsys_lib.metrics.cali_free_ne import CaliFreeNEMetric
from recsys_lib.metrics.calibration import CalibrationMetric
from recsys_lib.metrics.calibration_with_recalibration import RecalibratedCalibrationMetric
from recsys_lib.metrics.ctr import CTRMetric
from recsys_lib.metrics.deferrable_metrics import DeferrableMetrics
from recsys_lib.metrics.hindsight_target_pr import HindsightTargetPRMetric
from recsys_lib.metrics.mae import MAEMetric
from recsys_lib.metrics.metrics_config import (
    BatchSizeStage,
    MetricsConfig,
    RecMetricEnum,
    RecMetricEnumBase,
    RecTaskInfo,
    StateMetricEnum,
)
from recsys_lib.metrics.metrics_namespace import compose_customized_metric_key
from recsys_lib.metrics.model_utils import parse_task_model_outputs
from recsys_lib.metrics.mse import MSEMetric
from recsys_lib.metrics.multi_label_precision import MultiLabelPrecisionMetric
from recsys_lib.metrics.multiclass_recall import MulticlassRecallMetric
from recsys_lib.metrics.ndcg import NDCGMetric
from recsys_lib.metrics.ne import NEMetric
from recsys_lib.metrics.ne_positive import NEPositiveMetric
from recsys_lib.metrics.ne_with_recalibration import RecalibratedNEMetric
from recsys_lib.metrics.nmse import NMSEMetric
from recsys_lib.metrics.num_missing_labels import NumMissingLabelsMetric
from recsys_lib.metrics.num_positive_samples import NumPositiveSamplesMetric
from recsys_lib.metrics.output import OutputMetric
from recsys_lib.metrics.precision import PrecisionMetric
from recsys_lib.metrics.precision_session import PrecisionSessionMetric
from recsys_lib.metrics.rauc import RAUCMetric
from recsys_lib.metrics.rec_metric import RecMetric, RecMetricList
from recsys_lib.metrics.recall import RecallMetric
from recsys_lib.metrics.recall_session import RecallSessionMetric
from recsys_lib.metrics.scalar import ScalarMetric
from recsys_lib.metrics.segmented_ne import SegmentedNEMetric
from recsys_lib.metrics.serving_calibration import ServingCalibrationMetric
from recsys_lib.metrics.serving_ne import ServingNEMetric
from recsys_lib.metrics.sum_weights import SumWeightsMetric
from recsys_lib.metrics.tensor_weighted_avg import TensorWeightedAvgMetric
from recsys_lib.metrics.throughput import ThroughputMetric
from recsys_lib.metrics.tower_qps import TowerQPSMetric
from recsys_lib.metrics.unweighted_ne import UnweightedNEMetric
from recsys_lib.metrics.weighted_avg import WeightedAvgMetric
from recsys_lib.metrics.weighted_sum_predictions import WeightedSumPredictionsMetric
from recsys_lib.metrics.xauc import XAUCMetric

MetricValue = Union[torch.Tensor, float, int]
T = TypeVar("T")

# Read-only: the metrics this package implements.
REC_METRICS_MAPPING: Mapping[RecMetricEnumBase, Type[RecMetric]] = MappingProxyType(
    {
        RecMetricEnum.NE: NEMetric,
        RecMetricEnum.CTR: CTRMetric,
        RecMetricEnum.CALIBRATION: CalibrationMetric,
        RecMetricEnum.AUC: AUCMetric,
        RecMetricEnum.AUPRC: AUPRCMetric,
        RecMetricEnum.MSE: MSEMetric,
        RecMetricEnum.MAE: MAEMetric,
        RecMetricEnum.ACCURACY: AccuracyMetric,
        RecMetricEnum.PRECISION: PrecisionMetric,
        RecMetricEnum.RECALL: RecallMetric,
        RecMetricEnum.WEIGHTED_AVG: WeightedAvgMetric,
        RecMetricEnum.NE_POSITIVE: NEPositiveMetric,
        RecMetricEnum.RECALIBRATED_NE: RecalibratedNEMetric,
        RecMetricEnum.RECALIBRATED_CALIBRATION: RecalibratedCalibrationMetric,
        RecMetricEnum.XAUC: XAUCMetric,
        RecMetricEnum.SERVING_NE: ServingNEMetric,
        RecMetricEnum.SERVING_CALIBRATION: ServingCalibrationMetric,
        RecMetricEnum.CALI_FREE_NE: CaliFreeNEMetric,
        RecMetricEnum.UNWEIGHTED_NE: UnweightedNEMetric,
        RecMetricEnum.NMSE: NMSEMetric,
        RecMetricEnum.AVERAGE: AverageMetric,
        RecMetricEnum.NUM_MISSING_LABELS: NumMissingLabelsMetric,
        RecMetricEnum.WEIGHTED_SUM_PREDICTIONS: WeightedSumPredictionsMetric,
        RecMetricEnum.NUM_POSITIVE_SAMPLES: NumPositiveSamplesMetric,
        RecMetricEnum.SUM_WEIGHTS: SumWeightsMetric,
        RecMetricEnum.SCALAR: ScalarMetric,
        RecMetricEnum.OUTPUT: OutputMetric,
        RecMetricEnum.TENSOR_WEIGHTED_AVG: TensorWeightedAvgMetric,
        RecMetricEnum.TOWER_QPS: TowerQPSMetric,
        RecMetricEnum.HINDSIGHT_TARGET_PR: HindsightTargetPRMetric,
        RecMetricEnum.SEGMENTED_NE: SegmentedNEMetric,
        RecMetricEnum.RAUC: RAUCMetric,
        RecMetricEnum.MULTICLASS_RECALL: MulticlassRecallMetric,
        RecMetricEnum.RECALL_SESSION_LEVEL: RecallSessionMetric,
        RecMetricEnum.PRECISION_SESSION_LEVEL: PrecisionSessionMetric,
        RecMetricEnum.NDCG: NDCGMetric,
        RecMetricEnum.MULTI_LABEL_PRECISION: MultiLabelPrecisionMetric,
    }
)


class StateMetric(abc.ABC):
    """Anything that reports ready-made values (optimizer statistics, ...) under its namespace."""

    @abc.abstractmethod
    def get_metrics(self) -> Dict[str, MetricValue]:
        pass


class RecMetricModule(nn.Module):
    """Rec metrics + throughput + state metrics, updated every step and computed every few steps."""

    def __init__(
        self,
        batch_size: int,
        world_size: int,
        rec_tasks: Optional[List[RecTaskInfo]] = None,
        rec_metrics: Optional[RecMetricList] = None,
        throughput_metric: Optional[ThroughputMetric] = None,
        state_metrics: Optional[Dict[str, StateMetric]] = None,
        compute_interval_steps: int = 100,
        min_compute_interval: float = 0.0,
        max_compute_interval: float = float("inf"),
    ) -> None:
        super().__init__()
        if compute_interval_steps <= 0:
            raise ValueError(f"compute_interval_steps must be > 0, got {compute_interval_steps}")
        if not 0.0 <= min_compute_interval <= max_compute_interval:
            raise ValueError(
                f"need 0 <= min_compute_interval <= max_compute_interval, got {min_compute_interval}, "
                f"{max_compute_interval}"
            )
        self.batch_size = batch_size
        self.world_size = world_size
        self.rec_tasks: List[RecTaskInfo] = list(rec_tasks) if rec_tasks else []
        self.rec_metrics: RecMetricList = rec_metrics if rec_metrics is not None else RecMetricList([])
        self.throughput_metric = throughput_metric
        self.state_metrics: Dict[str, StateMetric] = dict(state_metrics) if state_metrics else {}
        self.compute_interval_steps = compute_interval_steps
        self.min_compute_interval = min_compute_interval
        self.max_compute_interval = max_compute_interval
        self.trained_batches = 0
        self._last_compute: Optional[Tuple[float, int]] = None  # (time, trained_batches)
        self._register_load_state_dict_pre_hook(self.load_state_dict_hook)

    def load_state_dict_hook(
        self,
        state_dict: "OrderedDict[str, torch.Tensor]",
        prefix: str,
        local_metadata: Dict[str, Any],
        strict: bool,
        missing_keys: List[str],
        unexpected_keys: List[str],
        error_msgs: List[str],
    ) -> None:
        """Drops an old checkpoint's ``{prefix}_trained_batches`` key (the count now lives in the extra state)."""
        key = f"{prefix}_trained_batches"
        if key in state_dict:
            state_dict.pop(key)
            logging.getLogger(__name__).warning("Removed key '%s' from state_dict for backward compatibility", key)

    def get_extra_state(self) -> Dict[str, Any]:
        return {"trained_batches": self.trained_batches}

    def set_extra_state(self, state: Dict[str, Any]) -> None:
        self.trained_batches = int(state["trained_batches"])

    def _update_rec_metrics(self, model_out: Dict[str, torch.Tensor], **kwargs: Any) -> None:
        """Feeds one step of model outputs to the rec metrics only."""
        if len(self.rec_metrics) > 0 and self.rec_tasks:
            labels, predictions, weights, required = parse_task_model_outputs(
                self.rec_tasks, model_out, sorted(self.get_required_inputs())
            )
            self.rec_metrics.update(
                predictions=predictions, labels=labels, weights=weights, required_inputs=required
            )

    @torch.no_grad()
    def update(self, model_out: Dict[str, torch.Tensor], **kwargs: Any) -> None:
        """Feeds one step of model outputs (keys named by each ``RecTaskInfo``) to every metric."""
        self._update_rec_metrics(model_out, **kwargs)
        if self.throughput_metric is not None:
            self.throughput_metric.update()
        self.trained_batches += 1

    def should_compute(self) -> bool:
        return self.trained_batches % self.compute_interval_steps == 0

    def _adjust_compute_interval(self) -> None:
        # Keep the wall time between computes inside [min_compute_interval, max_compute_interval].
        if self.min_compute_interval <= 0 and math.isinf(self.max_compute_interval):
            return
        now = time.monotonic()
        if self._last_compute is not None:
            then, steps_then = self._last_compute
            steps = self.trained_batches - steps_then
            if steps > 0 and now > then:
                per_step = (now - then) / steps
                if now - then < self.min_compute_interval:
                    self.compute_interval_steps = max(1, math.ceil(self.min_compute_interval / per_step))
                elif now - then > self.max_compute_interval:
                    self.compute_interval_steps = max(1, math.floor(self.max_compute_interval / per_step))
        self._last_compute = (now, self.trained_batches)

    def compute(self) -> DeferrableMetrics:
        """All values, synced over ranks (a collective: call it on every rank); already resolved."""
        return DeferrableMetrics(self._compute_values())

    def _compute_values(self) -> Dict[str, MetricValue]:
        self._adjust_compute_interval()
        ret: Dict[str, MetricValue] = {}
        ret.update(self.rec_metrics.compute())
        if self.throughput_metric is not None:
            ret.update(self.throughput_metric.compute())
        for namespace, component in self.state_metrics.items():
            for name, value in component.get_metrics().items():
                ret[compose_customized_metric_key(namespace, name)] = value
        return ret

    def local_compute(self) -> DeferrableMetrics:
        """Rec-metric values over this rank's data only."""
        return DeferrableMetrics(dict(self.rec_metrics.local_compute()))

    def sync(self) -> None:
        self.rec_metrics.sync()

    def unsync(self) -> None:
        self.rec_metrics.unsync()

    def reset(self) -> None:
        self.rec_metrics.reset()

    def get_required_inputs(self) -> Set[str]:
        return self.rec_metrics.get_required_inputs()

    def get_pre_compute_states(
        self, pg: Optional[dist.ProcessGroup] = None
    ) -> Dict[str, Dict[str, Dict[str, Any]]]:
        """States of every computation reduced over ``pg`` (or the default group); ``{metric: {comp: {state}}}``."""
        out: Dict[str, Dict[str, Dict[str, Any]]] = {}
        for i, metric in enumerate(self.rec_metrics.rec_metrics):
            per_metric: Dict[str, Dict[str, Any]] = {}
            for j, computation in enumerate(metric._metrics_computations):
                computation.sync(process_group=pg)
                try:
                    per_metric[str(j)] = {n: _copy_state(getattr(computation, n)) for n in computation._defaults}
                finally:
                    if computation._is_synced:
                        computation.unsync()
            out[str(i)] = per_metric
        return out

    def load_pre_compute_states(self, source: Dict[str, Dict[str, Dict[str, Any]]]) -> None:
        """Replaces local states by ``source`` (from ``get_pre_compute_states``); ``local_compute`` then
        gives the global values."""
        for i, metric in enumerate(self.rec_metrics.rec_metrics):
            for j, computation in enumerate(metric._metrics_computations):
                states = source[str(i)][str(j)]
                for name in computation._defaults:
                    value = states[name]
                    if isinstance(computation._defaults[name], list):
                        value = list(value) if isinstance(value, list) else [value]
                    else:
                        value = value.clone()
                    setattr(computation, name, value)

    def async_compute(self) -> DeferrableMetrics:
        """``compute()``; this module computes at once (``CPUOffloadedRecMetricModule`` defers)."""
        return self.compute()

    def shutdown(self) -> None:
        """Nothing runs in the background here; kept for API compatibility."""


def _copy_state(value: Union[torch.Tensor, List[torch.Tensor]]) -> Union[torch.Tensor, List[torch.Tensor]]:
    if isinstance(value, list):
        return [torch.cat(value, dim=-1)] if value else []  # buffered chunks join along the example axis
    return value.detach().clone()


def generate_metric_module(
    metric_class: Type[RecMetricModule],
    metrics_config: MetricsConfig,
    batch_size: int,
    world_size: int,
    my_rank: int,
    state_metrics_mapping: Dict[StateMetricEnum, StateMetric],
    device: torch.device,
    process_group: Optional[dist.ProcessGroup] = None,
    batch_size_stages: Optional[List[BatchSizeStage]] = None,
    module_kwargs: Optional[Dict[str, Any]] = None,
) -> RecMetricModule:
    """Builds ``metric_class`` from a ``MetricsConfig`` and moves it to ``device``.

    ``module_kwargs`` go to ``metric_class``'s constructor on top of the standard ones (e.g.
    ``model_out_device`` of ``CPUOffloadedRecMetricModule``).
    """
    task_names = [t.name for t in metrics_config.rec_tasks]
    metrics: List[RecMetric] = []
    for enum, definition in metrics_config.rec_metrics.items():
        if enum not in REC_METRICS_MAPPING:
            raise ValueError(
                f"metric {enum} is not implemented; available: {sorted(str(k) for k in REC_METRICS_MAPPING)}"
            )
        if definition.rec_tasks:
            tasks = list(definition.rec_tasks)
            unknown = [t.name for t in tasks if t.name not in task_names]
            if unknown:
                raise ValueError(
                    f"RecMetricDef for {enum} names task(s) {unknown} missing from MetricsConfig.rec_tasks {task_names}"
                )
        else:
            bad = [i for i in definition.rec_task_indices if not 0 <= i < len(task_names)]
            if bad:
                raise ValueError(f"RecMetricDef for {enum}: rec_task_indices {bad} out of range for {task_names}")
            tasks = [metrics_config.rec_tasks[i] for i in definition.rec_task_indices]
        metrics.append(
            REC_METRICS_MAPPING[enum](
                world_size=world_size,
                my_rank=my_rank,
                batch_size=batch_size,
                tasks=tasks,
                compute_mode=metrics_config.rec_compute_mode,
                window_size=definition.window_size,
                fused_update_limit=metrics_config.fused_update_limit,
                compute_on_all_ranks=metrics_config.compute_on_all_ranks,
                should_validate_update=metrics_config.should_validate_update,
                process_group=process_group,
                **(definition.arguments or {}),
            )
        )
    throughput: Optional[ThroughputMetric] = None
    if metrics_config.throughput_metric is not None:
        throughput = ThroughputMetric(
            batch_size=batch_size,
            world_size=world_size,
            window_seconds=metrics_config.throughput_metric.window_size,
            warmup_steps=metrics_config.throughput_metric.warmup_steps,
            batch_size_stages=batch_size_stages,
        )
    state_metrics: Dict[str, StateMetric] = {}
    for enum in metrics_config.state_metrics:
        if enum not in state_metrics_mapping:
            raise ValueError(f"state metric {enum} is configured but missing from state_metrics_mapping")
        state_metrics[str(enum)] = state_metrics_mapping[enum]
    module = metric_class(
        batch_size=batch_size,
        world_size=world_size,
        rec_tasks=metrics_config.rec_tasks,
        rec_metrics=RecMetricList(metrics),
        throughput_metric=throughput,
        state_metrics=state_metrics,
        compute_interval_steps=metrics_config.compute_interval_steps,
        min_compute_interval=metrics_config.min_compute_interval,
        max_compute_interval=metrics_config.max_compute_interval,
        **(module_kwargs or {}),
    )
    return module.to(device)
