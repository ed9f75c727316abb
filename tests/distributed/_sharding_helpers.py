"""Shared pieces of the sharded-module tests: plans built by hand, deterministic models and batches,
and the unsharded reference (plain modules on the global batch)."""

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec

from recsys_lib.distributed.types import ParameterSharding
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig, PoolingType
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def param_sharding(
    sharding_type: str, rows: int, cols: int, ranks: Sequence[int], kernel: Optional[str] = None,
    widths: Optional[Sequence[int]] = None,
) -> ParameterSharding:
    """A plan entry: dp (no spec), table_wise (one shard), column-wise families (even or given widths)."""
    if sharding_type == "data_parallel":
        return ParameterSharding("data_parallel", kernel or "dense", ranks=list(ranks))
    if widths is None:
        widths = [cols // len(ranks)] * len(ranks)
    shards, col = [], 0
    for r, w in zip(ranks, widths):
        shards.append(ShardMetadata([0, col], [rows, w], f"rank:{r}/cpu"))
        col += w
    return ParameterSharding(sharding_type, kernel or "fused", ranks=list(ranks),
                             sharding_spec=EnumerableShardingSpec(shards))


def with_compute_kernel(gen, compute_kernel: str):
    """A parameter-sharding generator (``sharding_plan.table_row_wise(...)`` etc.) with its kernel replaced."""

    def wrapped(*args, **kwargs) -> ParameterSharding:
        return dataclasses.replace(gen(*args, **kwargs), compute_kernel=compute_kernel)

    return wrapped


def ebc_tables(pooling: PoolingType, dims: Sequence[int] = (8, 16, 8, 12)) -> List[EmbeddingBagConfig]:
    """Four tables; t1 reads two features; row counts differ so ids-per-feature never equals the batch."""
    rows = [11, 23, 7, 17]
    feats = [["f0"], ["f1", "f2"], ["f3"], ["f4"]]
    return [
        EmbeddingBagConfig(num_embeddings=r, embedding_dim=d, name=f"t{i}", feature_names=f, pooling=pooling)
        for i, (r, d, f) in enumerate(zip(rows, dims, feats))
    ]


def ec_tables(dim: int = 8) -> List[EmbeddingConfig]:
    rows = [11, 23, 7, 17]
    feats = [["f0"], ["f1", "f2"], ["f3"], ["f4"]]
    return [EmbeddingConfig(num_embeddings=r, embedding_dim=dim, name=f"t{i}", feature_names=f)
            for i, (r, f) in enumerate(zip(rows, feats))]


def global_batch(tables: Sequence, world_size: int, batch: int, weighted: bool, seed: int) -> List[KeyedJaggedTensor]:
    """``world_size`` per-rank KJTs (keys in a shuffled order, 0-4 ids per sample, some empty bags)."""
    g = torch.Generator().manual_seed(seed)
    rows_of: Dict[str, int] = {f: t.num_embeddings for t in tables for f in t.feature_names}
    keys = sorted(rows_of, reverse=True)  # not the module's order: the sharded module must permute
    out = []
    for _ in range(world_size):
        lengths, values = [], []
        for k in keys:
            ln = torch.randint(0, 5, (batch,), generator=g)
            lengths.append(ln)
            values.append(torch.randint(0, rows_of[k], (int(ln.sum()),), generator=g))
        v = torch.cat(values)
        w = torch.rand(v.numel(), generator=g) if weighted else None
        out.append(KeyedJaggedTensor(keys=keys, values=v, lengths=torch.cat(lengths), weights=w))
    return out


def concat_batches(kjts: List[KeyedJaggedTensor]) -> KeyedJaggedTensor:
    """The global batch: rank 0's samples, then rank 1's, ... (per key)."""
    keys = kjts[0].keys()
    lengths, values, weights = [], [], []
    for k in keys:
        for kjt in kjts:
            jt = kjt[k]
            lengths.append(jt.lengths())
            values.append(jt.values())
            if kjt.weights_or_none() is not None:
                weights.append(jt.weights())
    return KeyedJaggedTensor(keys=keys, values=torch.cat(values), lengths=torch.cat(lengths),
                             weights=torch.cat(weights) if weights else None)


def batch_slice(rank: int, batch: int) -> Tuple[int, int]:
    return rank * batch, (rank + 1) * batch


LR = 0.1
EPS = 1e-8


def rowwise_adagrad_reference(weight: torch.Tensor, grad: torch.Tensor, blocks: Sequence[Tuple[int, int]]) -> torch.Tensor:
    """FBGEMM's exact row-wise Adagrad, one step from zero state, plain torch: per column block
    (a column shard keeps its own per-row state) ``m = mean(g^2)``; ``w -= lr * g / (sqrt(m) + eps)``."""
    out = weight.clone()
    for c0, c1 in blocks:
        g = grad[:, c0:c1]
        m = (g * g).mean(dim=1, keepdim=True)
        out[:, c0:c1] -= LR * g / (m.sqrt() + EPS)
    return out


def column_blocks(ps: ParameterSharding, cols: int) -> List[Tuple[int, int]]:
    spec = ps.sharding_spec
    if spec is None:
        return [(0, cols)]
    return sorted({(md.shard_offsets[1], md.shard_offsets[1] + md.shard_sizes[1]) for md in spec.shards})


def check_local_shards(value, full: torch.Tensor, what: str, **tolerance) -> int:
    """Compares a state-dict value (ShardedTensor or replicated tensor) with the matching slices of ``full``;
    returns the number of local pieces compared."""
    from torch.distributed._shard.sharded_tensor import ShardedTensor

    if isinstance(value, ShardedTensor):
        assert tuple(value.size()) == tuple(full.shape), what
        n = 0
        for s in value.local_shards():
            (r0, c0), (nr, nc) = s.metadata.shard_offsets, s.metadata.shard_sizes
            torch.testing.assert_close(s.tensor, full[r0:r0 + nr, c0:c0 + nc], msg=lambda m: f"{what}: {m}", **tolerance)
            n += 1
        return n
    torch.testing.assert_close(value, full, msg=lambda m: f"{what}: {m}", **tolerance)
    return 1
