"""Slot-major jagged rows of a KJT pool, and moving them between ranks.

A *slot-major* ``JaggedTensor`` of ``N`` slots and ``F`` features has ``lengths (N*F,)`` ordered slot by slot
(slot 0's features, slot 1's, ...) and values in the same order: one slot's features are contiguous, so slots can
be reordered, selected and sent as whole segments::

    KJT (feature-major)  f0: [a] [b c]   f1: [d e] []      N=2, F=2
    slot-major           lengths [1, 2, 2, 0]   values [a, d, e, b, c]
"""

from typing import Optional

import torch
import torch.distributed as dist

from recsys_lib.distributed.sharding.rw_tensor_pool_sharding import send_rows
from recsys_lib.modules.keyed_jagged_tensor_pool import _gather_segments, _slot_to_feature_major, _starts
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor


def kjt_to_slot_major(kjt: KeyedJaggedTensor) -> JaggedTensor:
    """Feature-major KJT of stride ``N`` → slot-major ``JaggedTensor``."""
    f, n = len(kjt.keys()), kjt.stride()
    lengths_fs = kjt.lengths().view(f, n).to(torch.int64)
    seg_start = _starts(lengths_fs.flatten()).view(f, n).t().flatten()
    seg_len = lengths_fs.t().flatten()
    w = kjt.weights_or_none()
    return JaggedTensor(values=_gather_segments(kjt.values(), seg_start, seg_len), lengths=seg_len,
                        weights=None if w is None else _gather_segments(w, seg_start, seg_len))


def select_slots(jt: JaggedTensor, num_features: int, index: torch.Tensor) -> JaggedTensor:
    """Slots ``index`` ``(M,)`` of a slot-major ``JaggedTensor``, in that order."""
    lengths_sf = jt.lengths().view(-1, num_features).to(torch.int64)
    totals = lengths_sf.sum(1)
    starts = _starts(totals)[index]
    sel = totals[index]
    w = jt.weights_or_none()
    return JaggedTensor(values=_gather_segments(jt.values(), starts, sel), lengths=lengths_sf[index].flatten(),
                        weights=None if w is None else _gather_segments(w, starts, sel))


def slot_major_to_kjt(jt: JaggedTensor, keys: list) -> KeyedJaggedTensor:
    """Slot-major ``JaggedTensor`` → feature-major KJT (stride = slots)."""
    f = len(keys)
    lengths_sf = jt.lengths().view(-1, f).to(torch.int64)
    n = lengths_sf.size(0)
    w = jt.weights_or_none()
    return KeyedJaggedTensor(
        keys=keys, values=_slot_to_feature_major(lengths_sf, jt.values(), n, f),
        weights=None if w is None else _slot_to_feature_major(lengths_sf, w, n, f),
        lengths=lengths_sf.t().flatten().to(torch.int32), stride=n,
    )


def send_slots(jt: JaggedTensor, num_features: int, send: torch.Tensor, receive: torch.Tensor,
               pg: Optional[dist.ProcessGroup]) -> JaggedTensor:
    """All-to-all of whole slots: ``send[r]`` slots (in order) to rank r, ``receive[r]`` slots from it.

    Two all-to-alls for lengths and values, a third for weights when present.
    """
    lengths = jt.lengths().to(torch.int64).view(-1, num_features)
    got_lengths = send_rows(lengths, send, receive, pg)
    totals_out = lengths.sum(1)
    totals_in = got_lengths.sum(1)
    send_vals = torch.stack([c.sum() for c in totals_out.split(send.tolist())]) if send.numel() else send
    recv_vals = torch.stack([c.sum() for c in totals_in.split(receive.tolist())]) if receive.numel() else receive
    values = send_rows(jt.values(), send_vals, recv_vals, pg)
    w = jt.weights_or_none()
    weights = None if w is None else send_rows(w, send_vals, recv_vals, pg)
    return JaggedTensor(values=values, lengths=got_lengths.flatten(), weights=weights)
