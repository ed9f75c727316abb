"""Variable-batch (VBE) pooled layouts: pure block math against hand-computed layouts, and the pooled kernels
(fused TBE, dense TBE through the padding fallback, a lookup of several kernels) against plain torch."""

from typing import List

import pytest
import torch
import torch.nn.functional as F

from recsys_lib.distributed._tbe.pooled import BatchedDenseEmbeddingBag, BatchedFusedEmbeddingBag
from recsys_lib.distributed._dist.vbe_layout import (
    blocks_per_name,
    combine_column_blocks,
    divide_rows,
    merge_groups,
    permute_features,
    split_features,
    transpose,
)
from recsys_lib.distributed.embedding_lookup import GroupedPooledEmbeddingsLookup
from recsys_lib.distributed.embedding_types import EmbeddingComputeKernel
from recsys_lib.modules.embedding_configs import PoolingType
from recsys_lib.ops.pad_batch import pad_to_uniform_batch
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor
from tests.distributed._embedding_refs import group, table


def _blocks(spec: List[tuple]) -> torch.Tensor:
    """Flat tensor of (tag, rows, dim) blocks: every value of a block equals its tag."""
    return torch.cat([torch.full((r * d,), float(tag)) for tag, r, d in spec])


def test_merge_groups_interleaves_ranks() -> None:
    # two ranks; group 0 has feature a (D=2), group 1 features b (D=1), c (D=3); B[r][f]
    batch = [[1, 2, 1], [2, 1, 0]]
    g0 = _blocks([(10, 1, 2), (20, 2, 2)])  # a rows of rank 0, rank 1
    g1 = _blocks([(11, 2, 1), (12, 1, 3), (21, 1, 1), (22, 0, 3)])
    out = merge_groups([g0, g1], batch, [[2], [1, 3]])
    assert out.tolist() == _blocks([(10, 1, 2), (11, 2, 1), (12, 1, 3), (20, 2, 2), (21, 1, 1)]).tolist()


def test_permute_features_and_split() -> None:
    batch = [[1, 2], [2, 1]]  # [r][f], dims [2, 3]
    flat = _blocks([(1, 1, 2), (2, 2, 3), (3, 2, 2), (4, 1, 3)])
    out = permute_features(flat, batch, [2, 3], [1, 0])
    assert out.tolist() == _blocks([(2, 2, 3), (1, 1, 2), (4, 1, 3), (3, 2, 2)]).tolist()
    parts = split_features(_blocks([(5, 2, 3), (6, 1, 2)]), [2, 1], [3, 2])
    assert [tuple(p.shape) for p in parts] == [(2, 3), (1, 2)]
    with pytest.raises(ValueError, match="batch sizes"):
        split_features(torch.zeros(7), [2, 1], [3, 2])
    assert transpose([[1, 2], [3, 4], [5, 6]], 2) == [[1, 3, 5], [2, 4, 6]]


def test_combine_column_blocks_puts_shards_side_by_side() -> None:
    # segments: f (cols 4..8), g (0..2), f (0..4); this rank has 2 rows of f, 1 of g
    names, offsets, widths = ["f", "g", "f"], [4, 0, 0], [4, 2, 4]
    blocks = blocks_per_name(names, offsets)
    assert blocks == [[2, 0], [1]]
    f_hi = torch.arange(8.0).view(2, 4)
    g = torch.tensor([[100.0, 101.0]])
    f_lo = -torch.arange(8.0).view(2, 4)
    flat = torch.cat([f_hi.reshape(-1), g.reshape(-1), f_lo.reshape(-1)])
    out = combine_column_blocks(flat, [2, 1, 2], widths, blocks)
    assert out.tolist() == torch.cat([torch.cat([f_lo, f_hi], 1).reshape(-1), g.reshape(-1)]).tolist()


def test_divide_rows() -> None:
    flat = torch.tensor([2.0, 4.0, 9.0, 3.0, 6.0, 12.0])  # rows: [2, 4] | [9] | [3, 6, 12]
    out = divide_rows(flat, torch.tensor([2.0, 3.0, 3.0]), torch.tensor([2, 1, 3]))
    assert out.tolist() == [1.0, 2.0, 3.0, 1.0, 2.0, 4.0]


def test_pad_to_uniform_batch_offsets() -> None:
    lengths = torch.tensor([1, 2, 0, 3, 1])  # f0: 2 bags (r0 1, r1 1); f1: 3 bags (r0 2, r1 1)
    offsets = pad_to_uniform_batch(lengths, [[1, 1], [2, 1]])
    assert offsets.tolist() == [0, 1, 3, 3, 3, 6, 7]  # f0 padded with one empty bag to B_max = 3


ROWS, DIMS = (7, 5, 9), (4, 8, 4)


def _vbe_kjt(weighted: bool, seed: int = 0) -> KeyedJaggedTensor:
    """Three features from two source ranks with batches ``B[f][r]`` (one zero)."""
    g = torch.Generator().manual_seed(seed)
    spkpr = [[2, 1], [0, 3], [1, 2]]
    lengths, values = [], []
    for f, per_rank in enumerate(spkpr):
        ln = torch.randint(0, 4, (sum(per_rank),), generator=g)
        lengths.append(ln)
        values.append(torch.randint(0, ROWS[f], (int(ln.sum()),), generator=g))
    v = torch.cat(values)
    w = torch.rand(v.numel(), generator=g) + 0.5 if weighted else None
    return KeyedJaggedTensor(keys=["a", "b", "c"], values=v, lengths=torch.cat(lengths), weights=w,
                             stride_per_key_per_rank=spkpr)


