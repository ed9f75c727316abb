"""``CPUOffloadedRecMetricModule``: metric updates and computes on CPU worker threads, off the training step.

::

    training thread            update thread                          compute thread
    update(model_out) ------>  MetricUpdateJob: update CPU metrics
    compute() --------------> SynchronizationMarker: snapshot states --> MetricComputeJob: load snapshot
        returns a pending                                                into CPUCommsRecMetricModule,
        DeferrableMetrics  <------------------------------------------- all-gather over the module's own
                                                                         gloo group, then compute

Model outputs are copied to CPU in ``update`` (asynchronously from CUDA, see ``transfer_tensors_to_cpu``;
on CPU they are used as they are, or cloned with ``clone_model_out=True``). The queues are FIFO, so a
compute sees exactly the updates issued before it, like ``RecMetricModule``; numbers are identical.
The metrics always live on CPU (``.to(device)`` leaves them there). ``state_dict`` / ``load_state_dict``
wait for queued work first. Call ``shutdown()`` when done (also safe to call twice).
"""

import queue
import threading
from concurrent.futures import Future
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
import torch.distributed as dist
from recsys_lib.distributed.logging_handlers import EventLoggingHandler, TorchrecComponent  # noqa: F401 - public here, as in TorchRec

from recsys_lib.metrics.cpu_comms_metric_module import CPUCommsRecMetricModule
from recsys_lib.metrics.deferrable_metrics import DeferrableMetrics, transfer_tensors_to_cpu
from recsys_lib.metrics.metric_job_types import MetricComputeJob, MetricUpdateJob, SynchronizationMarker
from recsys_lib.metrics.metric_module import MetricValue, RecMetricModule
from recsys_lib.metrics.metric_state_snapshot import MetricStateSnapshot

_STOP = object()


