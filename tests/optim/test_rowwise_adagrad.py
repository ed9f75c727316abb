import math

import pytest
import torch

from recsys_lib.optim.rowwise_adagrad import RowWiseAdagrad, adagrad


def _closed_form(w0, grads, lr, lr_decay=0.0, weight_decay=0.0, init=0.0, eps=1e-10, maximize=False):
    """Row-wise Adagrad written out with Python floats, row by row."""
    w = [list(map(float, row)) for row in w0.tolist()]
    acc = [init] * len(w)
    for step, g in enumerate(grads, start=1):
        g = g.tolist()
        clr = lr / (1 + (step - 1) * lr_decay)
        for r, row in enumerate(g):
            row = [(-x if maximize else x) + weight_decay * w[r][c] for c, x in enumerate(row)]
            acc[r] += sum(x * x for x in row) / len(row)
            denom = math.sqrt(acc[r]) + eps
            w[r] = [w[r][c] - clr * x / denom for c, x in enumerate(row)]
    return torch.tensor(w, dtype=torch.float64), torch.tensor(acc, dtype=torch.float64)


@pytest.mark.parametrize(
    "kw",
    [dict(lr=0.1), dict(lr=0.3, lr_decay=0.5), dict(lr=0.05, weight_decay=0.1, init=0.2),
     dict(lr=0.1, maximize=True, eps=1e-3)],
)
def test_rowwise_adagrad_matches_closed_form(kw):
    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(5, 3, generator=g, dtype=torch.float64)
    grads = [torch.randn(5, 3, generator=g, dtype=torch.float64) for _ in range(4)]
    p = torch.nn.Parameter(w0.clone())
    ctor = {k: v for k, v in kw.items() if k != "init"}
    opt = RowWiseAdagrad([p], initial_accumulator_value=kw.get("init", 0.0), **ctor)
    for gr in grads:
        p.grad = gr.clone()
        opt.step()
    want_w, want_acc = _closed_form(w0, grads, **kw)
    torch.testing.assert_close(p.detach(), want_w)
    torch.testing.assert_close(opt.state[p]["sum"], want_acc)
    assert opt.state[p]["sum"].shape == (5,)
    assert opt.state[p]["step"].item() == 4


def test_rowwise_equals_torch_adagrad_when_rows_have_width_one():
    # With D == 1 the row mean is the element itself: plain Adagrad.
    w0 = torch.randn(6, 1, dtype=torch.float64)
    a = torch.nn.Parameter(w0.clone())
    b = torch.nn.Parameter(w0.clone())
    o1 = RowWiseAdagrad([a], lr=0.2, lr_decay=0.1, initial_accumulator_value=0.1)
    o2 = torch.optim.Adagrad([b], lr=0.2, lr_decay=0.1, initial_accumulator_value=0.1)
    for _ in range(3):
        gr = torch.randn(6, 1, dtype=torch.float64)
        a.grad, b.grad = gr.clone(), gr.clone()
        o1.step()
        o2.step()
    torch.testing.assert_close(a, b)


def test_sparse_grad_equals_dense_grad_on_touched_rows():
    w0 = torch.randn(8, 4)
    emb_s = torch.nn.Embedding(8, 4, sparse=True, _weight=w0.clone())
    emb_d = torch.nn.Embedding(8, 4, sparse=False, _weight=w0.clone())
    o_s = RowWiseAdagrad(emb_s.parameters(), lr=0.1)
    o_d = RowWiseAdagrad(emb_d.parameters(), lr=0.1)
    ids = torch.tensor([1, 3, 3, 6])
    for _ in range(2):
        for emb, o in ((emb_s, o_s), (emb_d, o_d)):
            o.zero_grad()
            (emb(ids) ** 2).sum().backward()
            o.step()
    assert emb_s.weight.grad.is_sparse
    torch.testing.assert_close(emb_s.weight, emb_d.weight)
    untouched = [0, 2, 4, 5, 7]
    torch.testing.assert_close(emb_s.weight[untouched], w0[untouched])


