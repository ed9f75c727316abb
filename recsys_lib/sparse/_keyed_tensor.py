"""``KeyedTensor``: pooled embeddings of several keys side by side, and the regroup helpers.

::

    keys = ["a", "b"], length_per_key = [1, 2], key_dim = 1
    values (B=2, 3):   a | b b
                       a | b b
    offset_per_key = [0, 1, 3]
"""

from typing import Dict, List, Optional

import torch

from recsys_lib.ops.regroup import plan_regroup, regroup_slices
from recsys_lib.sparse._errors import UnknownKeyError
from recsys_lib.sparse._meta import JaggedTensorMeta
from recsys_lib.sparse._utils import cumsum_list
from recsys_lib.streamable import Pipelineable


class KeyedTensor(Pipelineable, metaclass=JaggedTensorMeta):
    """Dense per-key blocks concatenated along ``key_dim`` (an EmbeddingBagCollection's output).

    Args:
        keys (List[str]): key names (unique).
        length_per_key (List[int]): width ``D`` of each key's block.
        values (Tensor): (B, sum(D)) for ``key_dim=1``.
        key_dim (int): the dimension holding the keys.
        offset_per_key, index_per_key: precomputed caches.

    Example::

        kt = KeyedTensor.from_tensor_list(["a", "b"], [torch.ones(2, 1), 2 * torch.ones(2, 2)])
        kt["b"]  # (2, 2) tensor of twos
    """

    def __init__(
        self,
        keys: List[str],
        length_per_key: List[int],
        values: torch.Tensor,
        key_dim: int = 1,
        offset_per_key: Optional[List[int]] = None,
        index_per_key: Optional[Dict[str, int]] = None,
    ) -> None:
        if not torch.jit.is_scripting():
            _check_kt(keys, length_per_key, values, key_dim)
        self._keys: List[str] = keys
        self._length_per_key: List[int] = length_per_key
        self._values: torch.Tensor = values
        self._key_dim: int = key_dim
        self._offset_per_key: Optional[List[int]] = offset_per_key
        self._index_per_key: Optional[Dict[str, int]] = index_per_key

    @staticmethod
    def from_tensor_list(
        keys: List[str], tensors: List[torch.Tensor], key_dim: int = 1, cat_dim: int = 1
    ) -> "KeyedTensor":
        if len(keys) != len(tensors):
            raise ValueError(f"from_tensor_list: {len(keys)} keys but {len(tensors)} tensors")
        length_per_key = [t.shape[key_dim] for t in tensors]
        return KeyedTensor(keys=keys, length_per_key=length_per_key, values=torch.cat(tensors, cat_dim), key_dim=key_dim)

    def keys(self) -> List[str]:
        return self._keys

    def values(self) -> torch.Tensor:
        return self._values

    def key_dim(self) -> int:
        return self._key_dim

    def device(self) -> torch.device:
        return self._values.device

    def length_per_key(self) -> List[int]:
        return self._length_per_key

    def offset_per_key(self) -> List[int]:
        opk = self._offset_per_key
        if opk is None:
            opk = cumsum_list(self._length_per_key)
            self._offset_per_key = opk
        return opk

    def _key_indices(self) -> Dict[str, int]:
        ipk = self._index_per_key
        if ipk is None:
            new_ipk: Dict[str, int] = {}
            for i, k in enumerate(self._keys):
                new_ipk[k] = i
            self._index_per_key = new_ipk
            return new_ipk
        return ipk

    def __getitem__(self, key: str) -> torch.Tensor:
        ipk = self._key_indices()
        if key not in ipk:
            raise UnknownKeyError(f"KeyedTensor has no key '{key}'; keys are {self._keys}")
        i = ipk[key]
        start = self.offset_per_key()[i]
        return self._values.narrow(self._key_dim, start, self._length_per_key[i])

    def size_in_bytes(self) -> int:
        """Bytes held by ``values()``."""
        return self._values.numel() * self._values.element_size()

    def to_dict(self) -> Dict[str, torch.Tensor]:
        parts = torch.split(self._values, self._length_per_key, dim=self._key_dim)
        out: Dict[str, torch.Tensor] = {}
        for i, k in enumerate(self._keys):
            out[k] = parts[i]
        return out

    @staticmethod
    def regroup(keyed_tensors: List["KeyedTensor"], groups: List[List[str]]) -> List[torch.Tensor]:
        """``[cat(blocks of group g along dim 1) for g in groups]``; keys may repeat across groups."""
        return _regroup(keyed_tensors, groups)

    @staticmethod
    def regroup_as_dict(
        keyed_tensors: List["KeyedTensor"], groups: List[List[str]], keys: List[str]
    ) -> Dict[str, torch.Tensor]:
        if len(keys) != len(groups):
            raise ValueError(f"regroup_as_dict: {len(keys)} keys for {len(groups)} groups")
        tensors = _regroup(keyed_tensors, groups)
        out: Dict[str, torch.Tensor] = {}
        for i, k in enumerate(keys):
            out[k] = tensors[i]
        return out

    @torch.jit.unused
    def record_stream(self, stream: torch.Stream) -> None:
        self._values.record_stream(stream)

    def to(self, device: torch.device, non_blocking: bool = False) -> "KeyedTensor":
        return KeyedTensor(
            keys=self._keys,
            length_per_key=self._length_per_key,
            values=self._values.to(device, non_blocking=non_blocking),
            key_dim=self._key_dim,
            offset_per_key=self._offset_per_key,
            index_per_key=self._index_per_key,
        )

    @torch.jit.unused
    def __str__(self) -> str:
        if len(self._keys) == 0:
            return "KeyedTensor()\n"
        body = ",\n".join(f'    "{k}": {v.tolist()}' for k, v in self.to_dict().items())
        return "KeyedTensor({\n" + body + "\n})\n"


