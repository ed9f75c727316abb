"""The pipeline contract (``TrainPipeline``) and the plain pipelines ``TrainPipelineBase`` and ``TrainPipelinePT2``.

The contract every pipeline follows is described in ``train_pipelines.py``.
"""

import abc
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, List, Optional, Tuple, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from recsys_lib.distributed.train_pipeline._rewrite import unwrap_model
from recsys_lib.distributed.train_pipeline.pipeline_context import TrainPipelineContext
from recsys_lib.distributed.train_pipeline.utils import _agree_has_batch, _to_device, _wait_for_batch
from recsys_lib.distributed._core.sharder import ShardedModule
from recsys_lib.streamable import Pipelineable

In = TypeVar("In", bound=Pipelineable)
Out = TypeVar("Out")


class ModelDetachedException(Exception):
    """Raised when a detached pipeline is asked to step."""


def _side_stream(device: torch.device, priority: int = 0) -> Optional[torch.Stream]:
    """A new CUDA stream on ``device``; None elsewhere (CPU work runs in order on the calling thread)."""
    return torch.cuda.Stream(device=device, priority=priority) if device.type == "cuda" else None


def find_process_group(model: nn.Module) -> Optional[dist.ProcessGroup]:
    """The process group the model's sharded modules use (the default group if none; None without one)."""
    if not dist.is_initialized():
        return None
    for module in unwrap_model(model).modules():
        env = getattr(module, "_env", None)
        if isinstance(module, ShardedModule) and env is not None and getattr(env, "process_group", None) is not None:
            return env.process_group
    return dist.group.WORLD


class TrainPipeline(abc.ABC, Generic[In, Out]):
    """One step per ``progress`` call (see the module docstring)."""

    def __init__(self) -> None:
        pass

    @abc.abstractmethod
    def progress(self, dataloader_iter: Iterator[In]) -> Out:
        """Runs one step; raises ``StopIteration`` when the data is exhausted."""

    def sync_embeddings(
        self, model: nn.Module, interval_batches: Optional[int], context: Optional[TrainPipelineContext] = None
    ) -> None:
        """Replica sync of 2D-parallel models (``model.sync()``) every ``interval_batches``; else nothing."""
        sync = getattr(model, "sync", None)
        if interval_batches is None or not callable(sync):
            return
        index = context.index if context is not None and context.index is not None else 0
        if (index + 1) % interval_batches == 0:
            sync()

    def reset(self) -> None:
        """Forgets in-flight batches; the next ``progress`` starts afresh."""


@dataclass
class TorchCompileConfig:
    """``torch.compile`` options of ``TrainPipelinePT2``; the model is compiled at step ``compile_on_iter``."""

    fullgraph: bool = False
    dynamic: Optional[bool] = None
    backend: str = "inductor"
    compile_on_iter: int = 3


class TrainPipelineBase(TrainPipeline[In, Out]):
    """The plain loop, with the next batch's device copy overlapped (on CUDA) with the current step.

    Args:
        model: returns ``(loss, output)`` for a batch.
        optimizer: stepped after each backward (training mode).
        device: where batches are copied.
        custom_model_fwd: called instead of ``model`` to get ``(loss, output)``.
        enable_inplace_copy_batch: reuse device buffers for copies (same result here).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        custom_model_fwd: Optional[Callable[[In], Tuple[torch.Tensor, List[torch.Tensor]]]] = None,
        enable_inplace_copy_batch: bool = False,
    ) -> None:
        super().__init__()
        self._model = model
        self._optimizer = optimizer
        self._device = device
        self._memcpy_stream = _side_stream(device)
        self._model_fwd: Callable[[Any], Any] = custom_model_fwd if custom_model_fwd is not None else model
        self._enable_inplace_copy_batch = enable_inplace_copy_batch
        self._pg = find_process_group(model)
        self._cur_batch: Optional[In] = None
        self._connected = False
        self._data_iter_stopped = False
        self._dataloader_iter: Optional[Iterator[In]] = None

    def _reset_data_iter(self) -> None:
        self._connected = False
        self._data_iter_stopped = False
        self._cur_batch = None

    def _connect(self, dataloader_iter: Iterator[In]) -> None:
        self._dataloader_iter = dataloader_iter
        self._cur_batch = self._copy_batch_to_gpu(dataloader_iter)
        self._connected = True

    def _next_batch(self, dataloader_iter: Iterator[In]) -> Optional[In]:
        if self._data_iter_stopped:
            return None
        batch = next(dataloader_iter, None)
        if not _agree_has_batch(batch is not None, self._pg):
            self._data_iter_stopped = True
            return None
        return batch

    def _copy_batch_to_gpu(self, dataloader_iter: Iterator[In]) -> Optional[In]:
        batch = self._next_batch(dataloader_iter)
        return None if batch is None else _to_device(batch, self._device, True, self._memcpy_stream)

    def _wait_for_batch(self) -> None:
        if self._cur_batch is not None:
            _wait_for_batch(self._cur_batch, self._memcpy_stream)

    def _backward(self, losses: torch.Tensor) -> None:
        torch.sum(losses, dim=0).backward()

    def progress(self, dataloader_iter: Iterator[In]) -> Out:
        if not self._connected or dataloader_iter is not self._dataloader_iter:
            self._reset_data_iter()
            self._connect(dataloader_iter)
        if self._cur_batch is None:
            raise StopIteration
        if self._model.training:
            self._optimizer.zero_grad()
        self._wait_for_batch()
        batch = self._cur_batch
        self._cur_batch = self._copy_batch_to_gpu(dataloader_iter)  # the next batch, overlapped on CUDA
        losses, output = self._model_fwd(batch)
        if self._model.training:
            self._backward(losses)
            self._optimizer.step()
        return output

    def reset(self) -> None:
        self._reset_data_iter()
        self._dataloader_iter = None


class TrainPipelinePT2(TrainPipelineBase[In, Out]):
    """``TrainPipelineBase`` that compiles the model with ``torch.compile`` at step ``compile_on_iter``.

    Args:
        compile_configs: compile options (default ``TorchCompileConfig()``).
        pre_compile_fn / post_compile_fn: called with the model right before / after compiling.
        input_transformer: applied to each batch before the forward.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        compile_configs: Optional[TorchCompileConfig] = None,
        pre_compile_fn: Optional[Callable[[nn.Module], None]] = None,
        post_compile_fn: Optional[Callable[[nn.Module], None]] = None,
        input_transformer: Optional[Callable[[In], In]] = None,
    ) -> None:
        super().__init__(model, optimizer, device)
        self._compile_configs = compile_configs if compile_configs is not None else TorchCompileConfig()
        self._pre_compile_fn = pre_compile_fn
        self._post_compile_fn = post_compile_fn
        self._input_transformer = input_transformer
        self._iter = 0

    def progress(self, dataloader_iter: Iterator[In]) -> Out:
        if self._iter == self._compile_configs.compile_on_iter:
            cfg = self._compile_configs
            if self._pre_compile_fn is not None:
                self._pre_compile_fn(self._model)
            self._model_fwd = torch.compile(self._model, fullgraph=cfg.fullgraph, dynamic=cfg.dynamic, backend=cfg.backend)
            if self._post_compile_fn is not None:
                self._post_compile_fn(self._model)
        self._iter += 1
        if self._input_transformer is None:
            return super().progress(dataloader_iter)
        forward = self._model_fwd
        transform = self._input_transformer
        self._model_fwd = lambda batch: forward(transform(batch))
        try:
            return super().progress(dataloader_iter)
        finally:
            self._model_fwd = forward
