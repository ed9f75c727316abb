"""What ``DMPCollection.sync()`` averages over a replica group, and the averaging all-reduce.

Every embedding kernel inside the context's sharded modules contributes its table weights (views into the
kernel) and its fused optimizer's floating-point states (row-wise / element-wise moments), grouped by dtype.
The average is one flat all-reduce (sum, then divide by the replica count) per dtype: gloo has no
``ReduceOp.AVG`` and no coalesced average, so the same path serves gloo and NCCL.
"""

from collections import defaultdict
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
from torch import nn

from recsys_lib.distributed._sharded.common import kernels_of


def kernels_to_sync(sharded: List[nn.Module]) -> List[Tuple[nn.Module, nn.Module]]:
    """``(embedding kernel, sharded module holding it)`` for every kernel of ``sharded`` (modules with lookups)."""
    out: List[Tuple[nn.Module, nn.Module]] = []
    for module in sharded:
        lookups = getattr(module, "_lookups", None)
        if lookups is None:
            continue
        out += [(kernel, module) for kernel in kernels_of(lookups)]
    return out


def sync_tensors(
    kernels: List[Tuple[nn.Module, nn.Module]]
) -> Tuple[Dict[torch.dtype, List[torch.Tensor]], Dict[torch.dtype, List[torch.Tensor]]]:
    """(weights by dtype, optimizer states by dtype): views into the kernels, averaged in place by :func:`average`."""
    weights: Dict[torch.dtype, List[torch.Tensor]] = defaultdict(list)
    states: Dict[torch.dtype, List[torch.Tensor]] = defaultdict(list)
    for kernel, _ in kernels:
        for w in kernel.split_embedding_weights():
            weights[w.dtype].append(w)
        split_states = getattr(kernel.emb_module, "split_optimizer_states", None)
        if getattr(kernel, "_optim", None) is None or split_states is None:
            continue
        for table_states in split_states():
            for s in table_states:
                if s.is_floating_point() and s.numel() > 0:
                    states[s.dtype].append(s)
    return dict(weights), dict(states)


def average(
    tensors: List[torch.Tensor],
    pg: dist.ProcessGroup,
    custom_all_reduce: Optional[Callable[[List[torch.Tensor]], None]] = None,
) -> None:
    """Replaces each tensor by its mean over ``pg`` (one flat all-reduce); ``custom_all_reduce`` takes over when
    given (it must reduce the list in place over the right group)."""
    if not tensors:
        return
    if custom_all_reduce is not None:
        custom_all_reduce(tensors)
        return
    with torch.no_grad():
        flat = torch.cat([t.detach().reshape(-1) for t in tensors])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=pg)
        flat.div_(dist.get_world_size(pg))
        start = 0
        for t in tensors:
            n = t.numel()
            t.copy_(flat[start:start + n].view_as(t))
            start += n
