"""Base classes of every recommendation metric.

* ``RecMetricComputation`` (a ``torchmetrics.Metric``): the states of one or more tasks and the math.
  Each summed state ``s`` exists twice, as ``s`` (lifetime) and ``window_s`` (recent examples, see
  ``_window.WindowBuffer``); both are torchmetrics states reduced by ``sum``, so torchmetrics' sync
  (all-gather + sum over the process group) turns local states into global ones on ``compute()``.
* ``RecMetric`` (an ``nn.Module``): routes per-task inputs to its computations -- one per task
  (``UNFUSED_TASKS_COMPUTATION``) or one for all tasks (fused modes) -- and names the results
  ``"{namespace}-{task}|{prefix}{name}"``.
* ``RecMetricList``: several ``RecMetric`` s updated and computed together.

Inputs per update, for ``T`` tasks and a batch of ``B`` examples::

    predictions / labels / weights: Tensor (B,) [T == 1], Tensor (T, B), or Dict[task_name, Tensor (B,)]
    weights may be None (every example weighs 1)

``compute()`` syncs states across ranks and returns values on rank 0 only, unless ``compute_on_all_ranks``;
``local_compute()`` uses this rank's states only.
"""

import abc
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Type, Union

import torch
import torch.distributed as dist
import torchmetrics
from torch import nn

from recsys_lib.metrics._window import WindowBuffer
from recsys_lib.metrics.metrics_config import RecComputeMode, RecTaskInfo
from recsys_lib.metrics.metrics_namespace import (
    compose_metric_key,
    MetricNameBase,
    MetricNamespaceBase,
    MetricPrefix,
)

RecModelOutput = Union[torch.Tensor, Dict[str, torch.Tensor]]
_TORCHMETRICS_KWARGS = ("dist_sync_fn", "distributed_available_fn", "compute_on_cpu")


class RecMetricException(Exception):
    pass


@dataclass
class MetricComputationReport:
    """One metric value: ``value`` has shape ``(n_tasks,)`` of the computation that made it."""

    name: MetricNameBase
    metric_prefix: MetricPrefix
    value: torch.Tensor
    description: Optional[str] = None


class RecMetricComputation(torchmetrics.Metric, abc.ABC):
    """States and math of one metric for ``n_tasks`` tasks (states have shape ``(n_tasks,)``).

    Subclasses register summed states with ``_add_sum_state(name)``, call
    ``_accumulate({name: (n_tasks,) contribution}, batch_size)`` in ``update`` and return
    ``MetricComputationReport`` s from ``_compute``.
    """

    full_state_update = False

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
        self._window = WindowBuffer(window_size)
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

    def _add_sum_state(self, name: str) -> None:
        """A ``(n_tasks,)`` float64 state summed over examples, with its window twin."""
        self._add_state(name, torch.zeros(self._n_tasks, dtype=torch.double), add_window_state=True)
        self._sum_states.append(name)

    def _accumulate(self, contributions: Dict[str, torch.Tensor], batch_size: int) -> None:
        missing = set(self._sum_states) - set(contributions)
        if missing:
            raise RecMetricException(f"{type(self).__name__}: no contribution for states {sorted(missing)}")
        for name, value in contributions.items():
            value = value.detach().to(torch.double).reshape(self._n_tasks)
            contributions[name] = value
            setattr(self, name, getattr(self, name) + value)
            wname = self.get_window_state_name(name)
            setattr(self, wname, getattr(self, wname) + value)
        for old in self._window.push(contributions, batch_size):
            for name, value in old.items():
                wname = self.get_window_state_name(name)
                setattr(self, wname, getattr(self, wname) - value)

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


def _to_task_matrix(what: str, value: Any, tasks: List[RecTaskInfo]) -> torch.Tensor:
    """``Tensor (B,) | (B, 1) | (T, B) | Dict[task, (B,)]`` -> ``Tensor (T, B)``."""
    names = [t.name for t in tasks]
    if isinstance(value, dict):
        unknown = [k for k in value if k not in names]
        missing = [n for n in names if n not in value]
        if unknown or missing:
            raise ValueError(
                f"{what}: unknown task name(s) {unknown} / missing task(s) {missing}; this metric's tasks are {names}"
            )
        rows = []
        for n in names:
            t = value[n]
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{what}[{n!r}] must be a torch.Tensor, got {type(t).__name__}")
            if t.dim() == 2 and t.shape[1] == 1:
                t = t.reshape(-1)
            if t.dim() != 1:
                raise ValueError(f"{what}[{n!r}] must have shape (B,) or (B, 1), got {tuple(t.shape)}")
            rows.append(t)
        sizes = {r.numel() for r in rows}
        if len(sizes) > 1:
            raise ValueError(f"{what}: tasks have different batch sizes {[r.numel() for r in rows]}")
        return torch.stack(rows)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor or a dict of task name -> tensor, got {type(value).__name__}")
    if len(tasks) == 1 and value.dim() == 1:
        return value.reshape(1, -1)
    if len(tasks) == 1 and value.dim() == 2 and value.shape[1] == 1:
        return value.reshape(1, -1)
    if value.dim() == 2 and value.shape[0] == len(tasks):
        return value
    raise ValueError(
        f"{what} has shape {tuple(value.shape)}; expected (n_tasks={len(tasks)}, batch) "
        + ("or (batch,)" if len(tasks) == 1 else "or a dict keyed by task name")
    )


