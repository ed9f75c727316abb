"""Plain-PyTorch sequence lookup over a TBE's flat weight buffer (the reference / CPU path).

Equal dims ``D``: the buffer is one ``[sum_t R_t, D]`` matrix; feature ``f``'s ids shift by the first row of
its table and a single ``F.embedding`` returns ``T[N, D]``. Mixed dims: one ``F.embedding`` per feature on
its table's ``R_t x D_t`` view, flattened and concatenated (``T[sum_f L_f * D_f]``). Gradients flow to the
flat buffer through the views.
"""

from typing import List

import torch
import torch.nn.functional as F

from recsys_lib.distributed._tbe.common import TableLayout


def sequence_lookup_reference(
    flat_weights: torch.Tensor, layout: TableLayout, values: torch.Tensor, length_per_key: List[int]
) -> torch.Tensor:
    """Rows of every id in ``values`` (feature-major, ``length_per_key[f]`` ids for feature ``f``)."""
    offsets = layout.weight_offsets
    dim = layout.uniform_dim
    if dim is not None:
        first_row = torch.tensor(
            [offsets[t] // dim for t in layout.feature_table_map], dtype=values.dtype, device=values.device
        )
        lengths = torch.tensor(length_per_key, device=values.device)
        ids = values + torch.repeat_interleave(first_row, lengths, output_size=values.numel())
        return F.embedding(ids, flat_weights.view(-1, dim))
    out = []
    for f, ids in enumerate(values.split(length_per_key)):
        t = layout.feature_table_map[f]
        rows, cols = layout.rows[t], layout.cols[t]
        table = flat_weights[offsets[t] : offsets[t] + rows * cols].view(rows, cols)
        out.append(F.embedding(ids, table).reshape(-1))
    return torch.cat(out) if out else flat_weights.new_zeros(0)