def _reference(weights: List[torch.Tensor], kjt: KeyedJaggedTensor, mode: str, weighted: bool) -> torch.Tensor:
    """Plain ``F.embedding_bag`` per feature, then the rank-major VBE layout."""
    spkpr = kjt.stride_per_key_per_rank()
    pooled = []
    for f, key in enumerate(kjt.keys()):
        jt = kjt[key]
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(jt.lengths(), 0)[:-1]])
        pooled.append(F.embedding_bag(jt.values(), weights[f], offsets, mode=mode,
                                      per_sample_weights=jt.weights() if weighted else None))
    pieces = []
    for r in range(2):
        for f in range(3):
            start = sum(spkpr[f][:r])
            pieces.append(pooled[f][start:start + spkpr[f][r]].reshape(-1))
    return torch.cat(pieces)


@pytest.mark.parametrize("kernel", ["fused", "fused-native", "dense"])
@pytest.mark.parametrize("pooling,weighted", [(PoolingType.SUM, False), (PoolingType.MEAN, False), (PoolingType.SUM, True)])
def test_pooled_kernels_vbe_match_plain_torch(kernel: str, pooling: PoolingType, weighted: bool) -> None:
    kind = EmbeddingComputeKernel.DENSE if kernel == "dense" else EmbeddingComputeKernel.FUSED
    tables = [table(f"t{i}", r, d, [k], kernel=kind, pooling=pooling, weighted=weighted)
              for i, (r, d, k) in enumerate(zip(ROWS, DIMS, "abc"))]
    cls = BatchedDenseEmbeddingBag if kernel == "dense" else BatchedFusedEmbeddingBag
    module = cls(group(tables, kind, pooling, weighted))
    if kernel == "fused-native":  # FBGEMM's own VBE path (CUDA's default; on CPU the padded path is the default)
        module._supports_vbe = True
    weights = [w.detach().clone() for w in module.split_embedding_weights()]
    kjt = _vbe_kjt(weighted)
    out = module(kjt)
    mode = "sum" if pooling == PoolingType.SUM else "mean"
    torch.testing.assert_close(out, _reference(weights, kjt, mode, weighted))
    if kernel == "dense":  # the padding rows get no gradient; the real rows get the plain one
        grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
        out.backward(grad_out)
        ref_w = [w.clone().requires_grad_(True) for w in weights]
        _reference(ref_w, kjt, mode, weighted).backward(grad_out)
        grads = dict(module.named_parameters_by_table())
        for i, w in enumerate(ref_w):
            torch.testing.assert_close(grads[f"t{i}"].grad, w.grad)


def test_lookup_of_several_kernels_is_rank_major_over_all_features() -> None:
    fused = EmbeddingComputeKernel.FUSED
    g_sum = group([table("t0", ROWS[0], DIMS[0], ["a"]), table("t1", ROWS[1], DIMS[1], ["b"])], fused)
    g_mean = group([table("t2", ROWS[2], DIMS[2], ["c"], pooling=PoolingType.MEAN)], fused, PoolingType.MEAN)
    lookup = GroupedPooledEmbeddingsLookup([g_sum, g_mean])
    weights = [w.detach().clone() for k in lookup._emb_modules for w in k.split_embedding_weights()]
    kjt = _vbe_kjt(False, seed=3)
    out = lookup(kjt)
    sums = _reference(weights, kjt, "sum", False)
    means = _reference(weights, kjt, "mean", False)
    # feature c pools by MEAN: take its blocks from the MEAN reference
    spkpr, pieces, start = kjt.stride_per_key_per_rank(), [], 0
    for r in range(2):
        for f in range(3):
            n = spkpr[f][r] * DIMS[f]
            pieces.append((means if f == 2 else sums)[start:start + n])
            start += n
    torch.testing.assert_close(out, torch.cat(pieces))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kernel", ["fused", "dense"])
def test_cuda_pooled_kernels_vbe_match_plain_torch(kernel: str) -> None:
    """CUDA: the fused kernel takes FBGEMM's native VBE path, the dense one the padded path."""
    kind = EmbeddingComputeKernel.DENSE if kernel == "dense" else EmbeddingComputeKernel.FUSED
    tables = [table(f"t{i}", r, d, [k], kernel=kind) for i, (r, d, k) in enumerate(zip(ROWS, DIMS, "abc"))]
    cls = BatchedDenseEmbeddingBag if kernel == "dense" else BatchedFusedEmbeddingBag
    module = cls(group(tables, kind), device=torch.device("cuda"))
    assert module._supports_vbe == (kernel == "fused")
    weights = [w.detach().cpu().clone() for w in module.split_embedding_weights()]
    kjt = _vbe_kjt(False, seed=5)
    out = module(kjt.to(torch.device("cuda"))).cpu()
    torch.testing.assert_close(out, _reference(weights, kjt, "sum", False))
