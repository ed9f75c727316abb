"""Training throughput in examples per second, over the lifetime of the job and over a recent time window.

Every ``update()`` is one step of ``batch_size * world_size`` examples (or the batch size of the current
``BatchSizeStage``). The first ``warmup_steps`` steps only count examples; timing starts when they end:

    lifetime_throughput = (total_examples - warmup_examples) / seconds since the end of warm-up
    window_throughput   = examples of the steps in the last ``window_seconds`` / their seconds

    attempt_throughput  = the same as lifetime, over this process's steps only (not restored)

Keys: ``throughput-throughput|total_examples`` and ``|attempt_examples`` (examples since this process
started, not restored from a checkpoint) always; ``|lifetime_throughput``, ``|window_throughput`` and
``|attempt_throughput`` once this process has run more than ``warmup_steps`` steps. ``total_examples``,
``warmup_examples`` and ``time_lapse_after_warmup`` are checkpointed; a restored job warms up again.
"""

import time
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple

import torch
from torch import nn

from recsys_lib.metrics._num_batch_hooks import NumBatchStateHooks
from recsys_lib.metrics.metrics_config import BatchSizeStage, validate_batch_size_stages
from recsys_lib.metrics.metrics_namespace import compose_metric_key, MetricName, MetricNamespace, MetricPrefix

_TASK = "throughput"


class ThroughputMetric(NumBatchStateHooks, nn.Module):
    """Examples per second (see the module docstring).

    Example::

        tput = ThroughputMetric(batch_size=512, world_size=8, window_seconds=100, warmup_steps=10)
        for batch in loader:
            ...
            tput.update()
        tput.compute()["throughput-throughput|window_throughput"]
    """

    def __init__(
        self,
        *,
        batch_size: int,
        world_size: int,
        window_seconds: int,
        warmup_steps: int = 100,
        batch_size_stages: Optional[List[BatchSizeStage]] = None,
    ) -> None:
        super().__init__()
        if batch_size <= 0 or world_size <= 0:
            raise ValueError(f"batch_size and world_size must be > 0, got {batch_size} and {world_size}")
        if window_seconds <= 0:
            raise ValueError(f"window_seconds must be > 0, got {window_seconds}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        if batch_size_stages is not None:
            validate_batch_size_stages(batch_size_stages)
        self._batch_size = batch_size
        self._world_size = world_size
        self._window_seconds = window_seconds
        self._warmup_steps = warmup_steps
        self._batch_size_stages = batch_size_stages
        self._num_batch = 0
        self._attempt_examples = 0
        self._attempt_steps = 0
        self._attempt_warmup_examples = 0
        self._attempt_time_lapse = 0.0
        self._previous_ts: Optional[float] = time.monotonic() if warmup_steps == 0 else None
        self._window: Deque[Tuple[float, int, float]] = deque()  # (timestamp, examples, seconds)
        self.register_buffer("total_examples", torch.zeros((), dtype=torch.long))
        self.register_buffer("warmup_examples", torch.zeros((), dtype=torch.long))
        self.register_buffer("time_lapse_after_warmup", torch.zeros((), dtype=torch.double))
        self._register_num_batch_hooks()

    def _step_batch_size(self, step: int) -> int:
        if self._batch_size_stages is None:
            return self._batch_size
        end = 0
        for stage in self._batch_size_stages:
            iters = stage.max_iters or 0
            end += iters
            if iters == 0 or step < end:
                return stage.batch_size
        return self._batch_size_stages[-1].batch_size

    def set_num_batch(self, num_batch: int) -> None:
        """Sets the step counter that picks the ``BatchSizeStage`` (e.g. after a restore); a restarted process
        still warms up for ``warmup_steps`` of its own steps."""
        if num_batch < 0:
            raise ValueError(f"num_batch must be >= 0, got {num_batch}")
        self._num_batch = num_batch

    @torch.no_grad()
    def update(self) -> None:
        examples = self._step_batch_size(self._num_batch) * self._world_size
        self._num_batch += 1
        now = time.monotonic()
        self.total_examples += examples
        self._attempt_examples += examples
        self._attempt_steps += 1
        if self._num_batch <= self._warmup_steps or self._attempt_steps <= self._warmup_steps or (
            self._previous_ts is None
        ):
            self.warmup_examples += examples
            self._attempt_warmup_examples += examples
            self._previous_ts = now
            return
        seconds = now - self._previous_ts
        self._previous_ts = now
        self.time_lapse_after_warmup += seconds
        self._attempt_time_lapse += seconds
        self._window.append((now, examples, seconds))
        while self._window and self._window[0][0] < now - self._window_seconds:
            self._window.popleft()

    def _key(self, name: MetricName, prefix: MetricPrefix = MetricPrefix.DEFAULT) -> str:
        return compose_metric_key(MetricNamespace.THROUGHPUT, _TASK, name, prefix)

    @torch.no_grad()
    def compute(self) -> Dict[str, torch.Tensor]:
        ret = {
            self._key(MetricName.TOTAL_EXAMPLES): self.total_examples.clone(),
            self._key(MetricName.ATTEMPT_EXAMPLES): torch.tensor(self._attempt_examples, dtype=torch.long),
        }
        if self._attempt_steps <= self._warmup_steps:
            return ret
        lapse = float(self.time_lapse_after_warmup)
        if lapse > 0:
            steady = (self.total_examples - self.warmup_examples).to(torch.double)
            ret[self._key(MetricName.THROUGHPUT, MetricPrefix.LIFETIME)] = steady / lapse
        if self._attempt_time_lapse > 0:
            ret[self._key(MetricName.THROUGHPUT, MetricPrefix.ATTEMPT)] = torch.tensor(
                (self._attempt_examples - self._attempt_warmup_examples) / self._attempt_time_lapse, dtype=torch.double
            )
        if self._window:
            seconds = sum(s for _, _, s in self._window)
            examples = sum(e for _, e, _ in self._window)
            if seconds > 0:
                ret[self._key(MetricName.THROUGHPUT, MetricPrefix.WINDOW)] = torch.tensor(
                    examples / seconds, dtype=torch.double
                )
        return ret

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        # A restored job re-arms the clock: its next step counts as warm-up.
        self._previous_ts = None
        self._window.clear()
