"""Quantized kernels over a group of tables: from a float kernel's weights, against the quantized collection."""

import torch

from recsys_lib import KeyedJaggedTensor
from recsys_lib.distributed.quant_embedding_kernel import QuantBatchedEmbedding, QuantBatchedEmbeddingBag
from recsys_lib.distributed.embedding_types import (
    EmbeddingComputeKernel,
    GroupedEmbeddingConfig,
    ShardedEmbeddingTable,
)
from recsys_lib.modules.embedding_configs import DataType, PoolingType
from recsys_lib.quant._rows import dequantize_rows, pack_rows, quantize_rows


def _group(pooling):
    tables = [ShardedEmbeddingTable(num_embeddings=11, embedding_dim=8, name="t0", feature_names=["f0"],
                                    data_type=DataType.INT8, pooling=pooling, local_rows=11, local_cols=8),
              ShardedEmbeddingTable(num_embeddings=7, embedding_dim=8, name="t1", feature_names=["f1", "f2"],
                                    data_type=DataType.INT8, pooling=pooling, local_rows=7, local_cols=8)]
    return GroupedEmbeddingConfig(data_type=DataType.INT8, pooling=pooling, is_weighted=False,
                                  has_feature_processor=False, compute_kernel=EmbeddingComputeKernel.QUANT,
                                  embedding_tables=tables)


class _FloatKernel(torch.nn.Module):
    """A float kernel as ``from_float`` reads one: ``config``, ``split_embedding_weights()``, ``qconfig``."""

    def __init__(self, config, weights):
        super().__init__()
        self.config = config
        self.w = torch.nn.ParameterList([torch.nn.Parameter(w) for w in weights])
        obs = torch.ao.quantization.PlaceholderObserver
        self.qconfig = type("Q", (), {"weight": obs.with_args(dtype=torch.qint8),
                                      "activation": obs.with_args(dtype=torch.float)})()

    def split_embedding_weights(self):
        return list(self.w)


def _kjt():
    return KeyedJaggedTensor.from_lengths_sync(["f0", "f1", "f2"], torch.tensor([1, 10, 3, 6, 0, 2]),
                                               torch.tensor([2, 0, 1, 1, 0, 2]))


def test_bag_kernel_from_float_pools_the_dequantised_rows():
    torch.manual_seed(0)
    weights = [torch.randn(11, 8), torch.randn(7, 8)]
    kernel = QuantBatchedEmbeddingBag.from_float(_FloatKernel(_group(PoolingType.SUM), weights))
    deq = [dequantize_rows(pack_rows(*quantize_rows(w, DataType.INT8), 8, DataType.INT8, 16), 8, DataType.INT8)
           for w in weights]  # the independent plain-torch oracle
    out = kernel(_kjt())
    assert out.shape == (2, 24)
    torch.testing.assert_close(out[:, :8], torch.stack([deq[0][1] + deq[0][10], torch.zeros(8)]))
    torch.testing.assert_close(out[:, 8:16], torch.stack([deq[1][3], deq[1][6]]))
    torch.testing.assert_close(out[:, 16:], torch.stack([torch.zeros(8), deq[1][0] + deq[1][2]]))
    data, qparams = kernel.split_embedding_weights()[1]
    assert data.shape == (7, 8) and qparams.shape == (7, 4)


def test_sequence_kernel_returns_a_row_per_id():
    torch.manual_seed(1)
    weights = [torch.randn(11, 8), torch.randn(7, 8)]
    kernel = QuantBatchedEmbedding.from_float(_FloatKernel(_group(PoolingType.NONE), weights))
    deq = [dequantize_rows(pack_rows(*quantize_rows(w, DataType.INT8), 8, DataType.INT8, 16), 8, DataType.INT8)
           for w in weights]
    out = kernel(_kjt())
    torch.testing.assert_close(out, torch.stack([deq[0][1], deq[0][10], deq[1][3], deq[1][6], deq[1][0],
                                                 deq[1][2]]))