def _regroup(keyed_tensors: List[KeyedTensor], groups: List[List[str]]) -> List[torch.Tensor]:
    if len(keyed_tensors) == 0:
        raise ValueError("regroup: expected at least one KeyedTensor")
    for kt in keyed_tensors:
        if kt.key_dim() != 1:
            raise ValueError(f"regroup: only key_dim=1 is supported, got key_dim={kt.key_dim()}")
    plan = plan_regroup([kt.keys() for kt in keyed_tensors], [kt.length_per_key() for kt in keyed_tensors], groups)
    return regroup_slices([kt.values() for kt in keyed_tensors], plan)


def regroup_kts(keyed_tensors: List[KeyedTensor], groups: List[List[str]]) -> List[torch.Tensor]:
    """Same as :meth:`KeyedTensor.regroup` (TorchRec's functional form)."""
    return _regroup(keyed_tensors, groups)


def permute_multi_embedding(keyed_tensors: List[KeyedTensor], groups: List[List[str]]) -> List[torch.Tensor]:
    """Same result as :meth:`KeyedTensor.regroup` (TorchRec routes this one to ``fbgemm.permute_multi_embedding``)."""
    return _regroup(keyed_tensors, groups)


def _check_kt(keys: List[str], length_per_key: List[int], values: torch.Tensor, key_dim: int) -> None:
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"KeyedTensor: values must be a torch.Tensor, got {type(values).__name__}")
    if len(keys) != len(length_per_key):
        raise ValueError(f"KeyedTensor: {len(keys)} keys but {len(length_per_key)} entries in length_per_key")
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"KeyedTensor: duplicate keys {dup}")
    if key_dim < 0 or key_dim >= values.dim():
        raise ValueError(f"KeyedTensor: key_dim={key_dim} out of range for values of shape {tuple(values.shape)}")
    if sum(length_per_key) != values.size(key_dim):
        raise ValueError(
            f"KeyedTensor: length_per_key sums to {sum(length_per_key)} but values has {values.size(key_dim)} "
            f"entries along key_dim={key_dim} (shape {tuple(values.shape)})"
        )
