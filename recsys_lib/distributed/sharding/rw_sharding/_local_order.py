"""A rank whose lookup kernels order features differently from the sharding (``RowPlacement.local_feature_order``)
permutes the lookup's input KJT into its own order and the lookup's output back into the sharding's order.

Pooled output: columns, one block of ``D_f`` per feature. Sequence output: rows, one block per feature (its ids).
Registered as forward hooks on the lookup.
"""

from typing import Any, List, Optional, Tuple

import torch
from torch import nn

from recsys_lib.distributed._dist.vbe_layout import permute_features, transpose
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def pooled_column_index(order: List[int], dims: List[int]) -> List[int]:
    """Columns of the local output (features in ``order``; sharding-order widths ``dims``) in sharding order.

    Example: ``order=[1, 0]``, ``dims=[2, 3]`` → local columns ``[f1 f1 f1 | f0 f0]`` → index ``[3, 4, 0, 1, 2]``.
    """
    local_start, col = {}, 0
    for j in order:
        local_start[j] = col
        col += dims[j]
    return [c for j in range(len(dims)) for c in range(local_start[j], local_start[j] + dims[j])]


def _permute_input(order: List[int]) -> Any:
    order_t = torch.tensor(order, dtype=torch.int64)

    def hook(module: nn.Module, args: Tuple[Any, ...]) -> Tuple[Any, ...]:
        kjt: KeyedJaggedTensor = args[0]
        out = kjt.permute(order, order_t.to(kjt.device()))
        return (out,) + tuple(args[1:])

    return hook


def _pooled_output(index: torch.Tensor, order: List[int], dims: List[int]) -> Any:
    inverse = [order.index(j) for j in range(len(order))]
    local_dims = [dims[j] for j in order]

    def hook(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        kjt: KeyedJaggedTensor = args[0]
        if kjt.variable_stride_per_key():  # flat rank-major blocks: reorder the feature blocks of every rank
            spkpr = kjt.stride_per_key_per_rank()
            per_rank = transpose(spkpr, len(spkpr[0]) if spkpr else 0)
            return permute_features(output, per_rank, local_dims, inverse)
        return output.index_select(1, index.to(output.device))

    return hook


def _sequence_output(order: List[int]) -> Any:
    inverse = [order.index(j) for j in range(len(order))]

    def hook(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        blocks = output.split(args[0].length_per_key(), dim=0)
        return torch.cat([blocks[i] for i in inverse], dim=0) if blocks else output

    return hook


def prepare_lookup(lookup: nn.Module, order: Optional[List[int]], dims: List[int], sequence: bool) -> nn.Module:
    """Adds the order hooks to ``lookup`` (when ``order`` is not None)."""
    if order is not None:
        lookup.register_forward_pre_hook(_permute_input(order))
        if sequence:
            lookup.register_forward_hook(_sequence_output(order))
        else:
            index = torch.tensor(pooled_column_index(order, dims), dtype=torch.int64)
            lookup.register_forward_hook(_pooled_output(index, order, dims))
    return lookup
