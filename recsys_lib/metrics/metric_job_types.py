"""Jobs that ``CPUOffloadedRecMetricModule`` queues for its worker threads.

* ``MetricUpdateJob``: one (or ``merged_count`` merged) ``update`` call's model outputs, already on CPU.
* ``SynchronizationMarker``: put in the update queue by ``compute``; when the update thread reaches it,
  every earlier update is applied and a snapshot of the states is taken.
* ``MetricComputeJob``: that snapshot, for the compute thread, with the ``Future`` to fulfil.
"""

from concurrent.futures import Future
from typing import Any, Dict, Union

import torch

from recsys_lib.metrics.metric_state_snapshot import MetricStateSnapshot


class MetricUpdateJob:
    def __init__(self, model_out: Dict[str, torch.Tensor], kwargs: Dict[str, Any], merged_count: int = 1) -> None:
        self.model_out = model_out
        self.kwargs = kwargs
        self.merged_count = merged_count


class MetricComputeJob:
    def __init__(
        self,
        future: "Future[Dict[str, Union[torch.Tensor, float]]]",
        metric_state_snapshot: MetricStateSnapshot,
    ) -> None:
        self.future = future
        self.metric_state_snapshot = metric_state_snapshot


class SynchronizationMarker:
    def __init__(self, future: "Future[Dict[str, Union[torch.Tensor, float]]]") -> None:
        self.future = future
