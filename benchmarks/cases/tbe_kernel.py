"""Batched fused kernel train step vs the raw FBGEMM TBE it wraps (issue 4, kernels).

    .venv/bin/python benchmarks/run.py --case tbe_kernel --size large --repeats 5
    .venv-compare/bin/python benchmarks/run.py --case tbe_kernel --size large --repeats 5 --compare torchrec

``kernel_fused_train``: ``BatchedFusedEmbeddingBag`` (one grouped config, row-wise Adagrad fused into backward)
forward + backward on a KeyedJaggedTensor, including the library's input checks. ``tbe_raw_train``: the same
FBGEMM ``SplitTableBatchedEmbeddingBagsCodegen`` call on precomputed indices/offsets (the floor). ``large`` is
26 tables x 100k rows x D=64, batch 2048, bag length uniform in [0, 40].
"""

from dataclasses import dataclass
from typing import Any, Callable

import torch

from benchmarks.cases.ebc import SIZES, _inputs, _is_torchrec


@dataclass
class Bench:
    name: str
    setup: Callable[[], Any]
    op: Callable[[Any], Any]


def _kernel_types(lib):
    if _is_torchrec(lib):
        from torchrec.distributed.batched_embedding_kernel import BatchedFusedEmbeddingBag
        from torchrec.distributed.embedding_types import (
            EmbeddingComputeKernel,
            GroupedEmbeddingConfig,
            ShardedEmbeddingTable,
        )
        from torchrec.modules.embedding_configs import DataType, PoolingType
    else:
        from recsys_lib.distributed.batched_embedding_kernel import BatchedFusedEmbeddingBag
        from recsys_lib.distributed.embedding_types import (
            EmbeddingComputeKernel,
            GroupedEmbeddingConfig,
            ShardedEmbeddingTable,
        )
        from recsys_lib.modules.embedding_configs import PoolingType
        from recsys_lib.types import DataType
    return BatchedFusedEmbeddingBag, EmbeddingComputeKernel, GroupedEmbeddingConfig, ShardedEmbeddingTable, DataType, PoolingType


def build(lib, size_name: str) -> list:
    from fbgemm_gpu.split_embedding_configs import EmbOptimType
    from fbgemm_gpu.split_table_batched_embeddings_ops_common import EmbeddingLocation
    from fbgemm_gpu.split_table_batched_embeddings_ops_training import (
        ComputeDevice,
        SplitTableBatchedEmbeddingBagsCodegen,
    )

    from torch.distributed._shard.metadata import ShardMetadata
    from torch.distributed._shard.sharded_tensor import ShardedTensorMetadata, TensorProperties

    size = SIZES[size_name]
    Kernel, CK, Grouped, Table, DataType, PoolingType = _kernel_types(lib)
    keys = [f"f{i}" for i in range(size.tables)]
    fused_params = {"optimizer": EmbOptimType.EXACT_ROWWISE_ADAGRAD, "learning_rate": 0.01}
    # One whole-table shard on rank 0 (TorchRec's fused optimizer insists on shard metadata).
    md = ShardMetadata([0, 0], [size.rows, size.dim], "rank:0/cpu")
    gmd = ShardedTensorMetadata([md], torch.Size([size.rows, size.dim]), TensorProperties(dtype=torch.float32))
    tables = [
        Table(num_embeddings=size.rows, embedding_dim=size.dim, name=f"t{i}", feature_names=[keys[i]],
              local_rows=size.rows, local_cols=size.dim, compute_kernel=CK.FUSED, fused_params=fused_params,
              local_metadata=md, global_metadata=gmd)
        for i in range(size.tables)
    ]
    config = Grouped(data_type=DataType.FP32, pooling=PoolingType.SUM, is_weighted=False,
                     has_feature_processor=False, compute_kernel=CK.FUSED, embedding_tables=tables,
                     fused_params=fused_params)
    import torch.distributed as dist

    if not dist.is_initialized():  # a world of one: both libraries expose ShardedTensor state with a group
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    kernel = Kernel(config=config, pg=dist.group.WORLD, device=torch.device("cpu"))
    spec = (size.rows, size.dim, EmbeddingLocation.HOST, ComputeDevice.CPU)
    raw = SplitTableBatchedEmbeddingBagsCodegen([spec] * size.tables, optimizer=EmbOptimType.EXACT_ROWWISE_ADAGRAD,
                                                learning_rate=0.01)
    lengths, values = _inputs(size, False)
    grad = torch.randn(size.batch, size.tables * size.dim)

    def kjt_setup():
        return lib.KeyedJaggedTensor(keys=keys, values=values, lengths=lengths)

    def kernel_train(kjt):
        kernel(kjt).backward(grad)

    def raw_setup():
        offsets = torch.zeros(lengths.numel() + 1, dtype=torch.int64)
        offsets[1:] = lengths.cumsum(0)
        return values, offsets

    def raw_train(arg):
        raw(arg[0], arg[1]).backward(grad)

    return [Bench("kernel_fused_train", kjt_setup, kernel_train), Bench("tbe_raw_train", raw_setup, raw_train)]
