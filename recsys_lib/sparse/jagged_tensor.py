"""Public import path of the sparse types (``torchrec.sparse.jagged_tensor``).

The code lives in private siblings, one concept each: ``_jagged`` (JaggedTensor), ``_keyed_jagged`` (KJT) with its
helpers ``_kjt_ops`` / ``_kjt_dist`` / ``_kjt_checks``, ``_keyed_tensor`` (KeyedTensor and regrouping),
``_compare``, ``_pytree``, ``_modules``; kernels in ``recsys_lib/ops``.

Input checks and host syncs:

======================================  =============================================================  ===========
where                                   checks                                                         host sync
======================================  =============================================================  ===========
``JT(...)``, ``KJT(...)``, ``KT(...)``  types, dtypes, ranks, sizes (weights vs values, offsets vs     no
                                        lengths, lengths vs keys x stride / VBE strides, KT widths)
``split``/``permute``/``dist_splits``   segment sums, index ranges (host lists)                        no (*)
``__getitem__`` (KJT, KT)               unknown key -> ``UnknownKeyError`` (a KeyError and             no (*)
                                        ValueError)
``sync()``, ``from_*_sync``             per-key lengths sum to ``values.numel()``                      yes, the
                                                                                                       one sync
                                                                                                       it does
``validate_keyed_jagged_tensor``        all of the above + negative lengths, offsets start at 0 /      yes
                                        non-decreasing / end at numel, duplicate keys, id ranges
======================================  =============================================================  ===========

(*) these ops read ``length_per_key`` (one sync) when it is not cached, as TorchRec's do; the checks add none.
Under TorchScript the Python-side checks are skipped.
"""

import torch

from recsys_lib.sparse._compare import jt_is_equal, kjt_is_equal
from recsys_lib.sparse._jagged import JaggedTensor
from recsys_lib.sparse._keyed_jagged import KeyedJaggedTensor
from recsys_lib.sparse._keyed_tensor import KeyedTensor, permute_multi_embedding, regroup_kts
from recsys_lib.sparse._meta import JaggedTensorMeta
from recsys_lib.sparse._modules import ComputeJTDictToKJT, ComputeKJTToJTDict
from recsys_lib.sparse._pytree import flatten_kjt_list, register_pytree_nodes, unflatten_kjt_list

register_pytree_nodes()

# Calls to these helpers stay single nodes in fx graphs instead of being traced through.
torch.fx.wrap("regroup_kts")
torch.fx.wrap("permute_multi_embedding")
torch.fx.wrap("flatten_kjt_list")
torch.fx.wrap("unflatten_kjt_list")

__all__ = [
    "JaggedTensor",
    "JaggedTensorMeta",
    "KeyedJaggedTensor",
    "KeyedTensor",
    "ComputeJTDictToKJT",
    "ComputeKJTToJTDict",
    "flatten_kjt_list",
    "jt_is_equal",
    "kjt_is_equal",
    "permute_multi_embedding",
    "regroup_kts",
    "unflatten_kjt_list",
]
