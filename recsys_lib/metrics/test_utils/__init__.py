"""The harness TorchRec users test metrics with: random batches, a reference ``TestMetric`` written from
plain tensor math, and helpers that run a ``RecMetric`` beside it (one process or several gloo ranks).

    class TestNE(TestMetric):
        @staticmethod
        def _get_states(labels, predictions, weights, required_inputs_tensor=None):
            return {"ce": ..., "w": weights.sum(), ...}          # scalars summed over batches/ranks
        @staticmethod
        def _compute(states):
            return states["ce"] / ...

    rec_metric_value_test_launcher(NEMetric, RecComputeMode.UNFUSED_TASKS_COMPUTATION, TestNE, "ne",
                                   ["t1", "t2"], 0, False, False, world_size=2, entry_point=metric_test_helper)

``TestMetric.compute`` returns ``(lifetime, window, local_lifetime, local_window)``, each ``{task: value}``:
over all ranks / this rank, and over every step / the last ``batch_window_size`` steps.
"""

import abc
import random
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, Union

import torch
import torch.distributed as dist
from torch.distributed.launcher.api import LaunchConfig

from recsys_lib.metrics.metrics_config import RecComputeMode, RecTaskInfo
from recsys_lib.metrics.model_utils import parse_task_model_outputs
from recsys_lib.metrics.rec_metric import RecMetric

BATCH_SIZE = 32
BATCH_WINDOW_SIZE = 5
NSTEPS = 10

TestRecMetricOutput = Tuple[
    Dict[str, torch.Tensor], Dict[str, torch.Tensor], Dict[str, torch.Tensor], Dict[str, torch.Tensor]
]


def gen_test_batch(
    batch_size: int,
    label_name: str = "label",
    prediction_name: str = "prediction",
    weight_name: str = "weight",
    tensor_name: str = "tensor",
    mask_tensor_name: Optional[str] = None,
    label_value: Optional[torch.Tensor] = None,
    prediction_value: Optional[torch.Tensor] = None,
    weight_value: Optional[torch.Tensor] = None,
    mask: Optional[torch.Tensor] = None,
    n_classes: Optional[int] = None,
    seed: Optional[int] = None,
    device: Optional[Union[str, torch.device]] = None,
) -> Dict[str, torch.Tensor]:
    """A random float64 batch ``{label_name: (B,) 0/1 (or class ids), prediction_name: (B,) or (B, n_classes),
    weight_name: (B,), tensor_name: (B,)}`` (+ ``mask_tensor_name``: all ones by default); given values win."""
    g = torch.Generator()
    if seed is not None:
        g.manual_seed(seed)
    else:
        g.manual_seed(random.randrange(2**31))
    if label_value is None:
        label_value = (torch.randint(0, n_classes or 2, (batch_size,), generator=g)).to(torch.double)
    if prediction_value is None:
        shape = (batch_size, n_classes) if n_classes else (batch_size,)
        prediction_value = torch.rand(shape, generator=g, dtype=torch.double)
    if weight_value is None:
        weight_value = torch.rand(batch_size, generator=g, dtype=torch.double)
    batch = {
        label_name: label_value,
        prediction_name: prediction_value,
        weight_name: weight_value,
        tensor_name: torch.rand(batch_size, generator=g, dtype=torch.double),
    }
    if mask_tensor_name is not None:
        batch[mask_tensor_name] = mask if mask is not None else torch.ones(batch_size, dtype=torch.double)
    return {k: v.to(device) for k, v in batch.items()} if device is not None else batch


def gen_test_tasks(task_names: List[str]) -> List[RecTaskInfo]:
    """Tasks reading ``<name>-label``, ``<name>-prediction``, ``<name>-weight`` and ``<name>-tensor``."""
    return [
        RecTaskInfo(name=n, label_name=f"{n}-label", prediction_name=f"{n}-prediction", weight_name=f"{n}-weight",
                    tensor_name=f"{n}-tensor")
        for n in task_names
    ]


def gen_test_timestamps(nsteps: int) -> List[float]:
    """``nsteps`` increasing timestamps starting at 0 (random gaps of 1 to 3 seconds)."""
    out = [0.0]
    for _ in range(nsteps - 1):
        out.append(out[-1] + random.uniform(1.0, 3.0))
    return out


