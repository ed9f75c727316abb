"""``RecMetricComputation``: the states and math of one metric (private home; import it from ``rec_metric``).

Each summed state ``s`` exists twice, as ``s`` (lifetime) and ``window_s`` (the recent examples kept by
``_window.WindowBuffer``). Both are torchmetrics states reduced by ``sum``: torchmetrics' sync (all-gather
over the process group, then sum) turns this rank's states into global ones while ``compute()`` runs.
"""

import abc
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Set, Union

import torch
import torch.distributed as dist
import torchmetrics

from recsys_lib._public import public_at
from recsys_lib.metrics._window import MAX_BUFFER_COUNT, WindowBuffer
from recsys_lib.metrics.metrics_config import RecComputeMode
from recsys_lib.metrics.metrics_namespace import MetricNameBase, MetricPrefix

_TORCHMETRICS_KWARGS = ("dist_sync_fn", "distributed_available_fn", "compute_on_cpu")


@public_at("recsys_lib.metrics.rec_metric")
class RecMetricException(Exception):
    pass


def safe_ratio(num: torch.Tensor, denom: torch.Tensor) -> torch.Tensor:
    """``num / denom``, 0 where ``denom == 0`` (the guarded ratio behind most sum-state metrics)."""
    safe = torch.where(denom == 0, torch.ones_like(denom), denom)
    return torch.where(denom == 0, torch.zeros_like(num), num / safe)


@dataclass
@public_at("recsys_lib.metrics.rec_metric")
class MetricComputationReport:
    """One metric value: ``value`` has shape ``(n_tasks,)`` of the computation that made it."""

    name: MetricNameBase
    metric_prefix: MetricPrefix
    value: torch.Tensor
    description: Optional[str] = None