class RecMetric(nn.Module, abc.ABC):
    """A metric over one or more tasks; subclasses set ``_namespace`` and ``_computation_class``.

    ``window_size`` counts examples over all ranks: each rank keeps ``ceil(window_size / world_size)``.
    ``fused_update_limit > 0`` holds updates back and applies every ``fused_update_limit`` of them as one
    concatenated batch (fewer, larger ops; the window then moves in such chunks); ``compute``, ``sync`` and
    ``state_dict`` apply held-back updates first.
    Extra keyword arguments (e.g. ``include_logloss``, ``threshold``) go to the computation class.
    """

    _namespace: MetricNamespaceBase
    _computation_class: Type[RecMetricComputation]

    def __init__(
        self,
        world_size: int,
        my_rank: int,
        batch_size: int,
        tasks: List[RecTaskInfo],
        compute_mode: RecComputeMode = RecComputeMode.UNFUSED_TASKS_COMPUTATION,
        window_size: int = 100,
        fused_update_limit: int = 0,
        compute_on_all_ranks: bool = False,
        should_validate_update: bool = False,
        process_group: Optional[dist.ProcessGroup] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if world_size <= 0 or not 0 <= my_rank < world_size:
            raise ValueError(f"need world_size > 0 and 0 <= my_rank < world_size, got {world_size}, {my_rank}")
        if batch_size <= 0 or window_size <= 0:
            raise ValueError(f"batch_size and window_size must be > 0, got {batch_size} and {window_size}")
        if not tasks:
            raise ValueError(f"{type(self).__name__} needs at least one RecTaskInfo")
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate task names {names}")
        if fused_update_limit < 0:
            raise ValueError(f"fused_update_limit must be >= 0, got {fused_update_limit}")
        self._world_size = world_size
        self._my_rank = my_rank
        self._batch_size = batch_size
        self._tasks = list(tasks)
        self._compute_mode = compute_mode
        self._window_size = math.ceil(window_size / world_size)
        self._fused_update_limit = fused_update_limit
        self._should_validate_update = should_validate_update
        fused = compute_mode != RecComputeMode.UNFUSED_TASKS_COMPUTATION
        self._task_groups: List[List[RecTaskInfo]] = [self._tasks] if fused else [[t] for t in self._tasks]
        self._rows: List[slice] = []  # rows of the (n_tasks, B) inputs that each computation takes
        for group in self._task_groups:
            start = self._rows[-1].stop if self._rows else 0
            self._rows.append(slice(start, start + len(group)))
        self._pending: List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor, Dict[str, Any]]] = []
        self._metrics_computations = nn.ModuleList(
            [
                self._computation_class(
                    my_rank=my_rank,
                    batch_size=batch_size,
                    n_tasks=len(group),
                    window_size=self._window_size,
                    compute_on_all_ranks=compute_on_all_ranks,
                    should_validate_update=should_validate_update,
                    compute_mode=compute_mode,
                    process_group=process_group,
                    fused_update_limit=fused_update_limit,
                    **kwargs,
                )
                for group in self._task_groups
            ]
        )

    @torch.no_grad()
    def update(
        self,
        *,
        predictions: RecModelOutput,
        labels: RecModelOutput,
        weights: Optional[RecModelOutput],
        **kwargs: Any,
    ) -> None:
        p = _to_task_matrix("predictions", predictions, self._tasks)
        lab = _to_task_matrix("labels", labels, self._tasks)
        w = torch.ones_like(p) if weights is None else _to_task_matrix("weights", weights, self._tasks)
        if p.shape != lab.shape or p.shape != w.shape:
            raise ValueError(
                f"{type(self).__name__}: predictions {tuple(p.shape)}, labels {tuple(lab.shape)} and weights "
                f"{tuple(w.shape)} must have the same shape (n_tasks, batch)"
            )
        if not p.is_floating_point():
            p = p.to(torch.get_default_dtype())
        lab = lab.to(p.dtype)
        w = w.to(p.dtype)
        unweighted = [i for i, t in enumerate(self._tasks) if not t.weighted]
        if unweighted:
            w = w.clone()
            w[unweighted] = 1.0
        # Validate every task first so that bad input leaves no task half-updated.
        for computation, r in zip(self._metrics_computations, self._rows):
            computation.validate_inputs(p[r], lab[r], w[r])
        if self._fused_update_limit > 0:
            self._pending.append((p, lab, w, kwargs))
            if len(self._pending) >= self._fused_update_limit:
                self._flush()
            return
        self._update_computations(p, lab, w, kwargs)

    def _update_computations(
        self, p: torch.Tensor, lab: torch.Tensor, w: torch.Tensor, kwargs: Dict[str, Any]
    ) -> None:
        for computation, r in zip(self._metrics_computations, self._rows):
            computation.note_valid_update(w[r])
            computation.update(predictions=p[r], labels=lab[r], weights=w[r], **kwargs)

    def _flush(self) -> None:
        """Applies the updates held back by ``fused_update_limit`` as one concatenated batch."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        kwargs: Dict[str, Any] = dict(pending[-1][3])
        required = [k.get("required_inputs") for _, _, _, k in pending]
        if all(isinstance(r, dict) for r in required):
            kwargs["required_inputs"] = {n: torch.cat([r[n] for r in required]) for n in required[-1]}
        self._update_computations(
            torch.cat([x[0] for x in pending], dim=1),
            torch.cat([x[1] for x in pending], dim=1),
            torch.cat([x[2] for x in pending], dim=1),
            kwargs,
        )

    def state_dict(self, *args: Any, **kwargs: Any) -> Dict[str, Any]:
        self._flush()  # held-back updates belong in the checkpoint
        return super().state_dict(*args, **kwargs)

    def _collect(self, local: bool) -> Dict[str, torch.Tensor]:
        self._flush()
        ret: Dict[str, torch.Tensor] = {}
        for computation, group in zip(self._metrics_computations, self._task_groups):
            computation.pre_compute()
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*was called before the ``update`` method.*")
                reports = computation.local_compute() if local else computation.compute()
            # Validity flags as seen by compute(): synced with the other states unless local.
            valid: Optional[torch.Tensor] = computation._valid_at_compute if self._should_validate_update else None
            for report in reports:
                for i, task in enumerate(group):
                    if valid is not None and valid[i] <= 0:
                        continue
                    key = compose_metric_key(
                        self._namespace, task.name, report.name, report.metric_prefix, report.description
                    )
                    ret[key] = report.value.reshape(-1)[i].detach().clone()
        return ret

    @torch.no_grad()
    def compute(self) -> Dict[str, torch.Tensor]:
        """Values over all ranks (synced); empty on ranks other than 0 unless ``compute_on_all_ranks``."""
        return self._collect(local=False)

    @torch.no_grad()
    def local_compute(self) -> Dict[str, torch.Tensor]:
        """Values over this rank's data only; no communication."""
        return self._collect(local=True)

    def sync(self) -> None:
        self._flush()
        for computation in self._metrics_computations:
            computation.sync()

    def unsync(self) -> None:
        for computation in self._metrics_computations:
            if computation._is_synced:
                computation.unsync()

    def reset(self) -> None:
        self._pending = []
        for computation in self._metrics_computations:
            computation.reset()

    def get_memory_usage(self) -> Dict[torch.Tensor, int]:
        usage: Dict[torch.Tensor, int] = {}
        for computation in self._metrics_computations:
            for name in computation._defaults:
                value = getattr(computation, name)
                for t in value if isinstance(value, list) else [value]:
                    usage[t] = t.element_size() * t.numel()
        return usage

    def get_required_inputs(self) -> Set[str]:
        required: Set[str] = set()
        for computation in self._metrics_computations:
            required |= computation._required_inputs
        return required


