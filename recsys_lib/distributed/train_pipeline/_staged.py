"""``StagedTrainPipeline``: a user-assembled pipeline of stages; each step advances every batch by one stage.

With stages ``s_0 .. s_{n-1}``, after filling, one ``progress`` returns the oldest batch's ``s_{n-1}`` output
and moves every other batch one stage on: the newest batch read enters ``s_0``. The caller runs the model
on the returned value. ``progress`` returns None once the data is used up (TorchRec's contract for this
pipeline); all ranks agree on the end (one 1-element all-reduce per read).
"""

from typing import Any, Callable, Iterator, List, Optional, Union

import torch
import torch.distributed as dist

from recsys_lib.distributed.train_pipeline._base import TrainPipeline
from recsys_lib.distributed.train_pipeline.pipeline_stage import In, PipelineStage, StageOut
from recsys_lib.distributed.train_pipeline.postproc import _stream_context
from recsys_lib.distributed.train_pipeline.utils import _agree_has_batch


class StagedTrainPipeline(TrainPipeline[In, Optional[StageOut]]):
    """See the module docstring.

    Args:
        pipeline_stages: the stages, first to last.
        debug_mode: log each step.
        compute_stream: the stream the caller computes on (CUDA), waited for each returned output.
        on_flush_end: called when a flush (``set_flush(True)``) has drained the pipeline.
    """

    def __init__(
        self,
        pipeline_stages: List[PipelineStage],
        debug_mode: bool = False,
        compute_stream: Optional[Union[torch.Stream]] = None,
        on_flush_end: Optional[Callable[[], None]] = None,
    ) -> None:
        super().__init__()
        if not pipeline_stages:
            raise ValueError("StagedTrainPipeline needs at least one PipelineStage")
        self._pipeline_stages = pipeline_stages
        self._debug_mode = debug_mode
        self._compute_stream = compute_stream
        self._on_flush_end = on_flush_end
        self._slots: List[Optional[Any]] = [None] * len(pipeline_stages)
        self._initialized = False
        self._flushing = False
        self._data_exhausted = False
        self._exhausted_notified = [False] * len(pipeline_stages)
        self._num_steps = 0
        self._dataloader_iter: Optional[Iterator[In]] = None
        self._pg = dist.group.WORLD if dist.is_initialized() else None

    @property
    def num_stages(self) -> int:
        return len(self._pipeline_stages)

    def _next_batch(self, dataloader_iter: Iterator[In]) -> Optional[In]:
        if self._data_exhausted or self._flushing:
            return None
        batch = next(dataloader_iter, None)
        if not _agree_has_batch(batch is not None, self._pg):
            self._data_exhausted = True
            return None
        return batch

    def _run_with_event(self, runnable: Callable[..., Any], inputs: Any, stream: Optional[torch.Stream]) -> Any:
        with _stream_context(stream):
            return runnable(inputs)

    def _run_stage(self, batch_offset: int, stage_idx: int, dataloader_iter: Iterator[In]) -> None:
        """Runs stage ``stage_idx`` on what the previous stage left (stage 0: a new batch)."""
        stage = self._pipeline_stages[stage_idx]
        inputs = self._next_batch(dataloader_iter) if stage_idx == 0 else self._slots[stage_idx - 1]
        if inputs is None:
            self._slots[stage_idx] = None
            if self._data_exhausted and not self._exhausted_notified[stage_idx]:  # not merely still filling
                self._exhausted_notified[stage_idx] = True
                if stage.data_exhausted_callback is not None:
                    stage.data_exhausted_callback()
            return
        self._slots[stage_idx] = self._run_with_event(stage.runnable, inputs, stage.stream)

    def _advance(self, dataloader_iter: Iterator[In]) -> None:
        for stage_idx in reversed(range(self.num_stages)):  # oldest first, so every slot is read before rewritten
            self._run_stage(self.num_stages - 1 - stage_idx, stage_idx, dataloader_iter)

    def _fill_pipeline(self, dataloader_iter: Iterator[In]) -> None:
        for _ in range(self.num_stages):
            self._advance(dataloader_iter)
        for stage in self._pipeline_stages:
            if stage.fill_callback is not None:
                stage.fill_callback()
        self._initialized = True

    def set_flush(self, flush: bool) -> None:
        """``True``: stop reading new batches until the in-flight ones are out, then call ``on_flush_end``."""
        self._flushing = flush

    def flush_end(self) -> None:
        self._flushing = False
        self._initialized = False
        self._exhausted_notified = [False] * self.num_stages
        if self._on_flush_end is not None:
            self._on_flush_end()

    def progress(self, dataloader_iter: Iterator[In]) -> Optional[StageOut]:
        if dataloader_iter is not self._dataloader_iter:
            self._dataloader_iter = dataloader_iter
            self._data_exhausted = False
            self._initialized = False
            self._exhausted_notified = [False] * self.num_stages
        if not self._initialized:
            self._fill_pipeline(dataloader_iter)
        out = self._slots[-1]
        if out is None:
            if self._flushing:
                self.flush_end()
                return self.progress(dataloader_iter)
            return None
        self._num_steps += 1
        self._advance(dataloader_iter)
        if self._compute_stream is not None and self._compute_stream.device_type == "cuda":
            stage_stream = self._pipeline_stages[-1].stream
            if stage_stream is not None:
                self._compute_stream.wait_stream(stage_stream)
        return out
