"""``NoOpMetricModule``: a ``RecMetricModule`` that does nothing -- for jobs (or ranks) that must call the
metric API but report no metrics. ``compute()`` returns an empty ``DeferrableMetrics``."""

from concurrent.futures import Future
from typing import Any, Dict, List, Optional, Union

import torch
import torch.distributed as dist

from recsys_lib.metrics.deferrable_metrics import DeferrableMetrics
from recsys_lib.metrics.metric_module import RecMetricModule


class NoOpMetricModule(RecMetricModule):
    def __init__(self) -> None:
        super().__init__(batch_size=1, world_size=1)

    def _update_rec_metrics(self, model_out: Dict[str, torch.Tensor], **kwargs: Any) -> None:
        pass

    def update(self, model_out: Dict[str, torch.Tensor], **kwargs: Any) -> None:
        pass

    def should_compute(self) -> bool:
        return False

    def compute(self) -> DeferrableMetrics:
        return DeferrableMetrics({})

    def local_compute(self) -> DeferrableMetrics:
        return DeferrableMetrics({})

    def sync(self) -> None:
        pass

    def unsync(self) -> None:
        pass

    def reset(self) -> None:
        pass

    def get_required_inputs(self) -> Optional[List[str]]:  # type: ignore[override]
        return None

    def get_pre_compute_states(self, pg: Optional[dist.ProcessGroup] = None) -> Dict[str, Dict[str, Dict[str, Any]]]:
        return {}

    def load_pre_compute_states(self, source: Dict[str, Dict[str, Dict[str, Any]]]) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def async_compute(  # type: ignore[override]
        self, future: "Future[Dict[str, Union[torch.Tensor, float]]]"
    ) -> None:
        future.set_result({})
