"""``SerializerInterface``: what a ``torch.export`` IR serializer of embedding modules provides."""

import abc
from typing import Any, Dict, List, Optional

import torch
from torch import nn


class _ClassProperty:
    """A read-only property looked up on the class (``Cls.name`` calls ``fget(Cls)``)."""

    def __init__(self, fget: Any) -> None:
        self.fget = fget
        self.__doc__ = getattr(fget, "__doc__", None)

    def __get__(self, instance: Any, owner: Any) -> Any:
        return self.fget(owner)


class SerializerInterface(abc.ABC):
    """Interface of the serializers used by ``recsys_lib.ir.utils`` (all methods are classmethods).

    ``module_to_serializer_cls`` maps a module type's qualified name (``utils.qualname``) to the serializer that
    handles it; the interface itself has no mapping (reading it raises ``NotImplementedError``).
    """

    @_ClassProperty
    def module_to_serializer_cls(cls) -> Dict[str, Any]:  # noqa: N805
        raise NotImplementedError(f"{cls.__name__} does not define module_to_serializer_cls")

    @classmethod
    @abc.abstractmethod
    def encapsulate_module(cls, module: nn.Module) -> List[str]:
        """Store ``module``'s configuration in it and swap its forward for a shape-only one; returns the names of
        its children that need encapsulating too."""
        raise NotImplementedError

    @classmethod
    @abc.abstractmethod
    def decapsulate_module(cls, module: nn.Module, device: Optional[torch.device] = None) -> nn.Module:
        """Rebuild the eager module from an (unflattened) module carrying the stored configuration."""
        raise NotImplementedError
