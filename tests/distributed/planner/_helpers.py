"""Test-only sharder and models for planner tests (the real EBC sharder lives elsewhere)."""

from typing import Any, Dict, List, Sequence

import torch
from torch import nn

from recsys_lib.distributed.embedding_types import BaseEmbeddingSharder
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection


class EbcTestSharder(BaseEmbeddingSharder[EmbeddingBagCollection]):
    """Sharding types / kernels / storage of ``BaseEmbeddingSharder``; never actually shards."""

    @property
    def module_type(self) -> Any:
        return EmbeddingBagCollection

    def shardable_parameters(self, module: EmbeddingBagCollection) -> Dict[str, nn.Parameter]:
        return {name: bag.weight for name, bag in module.embedding_bags.items()}

    def shard(self, module: Any, params: Any, env: Any, device: Any = None, module_fqn: Any = None) -> Any:
        raise NotImplementedError


def make_ebc(rows: Sequence[int], dims: Sequence[int], features_per_table: int = 1) -> EmbeddingBagCollection:
    tables = [
        EmbeddingBagConfig(
            name=f"t{i}", embedding_dim=d, num_embeddings=r,
            feature_names=[f"f{i}_{j}" for j in range(features_per_table)],
        )
        for i, (r, d) in enumerate(zip(rows, dims))
    ]
    return EmbeddingBagCollection(tables=tables, device=torch.device("meta"))


class TwoTower(nn.Module):
    """A model with a dense part and an EBC one level down (``sparse.ebc``)."""

    def __init__(self, rows: List[int], dims: List[int]) -> None:
        super().__init__()
        self.sparse = nn.Module()
        self.sparse.ebc = make_ebc(rows, dims)
        self.dense = nn.Linear(16, 8)
