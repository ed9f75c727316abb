"""recsys_lib.optim: keyed, combined, warmup, clipping and fused/in-backward optimizers (TorchRec's API).

* :class:`KeyedOptimizer` — state dict keyed by parameter FQN, loaded in place (ShardedTensor-aware);
  :class:`KeyedOptimizerWrapper` turns any ``torch.optim`` optimizer into one.
* :class:`CombinedOptimizer` — several keyed optimizers (e.g. fused sparse + dense) as one.
* :class:`OptimizerWrapper` bases :class:`WarmupOptimizer` and :class:`GradientClippingOptimizer`.
* :class:`RowWiseAdagrad` and the placeholder classes (:class:`SGD`, :class:`LarsSGD`, ...) that select the
  fused FBGEMM optimizer of sharded tables, set through :func:`apply_optimizer_in_backward`.

Every public name of the submodules is re-exported here, as ``torchrec.optim`` does.
"""

from recsys_lib.optim import clipping, fused, keyed, optimizers, rowwise_adagrad, warmup  # noqa: F401
from recsys_lib.optim.apply_optimizer_in_backward import apply_optimizer_in_backward  # noqa: F401
from recsys_lib.optim.clipping import GradientClipping, GradientClippingOptimizer  # noqa: F401
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
from recsys_lib.optim.semi_sync import SemisyncOptimizer  # noqa: F401
from recsys_lib.optim.warmup import WarmupOptimizer, WarmupPolicy, WarmupStage  # noqa: F401
