"""Shared builders for the quantized inference-sharding tests: quantized collections, plans, batches."""

import copy
from typing import Dict

import torch

from recsys_lib import EmbeddingBagCollection, EmbeddingBagConfig, EmbeddingCollection, EmbeddingConfig
from recsys_lib import KeyedJaggedTensor, PoolingType
from recsys_lib.distributed.sharding_plan import column_wise, row_wise, table_wise
from recsys_lib.inference.modules import quantize_inference_model

KEYS = ["f0", "f1", "f2", "f3"]
# t1 reads two features; t2 is INT4 (per-table dtype); rows differ from the batch size and from each other.
BAG_TABLES = [
    EmbeddingBagConfig(num_embeddings=11, embedding_dim=8, name="t0", feature_names=["f0"]),
    EmbeddingBagConfig(num_embeddings=13, embedding_dim=16, name="t1", feature_names=["f1", "f2"],
                       pooling=PoolingType.MEAN),
    EmbeddingBagConfig(num_embeddings=9, embedding_dim=16, name="t2", feature_names=["f3"]),
]
SEQ_TABLES = [
    EmbeddingConfig(num_embeddings=11, embedding_dim=16, name="t0", feature_names=["f0"]),
    EmbeddingConfig(num_embeddings=13, embedding_dim=16, name="t1", feature_names=["f1", "f2"]),
    EmbeddingConfig(num_embeddings=9, embedding_dim=16, name="t2", feature_names=["f3"]),
]
ROWS = {"t0": 11, "t1": 13, "t2": 9}


class Holder(torch.nn.Module):
    """A model whose ``sparse`` child is the collection (quantisation and sharding swap children)."""

    def __init__(self, sparse: torch.nn.Module, pooled: bool = True) -> None:
        super().__init__()
        self.sparse = sparse
        self.pooled = pooled

    def forward(self, kjt: KeyedJaggedTensor) -> torch.Tensor:
        out = self.sparse(kjt)
        if self.pooled:
            return out.values()
        return torch.cat([out[k].values() for k in KEYS], dim=0)


def quantized(pooled: bool, weighted: bool = False, seed: int = 0) -> Holder:
    """A quantized EBC (INT8, t2 INT4) or EC (INT8) with random weights, in a ``Holder``."""
    torch.manual_seed(seed)
    if pooled:
        sparse: torch.nn.Module = EmbeddingBagCollection(copy.deepcopy(BAG_TABLES), is_weighted=weighted)
    else:
        sparse = EmbeddingCollection(copy.deepcopy(SEQ_TABLES), need_indices=True)
    return quantize_inference_model(Holder(sparse, pooled), per_table_weight_dtype={"t2": torch.quint4x2})


def batch(weighted: bool, batch_size: int = 5, seed: int = 0) -> KeyedJaggedTensor:
    """Keys out of the module's order; ids cover every row block of every table."""
    g = torch.Generator().manual_seed(seed)
    keys = ["f3", "f1", "f0", "f2"]
    lengths = torch.randint(0, 5, (len(keys) * batch_size,), generator=g)
    lengths[0] = 0  # an empty bag
    ids = torch.cat([torch.randint(0, min(ROWS[t] for t in ROWS), (int(n),), generator=g)
                     for n in lengths.view(len(keys), batch_size).sum(1)])
    weights = torch.rand(ids.numel(), generator=g) if weighted else None
    return KeyedJaggedTensor.from_lengths_sync(keys, ids, lengths, weights=weights)


def generators(sharding_type: str, world_size: int) -> Dict[str, object]:
    """Every table sharded ``sharding_type`` over ``world_size`` ranks (TW: table i on rank W-1-i)."""
    out: Dict[str, object] = {}
    for i, (t, dim) in enumerate([("t0", 8), ("t1", 16), ("t2", 16)]):
        if sharding_type == "table_wise":
            out[t] = table_wise(rank=(world_size - 1 - i) % world_size)
        elif sharding_type == "row_wise":
            out[t] = row_wise()
        else:  # blocks of at least 4 columns, on the highest ranks
            n = min(world_size, dim // 4)
            out[t] = column_wise(ranks=list(range(world_size))[world_size - n:][::-1])
    return out


def logical_plan(gens: Dict[str, object], world_size: int, sharder, pooled: bool = True) -> Dict[str, object]:
    """Plan entries in logical ``(rows, embedding_dim)`` coordinates."""
    dims = {t.name: t.embedding_dim for t in (BAG_TABLES if pooled else SEQ_TABLES)}
    return {t: g(torch.empty(ROWS[t], dims[t], device="meta"), world_size, world_size, "cpu", sharder)
            for t, g in gens.items()}


def mixed_generators() -> Dict[str, object]:
    return {"t0": table_wise(rank=1), "t1": row_wise(), "t2": column_wise(ranks=[1, 0])}