def _select_tasks(value: Optional[RecModelOutput], tasks: List[RecTaskInfo]) -> Optional[RecModelOutput]:
    if isinstance(value, dict):
        return {t.name: value[t.name] for t in tasks if t.name in value}
    return value


class RecMetricList(nn.Module):
    """Several ``RecMetric`` s fed the same inputs; ``compute()`` merges their dicts."""

    def __init__(self, rec_metrics: List[RecMetric]) -> None:
        super().__init__()
        self.rec_metrics = nn.ModuleList(rec_metrics)
        self.required_inputs: Set[str] = set()
        for metric in rec_metrics:
            self.required_inputs |= metric.get_required_inputs()

    def __len__(self) -> int:
        return len(self.rec_metrics)

    def __getitem__(self, idx: int) -> nn.Module:
        return self.rec_metrics[idx]

    def update(
        self,
        *,
        predictions: RecModelOutput,
        labels: RecModelOutput,
        weights: Optional[RecModelOutput],
        **kwargs: Any,
    ) -> None:
        # Inputs keyed by task name may hold every task of the model: give each metric its own tasks.
        for metric in self.rec_metrics:
            metric.update(
                predictions=_select_tasks(predictions, metric._tasks),
                labels=_select_tasks(labels, metric._tasks),
                weights=_select_tasks(weights, metric._tasks),
                **kwargs,
            )

    def compute(self) -> Dict[str, torch.Tensor]:
        ret: Dict[str, torch.Tensor] = {}
        for metric in self.rec_metrics:
            ret.update(metric.compute())
        return ret

    def local_compute(self) -> Dict[str, torch.Tensor]:
        ret: Dict[str, torch.Tensor] = {}
        for metric in self.rec_metrics:
            ret.update(metric.local_compute())
        return ret

    def sync(self) -> None:
        for metric in self.rec_metrics:
            metric.sync()

    def unsync(self) -> None:
        for metric in self.rec_metrics:
            metric.unsync()

    def reset(self) -> None:
        for metric in self.rec_metrics:
            metric.reset()

    def get_required_inputs(self) -> Set[str]:
        return self.required_inputs
