"""Quantized inference lookups (TorchRec path ``embedding_lookup``): per-group kernels joined, per-rank lookups,
against plain-torch lookups of the dequantised rows each kernel stores."""

import torch
import torch.nn.functional as F

from recsys_lib import KeyedJaggedTensor
from recsys_lib.distributed.embedding_lookup import (
    InferGroupedEmbeddingsLookup,
    InferGroupedLookupMixin,
    InferGroupedPooledEmbeddingsLookup,
    MetaInferGroupedEmbeddingsLookup,
    MetaInferGroupedPooledEmbeddingsLookup,
)
from recsys_lib.distributed.embedding_types import (
    EmbeddingComputeKernel,
    GroupedEmbeddingConfig,
    InputDistOutputs,
    KJTList,
    ShardedEmbeddingTable,
)
from recsys_lib.modules.embedding_configs import DataType, PoolingType
from recsys_lib.quant._rows import dequantize_rows, pack_rows


def _group(name, rows, features, pooling):
    t = ShardedEmbeddingTable(num_embeddings=rows, embedding_dim=8, name=name, feature_names=features,
                              data_type=DataType.INT8, pooling=pooling, local_rows=rows, local_cols=8)
    return GroupedEmbeddingConfig(data_type=DataType.INT8, pooling=pooling, is_weighted=False,
                                  has_feature_processor=False, compute_kernel=EmbeddingComputeKernel.QUANT,
                                  embedding_tables=[t])


def _dequantised(lookup):
    out = []
    for kernel in lookup._emb_modules:
        for data, qparams in kernel.split_embedding_weights():
            out.append(dequantize_rows(pack_rows(data, qparams, 8, DataType.INT8, 16), 8, DataType.INT8))
    return out


def _kjt():
    return KeyedJaggedTensor.from_lengths_sync(["f0", "f1", "f2"], torch.tensor([1, 10, 3, 6, 0, 2]),
                                               torch.tensor([2, 0, 1, 1, 0, 2]))


def _randomise(lookup, seed):
    g = torch.Generator().manual_seed(seed)
    for kernel in lookup._emb_modules:
        for data, _ in kernel.split_embedding_weights():
            data.copy_(torch.randint(0, 255, data.shape, generator=g, dtype=torch.uint8))


def test_meta_pooled_lookup_concatenates_groups():
    lookup = MetaInferGroupedPooledEmbeddingsLookup(
        [_group("t0", 11, ["f0"], PoolingType.SUM), _group("t1", 7, ["f1", "f2"], PoolingType.SUM)])
    _randomise(lookup, 0)
    w0, w1 = _dequantised(lookup)
    kjt = _kjt()
    out = lookup(kjt)
    ref = torch.cat([F.embedding_bag(kjt[k].values(), w, kjt[k].offsets()[:-1], mode="sum")
                     for k, w in (("f0", w0), ("f1", w1), ("f2", w1))], dim=1)
    torch.testing.assert_close(out, ref)
    assert lookup.embeddings_cat_empty_rank_handle_inference([]).shape == (0,)


def test_meta_sequence_lookup_returns_a_row_per_id():
    lookup = MetaInferGroupedEmbeddingsLookup(
        [_group("t0", 11, ["f0"], PoolingType.NONE), _group("t1", 7, ["f1", "f2"], PoolingType.NONE)])
    _randomise(lookup, 1)
    w0, w1 = _dequantised(lookup)
    kjt = _kjt()
    ref = torch.cat([F.embedding(kjt[k].values(), w) for k, w in (("f0", w0), ("f1", w1), ("f2", w1))])
    torch.testing.assert_close(lookup(kjt), ref)


def test_per_rank_lookups_skip_empty_pooled_ranks():
    configs = [[_group("t0", 11, ["f0"], PoolingType.SUM)], [], [_group("t1", 7, ["f1"], PoolingType.SUM)]]
    lookup = InferGroupedPooledEmbeddingsLookup(configs, world_size=3)
    assert isinstance(lookup, InferGroupedLookupMixin)
    assert len(lookup._embedding_lookups_per_rank) == 2
    f0 = KeyedJaggedTensor.from_lengths_sync(["f0"], torch.tensor([4, 5]), torch.tensor([1, 1]))
    f1 = KeyedJaggedTensor.from_lengths_sync(["f1"], torch.tensor([2]), torch.tensor([0, 1]))
    empty = KeyedJaggedTensor.from_lengths_sync(["x"], torch.tensor([0]), torch.tensor([1, 0]))
    outs = lookup(InputDistOutputs(features=KJTList([f0, empty, f1])))
    (w0,), (w1,) = (_dequantised(m) for m in lookup._embedding_lookups_per_rank)
    torch.testing.assert_close(outs[0], torch.stack([w0[4], w0[5]]))
    torch.testing.assert_close(outs[1], torch.stack([torch.zeros(8), w1[2]]))
    seq = InferGroupedEmbeddingsLookup([[_group("t0", 11, ["f0"], PoolingType.NONE)], []], world_size=2)
    assert len(seq._embedding_lookups_per_rank) == 2
    rows = seq(InputDistOutputs(features=KJTList([f0, empty])))
    (s0,) = _dequantised(seq._embedding_lookups_per_rank[0])
    torch.testing.assert_close(rows[0], torch.stack([s0[4], s0[5]]))
    assert rows[1].numel() == 0
