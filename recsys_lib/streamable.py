"""Contracts for batches that train pipelines move between devices and CUDA streams."""

import abc

import torch


class Multistreamable(abc.ABC):
    """An object whose tensors can be marked as used on a CUDA stream (``Tensor.record_stream``)."""

    @abc.abstractmethod
    def record_stream(self, stream: torch.Stream) -> None: ...


class Pipelineable(Multistreamable):
    """A batch a train pipeline can copy to a device ahead of use."""

    @abc.abstractmethod
    def to(self, device: torch.device, non_blocking: bool) -> "Pipelineable": ...
