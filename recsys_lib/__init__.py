"""recsys_lib: a PyTorch domain library for large-scale recommender systems.

``import recsys_lib`` works like ``import torchrec``: the same public names and import paths.
"""

__version__ = "0.1.0"
github_version = "unknown"

from recsys_lib.streamable import Multistreamable, Pipelineable  # noqa: F401
from recsys_lib.types import DataType  # noqa: F401

# -- sparse types (issue: foundations) --
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, KeyedTensor  # noqa: F401
# -- modules (issue: modules/models/optimizers) --
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig, PoolingType  # noqa: F401
from recsys_lib.modules.embedding_modules import (  # noqa: F401
    EmbeddingBagCollection,
    EmbeddingBagCollectionInterface,
    EmbeddingCollection,
)
# -- subpackages imported for their side effects, as torchrec does (distributed, quant, fx) --
import recsys_lib.distributed  # noqa: F401,E402
import recsys_lib.fx  # noqa: F401,E402
import recsys_lib.quant  # noqa: F401,E402