def test_functional_adagrad_and_closure():
    p = torch.tensor([[1.0, 2.0]])
    s, t = torch.zeros(1), torch.tensor(0.0)
    adagrad([p], [torch.tensor([[3.0, 4.0]])], [s], [t], lr=1.0, weight_decay=0.0, lr_decay=0.0, eps=0.0,
            maximize=False)
    # sum = (9 + 16) / 2 = 12.5; p -= g / sqrt(12.5)
    torch.testing.assert_close(s, torch.tensor([12.5]))
    torch.testing.assert_close(p, torch.tensor([[1 - 3 / 12.5 ** 0.5, 2 - 4 / 12.5 ** 0.5]]))
    assert t.item() == 1.0
    q = torch.nn.Parameter(torch.ones(2, 2))
    opt = RowWiseAdagrad([q])

    def closure():
        q.grad = torch.ones_like(q)
        return torch.tensor(7.0)

    assert opt.step(closure).item() == 7.0


def test_rowwise_adagrad_bad_input():
    p = torch.nn.Parameter(torch.ones(2, 2))
    for name in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
        with pytest.raises(ValueError, match=name):
            RowWiseAdagrad([p], **{name: -1.0})
    with pytest.raises(TypeError, match="lr"):
        RowWiseAdagrad([p], lr="0.1")
    with pytest.raises(ValueError, match="0-d"):
        RowWiseAdagrad([torch.nn.Parameter(torch.tensor(1.0))])
    with pytest.raises(ValueError, match="lengths differ"):
        adagrad([p], [], [], [], lr=1.0, weight_decay=0.0, lr_decay=0.0, eps=0.0, maximize=False)
    RowWiseAdagrad([p], lr=0.1, momentum=0.9)  # unknown fused kwargs are accepted and ignored


def test_matches_fbgemm_fused_exact_rowwise_adagrad():
    # The fused TBE kernel that optimizer_type_to_emb_opt_type(RowWiseAdagrad) selects is an independent oracle.
    from fbgemm_gpu.split_embedding_configs import EmbOptimType, SparseType
    from fbgemm_gpu.split_table_batched_embeddings_ops_common import EmbeddingLocation, PoolingMode
    from fbgemm_gpu.split_table_batched_embeddings_ops_training import (
        ComputeDevice,
        SplitTableBatchedEmbeddingBagsCodegen,
    )

    torch.manual_seed(0)
    rows, dim = 8, 4
    tbe = SplitTableBatchedEmbeddingBagsCodegen(
        [(rows, dim, EmbeddingLocation.HOST, ComputeDevice.CPU)],
        optimizer=EmbOptimType.EXACT_ROWWISE_ADAGRAD, learning_rate=0.1, eps=1e-8,
        pooling_mode=PoolingMode.SUM, weights_precision=SparseType.FP32,
    )
    emb = torch.nn.EmbeddingBag(rows, dim, mode="sum", _weight=tbe.split_embedding_weights()[0].detach().clone())
    opt = RowWiseAdagrad(emb.parameters(), lr=0.1, eps=1e-8)
    ids, offsets = torch.tensor([1, 3, 3, 6, 1]), torch.tensor([0, 2, 5])  # 2 bags, repeated ids
    for _ in range(3):
        out = tbe(ids, offsets)
        (out * torch.arange(out.numel()).reshape(out.shape)).sum().backward()
        opt.zero_grad()
        ref = emb(ids, offsets)
        (ref * torch.arange(ref.numel()).reshape(ref.shape)).sum().backward()
        opt.step()
    torch.testing.assert_close(emb.weight.detach(), tbe.split_embedding_weights()[0].detach())
    torch.testing.assert_close(opt.state[emb.weight]["sum"], tbe.get_optimizer_state()[0]["sum"])
