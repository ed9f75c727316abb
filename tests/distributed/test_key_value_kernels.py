"""Key-value, zero-collision and Triton kernels: CPU behaviour (clear errors), and the pure parts that work
everywhere (bucket ranges, virtual-table metadata, the key-value optimizer's keyed view) against hand-computed
values."""

import pytest
import torch
import torch.distributed as dist
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharded_tensor import ShardedTensorMetadata, TensorProperties

from recsys_lib.distributed.batched_embedding_kernel import (
    KeyValueEmbedding,
    KeyValueEmbeddingBag,
    KeyValueEmbeddingFusedOptimizer,
    ShardParams,
    TritonBatchedFusedEmbeddingBag,
    ZeroCollisionEmbeddingCache,
    ZeroCollisionEmbeddingEnrichmentCache,
    ZeroCollisionKeyValueEmbedding,
    ZeroCollisionKeyValueEmbeddingBag,
)
from recsys_lib.distributed._tbe.zero_collision import sharded_local_buckets
from recsys_lib.distributed.embedding_kernel import (
    create_virtual_sharded_tensors,
    create_virtual_table_global_metadata,
    create_virtual_table_local_metadata,
)
from recsys_lib.distributed.embedding_types import EmbeddingComputeKernel
from recsys_lib.distributed.test_utils.multi_process import run_multiprocess
from tests.distributed._embedding_refs import group, table

KV = EmbeddingComputeKernel.KEY_VALUE


def _kv_config():
    return group([table("t0", 16, 8, ["f0"], KV)], KV)


@pytest.mark.parametrize("cls", [KeyValueEmbeddingBag, KeyValueEmbedding, ZeroCollisionKeyValueEmbeddingBag,
                                 ZeroCollisionKeyValueEmbedding, ZeroCollisionEmbeddingCache,
                                 ZeroCollisionEmbeddingEnrichmentCache])
def test_key_value_kernels_name_the_missing_fbgemm_store(cls):
    with pytest.raises(RuntimeError, match=r"torch\.classes\.fbgemm\.\w+.*CUDA"):
        cls(_kv_config())


def test_triton_kernel_names_cuda():
    with pytest.raises(RuntimeError, match="CUDA"):
        TritonBatchedFusedEmbeddingBag(_kv_config())


def test_sharded_local_buckets_split_extra_buckets_to_low_ranks():
    t = table("t0", 100, 8, ["f0"])
    t.total_num_buckets = 10
    got = [sharded_local_buckets([t], 4, r)[0] for r in range(4)]
    assert got == [(0, 3, 10), (3, 6, 10), (6, 8, 10), (8, 10, 10)]
    t.total_num_buckets = 7
    with pytest.raises(ValueError, match="multiple of total_num_buckets"):
        sharded_local_buckets([t], 4, 0)


def _row_wise_metadata(rows_per_rank, cols):
    shards, off = [], 0
    for r, n in enumerate(rows_per_rank):
        shards.append(ShardMetadata([off, 0], [n, cols], f"rank:{r}/cpu"))
        off += n
    return ShardedTensorMetadata(shards, torch.Size([off, cols]), TensorProperties(dtype=torch.float32))


def test_virtual_table_metadata_stacks_seen_rows_by_rank():
    md = _row_wise_metadata([8, 8, 8], 4)
    param = torch.zeros(5, 4)  # rank 1 has seen 5 ids
    create_virtual_table_global_metadata(md, 1, param, [3, 5, 2], False)
    assert [s.shard_offsets for s in md.shards_metadata] == [[0, 0], [3, 0], [8, 0]]
    assert [s.shard_sizes for s in md.shards_metadata] == [[3, 4], [5, 4], [2, 4]]
    assert md.size == torch.Size([10, 4])
    local = ShardMetadata([0, 0], [1, 1], "rank:1/cpu")
    create_virtual_table_local_metadata(local, param, 1, weight_count_per_rank=[3, 5, 2])
    assert local.shard_offsets == [3, 0] and local.shard_sizes == [5, 4]
    # param size as rows: the other ranks scale with the planned shard sizes
    md2 = _row_wise_metadata([4, 8], 4)
    create_virtual_table_global_metadata(md2, 1, torch.zeros(6, 4), None, True)
    assert [s.shard_sizes[0] for s in md2.shards_metadata] == [3, 6] and md2.size[0] == 9


def _virtual_sharded_case(rank, world_size):
    t = table("t0", 16, 4, ["f0"], EmbeddingComputeKernel.SSD_VIRTUAL_TABLE)
    t.use_virtual_table = True
    t.global_metadata = _row_wise_metadata([8, 8], 4)
    t.local_metadata = t.global_metadata.shards_metadata[rank]
    rows = [3, 5][rank]
    param = torch.full((rows, 4), float(rank))
    (st,) = create_virtual_sharded_tensors([t], [param], dist.group.WORLD, "p.", {"t0": [3, 5]})
    full = torch.zeros(8, 4) if rank == 0 else None
    st.gather(0, full)
    if rank == 0:
        torch.testing.assert_close(full, torch.cat([torch.zeros(3, 4), torch.ones(5, 4)]))
    return tuple(st.size())


