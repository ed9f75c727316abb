"""Lazy exports of a strategy folder: its ``__init__`` names the public classes, which load on first access.

Keeps ``import recsys_lib.distributed.sharding.strategy`` (which imports every folder's ``layout.py``) from
importing the folders' pooled / sequence modules::

    __getattr__, __dir__ = lazy_exports(__name__, {"RwPooledEmbeddingSharding": "pooled", ...})
"""

import importlib
import importlib.util
import sys
from typing import Any, Callable, Dict, List, Tuple


def lazy_exports(package: str, exports: Dict[str, str]) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """Module ``__getattr__`` and ``__dir__`` for ``package``.

    Args:
        package: the package's ``__name__``.
        exports: public name → ``"submodule"`` (same attribute name) or ``"submodule:attribute"``; a submodule
            path starting with ``recsys_lib.`` is absolute.
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            module, _, attr = exports[name].partition(":")
            path = module if module.startswith("recsys_lib.") else f"{package}.{module}"
            value = getattr(importlib.import_module(path), attr or name)
            setattr(sys.modules[package], name, value)  # later lookups skip this hook
            return value
        if importlib.util.find_spec(f"{package}.{name}") is not None:  # ``pkg.pooled`` without an import
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> List[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
