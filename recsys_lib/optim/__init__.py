"""recsys_lib.optim: keyed, combined, warmup, clipping and fused/in-backward optimizers (TorchRec's API).

Every public name of the submodules is re-exported here, as ``torchrec.optim`` does.
"""

from recsys_lib.optim import fused, keyed, optimizers, rowwise_adagrad  # noqa: F401
from recsys_lib.optim.fused import EmptyFusedOptimizer, FusedOptimizer, FusedOptimizerModule  # noqa: F401
from recsys_lib.optim.keyed import (  # noqa: F401
    CombinedOptimizer,
    KeyedOptimizer,
    KeyedOptimizerWrapper,
    OptimizerWrapper,
)
from recsys_lib.optim.optimizers import (  # noqa: F401
    Adagrad,
    Adam,
    in_backward_optimizer_filter,
    LAMB,
    LarsSGD,
    PartialRowWiseAdam,
    PartialRowWiseLAMB,
    SGD,
)
from recsys_lib.optim.rowwise_adagrad import RowWiseAdagrad  # noqa: F401
from recsys_lib.optim.apply_optimizer_in_backward import apply_optimizer_in_backward  # noqa: F401
