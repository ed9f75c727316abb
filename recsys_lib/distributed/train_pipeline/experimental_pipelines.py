"""Experimental variants of ``TrainPipelineSparseDist`` (TorchRec's ``experimental_pipelines`` module).

Every class keeps the base pipeline's schedule (three batches in flight, input dist one step ahead) and
its contract (``progress`` = one step, ``StopIteration`` at the same step on every rank); each changes one
thing:

* ``TrainEvalHybridPipelineBase`` - one pipeline for interleaved train and eval batches: a step runs the
  backward and optimizer only while ``model.training``.
* ``EvalPipelineCPUSparse`` - forward only (no grad), for tables kept on the CPU while the dense part runs
  on ``device``: ``pipeline_depth`` batches are read and copied ahead (``copy_data_to_gpu``, in a worker
  thread when ``multi_thread``), the next batch's input dist overlapping the current forward.
* ``TrainPipelineSparseDistT`` - the host-to-device copy of each new batch runs in a worker thread; the
  batch deque holds futures, resolved when a batch is first used.
* ``TrainPipelineSparseDistBwdOpt`` - ``optimizer.step()`` runs inside the backward, when the gradient
  reaches the output dist of ``site_fqn`` (found by ``OutputDistTensorFinder(sharding_type)``).
* ``TrainPipelineSparseDistOptStash`` - optimizer state moves to the CPU after each step and comes back
  during the next backward (at the same kind of site), before the next step.

The weight-stashing pipelines (``TrainPipelineSparseDistEmbStash``, ``TrainPipelinePrefetchEMS``) live in
``_emb_stash.py``; they free GPU memory and need CUDA.
"""

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Type

import torch
from torch import nn

from recsys_lib.distributed.logging_handlers import log_ems_config, log_inplace_copy_batch  # noqa: F401
from recsys_lib.distributed.train_pipeline._base import In, Out
from recsys_lib.distributed.train_pipeline._emb_stash import (  # noqa: F401 - public here, as in TorchRec
    TrainPipelinePrefetchEMS,
    TrainPipelineSparseDistEmbStash,
)
from recsys_lib.distributed.train_pipeline._sparse_dist import TrainPipelineSparseDist
from recsys_lib.distributed.train_pipeline.backward_injection import InjectionSite, OutputDistTensorFinder
from recsys_lib.distributed.train_pipeline.pipeline_context import TrainPipelineContext
from recsys_lib.distributed.train_pipeline.utils import _to_device, FutureDeque
from recsys_lib.distributed._core.enums import ShardingType


class TrainEvalHybridPipelineBase(TrainPipelineSparseDist[In, Out]):
    """Train and eval batches through one pipeline: ``model.train()`` / ``model.eval()`` between steps switch
    whether a step runs ``zero_grad``, backward and ``optimizer.step()``; the forward and the input dist
    schedule are the same in both modes. Same arguments as ``TrainPipelineSparseDist``."""

    def progress(self, dataloader_iter: Iterator[In]) -> Out:
        # The base step already reads model.training at zero_grad and after the forward; kept explicit here.
        return super().progress(dataloader_iter)


