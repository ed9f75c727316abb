"""TorchRec's per-strategy names: ``Base*EmbeddingSharding`` (user subclasses), ``GridPooledEmbeddingDist``,
``rw_sharding.get_embedding_shard_metadata`` / ``convert_tensor`` and ``SequenceShardingContext``.

References: hand-computed placements and offsets, plain torch for the grid output dist (gloo, W=2).
"""

import pytest
import torch
import torch.distributed as dist
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec

from recsys_lib.distributed.embedding_sharding import EmbeddingShardingContext, EmbeddingShardingInfo
from recsys_lib.distributed.sharding.cw_sharding import BaseCwEmbeddingSharding, CwPooledEmbeddingSharding
from recsys_lib.distributed.sharding.dp_sharding import BaseDpEmbeddingSharding, DpSequenceEmbeddingSharding
from recsys_lib.distributed.sharding.grid_sharding import BaseGridEmbeddingSharding, GridPooledEmbeddingDist
from recsys_lib.distributed.sharding.rw_sharding import (
    BaseRwEmbeddingSharding,
    RwSequenceEmbeddingSharding,
    convert_tensor,
    get_embedding_shard_metadata,
)
from recsys_lib.distributed.sharding.rw_sharding import layout
from recsys_lib.distributed.sharding.rw_sharding.placement import row_wise_placement
from recsys_lib.distributed.sharding.sequence_sharding import SequenceShardingContext
from recsys_lib.distributed.sharding.tw_sharding import (
    BaseTwEmbeddingSharding,
    TwPooledEmbeddingDist,
    TwPooledEmbeddingSharding,
    TwSparseFeaturesDist,
)
from recsys_lib.distributed.sharding.twcw_sharding import TwCwPooledEmbeddingSharding
from recsys_lib.distributed.sharding.twrw_sharding import BaseTwRwEmbeddingSharding, TwRwPooledEmbeddingSharding
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.distributed.types import ParameterSharding, ShardingEnv
from recsys_lib.modules.embedding_configs import EmbeddingTableConfig
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def _info(name, rows, dim, sharding_type, shards, features=1):
    """``shards``: (rank, row offset, rows) per shard, full width."""
    feats = [f"{name}_f{i}" for i in range(features)]
    cfg = EmbeddingTableConfig(num_embeddings=rows, embedding_dim=dim, name=name, feature_names=feats,
                               embedding_names=feats)
    spec = EnumerableShardingSpec([ShardMetadata([o, 0], [n, dim], f"rank:{r}/cpu") for r, o, n in shards])
    ps = ParameterSharding(sharding_type, "dense", ranks=[r for r, _, _ in shards], sharding_spec=spec)
    return EmbeddingShardingInfo(cfg, ps, torch.empty(rows, dim))


def test_strategy_classes_are_subclasses_of_their_bases():
    assert issubclass(TwPooledEmbeddingSharding, BaseTwEmbeddingSharding)
    assert issubclass(CwPooledEmbeddingSharding, BaseCwEmbeddingSharding)
    assert issubclass(TwCwPooledEmbeddingSharding, BaseTwEmbeddingSharding)  # via the column-wise base
    assert issubclass(RwSequenceEmbeddingSharding, BaseRwEmbeddingSharding)
    assert issubclass(DpSequenceEmbeddingSharding, BaseDpEmbeddingSharding)
    assert issubclass(TwRwPooledEmbeddingSharding, BaseTwRwEmbeddingSharding)
    assert not issubclass(TwPooledEmbeddingSharding, BaseRwEmbeddingSharding)
    assert BaseGridEmbeddingSharding.__abstractmethods__ == {"create_input_dist", "create_lookup", "create_output_dist"}