class TestMetric(abc.ABC):
    """A reference metric from summed states: subclasses define ``_get_states`` (one batch of one task ->
    ``{name: tensor}``) and ``_compute`` (summed states -> value)."""

    def __init__(
        self,
        world_size: int,
        rec_tasks: List[RecTaskInfo],
        compute_lifetime_metric: bool = True,
        compute_window_metric: bool = True,
        local_compute_lifetime_metric: bool = True,
        local_compute_window_metric: bool = True,
    ) -> None:
        self.world_size = world_size
        self._rec_tasks = rec_tasks
        self._compute_lifetime_metric = compute_lifetime_metric
        self._compute_window_metric = compute_window_metric
        self._local_compute_lifetime_metric = local_compute_lifetime_metric
        self._local_compute_window_metric = local_compute_window_metric

    @staticmethod
    def _aggregate(states: Dict[str, torch.Tensor], new_states: Dict[str, torch.Tensor]) -> None:
        """Adds ``new_states`` into ``states`` in place."""
        for k, v in new_states.items():
            states[k] = states[k] + v if k in states else v.clone()

    @staticmethod
    @abc.abstractmethod
    def _get_states(
        labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor,
        required_inputs_tensor: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        pass

    @staticmethod
    @abc.abstractmethod
    def _compute(states: Dict[str, torch.Tensor]) -> torch.Tensor:
        pass

    def _states_of(self, task: RecTaskInfo, model_outs: List[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
        states: Dict[str, torch.Tensor] = {}
        for out in model_outs:
            tensor = out.get(task.tensor_name) if task.tensor_name else None
            new = self._get_states(out[task.label_name], out[task.prediction_name], out[task.weight_name], tensor)
            self._aggregate(states, new)
        return states

    def _global(self, states: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        if self.world_size <= 1 or not dist.is_initialized():
            return states
        out: Dict[str, torch.Tensor] = {}
        for k, v in states.items():
            gathered = [torch.zeros_like(v) for _ in range(dist.get_world_size())]
            dist.all_gather(gathered, v.contiguous())
            out[k] = torch.stack(gathered).sum(0)
        return out

    def compute(
        self,
        model_outs: List[Dict[str, torch.Tensor]],
        nsteps: int,
        batch_window_size: int,
        timestamps: Optional[List[float]],
    ) -> TestRecMetricOutput:
        """``(lifetime, window, local_lifetime, local_window)`` values per task name (see the module doc)."""
        lifetime: Dict[str, torch.Tensor] = {}
        window: Dict[str, torch.Tensor] = {}
        local_lifetime: Dict[str, torch.Tensor] = {}
        local_window: Dict[str, torch.Tensor] = {}
        recent = model_outs[max(0, nsteps - batch_window_size):nsteps]
        for task in self._rec_tasks:
            all_states = self._states_of(task, model_outs[:nsteps])
            window_states = self._states_of(task, recent)
            if self._compute_lifetime_metric:
                lifetime[task.name] = self._compute(self._global(all_states))
            if self._compute_window_metric:
                window[task.name] = self._compute(self._global(window_states))
            if self._local_compute_lifetime_metric:
                local_lifetime[task.name] = self._compute(all_states)
            if self._local_compute_window_metric:
                local_window[task.name] = self._compute(window_states)
        return lifetime, window, local_lifetime, local_window


def _rank_and_world(world_size: int, my_rank: int) -> Tuple[int, int]:
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return my_rank, world_size


def _model_outs(
    tasks: List[RecTaskInfo], nsteps: int, batch_size: int, rank: int, n_classes: Optional[int],
    zero_weights: bool, zero_labels: bool, device: Optional[Union[str, torch.device]],
) -> List[Dict[str, torch.Tensor]]:
    outs = []
    for step in range(nsteps):
        out: Dict[str, torch.Tensor] = {}
        for i, task in enumerate(tasks):
            batch = gen_test_batch(
                batch_size, label_name=task.label_name, prediction_name=task.prediction_name,
                weight_name=task.weight_name, tensor_name=task.tensor_name or "tensor", n_classes=n_classes,
                seed=1000 * step + 100 * rank + i, device=device,
            )
            if zero_weights:
                batch[task.weight_name] = torch.zeros_like(batch[task.weight_name])
            if zero_labels:
                batch[task.label_name] = torch.zeros_like(batch[task.label_name])
            out.update(batch)
        outs.append(out)
    return outs


def rec_metric_value_test_helper(
    target_clazz: Type[RecMetric],
    target_compute_mode: RecComputeMode,
    test_clazz: Optional[Type[TestMetric]],
    fused_update_limit: int,
    compute_on_all_ranks: bool,
    should_validate_update: bool,
    world_size: int,
    my_rank: int,
    task_names: List[str],
    batch_size: int = BATCH_SIZE,
    nsteps: int = NSTEPS,
    batch_window_size: int = BATCH_WINDOW_SIZE,
    is_time_dependent: bool = False,
    time_dependent_metric: Optional[Dict[Type[RecMetric], str]] = None,
    n_classes: Optional[int] = None,
    zero_weights: bool = False,
    zero_labels: bool = False,
    device: Optional[Union[str, torch.device]] = None,
    **kwargs: Any,
) -> Tuple[Dict[str, torch.Tensor], Tuple[Dict[str, torch.Tensor], ...]]:
    """Feeds ``nsteps`` random batches to ``target_clazz`` (window: ``batch_window_size`` steps of every rank)
    and returns ``(compute() and local_compute() values, test_clazz(...).compute(...) or ())``."""
    rank, world = _rank_and_world(world_size, my_rank)
    tasks = gen_test_tasks(task_names)
    timestamps = gen_test_timestamps(nsteps) if is_time_dependent else None
    model_outs = _model_outs(tasks, nsteps, batch_size, rank, n_classes, zero_weights, zero_labels, device)
    if n_classes is not None:
        kwargs.setdefault("number_of_classes", n_classes)
    target = target_clazz(
        world_size=world, my_rank=rank, batch_size=batch_size, tasks=tasks, compute_mode=target_compute_mode,
        window_size=batch_window_size * batch_size * world, fused_update_limit=fused_update_limit,
        compute_on_all_ranks=compute_on_all_ranks, should_validate_update=should_validate_update, **kwargs,
    )
    if device is not None:
        target = target.to(device)
    required = sorted(target.get_required_inputs())
    for step, out in enumerate(model_outs):
        if is_time_dependent and timestamps is not None and time_dependent_metric:
            # Time-dependent metrics read a patched clock: step i happens at timestamps[i].
            import unittest.mock as _mock

            with _mock.patch(time_dependent_metric[target_clazz], return_value=timestamps[step]):
                _update(target, tasks, out, required)
        else:
            _update(target, tasks, out, required)
    res = dict(target.compute())
    res.update(target.local_compute())
    test_metrics: Tuple[Dict[str, torch.Tensor], ...] = ()
    if test_clazz is not None:
        test_metrics = test_clazz(world, tasks).compute(model_outs, nsteps, batch_window_size, timestamps)
    return res, test_metrics


def _update(target: RecMetric, tasks: List[RecTaskInfo], out: Dict[str, torch.Tensor], required: List[str]) -> None:
    labels, predictions, weights, req = parse_task_model_outputs(tasks, out, required)
    target.update(predictions=predictions, labels=labels, weights=weights, required_inputs=req)


def metric_test_helper(
    target_clazz: Type[RecMetric],
    target_compute_mode: RecComputeMode,
    task_names: List[str],
    test_clazz: Type[TestMetric],
    metric_name: str,
    fused_update_limit: int = 0,
    compute_on_all_ranks: bool = False,
    should_validate_update: bool = False,
    batch_window_size: int = BATCH_WINDOW_SIZE,
    n_classes: Optional[int] = None,
    nsteps: int = 1,
    zero_weights: bool = False,
    device: Optional[Union[str, torch.device]] = None,
    is_time_dependent: bool = False,
    time_dependent_metric: Optional[Dict[Type[RecMetric], str]] = None,
    **kwargs: Any,
) -> None:
    """Entry point of one rank: asserts ``lifetime_/window_/local_lifetime_/local_window_<metric_name>`` of
    every task equal the ``test_clazz`` reference (on rank 0, or every rank with ``compute_on_all_ranks``)."""
    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    res, test_metrics = rec_metric_value_test_helper(
        target_clazz, target_compute_mode, test_clazz, fused_update_limit, compute_on_all_ranks,
        should_validate_update, world, rank, task_names, nsteps=nsteps, batch_window_size=batch_window_size,
        is_time_dependent=is_time_dependent, time_dependent_metric=time_dependent_metric, n_classes=n_classes,
        zero_weights=zero_weights, device=device, **kwargs,
    )
    if rank != 0 and not compute_on_all_ranks:
        return
    for name in task_names:
        for i, prefix in enumerate(("lifetime_", "window_", "local_lifetime_", "local_window_")):
            key = f"{metric_name}-{name}|{prefix}{metric_name}"
            want = test_metrics[i][name]
            torch.testing.assert_close(
                res[key].to(torch.double).cpu(), torch.as_tensor(want, dtype=torch.double).cpu(),
                rtol=1e-4, atol=1e-4, equal_nan=True, msg=lambda m: f"{key}: {m}",
            )


def sync_test_helper(
    target_clazz: Type[RecMetric],
    target_compute_mode: RecComputeMode,
    test_clazz: Optional[Type[TestMetric]],
    task_names: List[str],
    metric_name: str,
    world_size: int,
    fused_update_limit: int = 0,
    compute_on_all_ranks: bool = False,
    should_validate_update: bool = False,
    batch_size: int = BATCH_SIZE,
    batch_window_size: int = BATCH_WINDOW_SIZE,
    n_classes: Optional[int] = None,
    zero_weights: bool = False,
    device: Optional[Union[str, torch.device]] = None,
    **kwargs: Dict[str, Any],
) -> None:
    """Entry point of one rank: after ``sync()``, ``local_compute()`` must equal the synced ``compute()``."""
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else world_size
    tasks = gen_test_tasks(task_names)
    target = target_clazz(
        world_size=world, my_rank=rank, batch_size=batch_size, tasks=tasks, compute_mode=target_compute_mode,
        window_size=batch_window_size * batch_size * world, fused_update_limit=fused_update_limit,
        compute_on_all_ranks=True, should_validate_update=should_validate_update, **kwargs,
    )
    required = sorted(target.get_required_inputs())
    for out in _model_outs(tasks, 2, batch_size, rank, n_classes, zero_weights, False, device):
        _update(target, tasks, out, required)
    synced = target.compute()
    target.sync()
    local = {k.replace("|local_", "|"): v for k, v in target.local_compute().items()}
    target.unsync()
    for key, value in synced.items():
        torch.testing.assert_close(local[key], value, msg=lambda m: f"{key}: {m}")


def get_launch_config(world_size: int, rdzv_endpoint: str) -> LaunchConfig:
    """A single-node torchelastic ``LaunchConfig`` of ``world_size`` processes (c10d rendezvous at
    ``rdzv_endpoint``)."""
    return LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=world_size, run_id=str(uuid.uuid4()), rdzv_backend="c10d",
        rdzv_endpoint=rdzv_endpoint, rdzv_configs={"store_type": "file"}, start_method="spawn",
        monitor_interval=1, max_restarts=0,
    )


def _launch(world_size: int, entry_point: Callable[..., None], **kwargs: Any) -> None:
    # gloo processes on 127.0.0.1 (CPU first); each rank calls entry_point(**kwargs).
    from recsys_lib.distributed.test_utils.multi_process import run_multiprocess

    run_multiprocess(_call_entry_point, world_size, entry_point, kwargs, timeout_s=600)


def _call_entry_point(rank: int, world_size: int, entry_point: Callable[..., None], kwargs: Dict[str, Any]) -> None:
    entry_point(**kwargs)


def rec_metric_value_test_launcher(
    target_clazz: Type[RecMetric],
    target_compute_mode: RecComputeMode,
    test_clazz: Type[TestMetric],
    metric_name: str,
    task_names: List[str],
    fused_update_limit: int,
    compute_on_all_ranks: bool,
    should_validate_update: bool,
    world_size: int,
    entry_point: Callable[..., None],
    batch_window_size: int = BATCH_WINDOW_SIZE,
    test_nsteps: int = 1,
    n_classes: Optional[int] = None,
    zero_weights: bool = False,
    zero_labels: bool = False,
    device: Optional[Union[str, torch.device]] = None,
    **kwargs: Any,
) -> None:
    """Runs ``entry_point`` (usually ``metric_test_helper``) on ``world_size`` gloo ranks."""
    _launch(
        world_size, entry_point, target_clazz=target_clazz, target_compute_mode=target_compute_mode,
        test_clazz=test_clazz, metric_name=metric_name, task_names=task_names, fused_update_limit=fused_update_limit,
        compute_on_all_ranks=compute_on_all_ranks, should_validate_update=should_validate_update,
        batch_window_size=batch_window_size, nsteps=test_nsteps, n_classes=n_classes, zero_weights=zero_weights,
        device=device, **kwargs,
    )


def rec_metric_gpu_sync_test_launcher(
    target_clazz: Type[RecMetric],
    target_compute_mode: RecComputeMode,
    test_clazz: Optional[Type[TestMetric]],
    metric_name: str,
    task_names: List[str],
    fused_update_limit: int,
    compute_on_all_ranks: bool,
    should_validate_update: bool,
    world_size: int,
    entry_point: Callable[..., None],
    batch_size: int = BATCH_SIZE,
    batch_window_size: int = BATCH_WINDOW_SIZE,
    device: Optional[Union[str, torch.device]] = None,
    **kwargs: Dict[str, Any],
) -> None:
    """Runs ``entry_point`` (usually ``sync_test_helper``) on ``world_size`` ranks (gloo; the states may
    live on any device)."""
    _launch(
        world_size, entry_point, target_clazz=target_clazz, target_compute_mode=target_compute_mode,
        test_clazz=test_clazz, metric_name=metric_name, task_names=task_names, world_size=world_size,
        fused_update_limit=fused_update_limit, compute_on_all_ranks=compute_on_all_ranks,
        should_validate_update=should_validate_update, batch_size=batch_size, batch_window_size=batch_window_size,
        device=device, **kwargs,
    )


def rec_metric_accuracy_test_helper(world_size: int, entry_point: Callable[..., None]) -> None:
    """Runs ``entry_point()`` (no arguments) on ``world_size`` gloo ranks."""
    _launch(world_size, entry_point)
