"""``TrainPipelineSemiSync``: dense updates synchronous, embedding lookups one step stale.

From batch ``start_batch`` on, batch i+1's lookup is started right after batch i's forward, i.e. *before*
batch i's embedding update: batch i+1 is looked up in the tables as they were after step i-1, while the
dense layers it meets are those after step i. The embedding outputs enter the dense part detached; the
dense backward gives their gradients, and ``embedding_backward`` pushes those into the tables. Before
``start_batch`` the lookup is started after the update, so those steps equal the plain loop exactly.

Schedule (three batches in flight)::

    step i:  input dist of i+2 started · forward i · lookup of i+1 (semi-sync) · input dist of i+2 waited
             · dense backward i · embedding backward i · optimizer step · zero_grad · lookup of i+1 (sync)
"""

from typing import Callable, Dict, Iterator, List, Optional, Tuple, Type

import torch
from torch import nn

from recsys_lib.distributed.train_pipeline._base import In, Out
from recsys_lib.distributed.train_pipeline._sparse_dist import TrainPipelineSparseDist
from recsys_lib.distributed.train_pipeline.pipeline_context import EmbeddingTrainPipelineContext
from recsys_lib.distributed.train_pipeline.postproc import _stream_context
from recsys_lib.distributed.train_pipeline.runtime_forwards import BaseForward, EmbeddingPipelinedForward
from recsys_lib.distributed.train_pipeline.utils import _start_embedding_lookup
from torch.distributed._shard.sharded_tensor import ShardedTensor


class TrainPipelineSemiSync(TrainPipelineSparseDist[In, Out]):
    """See the module docstring.

    Args:
        start_batch: first batch index looked up one step stale (earlier batches run synchronously).
        stash_gradients: semi-sync steps apply the previous step's dense gradients (kept one step).
        strict: raise (instead of warn) when a sharded module cannot be pipelined.
    """

    _pipelined_forward_type: Type[BaseForward] = EmbeddingPipelinedForward

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        execute_all_batches: bool = True,
        apply_jit: bool = False,
        start_batch: int = 900,
        stash_gradients: bool = False,
        pipeline_postproc: bool = True,
        custom_model_fwd: Optional[Callable[[Optional[In]], Tuple[torch.Tensor, Out]]] = None,
        strict: bool = False,
        dmp_collection_sync_interval_batches: Optional[int] = 1,
        enable_inplace_copy_batch: bool = False,
        free_features_storage_early: bool = False,
        clear_data_dist_inputs: bool = False,
    ) -> None:
        super().__init__(
            model, optimizer, device, execute_all_batches, apply_jit, EmbeddingTrainPipelineContext,
            pipeline_postproc, custom_model_fwd, dmp_collection_sync_interval_batches,
            enable_inplace_copy_batch=enable_inplace_copy_batch,
            free_features_storage_early=free_features_storage_early, clear_data_dist_inputs=clear_data_dist_inputs,
        )
        self._start_batch = start_batch
        self._stash_gradients = stash_gradients
        self._strict = strict
        self._stashed_grads: Dict[nn.Parameter, Optional[torch.Tensor]] = {}
        self._validate_optimizer()

    def _validate_optimizer(self) -> None:
        if not hasattr(self._optimizer, "step") or not hasattr(self._optimizer, "zero_grad"):
            raise TypeError(f"TrainPipelineSemiSync needs an optimizer with step/zero_grad, got {type(self._optimizer)}")

    def is_semi_sync(self) -> bool:
        return bool(self.contexts) and (self.contexts[0].index or 0) >= self._start_batch

    def extract_model_input_from_batch(self, batch: In) -> In:
        return batch

    def start_sparse_data_dist(self, batch: Optional[In], context: EmbeddingTrainPipelineContext) -> None:
        super().start_sparse_data_dist(batch, context)

    def start_embedding_lookup(self, batch: Optional[In], context: EmbeddingTrainPipelineContext) -> None:
        if batch is None:
            return
        for module in self._pipelined_modules:
            _start_embedding_lookup(module, context, self._data_dist_stream, self._data_dist_stream, _stream_context)

    def fill_pipeline(self, dataloader_iter: Iterator[In]) -> None:
        if not self.batches:
            self._optimizer.zero_grad()  # later zero_grads follow each optimizer step
        self._fill_three_deep(dataloader_iter, self.start_embedding_lookup)

    def _mlp_forward(self, batch: In, context: EmbeddingTrainPipelineContext) -> Tuple[torch.Tensor, Out]:
        self._set_module_context(context)
        return self._model_fwd(self.extract_model_input_from_batch(batch))

    def embedding_backward(self, context: EmbeddingTrainPipelineContext) -> None:
        """Pushes the gradients of the detached embedding outputs into the tables' graph."""
        tensors: List[torch.Tensor] = []
        grads: List[torch.Tensor] = []
        for originals, detached in zip(context.embedding_tensors, context.detached_embedding_tensors):
            for original, leaf in zip(originals, detached):
                if leaf.grad is not None:
                    tensors.append(original)
                    grads.append(leaf.grad)
        if tensors:
            torch.autograd.backward(tensors, grads)

    def _grad_swap(self) -> None:
        """Dense gradients of this step are kept for the next; the previous step's are applied now."""
        for group in self._optimizer.param_groups:
            for param in group["params"]:
                if isinstance(param, ShardedTensor) or not isinstance(param, torch.Tensor):
                    continue  # sharded tables update in backward (fused); only dense gradients are stashed
                current = param.grad
                param.grad = self._stashed_grads.get(param)
                self._stashed_grads[param] = current

    def _mlp_optimizer_step(self, current_batch: int) -> None:
        self._optimizer.step()

    def progress(self, dataloader_iter: Iterator[In]) -> Out:
        self._start_step(dataloader_iter, zero_grad=False)  # zero_grad follows each optimizer step here
        if len(self.batches) >= 3:
            self.start_sparse_data_dist(self.batches[2], self.contexts[2])
        batch, context = self.batches[0], self.contexts[0]
        is_semi_sync = (context.index or 0) >= self._start_batch
        iteration = context.index or 0
        losses, output = self._mlp_forward(batch, context)
        self.dequeue_batch()
        self.enqueue_batch(dataloader_iter)
        if self.batches and is_semi_sync:
            self.start_embedding_lookup(self.batches[0], self.contexts[0])  # before this step's update: stale
        if len(self.batches) >= 2:
            self.wait_sparse_data_dist(self.contexts[1])
        if self._model.training:
            torch.sum(losses, dim=0).backward()
            self.embedding_backward(context)
            self.sync_embeddings(self._model, self._dmp_collection_sync_interval_batches, context)
            if is_semi_sync and self._stash_gradients:
                self._grad_swap()
            self._mlp_optimizer_step(iteration)
            self._optimizer.zero_grad()
        if self.batches and not is_semi_sync:
            self.start_embedding_lookup(self.batches[0], self.contexts[0])  # after the update: synchronous
        return output
