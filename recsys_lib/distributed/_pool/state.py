"""Row-sharded state as ``ShardedTensor`` s, built without a collective (every rank knows every row range)."""

from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharded_tensor import Shard, ShardedTensor, ShardedTensorMetadata, TensorProperties


def row_sharded_tensor(local: torch.Tensor, row_ranges: Sequence[Tuple[int, int]], rows: int, rank: int,
                       pg: Optional[dist.ProcessGroup], global_ranks: Optional[Sequence[int]] = None) -> Any:
    """``local`` (``row_ranges[rank][1]`` rows along dim 0) as this rank's shard of a ``(rows, ...)`` tensor.

    Args:
        local: this rank's rows.
        row_ranges: ``(offset, rows)`` of every rank, in rank order.
        rows: global rows.
        rank: this rank's index in ``row_ranges`` (its rank in ``pg``).
        pg: the process group of the ``ShardedTensor``.
        global_ranks: world rank of each entry of ``row_ranges`` (placements name world ranks); default the index.
    """
    rest: List[int] = list(local.shape[1:])
    device = local.device
    shards_md = [
        ShardMetadata([offset] + [0] * len(rest), [count] + rest,
                      f"rank:{r if global_ranks is None else global_ranks[r]}/{device}")
        for r, (offset, count) in enumerate(row_ranges)
    ]
    props = TensorProperties(dtype=local.dtype, layout=torch.strided, requires_grad=False,
                             memory_format=torch.contiguous_format)
    gmd = ShardedTensorMetadata(shards_metadata=shards_md, size=torch.Size([rows] + rest), tensor_properties=props)
    shard = Shard(tensor=local, metadata=shards_md[rank])
    return ShardedTensor._init_from_local_shards_and_global_metadata([shard], gmd, process_group=pg)


def load_local_states(states: Iterator[Tuple[str, torch.Tensor]], state_dict: Dict[str, Any], prefix: str,
                      strict: bool, missing_keys: List[str]) -> None:
    """Copy each ``prefix + name`` entry (a ``ShardedTensor``'s local shard, or a tensor of this rank's rows) into
    the lookup's local tensor ``name``."""
    for name, local in states:
        key = prefix + name
        if key not in state_dict:
            if strict:
                missing_keys.append(key)
            continue
        value = state_dict[key]
        if isinstance(value, ShardedTensor):
            value = value.local_shards()[0].tensor
        with torch.no_grad():
            local.copy_(value)
