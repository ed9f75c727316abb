"""``public_at``: a class defined in a private module reports the public module users import it from.

Pickles, reprs, error messages and ``torch.fx``'s generated code name a class by ``__module__``; TorchRec's classes
name their public module (``torchrec.distributed.types``), so ours name the matching face. ``__qualname__`` is
unchanged, and the face must re-export the class under its own name (``tests/test_public_api.py`` checks both).

Not for TorchScript classes (plain classes used as types in scripted code): TorchScript reads a class's source from
the file ``__module__`` names, so those are defined in their public module instead (see ``sparse/jagged_tensor.py``).
"""

from typing import Callable, TypeVar

T = TypeVar("T")


def public_at(module: str) -> Callable[[T], T]:
    """Class decorator: set ``cls.__module__`` to ``module`` (the public path that re-exports it).

    Args:
        module: dotted public module, e.g. ``"recsys_lib.distributed.types"``.

    Example::

        @public_at("recsys_lib.distributed.types")
        class ShardingEnv: ...
    """

    def mark(cls: T) -> T:
        cls.__module__ = module  # type: ignore[attr-defined]
        return cls

    return mark
