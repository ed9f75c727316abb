"""Run an optimizer inside backward for given parameters (TorchRec's deprecated shim over torch's).

After ``apply_optimizer_in_backward(cls, params, kwargs)`` every param carries ``_in_backward_optimizers``,
``_optimizer_classes`` and ``_optimizer_kwargs``. Unsharded, torch runs ``cls([param], **kwargs).step()``
as soon as the param's gradient is accumulated (and clears ``.grad``). Sharders read the class and kwargs
to pick the fused FBGEMM optimizer for the table instead (``optimizer_type_to_emb_opt_type``).
"""

from typing import Any, Dict, Iterable, Type

import torch
from torch.distributed.optim import _apply_optimizer_in_backward


def apply_optimizer_in_backward(
    optimizer_class: Type[torch.optim.Optimizer],
    params: Iterable[torch.nn.Parameter],
    optimizer_kwargs: Dict[str, Any],
) -> None:
    """Attaches ``optimizer_class(**optimizer_kwargs)`` to run in backward for each of ``params``.

    Example::

        ebc = EmbeddingBagCollection(tables=[...])
        apply_optimizer_in_backward(RowWiseAdagrad, ebc.parameters(), {"lr": 0.01})
        # DistributedModelParallel(ebc) now fuses EXACT_ROWWISE_ADAGRAD into the tables

    Raises:
        TypeError: ``optimizer_class`` is not a ``torch.optim.Optimizer`` subclass, ``optimizer_kwargs`` is
            not a dict, or ``params`` holds something other than tensors requiring grad.
    """
    if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, torch.optim.Optimizer)):
        raise TypeError(f"apply_optimizer_in_backward: optimizer_class must be a torch.optim.Optimizer subclass, "
                        f"got {optimizer_class!r}")
    if not isinstance(optimizer_kwargs, dict):
        raise TypeError(f"apply_optimizer_in_backward: optimizer_kwargs must be a dict, got {type(optimizer_kwargs).__name__}")
    if isinstance(params, torch.Tensor):
        raise TypeError("apply_optimizer_in_backward: params must be an iterable of parameters, not a single tensor")
    params = list(params)
    for i, p in enumerate(params):
        if not isinstance(p, torch.Tensor) or not p.requires_grad:
            raise TypeError(f"apply_optimizer_in_backward: params[{i}] must be a tensor with requires_grad=True, "
                            f"got {type(p).__name__}")
    _apply_optimizer_in_backward(optimizer_class=optimizer_class, params=params, optimizer_kwargs=optimizer_kwargs)
