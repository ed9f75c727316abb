"""The CPU fast path of fused pooled kernels (``_tbe/cpu_fused.py``) against plain torch and against FBGEMM.

References: ``F.embedding_bag`` per feature for the forward; a hand-written per-row update (row-wise Adagrad / SGD)
over the ids' summed gradients for the backward; and FBGEMM's own TBE (the path the fast one replaces) on the
same weights and batch.
"""

import pytest
import torch
import torch.nn.functional as F

from recsys_lib.distributed._tbe import cpu_fused
from recsys_lib.distributed._tbe.cpu_fused import CpuFusedState, cpu_fast_path_for, fused_lookup

fbgemm_common = pytest.importorskip("fbgemm_gpu.split_table_batched_embeddings_ops_common")
from fbgemm_gpu.split_embedding_configs import EmbOptimType  # noqa: E402
from fbgemm_gpu.split_table_batched_embeddings_ops_common import EmbeddingLocation, PoolingMode  # noqa: E402
from fbgemm_gpu.split_table_batched_embeddings_ops_training import (  # noqa: E402
    ComputeDevice,
    SplitTableBatchedEmbeddingBagsCodegen,
)

ROWS = [7, 13, 5]  # tables; feature_table_map below reuses table 0
FTM = [0, 1, 0, 2]
D, B, LR, EPS = 8, 5, 0.05, 1e-8


def _tbe(optimizer, rows=ROWS, dim=D, ftm=FTM, **kw):
    specs = [(r, dim, EmbeddingLocation.HOST, ComputeDevice.CPU) for r in rows]
    tbe = SplitTableBatchedEmbeddingBagsCodegen(specs, feature_table_map=ftm, optimizer=optimizer,
                                                learning_rate=LR, eps=EPS, **kw)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        tbe.weights_host.copy_(torch.randn(tbe.weights_host.numel(), generator=g))
        if optimizer == EmbOptimType.EXACT_ROWWISE_ADAGRAD:
            tbe.momentum1_host.copy_(torch.rand(tbe.momentum1_host.numel(), generator=g))
    return tbe


def _batch(seed, rows=ROWS, ftm=FTM):
    """Key-major batch with repeated ids inside and across bags, and empty bags (ids per feature != B)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, 4, (len(ftm) * B,), generator=g)
    lengths[1] = 0
    values = []
    for f, t in enumerate(ftm):
        n = int(lengths[f * B:(f + 1) * B].sum())
        values.append(torch.randint(0, rows[t], (n,), generator=g))
    values = torch.cat(values)
    offsets = torch.zeros(lengths.numel() + 1, dtype=torch.int64)
    offsets[1:] = lengths.cumsum(0)
    return values, offsets


def _tables(tbe, rows=ROWS, dim=D):
    flat = tbe.weights_host.detach()
    out, at = [], 0
    for r in rows:
        out.append(flat[at:at + r * dim].view(r, dim).clone())
        at += r * dim
    return out


def _reference_step(tables, momenta, values, offsets, grad, optimizer, ftm=FTM):
    """Plain torch: F.embedding_bag per feature; then each touched row's summed gradient and its update."""
    nf = len(ftm)
    pooled = []
    for f, t in enumerate(ftm):
        o = offsets[f * B:(f + 1) * B + 1]
        pooled.append(F.embedding_bag(values[o[0]:o[-1]], tables[t], o[:-1] - o[0], mode="sum"))
    out = torch.cat(pooled, dim=1)
    summed = [dict() for _ in tables]
    for f, t in enumerate(ftm):
        for b in range(B):
            k = f * B + b
            for i in range(int(offsets[k]), int(offsets[k + 1])):
                r = int(values[i])
                g = grad[b, f * D:(f + 1) * D]
                summed[t][r] = summed[t][r] + g if r in summed[t] else g.clone()
    new = [w.clone() for w in tables]
    new_m = [m.clone() for m in momenta] if momenta is not None else None
    for t in range(len(tables)):
        for r, g in summed[t].items():
            if optimizer == EmbOptimType.EXACT_SGD:
                new[t][r] -= torch.tensor(LR, dtype=torch.float32) * g
            else:
                new_m[t][r] += (g * g).sum() / D
                new[t][r] -= g * (torch.tensor(LR, dtype=torch.float32) / (new_m[t][r].sqrt() + EPS))
    assert nf == out.size(1) // D
    return out, new, new_m


def _momenta(tbe, rows=ROWS):
    m = tbe.momentum1_host.detach()
    out, at = [], 0
    for r in rows:
        out.append(m[at:at + r].clone())
        at += r
    return out


