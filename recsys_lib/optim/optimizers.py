"""Placeholder optimizers whose *type* selects a fused FBGEMM optimizer, and the in-backward filter.

``SGD``, ``LarsSGD``, ``LAMB``, ``PartialRowWiseLAMB``, ``Adam``, ``PartialRowWiseAdam`` and ``Adagrad``
carry no update rule of their own. They are handed to ``apply_optimizer_in_backward`` (or a sharder's
fused params) so that a sharded embedding kernel knows which FBGEMM optimizer to fuse into its backward
(see ``recsys_lib.optim._emb_opt_type.optimizer_type_to_emb_opt_type``). Calling ``step()`` on one of
them means the parameter was never sharded/fused, so it raises ``NotImplementedError``.

Example::

    table = torch.nn.Parameter(torch.randn(10, 4))
    apply_optimizer_in_backward(LarsSGD, [table], {"lr": 0.1})
    # a sharder now fuses EmbOptimType.LARS_SGD into this table's kernel
"""

from typing import Any, Iterable, Iterator, Optional, Tuple

import torch
from torch import optim


class _FusedOnlyOptimizer(optim.Optimizer):
    """Shared body of the placeholders: keeps params and kwargs, refuses to step."""

    def __init__(self, params: Iterable[torch.Tensor], **kwargs: Any) -> None:
        super().__init__(params, dict(kwargs))
        self.kwargs = dict(kwargs)

    def step(self, closure: Optional[Any] = None) -> None:  # type: ignore[override]
        raise NotImplementedError(
            f"{type(self).__name__} is a placeholder that selects a fused FBGEMM optimizer for sharded "
            "embedding tables; it has no unfused update. Shard the module (or use a torch.optim optimizer)."
        )


class SGD(_FusedOnlyOptimizer):
    """Placeholder for FBGEMM's ``EXACT_SGD``."""


class LarsSGD(_FusedOnlyOptimizer):
    """Placeholder for FBGEMM's ``LARS_SGD``."""


class LAMB(_FusedOnlyOptimizer):
    """Placeholder for FBGEMM's ``LAMB``."""


class PartialRowWiseLAMB(_FusedOnlyOptimizer):
    """Placeholder for FBGEMM's ``PARTIAL_ROWWISE_LAMB``."""


class Adam(_FusedOnlyOptimizer):
    """Placeholder for FBGEMM's ``ADAM``."""


class PartialRowWiseAdam(_FusedOnlyOptimizer):
    """Placeholder for FBGEMM's ``PARTIAL_ROWWISE_ADAM``."""


class Adagrad(_FusedOnlyOptimizer):
    """Placeholder for FBGEMM's ``EXACT_ADAGRAD``."""


def in_backward_optimizer_filter(
    named_parameters: Iterator[Tuple[str, torch.nn.Parameter]], include: bool = False
) -> Iterator[Tuple[str, torch.nn.Parameter]]:
    """Filters ``(name, param)`` pairs by whether an optimizer runs in their backward.

    Args:
        named_parameters: e.g. ``model.named_parameters()``.
        include: ``False`` (default) keeps parameters *without* ``_in_backward_optimizers`` (the dense
            ones a regular optimizer must update); ``True`` keeps only those with it.

    Returns:
        A lazy iterator over the kept pairs.

    Example::

        dense = KeyedOptimizerWrapper(
            dict(in_backward_optimizer_filter(model.named_parameters())),
            lambda params: torch.optim.Adam(params, lr=0.1),
        )
    """
    for item in named_parameters:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise TypeError(f"in_backward_optimizer_filter expects (name, parameter) pairs, got {item!r:.80}")
        if hasattr(item[1], "_in_backward_optimizers") == include:
            yield item
