"""A CPU fast path for fused pooled kernels: ATen ``embedding_bag`` forward, one-pass-per-row fused update.

FBGEMM's CPU training TBE is slow in backward (26 tables x 100k x D=64, batch 2048, ~1M ids: ~1.2 s for
EXACT_ROWWISE_ADAGRAD on one thread, vs ~0.1 s for its forward). This path keeps the TBE as the *storage*
(``weights_host``, ``momentum1_host``, learning rate, state dicts all unchanged) and replaces the two kernels:

* forward: one ``torch.embedding_bag`` per feature over its table's rows (a view of the flat weight buffer,
  zero-based offsets from one cumsum), joined by one ``torch.cat`` into ``(B, F*D)`` (feature ``f`` in columns
  ``[f*D, (f+1)*D)``), the TBE's layout.
* backward (the optimizer step; nothing is returned to autograd): the ids, shifted into the flat ``(sum_t R_t, D)``
  view and packed with the gradient row they read into one int64, are sorted so equal rows are adjacent; then,
  ``CHUNK_ROWS`` unique rows at a time (every temporary stays small and cache-resident: no step allocates hundreds
  of MB afresh, whose page faults cost more than the arithmetic), an
  ``embedding_bag`` over the incoming gradient viewed as ``(B*F, D)`` sums each row's gradient ``G``
  (occurrences in (sample, feature) order), and

    EXACT_ROWWISE_ADAGRAD:  m[r] += sum_d G[r, d]^2 / D;   w[r] -= G[r] * lr / (sqrt(m[r]) + eps)
    EXACT_SGD:              w[r] -= lr * G[r]

  written back with one dense += sparse add per block. This is FBGEMM's update (same operations per row); results
  agree with it to fp32 rounding (the sum of squares, and repeats of a row, are summed in a different order).

Used only where it is exact to the configured optimizer: CPU, fp32 weights, SUM pooling, no per-sample weights,
one embedding dim for all tables of the kernel, no weight decay, gradient clipping or max-norm; everything else
stays on FBGEMM (:func:`cpu_fast_path_for` returns None).

The plain-PyTorch reference the tests compare against is ``F.embedding_bag`` per table plus a hand-written update.
"""

from typing import Any, List, Optional, Tuple

import torch

from recsys_lib.ops._host import sort_in_place

# EmbOptimType values this path implements.
_ROWWISE_ADAGRAD = "exact_row_wise_adagrad"
_SGD = "exact_sgd"
# Row id and gradient row are packed into one int64 sort key while their bits fit (else: sort ids, then gather).
PACKED_SORT_BITS = 62
# Unique rows updated per block in backward: 16k rows x D=64 fp32 = 4 MiB of gradient sums.
CHUNK_ROWS = 16384