class EvalPipelineCPUSparse(TrainPipelineSparseDist[In, Out]):
    """Forward only (under ``torch.no_grad``), for tables kept on the CPU and a dense part on ``device``:
    ``pipeline_depth`` batches are read and copied ahead, and the next batch's input dist runs while the
    current batch's forward does.

    Args:
        model, optimizer, device, apply_jit, pipeline_postproc, enable_inplace_copy_batch,
            free_features_storage_early, clear_data_dist_inputs: as ``TrainPipelineSparseDist``.
        execute_all_batches: accepted (every batch is always executed).
        multi_thread: copy the batches read ahead to ``device`` in a worker thread.
        pipeline_depth: batches kept ahead of the one being computed (>= 1).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        execute_all_batches: bool = True,
        apply_jit: bool = False,
        pipeline_postproc: bool = False,
        enable_inplace_copy_batch: bool = False,
        multi_thread: bool = False,
        pipeline_depth: int = 2,
        free_features_storage_early: bool = False,
        clear_data_dist_inputs: bool = False,
    ) -> None:
        if pipeline_depth < 1:
            raise ValueError(f"EvalPipelineCPUSparse: pipeline_depth must be >= 1, got {pipeline_depth}")
        super().__init__(
            model, optimizer, device, execute_all_batches, apply_jit, TrainPipelineContext, pipeline_postproc,
            enable_inplace_copy_batch=enable_inplace_copy_batch,
            free_features_storage_early=free_features_storage_early, clear_data_dist_inputs=clear_data_dist_inputs,
        )
        self._pipeline_depth = pipeline_depth
        self._executor: Optional[ThreadPoolExecutor] = None
        if multi_thread:
            self.batches = FutureDeque()
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eval_h2d")

    def copy_data_to_gpu(self, batch: In, context: TrainPipelineContext) -> In:
        """Copies ``batch`` and any embeddings the context holds for the dense forward
        (``gpu_embedding_outputs``) to ``device``; returns the copied batch."""
        outputs = getattr(context, "gpu_embedding_outputs", None)
        if outputs:
            for name, value in list(outputs.items()):
                outputs[name] = value.to(self._device, non_blocking=True)
        return _to_device(batch, self._device, True, self._memcpy_stream)

    def copy_batch_to_gpu(self, dataloader_iter: Iterator[In]) -> Tuple[Optional[In], Optional[TrainPipelineContext]]:
        batch = self._next_batch(dataloader_iter)
        if batch is None:
            return None, None
        context = self._create_context()
        if self._executor is None:
            return self.copy_data_to_gpu(batch, context), context
        return self._executor.submit(self.copy_data_to_gpu, batch, context), context  # type: ignore[return-value]

    def progress(self, dataloader_iter: Iterator[In]) -> Out:
        self._start_step(dataloader_iter, zero_grad=False)
        while len(self.batches) < self._pipeline_depth + 1 and self.enqueue_batch(dataloader_iter):
            pass
        self._wait_for_batch()
        if len(self.batches) >= 2:
            self.start_sparse_data_dist(self.batches[1], self.contexts[1])
        with torch.no_grad():
            _, output = self._model_fwd(self.batches[0])
        if len(self.batches) >= 2:
            self.wait_sparse_data_dist(self.contexts[1])
        self.dequeue_batch()
        return output

    def __del__(self) -> None:
        if getattr(self, "_executor", None) is not None:
            self._executor.shutdown(wait=True)


class TrainPipelineSparseDistT(TrainPipelineSparseDist[In, Out]):
    """``TrainPipelineSparseDist`` whose host-to-device copies run in a worker thread (same arguments).

    The next batch is read on the calling thread (every rank must agree there is one); only its copy is
    handed to the worker. ``self.batches`` is a ``FutureDeque``, so a batch is waited for where it is used.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        execute_all_batches: bool = True,
        apply_jit: bool = False,
        context_type: Type[TrainPipelineContext] = TrainPipelineContext,
        pipeline_postproc: bool = False,
        custom_model_fwd: Optional[Callable[[Optional[In]], Tuple[torch.Tensor, Out]]] = None,
        dmp_collection_sync_interval_batches: Optional[int] = 1,
        enable_inplace_copy_batch: bool = False,
        free_features_storage_early: bool = False,
        clear_data_dist_inputs: bool = False,
    ) -> None:
        super().__init__(
            model, optimizer, device, execute_all_batches, apply_jit, context_type, pipeline_postproc,
            custom_model_fwd, dmp_collection_sync_interval_batches, False, enable_inplace_copy_batch,
            free_features_storage_early, clear_data_dist_inputs,
        )
        self.batches = FutureDeque()
        self._copy_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="h2d")

    def copy_batch_to_gpu(self, dataloader_iter: Iterator[In]) -> Tuple[Optional[In], Optional[TrainPipelineContext]]:
        batch = self._next_batch(dataloader_iter)
        if batch is None:
            return None, None
        future: "Future[In]" = self._copy_executor.submit(_to_device, batch, self._device, True, self._memcpy_stream)
        return future, self._create_context()  # type: ignore[return-value]

    def inplace_copy_batch_to_gpu(self, dataloader_iter: Iterator[In]) -> Tuple[Optional[In], Optional[TrainPipelineContext]]:
        return self.copy_batch_to_gpu(dataloader_iter)

    def __del__(self) -> None:
        if getattr(self, "_copy_executor", None) is not None:
            self._copy_executor.shutdown(wait=True)