class CPUOffloadedRecMetricModule(RecMetricModule):
    def __init__(
        self,
        model_out_device: torch.device,
        update_queue_size: int = 100,
        compute_queue_size: int = 100,
        update_batch_size: int = 10,
        clone_model_out: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if update_queue_size <= 0 or compute_queue_size <= 0 or update_batch_size <= 0:
            raise ValueError("update_queue_size, compute_queue_size and update_batch_size must be > 0")
        self.model_out_device = torch.device(model_out_device)
        self.update_batch_size = update_batch_size
        self.clone_model_out = clone_model_out
        super().to(torch.device("cpu"))
        # A dedicated gloo group (created by every rank, like any group): the compute thread's all-gather of
        # CPU states never shares a communicator with the training step's collectives.
        self.cpu_process_group: Optional[dist.ProcessGroup] = (
            dist.new_group(backend="gloo") if dist.is_available() and dist.is_initialized() else None
        )
        self.comms_module = CPUCommsRecMetricModule(
            batch_size=self.batch_size, world_size=self.world_size, rec_tasks=self.rec_tasks,
            rec_metrics=self.rec_metrics, throughput_metric=None, state_metrics=self.state_metrics,
            compute_interval_steps=self.compute_interval_steps,
        )
        self.update_queue: "queue.Queue[Any]" = queue.Queue(maxsize=update_queue_size)
        self.compute_queue: "queue.Queue[Any]" = queue.Queue(maxsize=compute_queue_size)
        self._error: Optional[BaseException] = None
        self._shut_down = False
        self.update_thread = threading.Thread(target=self._update_loop, name="metric_update", daemon=True)
        self.compute_thread = threading.Thread(target=self._compute_loop, name="metric_compute", daemon=True)
        self.update_thread.start()
        self.compute_thread.start()

    def to(self, *args: Any, **kwargs: Any) -> "CPUOffloadedRecMetricModule":  # type: ignore[override]
        return self  # the metrics stay on CPU

    def _check_alive(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"CPUOffloadedRecMetricModule worker failed: {self._error!r}") from self._error
        if self._shut_down:
            raise RuntimeError("CPUOffloadedRecMetricModule was shut down")

    # -- training thread ---------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, model_out: Dict[str, torch.Tensor], **kwargs: Any) -> None:
        self._check_alive()
        on_cpu, event = transfer_tensors_to_cpu(model_out)
        if event is None and self.clone_model_out:
            on_cpu = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in on_cpu.items()}
        self.update_queue.put(MetricUpdateJob(on_cpu, {**kwargs, "_transfer_event": event}))
        if self.throughput_metric is not None:
            self.throughput_metric.update()
        self.trained_batches += 1

    def async_compute(self) -> DeferrableMetrics:  # type: ignore[override]
        """Queues a compute after every update issued so far; returns its pending values."""
        self._check_alive()
        self._adjust_compute_interval()
        future: "Future[Dict[str, MetricValue]]" = Future()
        self.update_queue.put(SynchronizationMarker(future))
        return DeferrableMetrics(future)

    def compute(self) -> DeferrableMetrics:
        return self.async_compute()

    def local_compute(self) -> DeferrableMetrics:
        self.wait_until_queue_is_empty(self.update_queue)
        return super().local_compute()

    def sync(self) -> None:
        self.compute().resolve()

    def unsync(self) -> None:
        pass

    def state_dict(  # type: ignore[override]
        self, *args: Any, destination: Optional[Dict[str, Any]] = None, prefix: str = "", keep_vars: bool = False
    ) -> Dict[str, Any]:
        """This rank's states, after every queued update (the comms clones are left out)."""
        self.wait_until_queue_is_empty(self.update_queue)
        full = super().state_dict(*args, destination=destination, prefix=prefix, keep_vars=keep_vars)
        for key in [k for k in full if k.startswith(prefix + "comms_module.")]:
            del full[key]
        return full

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        self.wait_until_queue_is_empty(self.update_queue)
        missing, unexpected = super().load_state_dict(state_dict, strict=False, assign=assign)
        missing = [k for k in missing if not k.startswith("comms_module.")]
        if strict and (missing or unexpected):
            raise RuntimeError(f"load_state_dict: missing keys {missing}, unexpected keys {list(unexpected)}")
        return missing, unexpected

    def wait_until_queue_is_empty(self, metric_job_queue: "queue.Queue[Any]") -> None:
        """Blocks until every job put on ``metric_job_queue`` so far is done."""
        self._check_alive()
        metric_job_queue.join()
        self._check_alive()

    def shutdown(self) -> None:
        if self._shut_down:
            return
        self._shut_down = True
        for q, thread in ((self.update_queue, self.update_thread), (self.compute_queue, self.compute_thread)):
            q.put(_STOP)
            thread.join()

    # -- update thread ---------------------------------------------------------------------------------
    def _process_metric_update_job(self, metric_update_job: MetricUpdateJob) -> None:
        kwargs = dict(metric_update_job.kwargs)
        event = kwargs.pop("_transfer_event", None)
        if event is not None:
            event.synchronize()
        with torch.no_grad():
            self._update_rec_metrics(metric_update_job.model_out, **kwargs)

    def _process_synchronization_marker(self, synchronization_marker: SynchronizationMarker) -> None:
        snapshot = MetricStateSnapshot.from_metrics(self.rec_metrics, self.throughput_metric)
        self.compute_queue.put(MetricComputeJob(synchronization_marker.future, snapshot))

    def _drain_update_batch(
        self, first: MetricUpdateJob
    ) -> Tuple[List[MetricUpdateJob], Optional[SynchronizationMarker], int]:
        """``first`` plus up to ``update_batch_size - 1`` more queued updates (stopping at a marker)."""
        jobs, marker, taken = [first], None, 1
        while len(jobs) < self.update_batch_size:
            try:
                item = self.update_queue.get_nowait()
            except queue.Empty:
                break
            taken += 1
            if isinstance(item, SynchronizationMarker):
                marker = item
                break
            if item is _STOP:
                self.update_queue.put(_STOP)  # seen again by the loop
                self.update_queue.task_done()
                taken -= 1
                break
            jobs.append(item)
        return jobs, marker, taken

    def _update_loop(self) -> None:
        while True:
            item = self.update_queue.get()
            if item is _STOP:
                self.update_queue.task_done()
                return
            taken = 1
            marker: Optional[SynchronizationMarker] = item if isinstance(item, SynchronizationMarker) else None
            try:
                if marker is not None:
                    self._process_synchronization_marker(marker)
                else:
                    jobs, marker, taken = self._drain_update_batch(item)
                    for job in jobs:  # one by one: windows move exactly as in RecMetricModule
                        self._process_metric_update_job(job)
                    if marker is not None:
                        self._process_synchronization_marker(marker)
            except BaseException as e:  # noqa: B036 - surfaced to the training thread
                self._error = e
                if marker is not None and not marker.future.done():  # a waiting compute must not hang
                    marker.future.set_exception(e)
            finally:
                for _ in range(taken):
                    self.update_queue.task_done()

    # -- compute thread --------------------------------------------------------------------------------
    def _process_metric_compute_job(self, metric_compute_job: MetricComputeJob) -> Dict[str, Union[torch.Tensor, float]]:
        self.comms_module.load_local_metric_state_snapshot(metric_compute_job.metric_state_snapshot)
        if self.cpu_process_group is not None:
            # Every rank's states, gathered over the gloo group; the clones then compute without syncing.
            self.comms_module.load_pre_compute_states(
                self.comms_module.get_pre_compute_states(self.cpu_process_group)
            )
        return dict(self.comms_module._compute_values())

    def _compute_loop(self) -> None:
        while True:
            job = self.compute_queue.get()
            try:
                if job is _STOP:
                    return
                try:
                    job.future.set_result(self._process_metric_compute_job(job))
                except BaseException as e:  # noqa: B036 - delivered through the future
                    job.future.set_exception(e)
            finally:
                self.compute_queue.task_done()
