"""``maybe_td_to_kjt``: accept a ``tensordict.TensorDict`` of jagged nested tensors where a KJT is expected.

``tensordict`` is optional: it is never imported here; a ``TensorDict`` can only reach this function if the caller
has imported the package, so the check looks it up in ``sys.modules``.

::

    td = TensorDict({"f1": nested_jagged([[1, 2], [3]]), "f2": nested_jagged([[4], []])})
    maybe_td_to_kjt(td)   # KJT keys [f1, f2], lengths [2, 1, 1, 0], values [1, 2, 3, 4]
"""

import sys
from typing import List, Optional

import torch

from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def maybe_td_to_kjt(features: KeyedJaggedTensor, keys: Optional[List[str]] = None) -> KeyedJaggedTensor:
    """``features`` unchanged, or, for a ``TensorDict`` of jagged (``torch.jagged`` layout) nested tensors, the KJT
    with its entries (in ``keys`` order, default the dict's) as keys.

    Args:
        features: a KJT, or a ``TensorDict`` whose values are jagged nested tensors ``(B, j)``.
        keys: which entries, in which order.
    """
    if torch.jit.is_scripting():
        return features
    td_module = sys.modules.get("tensordict")
    if td_module is None or not isinstance(features, td_module.TensorDict):
        return features
    if keys is None:
        keys = list(features.keys())
    entries = [features[k] for k in keys]
    values = torch.cat([e._values for e in entries], dim=0)
    lengths = torch.cat([e._lengths if e._lengths is not None else torch.diff(e._offsets) for e in entries], dim=0)
    return KeyedJaggedTensor(keys=keys, values=values, lengths=lengths)
