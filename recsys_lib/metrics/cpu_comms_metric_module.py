"""``CPUCommsRecMetricModule``: the half of ``CPUOffloadedRecMetricModule`` that all-gathers and computes.

It owns CPU clones of the rec metrics. The offloaded module's update thread hands it a
``MetricStateSnapshot`` of the local states; ``load_local_metric_state_snapshot`` puts those states into
the clones; ``get_pre_compute_states(group)`` all-gathers them over a CPU (gloo) group and
``load_pre_compute_states`` puts the global states back, which ``compute()`` then turns into values without
syncing again. The live metrics are left untouched.
"""

import copy
from typing import Any, Dict

import torch
from torch import nn

from recsys_lib.metrics.metric_module import RecMetricModule
from recsys_lib.metrics.metric_state_snapshot import MetricStateSnapshot
from recsys_lib.metrics._computation import RecMetricComputation
from recsys_lib.metrics.rec_metric import RecMetricList


def set_update_called(computation: RecMetricComputation) -> None:
    """Marks ``computation`` as updated so that computing loaded states does not warn that ``compute`` ran
    before ``update``, and clears any cached result."""
    computation._update_count = max(1, int(computation._update_count))
    computation._computed = None


class CPUCommsRecMetricModule(RecMetricModule):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rec_metrics = self._clone_rec_metrics()

    def _clone_rec_metrics(self) -> RecMetricList:
        """A CPU deep copy of the rec metrics (states included; the process groups are shared)."""
        groups = [c.process_group for m in self.rec_metrics.rec_metrics for c in m._metrics_computations]
        memo: Dict[int, Any] = {id(g): g for g in groups if g is not None}
        clone = copy.deepcopy(self.rec_metrics, memo)
        for metric in clone.rec_metrics:
            for computation in metric._metrics_computations:
                # Loaded states are global already (gathered by ``get_pre_compute_states`` over the offloaded
                # module's gloo group): computing them must not sync again over the metrics' group.
                computation.sync_on_compute = False
                computation._to_sync = False
        return clone.to(torch.device("cpu"))

    def _load_metric_states(self, prefix: str, computation: nn.Module, metric_states: Dict[str, Any]) -> None:
        assert isinstance(computation, RecMetricComputation)
        for name in computation._defaults:
            value = metric_states[f"{prefix}{name}"]
            if isinstance(computation._defaults[name], list):
                value = [t.clone() for t in value]
                if not value:
                    value = [computation._defaults[name][0].clone()] if computation._defaults[name] else []
            else:
                value = value.clone()
            setattr(computation, name, value)
        if f"{prefix}_extra_state" in metric_states:
            computation.set_extra_state(copy.deepcopy(metric_states[f"{prefix}_extra_state"]))
        set_update_called(computation)

    def load_local_metric_state_snapshot(self, state_snapshot: MetricStateSnapshot) -> None:
        """Loads this rank's snapshot into the clones (before the all-gather of ``compute``)."""
        for i, metric in enumerate(self.rec_metrics.rec_metrics):
            metric._pending = []
            for j, computation in enumerate(metric._metrics_computations):
                self._load_metric_states(f"{i}.{j}.", computation, state_snapshot.metric_states)
        self.throughput_metric = state_snapshot.throughput_metric
