"""Inference-side gathers on one host: every "rank" is a device of this process; no process group.

``EmbeddingsAllToOne`` concatenates per-device pooled outputs, ``EmbeddingsAllToOneReduce`` sums
them (row-wise inference), ``SeqEmbeddingsAllToOne`` moves sequence outputs to one device.
Plain ``torch.cat``/sum on the target device (same results as FBGEMM's ``merge_pooled_embeddings`` /
``sum_reduce_to_one`` / ``all_to_one_device``, and scriptable on CPU).
"""

from typing import List

import torch
from torch import nn

from recsys_lib._public import public_at


def _check_count(name: str, tensors: List[torch.Tensor], world_size: int) -> None:
    if len(tensors) != world_size:
        raise ValueError(f"{name}: got {len(tensors)} tensors, expected world_size={world_size}")


@public_at("recsys_lib.distributed.dist_data")
class EmbeddingsAllToOne(nn.Module):
    """Concatenates per-device tensors along ``cat_dim`` on ``device``."""

    def __init__(self, device: torch.device, world_size: int, cat_dim: int) -> None:
        super().__init__()
        self._device = device
        self._world_size = world_size
        self._cat_dim = cat_dim

    def set_device(self, device_str: str) -> None:
        self._device = torch.device(device_str)

    def forward(self, tensors: List[torch.Tensor]) -> torch.Tensor:
        _check_count("EmbeddingsAllToOne", tensors, self._world_size)
        if self._world_size == 1:
            return tensors[0].to(self._device)
        return torch.cat([t.to(self._device) for t in tensors], dim=self._cat_dim)


@public_at("recsys_lib.distributed.dist_data")
class EmbeddingsAllToOneReduce(nn.Module):
    """Sums per-device tensors on ``device``."""

    def __init__(self, device: torch.device, world_size: int) -> None:
        super().__init__()
        self._device = device
        self._world_size = world_size

    def set_device(self, device_str: str) -> None:
        self._device = torch.device(device_str)

    def forward(self, tensors: List[torch.Tensor]) -> torch.Tensor:
        _check_count("EmbeddingsAllToOneReduce", tensors, self._world_size)
        out = tensors[0].to(self._device)
        for t in tensors[1:]:
            out = out + t.to(self._device)
        return out


@public_at("recsys_lib.distributed.dist_data")
class SeqEmbeddingsAllToOne(nn.Module):
    """Moves per-device sequence outputs to ``device`` (list in, list out)."""

    def __init__(self, device: torch.device, world_size: int) -> None:
        super().__init__()
        self._device = device
        self._world_size = world_size

    def set_device(self, device_str: str) -> None:
        self._device = torch.device(device_str)

    def forward(self, tensors: List[torch.Tensor]) -> List[torch.Tensor]:
        _check_count("SeqEmbeddingsAllToOne", tensors, self._world_size)
        return [t.to(self._device) for t in tensors]


@public_at("recsys_lib.distributed.dist_data")
class MergePooledEmbeddingsModule(nn.Module):
    """Concatenates pooled tensors along ``cat_dim`` on ``device`` (the fx-leaf form of the merge)."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self._device = device

    def set_device(self, device_str: str) -> None:
        self._device = torch.device(device_str)

    def forward(self, tensors: List[torch.Tensor], cat_dim: int) -> torch.Tensor:
        return torch.cat([t.to(self._device) for t in tensors], dim=cat_dim)
