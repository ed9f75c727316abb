"""The modules an inference sharding creates: input split, pooled reduction of row shards, sequence gather."""

from typing import Dict, List, Tuple

import torch
from torch import nn

from recsys_lib.distributed._infer.dist import gather_sequences, mean_divisor, split_for_ranks, sum_row_shards
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor

torch.fx.wrap("split_for_ranks")
torch.fx.wrap("gather_sequences")
torch.fx.wrap("mean_divisor")
torch.fx.wrap("sum_row_shards")


class InferInputSplit(nn.Module):
    """``KJT -> ([KJT per active rank], [[kept positions per feature] per rank])`` (see ``dist.split_for_ranks``)."""

    def __init__(self, rank_features: List[List[str]], rank_row_lo: List[List[int]], rank_row_hi: List[List[int]],
                 filter_rows: bool, rows_per_feature: Dict[str, int], table_of_feature: Dict[str, str]) -> None:
        super().__init__()
        self._rank_features = rank_features
        self._rank_row_lo = rank_row_lo
        self._rank_row_hi = rank_row_hi
        self._filter_rows = filter_rows
        self._rows_per_feature = rows_per_feature
        self._table_of_feature = table_of_feature

    def forward(self, features: KeyedJaggedTensor) -> Tuple[List[KeyedJaggedTensor], List[List[torch.Tensor]]]:
        return split_for_ranks(features, self._rank_features, self._rank_row_lo, self._rank_row_hi,
                               self._filter_rows, self._rows_per_feature, self._table_of_feature)


class InferRowSplitPooledSum(nn.Module):
    """Sums per-rank partial pools ``(B, d_r)`` into ``(B, width)``: rank ``r``'s column ``j`` adds into column
    ``columns[r][j]`` (rank order)."""

    def __init__(self, columns: List[List[int]], width: int) -> None:
        super().__init__()
        self._width = width
        self._num = len(columns)
        bounds = [0]
        for cols in columns:
            bounds.append(bounds[-1] + len(cols))
        self._bounds: List[int] = bounds
        self.register_buffer("_columns", torch.tensor([c for cols in columns for c in cols], dtype=torch.long),
                             persistent=False)

    def forward(self, tensors: List[torch.Tensor]) -> torch.Tensor:
        if len(tensors) != self._num:
            raise ValueError("InferRowSplitPooledSum: got " + str(len(tensors)) + " tensors, expected "
                             + str(self._num))
        return sum_row_shards(tensors, self._columns, self._bounds, self._width)


class InferSequenceGather(nn.Module):
    """Per-rank sequence outputs → ``{embedding name: (N_f, D)}`` (see ``dist.gather_sequences``)."""

    def __init__(self, names: List[str], feature_of_name: List[str], sources: List[List[int]],
                 position_slot: List[List[int]], row_split: bool) -> None:
        super().__init__()
        self._names = names
        self._feature_of_name = feature_of_name
        self._sources = sources
        self._position_slot = position_slot
        self._row_split = row_split

    def forward(self, features: KeyedJaggedTensor, outputs: List[Dict[str, JaggedTensor]],
                positions: List[List[torch.Tensor]]) -> Dict[str, torch.Tensor]:
        return gather_sequences(features, outputs, self._names, self._feature_of_name, self._sources, positions,
                                self._position_slot, self._row_split)


class InferPooledShards(nn.Module):
    """One sharding type's part of a sharded quantized EBC: split → local lookups → combine.
    ``forward(KJT) -> (B, sum of its features' D)`` in ``output_dtype``, columns as ``output_columns`` says.

    Args:
        mean_features / mean_dims / mean_flags: (row split only) every feature of the output, its dim, and
            whether it pools MEAN; when any does, the summed partial pools are divided by the bag lengths.
    """

    def __init__(self, input_dist: InferInputSplit, lookups: nn.ModuleList, output_dist: nn.Module,
                 output_dtype: torch.dtype, mean_features: List[str], mean_dims: List[int],
                 mean_flags: List[bool]) -> None:
        super().__init__()
        self._input_dist = input_dist
        self._lookups = lookups
        self._output_dist = output_dist
        self._output_dtype = output_dtype
        self._mean_features = mean_features
        self._mean_dims = mean_dims
        self._mean_flags = mean_flags
        self._has_mean: bool = any(mean_flags)

    def forward(self, features: KeyedJaggedTensor) -> torch.Tensor:
        split = self._input_dist(features)
        kjts = split[0]
        outs: List[torch.Tensor] = []
        for k, lookup in enumerate(self._lookups):
            outs.append(lookup(kjts[k]).values())
        pooled = self._output_dist(outs)
        if self._has_mean:
            pooled = pooled / mean_divisor(features, self._mean_features, self._mean_dims, self._mean_flags)
        return pooled.to(self._output_dtype)


class InferSequenceShards(nn.Module):
    """One sharding type's part of a sharded quantized EC: ``forward(KJT) -> {embedding name: (N_f, D)}``."""

    def __init__(self, input_dist: InferInputSplit, lookups: nn.ModuleList, output_dist: InferSequenceGather) -> None:
        super().__init__()
        self._input_dist = input_dist
        self._lookups = lookups
        self._output_dist = output_dist

    def forward(self, features: KeyedJaggedTensor) -> Dict[str, torch.Tensor]:
        split = self._input_dist(features)
        kjts = split[0]
        outs: List[Dict[str, JaggedTensor]] = []
        for k, lookup in enumerate(self._lookups):
            outs.append(lookup(kjts[k]))
        return self._output_dist(features, outs, split[1])
