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
from typing import Any, Dict, List, Optional, Set, Tuple, Type, TypeVar, Union

import torch
import torch.distributed as dist
from torch import nn
from recsys_lib.distributed.logging_handlers import EventLoggingHandler, TorchrecComponent  # noqa: F401 - public here, as in TorchRec

from recsys_lib.metrics._computation import (  # noqa: F401 - public here, as in TorchRec
    MetricComputationReport,
    RecMetricComputation,
    RecMetricException,
)
from recsys_lib.metrics._inputs import RecModelOutput, select_tasks, to_task_matrix
from recsys_lib.metrics._window import WindowBuffer  # noqa: F401 - public here, as in TorchRec
from recsys_lib.metrics.metrics_config import RecComputeMode, RecTaskInfo
from recsys_lib.metrics.metrics_namespace import compose_metric_key, MetricNamespaceBase


DefaultValueT = TypeVar("DefaultValueT")


def _check_no_nan(metric: str, predictions: torch.Tensor, tasks: List[RecTaskInfo]) -> None:
    """NaN predictions would turn every later value of the metric into NaN (TorchRec accepts them silently)."""
    if predictions.numel() == 0:
        return
    low, high = torch.aminmax(predictions)  # NaN propagates into both: one cheap pass for the common case
    if not (bool(torch.isnan(low)) or bool(torch.isnan(high))):
        return
    bad = torch.isnan(predictions)
    if bool(bad.any()):
        rows = bad.reshape(bad.shape[0], -1).any(-1).nonzero().reshape(-1).tolist()
        raise ValueError(
            f"{metric}: predictions of task(s) {[tasks[r].name for r in rows]} contain NaN "
            f"({int(bad.sum())} value(s))"
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
                    **{**kwargs, **self._get_task_kwargs(group if fused else group[0])},
                )
                for group in self._task_groups
            ]
        )

    def _get_task_kwargs(self, task_config: Union[RecTaskInfo, List[RecTaskInfo]]) -> Dict[str, Any]:
        """Extra constructor arguments of the computation of ``task_config`` (one task, or all tasks when
        fused); none by default."""
        return {}

    def _get_task_required_inputs(self, task_config: Union[RecTaskInfo, List[RecTaskInfo]]) -> Set[str]:
        """``model_out`` entries the computation of ``task_config`` needs beyond predictions/labels/weights."""
        return set()

    @torch.no_grad()
    def update(
        self,
        *,
        predictions: RecModelOutput,
        labels: RecModelOutput,
        weights: Optional[RecModelOutput],
        **kwargs: Any,
    ) -> None:
        p = to_task_matrix("predictions", predictions, self._tasks)
        lab = to_task_matrix("labels", labels, self._tasks)
        w = torch.ones_like(p) if weights is None else to_task_matrix("weights", weights, self._tasks)
        if p.shape != lab.shape or p.shape != w.shape:
            raise ValueError(
                f"{type(self).__name__}: predictions {tuple(p.shape)}, labels {tuple(lab.shape)} and weights "
                f"{tuple(w.shape)} must have the same shape (n_tasks, batch)"
            )
        if not p.is_floating_point():
            p = p.to(torch.get_default_dtype())
        _check_no_nan(type(self).__name__, p, self._tasks)
        lab = lab.to(p.dtype)
        w = w.to(p.dtype)
        unweighted = [i for i, t in enumerate(self._tasks) if not t.weighted]
        if unweighted:
            w = w.clone()
            w[unweighted] = 1.0
        # Validate every task first so that bad input leaves no task half-updated.
        if self._vectorised_rows():
            self._metrics_computations[0].validate_inputs(p, lab, w)
        else:
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
        if self._vectorised_rows():
            # One vectorised update over all tasks; each per-task computation receives its row.
            computations = list(self._metrics_computations)
            for computation, r in zip(computations, self._rows):
                computation.note_valid_update(w[r])
            first = computations[0]
            first._row_targets = computations
            try:
                first.update(predictions=p, labels=lab, weights=w, **kwargs)
            finally:
                first._row_targets = None
            return
        for computation, r in zip(self._metrics_computations, self._rows):
            computation.note_valid_update(w[r])
            computation.update(predictions=p[r], labels=lab[r], weights=w[r], **kwargs)

    def _vectorised_rows(self) -> bool:
        """Unfused computations of a class whose states are per-row sums: updated by one vectorised call."""
        return len(self._metrics_computations) > 1 and self._metrics_computations[0]._rows_independent

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

    def state_dict(  # type: ignore[override]
        self,
        destination: Optional[Dict[str, torch.Tensor]] = None,
        prefix: str = "",
        keep_vars: bool = False,
    ) -> Dict[str, torch.Tensor]:
        self._flush()  # held-back updates belong in the checkpoint
        return super().state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)  # type: ignore[arg-type]

    def clone_update_inputs(
        self,
        predictions: RecModelOutput,
        labels: RecModelOutput,
        weights: Optional[RecModelOutput],
        **kwargs: Dict[str, Any],
    ) -> Tuple[RecModelOutput, RecModelOutput, Optional[RecModelOutput], Dict[str, Any]]:
        """Copies of the update inputs (tensors or dicts of tensors, and ``required_inputs``), so a caller may
        hold them while the originals are reused."""

        def clone(out: RecModelOutput) -> RecModelOutput:
            return out.clone() if isinstance(out, torch.Tensor) else {k: v.clone() for k, v in out.items()}

        if "required_inputs" in kwargs:
            kwargs["required_inputs"] = {k: v.clone() for k, v in kwargs["required_inputs"].items()}
        return clone(predictions), clone(labels), None if weights is None else clone(weights), kwargs

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
                    if local:  # "ne-t1|local_lifetime_ne", as TorchRec names this-rank-only values
                        head, _, tail = key.partition("|")
                        key = f"{head}|local_{tail}"
                    # Scalar per task, or a vector per task (e.g. recall@k for every k): value is (n_tasks, ...).
                    value = report.value.reshape(len(group), -1)[i]
                    ret[key] = (value[0] if value.numel() == 1 else value).detach().clone()
        return ret

    @torch.no_grad()
    def compute(self) -> Dict[str, torch.Tensor]:
        """Values over all ranks (synced); empty on ranks other than 0 unless ``compute_on_all_ranks``."""
        return self._collect(local=False)

    @torch.no_grad()
    def local_compute(self) -> Dict[str, torch.Tensor]:
        """Values over this rank's data only; no communication. Keys carry ``local_``:
        ``"ne-t1|local_lifetime_ne"``."""
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
        fused = self._compute_mode != RecComputeMode.UNFUSED_TASKS_COMPUTATION
        for group in self._task_groups:
            required |= self._get_task_required_inputs(group if fused else group[0])
        return required


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
        # Inputs keyed by task name may hold every task of the model: give each metric its own tasks, stacked
        # once per distinct task list (metrics over the same tasks share the (n_tasks, B) matrices).
        stacked: Dict[Tuple[str, ...], Tuple[Any, Any, Any]] = {}
        for metric in self.rec_metrics:
            names = tuple(t.name for t in metric._tasks)
            if names not in stacked:
                stacked[names] = tuple(  # type: ignore[assignment]
                    to_task_matrix(what, select_tasks(value, metric._tasks), metric._tasks)
                    if isinstance(value, dict) else value
                    for what, value in (("predictions", predictions), ("labels", labels), ("weights", weights))
                )
            p, lab, w = stacked[names]
            metric.update(predictions=p, labels=lab, weights=w, **kwargs)

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
