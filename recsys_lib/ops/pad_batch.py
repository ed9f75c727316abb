"""Variable batch per feature as a uniform batch: offsets of the same bags with every feature padded by empty
bags to the largest per-feature batch, for kernels without (fast) VBE support.

    lengths [1, 2 | 0, 3, 1] with batches f0: [1, 1], f1: [2, 1]  (B_max = 3)
    -> padded lengths [1, 2, 0 | 0, 3, 1] -> offsets [0, 1, 3, 3, 3, 6, 7]
"""

from typing import Sequence

import torch


def pad_to_uniform_batch(
    lengths: torch.Tensor, batch_per_feature_per_rank: Sequence[Sequence[int]]
) -> torch.Tensor:
    """Offsets of the same bags with every feature padded by empty bags to the largest per-feature batch
    ``B_max = max_f sum_r B[f][r]``: a uniform-batch layout for kernels without VBE support (FBGEMM's CPU dense
    TBE ignores VBE batch sizes). ``lengths`` are key-major; the ids and their order are unchanged."""
    totals = [sum(b) for b in batch_per_feature_per_rank]
    b_max = max(totals) if totals else 0
    num_features = len(totals)
    device = lengths.device
    n = torch.tensor(totals, dtype=torch.int64, device=device)
    first = torch.cumsum(n, 0) - n
    pos = torch.arange(int(n.sum()), dtype=torch.int64, device=device)
    feature = torch.repeat_interleave(torch.arange(num_features, device=device), n)
    dest = feature * b_max + pos - first.index_select(0, feature)
    padded = torch.zeros(num_features * b_max, dtype=torch.int64, device=device)
    padded.index_copy_(0, dest, lengths.view(-1).to(torch.int64))
    return torch.cat([padded.new_zeros(1), torch.cumsum(padded, 0)])
