"""Train pipelines (TorchRec's ``torchrec.distributed.train_pipeline``): overlap input dists with compute.

Start with ``TrainPipelineSparseDist``; the contract every pipeline follows is in ``train_pipelines.py``.
"""

from recsys_lib.distributed.train_pipeline.gradient_accumulation import (  # noqa: F401
    GradientAccumulationConfig,
    GradientAccumulationWrapper,
)
from recsys_lib.distributed.train_pipeline.pipeline_context import TrainPipelineContext  # noqa: F401
from recsys_lib.distributed.train_pipeline.pipeline_stage import (  # noqa: F401
    In,
    PipelineStage,
    SparseDataDistUtil,
    StageOut,
)
from recsys_lib.distributed.train_pipeline.tracing import ArgInfoStepFactory, Tracer  # noqa: F401
from recsys_lib.distributed.train_pipeline._sparse_dist_variants import (  # noqa: F401
    EvalPipelineSparseDist,
    PrefetchTrainPipelineSparseDist,
    TrainPipelineFusedSparseDist,
    TrainPipelineSparseDistCompAutograd,
)
from recsys_lib.distributed.train_pipeline._base import (  # noqa: F401
    Out,
    TorchCompileConfig,
    TrainPipeline,
    TrainPipelineBase,
    TrainPipelinePT2,
)
from recsys_lib.distributed.train_pipeline._staged import StagedTrainPipeline  # noqa: F401
from recsys_lib.distributed.train_pipeline._sparse_dist import TrainPipelineSparseDist  # noqa: F401
from recsys_lib.distributed.train_pipeline.types import ArgInfo, CallArgs  # noqa: F401
from recsys_lib.distributed.train_pipeline.utils import (  # noqa: F401
    DataLoadingThread,
    _start_data_dist,
    _to_device,
    _wait_for_batch,
)
from recsys_lib.distributed.train_pipeline._rewrite import (  # noqa: F401
    _override_input_dist_forwards,
    _rewrite_model,
)
