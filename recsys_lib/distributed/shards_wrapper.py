"""``LocalShardsWrapper`` (TorchRec's ``torchrec.distributed.shards_wrapper``): a rank's several local shards of one
tensor seen as one ``torch.Tensor`` (e.g. the ``_local_tensor`` of a DTensor over a column-wise table).

Built on PyTorch's tensor subclass (``torch.distributed.tensor._shards_wrapper``), so DTensors and distributed
checkpoints built by torch and by recsys_lib agree on the type (ours is a subclass). As TorchRec's, it also
handles ``copy_`` (shard by shard), ``zeros_like`` and ``empty_like`` (same shards and offsets), which a
checkpoint stager uses to build and fill host copies.
"""

from typing import Any, Dict, Tuple

import torch
from torch.distributed.tensor._shards_wrapper import LocalShardsWrapper as _TorchLocalShardsWrapper

aten = torch.ops.aten


class LocalShardsWrapper(_TorchLocalShardsWrapper):
    """A list of local shards (with their offsets in the whole tensor) behaving as one tensor.

    Args:
        local_shards: this rank's shards, e.g. two column blocks ``[(R, 3), (R, 2)]``.
        local_offsets: each shard's offset in the whole tensor, e.g. ``[(0, 0), (0, 3)]``.
    """

    @classmethod
    def __torch_dispatch__(cls, func: Any, types: Any, args: Tuple[Any, ...] = (), kwargs: Any = None) -> Any:  # type: ignore[override]
        kwargs = kwargs or {}
        extra = {
            aten.copy_.default: cls.handle_copy_,
            aten.zeros_like.default: cls.handle_zeros_like,
            aten.empty_like.default: cls.handle_empty_like,
        }
        if func in extra:
            return extra[func](args, kwargs)
        return super().__torch_dispatch__(func, types, args, kwargs)

    @staticmethod
    def handle_copy_(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        """``dst.copy_(src)`` between two wrappers with the same shard layout: shard i into shard i."""
        dst, src = args[0], args[1]
        dst_shards, src_shards = dst.local_shards(), src.local_shards()
        if len(dst_shards) != len(src_shards):
            raise ValueError(
                f"LocalShardsWrapper.copy_: destination has {len(dst_shards)} shards, source {len(src_shards)}"
            )
        for d, s in zip(dst_shards, src_shards):
            d.copy_(s, **kwargs)
        return dst

    @staticmethod
    def handle_empty_like(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> "LocalShardsWrapper":
        """A wrapper of uninitialised shards shaped (and placed) like ``args[0]``'s."""
        src = args[0]
        return LocalShardsWrapper([torch.empty_like(s, **kwargs) for s in src.local_shards()], src.local_offsets())

    @staticmethod
    def handle_zeros_like(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> "LocalShardsWrapper":
        """A wrapper of zero shards shaped (and placed) like ``args[0]``'s."""
        src = args[0]
        return LocalShardsWrapper([torch.zeros_like(s, **kwargs) for s in src.local_shards()], src.local_offsets())
