"""Input and output distribution modules (TorchRec's ``torchrec.distributed.dist_data``).

* sparse features in: ``KJTAllToAll`` (+ its two awaitables), ``KJTOneToAll`` (inference)
* pooled embeddings out: ``PooledEmbeddingsAllToAll``, ``VariableBatchPooledEmbeddingsAllToAll``,
  ``PooledEmbeddingsReduceScatter``, ``VariableBatchPooledEmbeddingsReduceScatter``,
  ``PooledEmbeddingsAllGather``, ``PooledEmbeddingsAwaitable``
* sequence embeddings out: ``SequenceEmbeddingsAllToAll``, ``SequenceEmbeddingsAwaitable``
* plain tensors / splits / jagged tensors (object pools): ``TensorAllToAll``, ``TensorValuesAllToAll``,
  ``JaggedTensorAllToAll``, ``SplitsAllToAllAwaitable`` (+ the tensor awaitables)
* single-host inference gathers: ``EmbeddingsAllToOne``, ``EmbeddingsAllToOneReduce``,
  ``SeqEmbeddingsAllToOne``, ``MergePooledEmbeddingsModule``
"""

from recsys_lib.distributed._dist.all_to_one import (  # noqa: F401
    EmbeddingsAllToOne,
    EmbeddingsAllToOneReduce,
    MergePooledEmbeddingsModule,
    SeqEmbeddingsAllToOne,
)
from recsys_lib.distributed._dist.kjt import (  # noqa: F401
    KJEAllToAll,
    KJTAllToAll,
    KJTAllToAllSplitsAwaitable,
    KJTAllToAllTensorsAwaitable,
    KJTOneToAll,
    kjt_recat,
)
from recsys_lib.distributed._dist.pooled import (  # noqa: F401
    PooledEmbeddingsAllGather,
    PooledEmbeddingsAllToAll,
    PooledEmbeddingsAwaitable,
    PooledEmbeddingsReduceScatter,
    VariableBatchPooledEmbeddingsAllToAll,
    VariableBatchPooledEmbeddingsReduceScatter,
)
from recsys_lib.distributed._dist.tensor_a2a import (  # noqa: F401
    JaggedTensorAllToAll,
    SplitsAllToAllAwaitable,
    TensorAllToAll,
    TensorAllToAllSplitsAwaitable,
    TensorAllToAllValuesAwaitable,
    TensorValuesAllToAll,
)
from recsys_lib.distributed._dist.sequence import (  # noqa: F401
    SequenceEmbeddingsAllToAll,
    SequenceEmbeddingsAwaitable,
    sequence_recat,
)
