"""Test helper: check that shards tile a [rows, cols] table exactly once (or W times for replication)."""

import torch


def coverage(rows, cols, sizes, offsets):
    grid = torch.zeros(rows, cols, dtype=torch.int64)
    for (r, c), (ro, co) in zip(sizes, offsets):
        assert r >= 0 and c > 0 and ro >= 0 and co >= 0
        assert ro + r <= rows and co + c <= cols, (sizes, offsets)
        grid[ro:ro + r, co:co + c] += 1
    return grid
