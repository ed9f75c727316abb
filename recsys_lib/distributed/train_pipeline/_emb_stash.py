"""Embedding-memory stashing pipelines (EMS): free the GPU memory of the sharded modules' tables while the
dense backward runs, and bring it back before the backward reaches the tables.

Per training step (after the first)::

    forward ── stash: every CUDA parameter / buffer of the pipelined sharded modules is copied to pinned
               host memory and its storage freed (resize to 0)
    backward ── at ``site_fqn`` (an ``InjectionSite`` or a module name, whose first gradient tensor is
               used): restore (storage re-grown, values copied back) ── rest of the backward ── step

A stash is only taken once the restore hook has been seen to fire in an earlier step, so a site the
backward never reaches cannot leave the tables freed. The values after a restore are bit-identical, so the
losses and weights equal ``TrainPipelineSparseDist``'s. CUDA only: on other devices the constructor raises.
"""

from typing import Callable, Iterator, List, Optional, Tuple, Type, Union

import torch
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.distributed.logging_handlers import log_ems_config
from recsys_lib.distributed.train_pipeline._base import In, Out
from recsys_lib.distributed.train_pipeline._sparse_dist import TrainPipelineSparseDist
from recsys_lib.distributed.train_pipeline.backward_injection import FirstGradTensorFinder, InjectionSite
from recsys_lib.distributed.train_pipeline.pipeline_context import TrainPipelineContext


class _Stash:
    """Host copies of freed CUDA storages: ``(tensor, host copy, element count of its storage)``."""

    def __init__(self) -> None:
        self.entries: List[Tuple[torch.Tensor, torch.Tensor, int]] = []

    def take(self, modules: List[nn.Module]) -> None:
        seen = set()
        for top in modules:
            for m in top.modules():
                for t in list(m._parameters.values()) + list(m._buffers.values()):
                    if t is None or not t.is_cuda or t.untyped_storage().nbytes() == 0:
                        continue
                    ptr = t.untyped_storage().data_ptr()
                    if ptr in seen:
                        continue
                    seen.add(ptr)
                    storage = t.untyped_storage()
                    host = torch.empty(storage.nbytes(), dtype=torch.uint8, pin_memory=True)
                    host.untyped_storage().copy_(storage, non_blocking=True)
                    self.entries.append((t, host, storage.nbytes()))
        torch.cuda.current_stream().synchronize()  # the copies must land before the storages go
        for t, _, _ in self.entries:
            t.untyped_storage().resize_(0)

    def restore(self) -> None:
        for t, host, nbytes in self.entries:
            storage = t.untyped_storage()
            storage.resize_(nbytes)
            storage.copy_(host.untyped_storage(), non_blocking=True)
        self.entries.clear()


@public_at("recsys_lib.distributed.train_pipeline.experimental_pipelines")
class TrainPipelineSparseDistEmbStash(TrainPipelineSparseDist[In, Out]):
    """``TrainPipelineSparseDist`` that stashes the tables' GPU memory between forward and backward (see the
    module docstring). ``site_fqn``: where the backward restores them; ``delay_stash`` / ``stash_site_fqn``:
    accepted (the stash is always taken once the whole forward is done). Other arguments as the base."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        site_fqn: Union[str, InjectionSite],
        execute_all_batches: bool = True,
        apply_jit: bool = False,
        context_type: Type[TrainPipelineContext] = TrainPipelineContext,
        pipeline_postproc: bool = False,
        custom_model_fwd: Optional[Callable[[Optional[In]], Tuple[torch.Tensor, Out]]] = None,
        dmp_collection_sync_interval_batches: Optional[int] = 1,
        enqueue_batch_after_forward: bool = False,
        enable_inplace_copy_batch: bool = False,
        free_features_storage_early: bool = False,
        delay_stash: bool = False,
        stash_site_fqn: Optional[str] = None,
        clear_data_dist_inputs: bool = False,
    ) -> None:
        if device.type != "cuda":
            raise RuntimeError(
                f"{type(self).__name__} frees embedding-table GPU memory between forward and backward; "
                f"it needs a CUDA device, got {device}"
            )
        super().__init__(
            model, optimizer, device, execute_all_batches, apply_jit, context_type, pipeline_postproc,
            custom_model_fwd, dmp_collection_sync_interval_batches, enqueue_batch_after_forward,
            enable_inplace_copy_batch, free_features_storage_early, clear_data_dist_inputs,
        )
        self._site = site_fqn if isinstance(site_fqn, InjectionSite) else InjectionSite(site_fqn, FirstGradTensorFinder())
        self._delay_stash = delay_stash
        self._stash_site_fqn = stash_site_fqn
        self._stash = _Stash()
        self._hook_seen = False
        self.register_backward_hook(self._site, lambda pipeline: pipeline._on_restore_site())
        self._log_ems_config()

    def _log_ems_config(self) -> None:
        log_ems_config(metadata={
            "pipeline": type(self).__name__, "site_fqn": self._site.fqn, "delay_stash": str(self._delay_stash),
            "stash_site_fqn": str(self._stash_site_fqn),
        })

    def _on_restore_site(self) -> None:
        self._hook_seen = True
        self._restore()

    def _restore(self) -> None:
        self._stash.restore()

    def _try_hook_stash(self) -> None:
        """Stashes the pipelined modules' tables if the restore site is known to fire."""
        if self._hook_seen and self._model.training:
            self._stash.take(list(self._pipelined_modules))

    def _backward(self, losses: torch.Tensor) -> None:
        self._try_hook_stash()
        try:
            super()._backward(losses)
        finally:
            self._restore()  # no-op after the hook; frees nothing twice


@public_at("recsys_lib.distributed.train_pipeline.experimental_pipelines")
class TrainPipelinePrefetchEMS(TrainPipelineSparseDistEmbStash[In, Out]):
    """EMS that also covers caching tables (``fused_uvm_caching``): their cache storages are among the stashed
    buffers, restored bit-identically (so the cache needs no re-prefetch) before the backward reaches them.
    CUDA only; arguments as ``TrainPipelineSparseDistEmbStash`` without ``delay_stash`` / ``stash_site_fqn``."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        site_fqn: Union[str, InjectionSite],
        execute_all_batches: bool = True,
        apply_jit: bool = False,
        context_type: Type[TrainPipelineContext] = TrainPipelineContext,
        pipeline_postproc: bool = False,
        custom_model_fwd: Optional[Callable[[Optional[In]], Tuple[torch.Tensor, Out]]] = None,
        dmp_collection_sync_interval_batches: Optional[int] = 1,
        enqueue_batch_after_forward: bool = False,
        enable_inplace_copy_batch: bool = False,
        free_features_storage_early: bool = False,
    ) -> None:
        super().__init__(
            model, optimizer, device, site_fqn, execute_all_batches, apply_jit, context_type, pipeline_postproc,
            custom_model_fwd, dmp_collection_sync_interval_batches, enqueue_batch_after_forward,
            enable_inplace_copy_batch, free_features_storage_early,
        )

    def _restore_and_prefetch(self) -> None:
        self._stash.restore()

    def _restore(self) -> None:
        self._restore_and_prefetch()

    def progress(self, dataloader_iter: Iterator[In]) -> Out:
        return super().progress(dataloader_iter)
