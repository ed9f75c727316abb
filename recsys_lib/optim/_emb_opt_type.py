"""Which fused FBGEMM optimizer (``EmbOptimType``) an optimizer class selects, and FBGEMM kwarg names.

Public home (TorchRec's path): ``recsys_lib.distributed.utils.optimizer_type_to_emb_opt_type``.

    torch.optim.SGD → EXACT_SGD            optimizers.SGD → EXACT_SGD
    torch.optim.Adagrad → EXACT_ADAGRAD    optimizers.Adagrad → EXACT_ADAGRAD
    torch.optim.Adam → ADAM                optimizers.Adam → ADAM
    optimizers.LarsSGD → LARS_SGD          optimizers.LAMB → LAMB
    optimizers.PartialRowWiseLAMB → PARTIAL_ROWWISE_LAMB
    optimizers.PartialRowWiseAdam → PARTIAL_ROWWISE_ADAM
    rowwise_adagrad.RowWiseAdagrad → EXACT_ROWWISE_ADAGRAD
"""

from typing import Any, Dict, Optional, Type

import torch
from fbgemm_gpu.split_embedding_configs import EmbOptimType

from recsys_lib.optim import optimizers as _placeholders
from recsys_lib.optim.rowwise_adagrad import RowWiseAdagrad


def _table() -> Dict[Type[Any], EmbOptimType]:
    # Exact classes only (no isinstance): a subclass of torch.optim.Adam is not known to be Adam.
    return {
        torch.optim.SGD: EmbOptimType.EXACT_SGD,
        torch.optim.Adagrad: EmbOptimType.EXACT_ADAGRAD,
        torch.optim.Adam: EmbOptimType.ADAM,
        _placeholders.SGD: EmbOptimType.EXACT_SGD,
        _placeholders.LarsSGD: EmbOptimType.LARS_SGD,
        _placeholders.LAMB: EmbOptimType.LAMB,
        _placeholders.PartialRowWiseLAMB: EmbOptimType.PARTIAL_ROWWISE_LAMB,
        _placeholders.Adam: EmbOptimType.ADAM,
        _placeholders.PartialRowWiseAdam: EmbOptimType.PARTIAL_ROWWISE_ADAM,
        _placeholders.Adagrad: EmbOptimType.EXACT_ADAGRAD,
        RowWiseAdagrad: EmbOptimType.EXACT_ROWWISE_ADAGRAD,
    }


def optimizer_type_to_emb_opt_type(optimizer_class: Type[torch.optim.Optimizer]) -> EmbOptimType:
    """Maps an optimizer class to the FBGEMM optimizer fused into a sharded embedding kernel.

    Raises:
        ValueError: for any class not in the table above (named in the message).

    Example::

        optimizer_type_to_emb_opt_type(RowWiseAdagrad)  # EmbOptimType.EXACT_ROWWISE_ADAGRAD
    """
    table = _table()
    if optimizer_class not in table:
        name = getattr(optimizer_class, "__qualname__", repr(optimizer_class))
        module = getattr(optimizer_class, "__module__", "")
        raise ValueError(
            f"Cannot fuse optimizer {module}.{name} into an embedding kernel; supported: "
            f"{sorted(f'{c.__module__}.{c.__qualname__}' for c in table)}"
        )
    return table[optimizer_class]


def convert_optimizer_kwargs_to_fbgemm(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Returns a copy of optimizer kwargs with FBGEMM's names (``lr`` → ``learning_rate``).

    Raises:
        ValueError: if both ``lr`` and ``learning_rate`` are given.
    """
    if not isinstance(kwargs, dict):
        raise TypeError(f"optimizer kwargs must be a dict, got {type(kwargs).__name__}")
    out = dict(kwargs)
    if "lr" in out:
        if "learning_rate" in out:
            raise ValueError("optimizer kwargs give both 'lr' and 'learning_rate'; pass only one")
        out["learning_rate"] = out.pop("lr")
    return out


def emb_opt_type_to_optimizer_class(emb_opt_type: Optional[EmbOptimType]) -> Optional[Type[torch.optim.Optimizer]]:
    """The recsys_lib optimizer class that selects ``emb_opt_type`` (inverse of the table above, recsys_lib classes).

    Returns ``None`` for ``None`` and for FBGEMM optimizers no recsys_lib class selects (e.g. ``SGD``,
    ``ROWWISE_ADAGRAD``, ``SHAMPOO``).

    Example::

        emb_opt_type_to_optimizer_class(EmbOptimType.EXACT_ROWWISE_ADAGRAD)  # RowWiseAdagrad
    """
    if emb_opt_type is None:
        return None
    for cls, value in _table().items():
        if value == emb_opt_type and not cls.__module__.startswith("torch."):
            return cls
    return None
