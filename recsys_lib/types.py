"""Small shared types: table storage dtypes and the copy/cache mix-ins used by DistributedModelParallel."""

import abc
from enum import Enum, unique

import torch
from torch import nn


@unique
class DataType(Enum):
    """Storage dtype of an embedding table (values are the names, as in TorchRec)."""

    FP32 = "FP32"
    FP16 = "FP16"
    BF16 = "BF16"
    INT64 = "INT64"
    INT32 = "INT32"
    INT8 = "INT8"
    UINT8 = "UINT8"
    INT4 = "INT4"
    INT2 = "INT2"
    NFP8 = "NFP8"

    def __str__(self) -> str:
        return self.value


class CopyMixIn:
    """A module that knows how to copy itself to another device (used by ``DistributedModelParallel.copy``)."""

    @abc.abstractmethod
    def copy(self, device: torch.device) -> nn.Module: ...


class ModuleCopyMixin(CopyMixIn):
    """Copies the module with ``nn.Module.to`` semantics (parameters and buffers move)."""

    def copy(self, device: torch.device) -> nn.Module:
        # pyre-ignore[16]: mixed into an nn.Module
        return self.to(device)


class ModuleNoCopyMixin(CopyMixIn):
    """Modules whose storage must stay where it is (e.g. host-resident tables): ``copy`` is the identity."""

    def copy(self, device: torch.device) -> nn.Module:
        # pyre-ignore[7]: mixed into an nn.Module
        return self


class CacheMixin:
    """A module holding derived state that can be dropped and rebuilt."""

    @abc.abstractmethod
    def clear_cache(self) -> None: ...