class CpuFusedState:
    """What the fast path reads from the TBE: flat buffers viewed as rows, per-feature tables, optimizer.

    Args:
        tbe: a CPU ``SplitTableBatchedEmbeddingBagsCodegen`` (fp32, uniform dim).
        optimizer: ``"exact_row_wise_adagrad"`` or ``"exact_sgd"``.
        dim: the shared embedding dim ``D``.
        feature_first_rows: first row of each feature's table in the ``(sum R, D)`` view, ``F`` entries.
        feature_rows: row count of each feature's table.
    """

    def __init__(
        self, tbe: Any, optimizer: str, dim: int, feature_first_rows: List[int], feature_rows: List[int]
    ) -> None:
        self.tbe = tbe
        self.optimizer = optimizer
        self.dim = dim
        self.num_features = len(feature_first_rows)
        self.feature_first_rows = feature_first_rows
        self.feature_rows = feature_rows
        self.first_rows = torch.tensor(feature_first_rows, dtype=torch.int32)
        self.total_rows = tbe.weights_host.numel() // dim
        self.eps = float(tbe.optimizer_args.eps)
        # (F*B,) key-major bag k = f*B + b -> row b*F + f of the gradient viewed as (B*F, D); cached per B.
        self._bag_rows: Optional[Tuple[int, torch.Tensor]] = None

    def rows(self) -> torch.Tensor:
        """The flat weight buffer as ``(sum_t R_t, D)`` (a view: updates land in the TBE)."""
        return self.tbe.weights_host.detach().view(self.total_rows, self.dim)

    def momentum(self) -> torch.Tensor:
        return self.tbe.momentum1_host.detach()

    def bag_rows(self, batch: int) -> torch.Tensor:
        if self._bag_rows is None or self._bag_rows[0] != batch:
            k = torch.arange(self.num_features * batch, dtype=torch.int64)
            self._bag_rows = (batch, (k % batch) * self.num_features + k // batch)
        return self._bag_rows[1]


def pooled_forward(state: CpuFusedState, indices: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Pooled rows ``(B, F*D)`` of the key-major bags given by ``offsets`` ``(F*B+1,)`` over ``indices``."""
    nf = state.num_features
    batch = (offsets.numel() - 1) // nf
    lengths = (offsets[1:] - offsets[:-1]).view(nf, batch)
    local = torch.zeros(nf, batch + 1, dtype=offsets.dtype)
    torch.cumsum(lengths, 1, out=local[:, 1:])  # zero-based offsets of every feature: row f
    starts = offsets[::batch].tolist()  # first id of each feature, then N (one host read)
    rows = state.rows()
    pooled: List[torch.Tensor] = []
    for f in range(nf):
        first = state.feature_first_rows[f]
        table = rows[first: first + state.feature_rows[f]]
        ids = indices[starts[f]: starts[f + 1]]
        pooled.append(torch.embedding_bag(table, ids, local[f], False, 0, False, None, True, None)[0])
    return pooled[0] if nf == 1 else torch.cat(pooled, dim=1)


def _flat_ids(state: CpuFusedState, indices: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """``indices`` shifted by their feature's first row: ids into the ``(sum R, D)`` view, ``(N,)``."""
    batch = (offsets.numel() - 1) // state.num_features
    starts = offsets[::batch]
    per_feature = starts[1:] - starts[:-1]
    shift = state.first_rows.repeat_interleave(per_feature, output_size=indices.numel())
    if state.total_rows < 2**31:
        return indices.int() + shift
    return indices.long() + shift


def _add_rows(rows: torch.Tensor, ids: torch.Tensor, delta: torch.Tensor, alpha: float) -> None:
    """``rows[ids] += alpha * delta`` for unique ``ids``: a dense += sparse add is one axpy per row in ATen, a little
    faster than ``index_add_`` on CPU (same arithmetic: ``w + alpha * d``)."""
    update = torch.sparse_coo_tensor(ids.unsqueeze(0), delta, rows.shape, is_coalesced=True, check_invariants=False)
    rows.add_(update, alpha=alpha)


def update_rows(state: CpuFusedState, indices: torch.Tensor, offsets: torch.Tensor, grad: torch.Tensor) -> None:
    """The optimizer step for gradient ``grad`` ``(B, F*D)`` of the bags ``offsets`` over ``indices``."""
    nf = state.num_features
    batch = (offsets.numel() - 1) // nf
    offsets = offsets.long()
    lengths = offsets[1:] - offsets[:-1]
    bag_row = state.bag_rows(batch).repeat_interleave(lengths, output_size=indices.numel())
    bag_bits = max(1, (batch * nf - 1).bit_length())
    if (state.total_rows - 1).bit_length() + bag_bits <= PACKED_SORT_BITS:
        # One sort of (row id, gradient row) packed in an int64: the gradient rows come out in sorted order
        # without a random gather through a permutation; a row's occurrences are summed by (sample, feature).
        packed = _flat_ids(state, indices, offsets).long().bitwise_left_shift_(bag_bits).add_(bag_row)
        del bag_row  # (N,) int64 freed before the sort allocates its outputs: a lower peak
        packed = sort_in_place(packed)  # our own temporary: sorted where it lies
        sorted_ids = packed.bitwise_right_shift(bag_bits)
        bag_row = packed.bitwise_and_((1 << bag_bits) - 1)
    else:
        sorted_ids, order = torch.sort(_flat_ids(state, indices, offsets), stable=True)
        bag_row = bag_row.index_select(0, order)
    unique, counts = torch.unique_consecutive(sorted_ids, return_counts=True)
    seg = torch.zeros(unique.numel() + 1, dtype=torch.int64)
    torch.cumsum(counts, 0, out=seg[1:])
    g = grad.contiguous().view(batch * nf, state.dim)
    lr = float(state.tbe.get_learning_rate())
    rows = state.rows()
    momentum = state.momentum()
    bounds = seg[::CHUNK_ROWS].tolist() + ([] if unique.numel() % CHUNK_ROWS == 0 else [int(seg[-1])])
    for c in range(len(bounds) - 1):
        u0 = c * CHUNK_ROWS
        u1 = min(u0 + CHUNK_ROWS, unique.numel())
        p0, p1 = bounds[c], bounds[c + 1]
        # summed gradient of each unique row in [u0, u1): its occurrences are sorted positions [p0, p1)
        summed = torch.embedding_bag(
            g, bag_row[p0:p1], seg[u0: u1 + 1] - p0, False, 0, False, None, True, None
        )[0]
        ids = unique[u0:u1].long()
        if state.optimizer == _SGD:
            _add_rows(rows, ids, summed, -lr)
            continue
        sum_sq = torch.linalg.vector_norm(summed, 2, dim=1).square_()  # one pass, no (rows, D) temporary
        new_m = momentum.index_select(0, ids).add_(sum_sq.div_(state.dim))
        momentum.index_copy_(0, ids, new_m)
        denominator = new_m.sqrt().add_(state.eps)
        multiplier = torch.full_like(denominator, lr).div_(denominator)  # lr / (sqrt(m) + eps), FBGEMM's order
        _add_rows(rows, ids, summed.mul_(multiplier.unsqueeze(1)), -1.0)


class _FusedLookup(torch.autograd.Function):
    """Forward: pooled lookup. Backward: the fused optimizer step; no gradient flows to any input."""

    @staticmethod
    def forward(ctx: Any, placeholder: torch.Tensor, state: CpuFusedState, indices: torch.Tensor,
                offsets: torch.Tensor) -> torch.Tensor:
        ctx.state = state
        ctx.save_for_backward(indices, offsets)
        return pooled_forward(state, indices, offsets)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Tuple[Optional[torch.Tensor], None, None, None]:
        indices, offsets = ctx.saved_tensors
        if indices.numel() > 0:
            update_rows(ctx.state, indices, offsets, grad)
        return None, None, None, None


def fused_lookup(
    placeholder: torch.Tensor, state: CpuFusedState, indices: torch.Tensor, offsets: torch.Tensor
) -> torch.Tensor:
    """Pooled ``(B, F*D)`` lookup whose backward updates the tables in place (see the module docstring).

    ``placeholder`` is an empty tensor that requires grad, so autograd calls the backward.
    """
    return _FusedLookup.apply(placeholder, state, indices, offsets)


def cpu_fast_path_for(tbe: Any, device: torch.device, weighted: bool) -> Optional[CpuFusedState]:
    """The fast-path state for a fused TBE, or None when the configuration must stay on FBGEMM."""
    from fbgemm_gpu.split_embedding_configs import SparseType
    from fbgemm_gpu.split_table_batched_embeddings_ops_common import PoolingMode

    if device.type != "cpu" or weighted:
        return None
    optimizer = getattr(tbe.optimizer, "value", None)
    if optimizer not in (_ROWWISE_ADAGRAD, _SGD):
        return None
    args = tbe.optimizer_args
    if args.weight_decay != 0.0 or args.gradient_clipping or args.max_norm != 0.0:
        return None
    if tbe.weights_precision != SparseType.FP32 or tbe.weights_host.numel() == 0:
        return None
    dims = [int(d) for d in (tbe.D_offsets[1:] - tbe.D_offsets[:-1]).tolist()]
    if len(set(dims)) != 1 or int(tbe.pooling_mode) != int(PoolingMode.SUM):
        return None
    dim = dims[0]
    weight_offsets = [int(o) for o in tbe.weights_offsets.tolist()]  # per feature, in elements
    if any(o % dim for o in weight_offsets):
        return None
    first_rows = [o // dim for o in weight_offsets]
    if optimizer == _ROWWISE_ADAGRAD:
        # row-wise momentum: one entry per row, laid out like the rows (momentum index == row id)
        if tbe.momentum1_host.numel() != tbe.weights_host.numel() // dim:
            return None
        if [int(o) for o in tbe.momentum1_offsets.tolist()] != first_rows:
            return None
    rows_per_table = [int(spec[0]) for spec in tbe.embedding_specs]
    feature_rows = [rows_per_table[t] for t in tbe.feature_table_map]
    return CpuFusedState(tbe, optimizer, dim, first_rows, feature_rows)