def test_virtual_sharded_tensors_gather_to_the_seen_rows():
    assert run_multiprocess(_virtual_sharded_case, 2) == [(8, 4), (8, 4)]


class _FakeKeyValueTBE:
    """The accessors the key-value optimizer reads from FBGEMM's SSD TBE, over plain tensors."""

    def __init__(self, weights, states, lr):
        self.weights, self.states, self.lr = weights, states, lr

    def get_learning_rate(self):
        return self.lr

    def set_learning_rate(self, lr):
        self.lr = lr

    def get_optimizer_state(self, _):
        return self.states

    def split_embedding_weights(self, no_snapshot=True):
        return self.weights, None, None, None


def _kv_optimizer_case(rank, world_size):
    # t0 row-wise over 2 ranks (rows 0..5 | 6..9); t1 column-wise (cols 0..3 | 4..7), 3 rows.
    t0 = table("t0", 10, 8, ["f0"], KV)
    t0.global_metadata = _row_wise_metadata([6, 4], 8)
    t0.local_metadata = t0.global_metadata.shards_metadata[rank]
    t0.local_rows, t0.local_cols = [6, 4][rank], 8
    t1 = table("t1", 3, 8, ["f1"], KV)
    t1.global_metadata = ShardedTensorMetadata(
        [ShardMetadata([0, 0], [3, 4], "rank:0/cpu"), ShardMetadata([0, 4], [3, 4], "rank:1/cpu")],
        torch.Size([3, 8]), TensorProperties(dtype=torch.float32))
    t1.local_metadata = t1.global_metadata.shards_metadata[rank]
    t1.local_rows, t1.local_cols = 3, 4
    config = group([t0, t1], KV)
    w0 = torch.arange(t0.local_rows * 8, dtype=torch.float32).view(-1, 8) + 100 * rank
    w1 = torch.full((3, 4), float(rank))
    m0 = torch.arange(t0.local_rows, dtype=torch.float32) + 10 * rank
    m1 = torch.full((3,), 5.0 + rank)
    tbe = _FakeKeyValueTBE([w0, w1], [{"momentum1": m0}, {"momentum1": m1}], 0.25)
    opt = KeyValueEmbeddingFusedOptimizer(config, tbe, dist.group.WORLD)
    assert opt.param_groups[0]["lr"] == 0.25
    opt.param_groups[0]["lr"] = 0.5
    opt.step()
    assert tbe.lr == 0.5
    sd = opt.state_dict()["state"]
    mom0, mom1 = sd["t0.weight"]["t0.momentum1"], sd["t1.weight"]["t1.momentum1"]
    assert tuple(mom0.size()) == (10,) and tuple(mom1.size()) == (6,)  # CW: one row-wise state per column shard
    out0 = torch.zeros(10) if rank == 0 else None
    out1 = torch.zeros(6) if rank == 0 else None
    mom0.gather(0, out0)
    mom1.gather(0, out1)
    if rank == 0:
        torch.testing.assert_close(out0, torch.cat([torch.arange(6.0), torch.arange(4.0) + 10]))
        torch.testing.assert_close(out1, torch.tensor([5.0, 5, 5, 6, 6, 6]))
    return sorted(opt.params)


def test_key_value_optimizer_exposes_sharded_states():
    assert run_multiprocess(_kv_optimizer_case, 2) == [["t0.weight", "t1.weight"]] * 2


def test_optimizer_state_metadata_kinds():
    opt = KeyValueEmbeddingFusedOptimizer.__new__(KeyValueEmbeddingFusedOptimizer)
    md = _row_wise_metadata([6, 4], 8)
    mapping, single = opt.get_optimizer_single_value_shard_metadata_and_global_metadata(md, torch.zeros(1))
    assert single.size == torch.Size([2]) and [m.shard_offsets for m in mapping.values()] == [[0], [1]]
    mapping, point = opt.get_optimizer_pointwise_shard_metadata_and_global_metadata(md, torch.zeros(6, 8))
    assert point.size == md.size and [m.shard_sizes for m in mapping.values()] == [[6, 8], [4, 8]]
    mapping, rows = opt.get_optimizer_rowwise_shard_metadata_and_global_metadata(md, torch.zeros(6), 0)
    assert rows.size == torch.Size([10]) and [m.shard_offsets for m in mapping.values()] == [[0], [6]]
    sp = ShardParams([], [], [], md, [], [])
    assert sp.global_metadata is md