@public_at("recsys_lib.metrics.rec_metric")
class RecMetricComputation(torchmetrics.Metric, abc.ABC):
    """States and math of one metric for ``n_tasks`` tasks (states have shape ``(n_tasks,)``).

    Subclasses register summed states with ``_add_sum_state(name)``, call
    ``_accumulate({name: (n_tasks,) contribution}, batch_size)`` in ``update`` and return
    ``MetricComputationReport`` s from ``_compute``.
    """

    full_state_update = False
    # True where ``update`` only calls ``_accumulate`` once with per-row (per-task) contributions: then the
    # per-task computations of an unfused metric can be fed by one vectorised ``update`` (``_row_targets``).
    _rows_independent = False

    def __init__(
        self,
        my_rank: int,
        batch_size: int,
        n_tasks: int,
        window_size: int,
        compute_on_all_ranks: bool = False,
        should_validate_update: bool = False,
        compute_mode: RecComputeMode = RecComputeMode.UNFUSED_TASKS_COMPUTATION,
        process_group: Optional[dist.ProcessGroup] = None,
        fused_update_limit: int = 0,
        allow_missing_label_with_zero_weight: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        unknown = [k for k in kwargs if k not in _TORCHMETRICS_KWARGS]
        if args or unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected arguments {list(args) + unknown}; "
                "metric-specific options are keyword arguments of the metric class"
            )
        if n_tasks <= 0 or window_size <= 0:
            raise ValueError(f"n_tasks and window_size must be > 0, got {n_tasks} and {window_size}")
        super().__init__(process_group=process_group, compute_with_cache=False, dist_sync_on_step=False, **kwargs)
        self._my_rank = my_rank
        self._batch_size = batch_size
        self._n_tasks = n_tasks
        self._window_size = window_size
        self._compute_on_all_ranks = compute_on_all_ranks
        self._should_validate_update = should_validate_update
        self._compute_mode = compute_mode
        self._fused_update_limit = fused_update_limit
        self._allow_missing_label_with_zero_weight = allow_missing_label_with_zero_weight
        self._window = WindowBuffer(window_size, MAX_BUFFER_COUNT)
        self._row_targets: Optional[List["RecMetricComputation"]] = None
        self._sum_states: List[str] = []
        self._required_inputs: Set[str] = set()
        self._valid_at_compute = torch.ones(n_tasks)
        if should_validate_update:
            self._add_state("has_valid_update", torch.zeros(n_tasks, dtype=torch.double), add_window_state=False)

    # -- states ---------------------------------------------------------------------------------
    @staticmethod
    def get_window_state_name(state_name: str) -> str:
        return f"window_{state_name}"

    def get_window_state(self, state_name: str) -> torch.Tensor:
        return getattr(self, self.get_window_state_name(state_name))

    def _add_state(
        self,
        name: str,
        default: Union[torch.Tensor, List[Any]],
        add_window_state: bool,
        dist_reduce_fx: Optional[str] = "sum",
        persistent: bool = True,
    ) -> None:
        self.add_state(name, default=default, dist_reduce_fx=dist_reduce_fx, persistent=persistent)
        if add_window_state:
            if not isinstance(default, torch.Tensor):
                raise TypeError(f"window state {name!r} must be a tensor state")
            self.add_state(
                self.get_window_state_name(name), default=default.clone(),
                dist_reduce_fx=dist_reduce_fx, persistent=persistent,
            )

    def _add_sum_state(self, name: str, trailing_shape: Optional[List[int]] = None, persistent: bool = True) -> None:
        """A ``(n_tasks, *trailing_shape)`` float64 state summed over examples, with its window twin."""
        shape = [self._n_tasks] + list(trailing_shape or [])
        self._add_state(name, torch.zeros(shape, dtype=torch.double), add_window_state=True, persistent=persistent)
        self._sum_states.append(name)

    def _accumulate(self, contributions: Dict[str, torch.Tensor], batch_size: int) -> None:
        """Adds ``{state: (n_tasks, ...) contribution}`` to the lifetime and window states and moves the window.

        With ``_row_targets`` (one vectorised update for several one-task computations) row ``i`` goes to
        target ``i``. All additions are one ``_foreach_add_``: the states are plain tensors owned by their
        computation (reset/sync/load replace them whole), so adding in place is safe.
        """
        missing = set(self._sum_states) - set(contributions)
        if missing:
            raise RecMetricException(f"{type(self).__name__}: no contribution for states {sorted(missing)}")
        targets = self._row_targets if self._row_targets is not None else [self]
        per_target: List[Dict[str, torch.Tensor]] = [{} for _ in targets]
        states: List[torch.Tensor] = []
        values: List[torch.Tensor] = []
        for name, value in contributions.items():
            shape = getattr(self, name).shape  # (rows, ...) of one target
            value = value.detach().to(torch.double).reshape([len(targets) * shape[0]] + list(shape[1:]))
            for i, target in enumerate(targets):
                row = value if len(targets) == 1 else value[i * shape[0]:(i + 1) * shape[0]]
                per_target[i][name] = row
                states += [getattr(target, name), getattr(target, self.get_window_state_name(name))]
                values += [row, row]
        torch._foreach_add_(states, values)
        for target, rows in zip(targets, per_target):
            for old in target._window.push(rows, batch_size):
                for name, value in old.items():
                    window = getattr(target, target.get_window_state_name(name))
                    window.sub_(value.to(window.device))

    def _accumulate_batch(
        self,
        metric: str,
        get_states: Callable[..., Dict[str, torch.Tensor]],
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        *extra: Any,
    ) -> None:
        """``update`` of a metric that needs predictions and weights: adds ``get_states(labels, predictions,
        weights, *extra)`` to the summed states (batch size: the predictions' last dim)."""
        if predictions is None or weights is None:
            raise ValueError(f"{metric} needs predictions and weights")
        self._accumulate(get_states(labels, predictions, weights, *extra), predictions.shape[-1])

    def _sum_state_values(self, window: bool) -> Dict[str, torch.Tensor]:
        return {n: self.get_window_state(n) if window else getattr(self, n) for n in self._sum_states}

    def _lifetime_and_window(
        self, name: MetricNameBase, fn: Callable[[Dict[str, torch.Tensor]], torch.Tensor]
    ) -> List[MetricComputationReport]:
        """Reports ``lifetime_<name>`` and ``window_<name>``, both ``fn`` of the summed states."""
        return [
            MetricComputationReport(name, MetricPrefix.LIFETIME, fn(self._sum_state_values(window=False))),
            MetricComputationReport(name, MetricPrefix.WINDOW, fn(self._sum_state_values(window=True))),
        ]

    def note_valid_update(self, weights: torch.Tensor) -> None:
        """Marks tasks whose batch had any non-zero weight (only with ``should_validate_update``)."""
        if self._should_validate_update:
            valid = (weights.reshape(self._n_tasks, -1) != 0).any(dim=-1).to(torch.double)
            self.has_valid_update = torch.maximum(self.has_valid_update, valid)

    def get_extra_state(self) -> Dict[str, Any]:
        return {"window": self._window.to_state()}

    def set_extra_state(self, state: Dict[str, Any]) -> None:
        device = torch.device("cpu")
        for name in self._sum_states:
            device = getattr(self, name).device
        self._window.load_state(state["window"], device)

    def reset(self) -> None:
        super().reset()
        self._window.clear()

    # -- compute -------------------------------------------------------------------------------
    @abc.abstractmethod
    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        pass

    @abc.abstractmethod
    def _compute(self) -> List[MetricComputationReport]:
        pass

    def pre_compute(self) -> None:
        """Hook run before ``compute`` (no-op by default)."""

    def validate_inputs(self, predictions: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> None:
        """Raises on inputs this metric cannot take; runs for every task before any state changes."""

    def compute(self) -> List[MetricComputationReport]:
        # torchmetrics wraps this: states are synced across the process group before it runs.
        if self._should_validate_update:
            self._valid_at_compute = self.has_valid_update.clone()
        if self._my_rank == 0 or self._compute_on_all_ranks:
            return self._compute()
        return []

    def local_compute(self) -> List[MetricComputationReport]:
        if self._should_validate_update:
            self._valid_at_compute = self.has_valid_update.clone()
        return self._compute()