class _OutputDistSitePipeline(TrainPipelineSparseDist[In, Out]):
    """Shared base: runs ``self._at_site()`` during the backward, when the gradient reaches the output dist of
    the sharded module ``site_fqn`` (found by ``OutputDistTensorFinder(sharding_type)``)."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        site_fqn: str,
        sharding_type: ShardingType = ShardingType.TABLE_WISE,
        execute_all_batches: bool = True,
        apply_jit: bool = False,
        context_type: Type[TrainPipelineContext] = TrainPipelineContext,
        pipeline_postproc: bool = False,
        custom_model_fwd: Optional[Callable[[Optional[In]], Tuple[torch.Tensor, Out]]] = None,
        dmp_collection_sync_interval_batches: Optional[int] = 1,
        enqueue_batch_after_forward: bool = False,
        enable_inplace_copy_batch: bool = False,
        free_features_storage_early: bool = False,
        clear_data_dist_inputs: bool = False,
    ) -> None:
        super().__init__(
            model, optimizer, device, execute_all_batches, apply_jit, context_type, pipeline_postproc,
            custom_model_fwd, dmp_collection_sync_interval_batches, enqueue_batch_after_forward,
            enable_inplace_copy_batch, free_features_storage_early, clear_data_dist_inputs,
        )
        self._site = InjectionSite(fqn=site_fqn, tensor_finder=OutputDistTensorFinder(sharding_type))
        # (optimizer state dict, key, device) of every state tensor moved to the CPU (OptStash)
        self._stashed: List[Tuple[Dict[str, Any], str, torch.device]] = []
        self.register_backward_hook(self._site, lambda pipeline: pipeline._at_site())

    def _at_site(self) -> None:
        """What the subclass does at the site (the base does nothing there)."""


class TrainPipelineSparseDistBwdOpt(_OutputDistSitePipeline[In, Out]):
    """``optimizer.step()`` runs during the backward, when the gradient reaches the output dist of the sharded
    module ``site_fqn`` (overlapping the step with the backward all-to-all); ``progress`` does not step.

    Args:
        site_fqn: fully qualified name of the sharded module whose output dist triggers the step.
        sharding_type: which of its output dists (see ``OutputDistTensorFinder``).
        others: as ``TrainPipelineSparseDist``.
    """

    def _at_site(self) -> None:
        self._optimizer.step()

    def _optimizer_step(self) -> None:
        pass  # the step ran inside the backward


class TrainPipelineSparseDistOptStash(_OutputDistSitePipeline[In, Out]):
    """After each ``optimizer.step()`` the optimizer's state tensors move to the CPU; the backward of the next
    step brings them back when its gradient reaches the output dist of ``site_fqn``. Arguments as
    ``TrainPipelineSparseDistBwdOpt``. If the hook did not fire (no such gradient), the state is brought back
    before the step."""

    def _at_site(self) -> None:
        self._restore_optimizer_state()

    def _state_dicts(self) -> List[Dict[str, Any]]:
        states: List[Dict[str, Any]] = []
        for opt in getattr(self._optimizer, "optimizers", None) or [self._optimizer]:
            inner = opt[1] if isinstance(opt, tuple) else opt
            states.extend(s for s in getattr(inner, "state", {}).values() if isinstance(s, dict))
        return states

    def _stash_optimizer_state(self) -> None:
        for state in self._state_dicts():
            for key, value in list(state.items()):
                if isinstance(value, torch.Tensor) and value.device.type != "cpu":
                    self._stashed.append((state, key, value.device))
                    state[key] = value.to("cpu", non_blocking=False)

    def _restore_optimizer_state(self) -> None:
        for state, key, device in self._stashed:
            state[key] = state[key].to(device)
        self._stashed.clear()

    def _optimizer_step(self) -> None:
        self._restore_optimizer_state()
        self._optimizer.step()
        self._stash_optimizer_state()
