"""Hypothesis strategies for small jagged batches."""

import torch
from hypothesis import strategies as st


@st.composite
def jagged_2d(draw, max_rows=5, max_batch=4, max_len=4, weighted=None):
    """(lengths (F, B) int32, values (sum,) int64, weights (sum,) float or None)."""
    f = draw(st.integers(1, max_rows))
    b = draw(st.integers(0, max_batch))
    lengths = draw(st.lists(st.integers(0, max_len), min_size=f * b, max_size=f * b))
    total = sum(lengths)
    values = torch.arange(100, 100 + total, dtype=torch.int64)
    w = draw(st.booleans()) if weighted is None else weighted
    weights = torch.arange(total, dtype=torch.float32) / 7 if w else None
    return torch.tensor(lengths, dtype=torch.int32).view(f, b), values, weights
