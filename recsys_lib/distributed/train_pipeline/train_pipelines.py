"""Train pipelines: run a model step by step over a dataloader, overlapping each batch's input dist with compute.

Contract shared by every pipeline (``progress(dataloader_iter)`` = one step):

* the model returns ``(loss, output)``; ``progress`` returns ``output``;
* in training mode: ``zero_grad``, forward, ``sum(loss).backward()``, ``optimizer.step()``; in eval mode the
  forward only;
* ``StopIteration`` once the data ends, at the same step on every rank: each fetch agrees on "every rank has
  a batch" with one 1-element all-reduce, so a rank with fewer batches ends the run instead of hanging;
* calling ``progress`` with a new iterator starts a new epoch.

``TrainPipelineSparseDist`` keeps three batches in flight (TorchRec's schedule)::

    step i:   batch i+2  copied to the device
              batch i+1  input dist started (split sizes), then its tensors sent while batch i computes
              batch i    forward (sharded modules finish the input dist started one step ago) → backward → step

The input dist only moves ids, never weights, so the pipelined run gives the same losses and weights as the
plain loop, bit for bit. Which sharded modules are pipelined is found by an fx trace of the model; a module
that cannot be (see ``_rewrite.py``) is named in a warning and runs its input dist inside the forward.
"""

from recsys_lib.distributed.logging_handlers import (  # noqa: F401 - public here, as in TorchRec
    EventLoggingHandler,
    log_inplace_copy_batch,
    TorchrecComponent,
)
from recsys_lib.distributed.train_pipeline._base import (  # noqa: F401
    In,
    ModelDetachedException,
    Out,
    TorchCompileConfig,
    TrainPipeline,
    TrainPipelineBase,
    TrainPipelinePT2,
)
from recsys_lib.distributed.train_pipeline._sparse_dist import TrainPipelineSparseDist  # noqa: E402
from recsys_lib.distributed.train_pipeline._sparse_dist_variants import (  # noqa: E402
    EvalPipelineFusedSparseDist,
    EvalPipelineSparseDist,
    PrefetchTrainPipelineSparseDist,
    TrainPipelineFusedSparseDist,
    TrainPipelineSparseDistCompAutograd,
    TrainPipelineSparseDistLite,
)
from recsys_lib.distributed.train_pipeline._semi_sync import TrainPipelineSemiSync  # noqa: E402
from recsys_lib.distributed.train_pipeline._staged import StagedTrainPipeline  # noqa: E402

for _cls in (
    ModelDetachedException, TrainPipeline, TorchCompileConfig, TrainPipelineBase, TrainPipelinePT2, TrainPipelineSparseDist, TrainPipelineSparseDistLite, TrainPipelineFusedSparseDist, TrainPipelineSemiSync,
    PrefetchTrainPipelineSparseDist, EvalPipelineSparseDist, EvalPipelineFusedSparseDist, StagedTrainPipeline,
    TrainPipelineSparseDistCompAutograd,
):
    _cls.__module__ = __name__  # public classes report their public path
