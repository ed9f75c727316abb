"""Optimizer state of looked-up rows, read from a fused kernel (the delta tracker's optimizer-state modes).

A fused kernel batches several tables; FBGEMM's ``split_optimizer_states()`` gives each table's states as views
(``[table][state]``: ``momentum1`` first, ``(local_rows,)`` for row-wise optimizers, ``(local_rows * D,)`` for
element-wise ones). The ids a lookup sees are table-local rows, so each feature's ids index its own table's view.
"""

from typing import Dict, List

import torch
from torch import nn

from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def _momentum1(kernel: nn.Module, states: List[List[torch.Tensor]], i: int) -> torch.Tensor:
    table = kernel.config.embedding_tables[i]
    if len(states[i]) == 0:
        raise ValueError(f"ModelDeltaTracker: table {table.name!r} has no optimizer state (its fused optimizer keeps "
                         "none, e.g. SGD); track it with TrackingMode.ID_ONLY or EMBEDDING")
    return states[i][0].view(table.local_rows, -1)


def kernel_row_states(kernel: nn.Module, kjt: KeyedJaggedTensor, norm: bool) -> torch.Tensor:
    """``(N,)`` state of each id of ``kjt`` (a kernel's features, table-local rows) in ``kernel``.

    Args:
        kernel: a fused batched kernel (``emb_module`` is FBGEMM's TBE).
        kjt: the features the kernel looked up.
        norm: the L2 norm of each row's ``momentum1`` (element-wise states); otherwise the row-wise state itself.

    Returns:
        ``(N,)`` float copy (later optimizer steps do not change it).
    """
    tables = kernel.config.embedding_tables
    table_of = {f: i for i, t in enumerate(tables) for f in t.feature_names}
    states = kernel.emb_module.split_optimizer_states()
    values = kjt.values()
    out: List[torch.Tensor] = []
    start = 0
    for key, n in zip(kjt.keys(), kjt.length_per_key()):
        if key not in table_of:
            raise KeyError(f"ModelDeltaTracker: feature {key!r} is not looked up by tables "
                           f"{[t.name for t in tables]} of this kernel")
        i = table_of[key]
        rows = _momentum1(kernel, states, i)
        if not norm and rows.size(1) != 1:
            raise ValueError(f"ModelDeltaTracker: table {tables[i].name!r} keeps an element-wise optimizer state "
                             f"({rows.size(1)} values per row); row-wise modes need a row-wise optimizer (e.g. "
                             "EXACT_ROWWISE_ADAGRAD); use TrackingMode.MOMENTUM_LAST")
        picked = rows.index_select(0, values[start:start + n].to(torch.int64))
        out.append(picked.norm(dim=1) if norm else picked[:, 0].clone())
        start += n
    return torch.cat(out) if out else torch.empty((0,), dtype=torch.float32)


def latest_states(kernels: List[nn.Module], table_to_fqn: Dict[str, str]) -> Dict[str, torch.Tensor]:
    """``{table fqn: row-wise state (local_rows,)}`` (a view) of every table of the fused ``kernels``."""
    out: Dict[str, torch.Tensor] = {}
    for kernel in kernels:
        states = kernel.emb_module.split_optimizer_states()
        for i, table in enumerate(kernel.config.embedding_tables):
            fqn = table_to_fqn[table.name]
            if fqn in out:
                raise ValueError(f"ModelDeltaTracker: table {table.name!r} ({fqn}) has several shards on this rank; "
                                 "row-wise optimizer deltas need one shard per rank")
            out[fqn] = _momentum1(kernel, states, i)[:, 0]
    return out