def test_embedding_shard_metadata_even_and_uneven():
    sizes, offsets = layout.shard_sizes_and_offsets(10, 4, 4, 4)
    t0 = _info("t0", 10, 4, "row_wise", [(r, o[0], s[0]) for r, (s, o) in enumerate(zip(sizes, offsets))], 2)
    per_rank = [row_wise_placement([t0], world_size=4, rank=r).local_grouped_configs for r in range(4)]
    assert get_embedding_shard_metadata(per_rank) == ([[0, 3, 6, 9, 10], [0, 3, 6, 9, 10]], True)
    t1 = _info("t1", 10, 4, "row_wise", [(0, 0, 4), (1, 4, 6)])  # 4 + 6 rows: not ceil(10 / 2) each
    per_rank = [row_wise_placement([t1], world_size=2, rank=r).local_grouped_configs for r in range(2)]
    assert get_embedding_shard_metadata(per_rank) == ([[0, 4, 10]], False)


def test_convert_tensor_and_sequence_context():
    kjt = KeyedJaggedTensor(keys=["a"], values=torch.tensor([1, 2], dtype=torch.int32), lengths=torch.tensor([2]))
    out = convert_tensor(torch.tensor([3.0, 4.0]), kjt)
    assert out.dtype == torch.int32 and out.tolist() == [3, 4]
    assert convert_tensor(None, kjt) is None
    ctx = SequenceShardingContext(batch_size_per_rank=[2, 3], input_splits=[1, 4], output_splits=[2, 2])
    assert isinstance(ctx, EmbeddingShardingContext)
    assert (ctx.batch_size_per_rank, ctx.input_splits, ctx.output_splits) == ([2, 3], [1, 4], [2, 2])
    assert ctx.sparse_features_recat is None and SequenceShardingContext().batch_size_per_rank == []


class _MyTw(BaseTwEmbeddingSharding):
    """What a TorchRec user writes: only the factories; placement queries come from the base."""

    def create_input_dist(self, device=None):
        return TwSparseFeaturesDist(self._pg, self.features_per_rank())

    def create_lookup(self, device=None, fused_params=None, feature_processor=None):
        raise AssertionError("not used")

    def create_output_dist(self, device=None):
        dims = self._inner._placement.embedding_dims_per_rank()
        return TwPooledEmbeddingDist(self._pg, [sum(d) for d in dims], dims)


def _user_subclass_and_grid_dist(rank, world):
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    infos = [_info("a", 5, 3, "table_wise", [(0, 0, 5)], 2), _info("b", 4, 2, "table_wise", [(1, 0, 4)])]
    s = _MyTw(infos, env)
    assert s.feature_names() == ["a_f0", "a_f1", "b_f0"] and s.features_per_rank() == [2, 1]
    assert s.embedding_dims() == [3, 3, 2] and s._rank == rank and s._world_size == world
    with pytest.raises(TypeError):
        BaseTwEmbeddingSharding(infos, env)
    # output dist built from the base's queries: [ΣB, D_me] → [B_me, ΣD]
    B = [2, 1]
    mine = torch.full((sum(B), [6, 2][rank]), float(rank + 1))
    out = s.create_output_dist()(mine, EmbeddingShardingContext(batch_size_per_rank=B)).wait()
    assert out.shape == (B[rank], 8) and out[:, :6].eq(1).all() and out[:, 6:].eq(2).all()

    # grid dist with one rank per host: the cross-host all-to-all of each host's column block
    intra, cross = env.intra_and_cross_node_pg()
    dims = [[3, 1], [2]]  # host h's feature widths
    gdist = GridPooledEmbeddingDist(rank, cross, intra, [4, 2], dims)
    local = torch.arange(sum(B) * sum(dims[rank]), dtype=torch.float32).view(sum(B), -1) + 100 * rank
    got = gdist(local, EmbeddingShardingContext(batch_size_per_rank=B)).wait()
    lo = sum(B[:rank])
    blocks = [torch.arange(sum(B) * sum(dims[h]), dtype=torch.float32).view(sum(B), -1) + 100 * h for h in range(2)]
    torch.testing.assert_close(got, torch.cat([blk[lo:lo + B[rank]] for blk in blocks], dim=1))
    with pytest.raises(ValueError, match="dim_sum_per_node"):
        GridPooledEmbeddingDist(rank, cross, intra, [5, 2], dims)


@pytest.mark.dist
def test_user_subclass_and_grid_dist_gloo():
    run_multiprocess(_user_subclass_and_grid_dist, 2, local_world_size=1)