@pytest.mark.parametrize("packed_sort", [True, False])
@pytest.mark.parametrize("optimizer", [EmbOptimType.EXACT_ROWWISE_ADAGRAD, EmbOptimType.EXACT_SGD])
def test_fast_path_matches_plain_torch(optimizer, packed_sort, monkeypatch):
    if not packed_sort:  # the path for tables too large to pack row id and gradient row into one int64
        monkeypatch.setattr(cpu_fused, "PACKED_SORT_BITS", 0)
    tbe = _tbe(optimizer)
    state = cpu_fast_path_for(tbe, torch.device("cpu"), weighted=False)
    assert isinstance(state, CpuFusedState)
    placeholder = torch.empty(0, requires_grad=True)
    for step in range(3):  # several steps: momentum carries over
        values, offsets = _batch(step)
        grad = torch.randn(B, len(FTM) * D, generator=torch.Generator().manual_seed(10 + step))
        tables = _tables(tbe)
        momenta = _momenta(tbe) if optimizer == EmbOptimType.EXACT_ROWWISE_ADAGRAD else None
        want_out, want_w, want_m = _reference_step(tables, momenta, values, offsets, grad, optimizer)
        out = fused_lookup(placeholder, state, values, offsets)
        torch.testing.assert_close(out, want_out)
        out.backward(grad)
        for got, want in zip(_tables(tbe), want_w):
            torch.testing.assert_close(got, want)
        if want_m is not None:
            for got, want in zip(_momenta(tbe), want_m):
                torch.testing.assert_close(got, want)


@pytest.mark.parametrize(
    "optimizer, ftm",
    [
        # FBGEMM's CPU row-wise Adagrad backward fails when two features share a table ("num of rows processed
        # by adagrad: 0 does not match c_block size"), so that pairing is compared with plain torch only (above).
        (EmbOptimType.EXACT_ROWWISE_ADAGRAD, [0, 1, 2]),
        (EmbOptimType.EXACT_SGD, FTM),
    ],
)
def test_fast_path_matches_fbgemm(optimizer, ftm):
    """Same weights, same batches: the fast path and FBGEMM's TBE agree on outputs, weights and momentum."""
    fast, slow = _tbe(optimizer, ftm=ftm), _tbe(optimizer, ftm=ftm)
    state = cpu_fast_path_for(fast, torch.device("cpu"), weighted=False)
    placeholder = torch.empty(0, requires_grad=True)
    for step in range(3):
        values, offsets = _batch(100 + step, ftm=ftm)
        grad = torch.randn(B, len(ftm) * D, generator=torch.Generator().manual_seed(step))
        got = fused_lookup(placeholder, state, values, offsets)
        want = slow(values, offsets)
        torch.testing.assert_close(got, want)
        got.backward(grad)
        want.backward(grad)
        torch.testing.assert_close(fast.weights_host, slow.weights_host)
        torch.testing.assert_close(fast.momentum1_host, slow.momentum1_host)


def test_learning_rate_is_read_at_each_step():
    tbe = _tbe(EmbOptimType.EXACT_SGD)
    state = cpu_fast_path_for(tbe, torch.device("cpu"), weighted=False)
    tbe.set_learning_rate(0.0)
    before = tbe.weights_host.detach().clone()
    values, offsets = _batch(7)
    fused_lookup(torch.empty(0, requires_grad=True), state, values, offsets).sum().backward()
    torch.testing.assert_close(tbe.weights_host.detach(), before, rtol=0, atol=0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: _tbe(EmbOptimType.EXACT_ADAGRAD),                                   # per-element momentum
        lambda: _tbe(EmbOptimType.EXACT_ROWWISE_ADAGRAD, rows=[4, 6], dim=8, ftm=[0, 1], weight_decay=0.1),
        lambda: _tbe(EmbOptimType.EXACT_SGD, ftm=FTM, pooling_mode=PoolingMode.MEAN),
        lambda: SplitTableBatchedEmbeddingBagsCodegen(                              # mixed dims
            [(4, 8, EmbeddingLocation.HOST, ComputeDevice.CPU), (4, 4, EmbeddingLocation.HOST, ComputeDevice.CPU)],
            optimizer=EmbOptimType.EXACT_SGD),
    ],
)
def test_other_configurations_stay_on_fbgemm(make):
    assert cpu_fast_path_for(make(), torch.device("cpu"), weighted=False) is None


def test_weighted_stays_on_fbgemm():
    assert cpu_fast_path_for(_tbe(EmbOptimType.EXACT_SGD), torch.device("cpu"), weighted=True) is None
