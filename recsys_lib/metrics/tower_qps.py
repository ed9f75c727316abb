"""Per-task queries (examples) per second, for models whose tasks see different numbers of examples.

Each ``update`` counts ``B`` examples per task (the batch it was given) and the seconds since the previous
update; the first ``warmup_steps`` updates only count examples:

    lifetime_qps = (num_examples - warmup_examples) / time_lapse
    window_qps   = examples / seconds of the post-warm-up updates in the window (``window_size`` examples)

Keys ``qps-<task>|lifetime_qps``, ``|window_qps``, ``|total_examples``. Over ranks the example counts and
seconds are summed by the usual sync, so QPS over ``W`` ranks is ``sum(examples) / sum(seconds)``.
"""

import time
from typing import Any, Dict, List, Optional

import torch
import torch.distributed as dist

from recsys_lib.metrics._computation import safe_ratio
from recsys_lib.metrics._num_batch_hooks import NumBatchStateHooks
from recsys_lib.metrics.metrics_config import BatchSizeStage, RecComputeMode, RecTaskInfo, validate_batch_size_stages
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace, MetricPrefix
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.rec_metric import RecMetric


class TowerQPSMetricComputation(RecMetricComputation):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._add_sum_state("num_examples")
        self._add_state("warmup_examples", torch.zeros(self._n_tasks, dtype=torch.double), add_window_state=False)
        self._add_sum_state("time_lapse")

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        examples = torch.full((self._n_tasks,), float(labels.shape[-1]), dtype=torch.double)
        seconds = kwargs.get("time_lapse")
        if seconds is None:  # a warm-up step: counted, not timed
            self.num_examples = self.num_examples + examples.to(self.num_examples.device)
            self.warmup_examples = self.warmup_examples + examples.to(self.warmup_examples.device)
            return
        lapse = torch.full((self._n_tasks,), float(seconds), dtype=torch.double)  # type: ignore[arg-type]
        self._accumulate({"num_examples": examples, "time_lapse": lapse}, labels.shape[-1])

    def _compute(self) -> List[MetricComputationReport]:
        timed = self.num_examples - self.warmup_examples
        return [
            MetricComputationReport(MetricName.TOWER_QPS, MetricPrefix.LIFETIME, safe_ratio(timed, self.time_lapse)),
            MetricComputationReport(
                MetricName.TOWER_QPS, MetricPrefix.WINDOW,
                safe_ratio(self.get_window_state("num_examples"), self.get_window_state("time_lapse")),
            ),
            MetricComputationReport(MetricName.TOTAL_EXAMPLES, MetricPrefix.DEFAULT, self.num_examples.to(torch.long)),
        ]


class TowerQPSMetric(NumBatchStateHooks, RecMetric):
    """Tower QPS (see the module docstring); ``warmup_steps`` updates are counted but not timed."""

    _namespace = MetricNamespace.TOWER_QPS
    _computation_class = TowerQPSMetricComputation
    _num_batch_attr = "_num_updates"

    def __init__(
        self,
        world_size: int,
        my_rank: int,
        batch_size: int,
        tasks: List[RecTaskInfo],
        compute_mode: RecComputeMode = RecComputeMode.UNFUSED_TASKS_COMPUTATION,
        window_size: int = 100,
        fused_update_limit: int = 0,
        process_group: Optional[dist.ProcessGroup] = None,
        warmup_steps: int = 100,
        batch_size_stages: Optional[List[BatchSizeStage]] = None,
        **kwargs: Any,
    ) -> None:
        if fused_update_limit > 0:
            raise ValueError("TowerQPSMetric times every update; fused_update_limit must be 0")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        validate_batch_size_stages(batch_size_stages)
        super().__init__(
            world_size=world_size, my_rank=my_rank, batch_size=batch_size, tasks=tasks, compute_mode=compute_mode,
            window_size=window_size, fused_update_limit=fused_update_limit, process_group=process_group, **kwargs,
        )
        self._warmup_steps = warmup_steps
        self._batch_size_stages = batch_size_stages
        self._num_updates = 0
        self._previous_ts: Optional[float] = None
        self._register_num_batch_hooks()

    @torch.no_grad()
    def update(self, *, predictions: Any, labels: Any, weights: Any, **kwargs: Any) -> None:
        now = time.monotonic()
        self._num_updates += 1
        if self._num_updates > self._warmup_steps and self._previous_ts is not None:
            kwargs["time_lapse"] = now - self._previous_ts
        self._previous_ts = now
        super().update(predictions=predictions, labels=labels, weights=weights, **kwargs)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._previous_ts = None  # a restored job re-arms the clock
