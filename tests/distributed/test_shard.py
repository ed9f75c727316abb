"""``shard`` helpers that need no process group (the multi-rank paths are in ``test_model_parallel.py``)."""

import pytest
import torch
from torch import nn

from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder
from recsys_lib.distributed.shard import round_robin_plan, shard_modules
from recsys_lib.distributed.types import ShardingEnv, ShardingPlan
from recsys_lib.modules.embedding_configs import PoolingType
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from tests.distributed._sharding_helpers import ebc_tables


class _Two(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = EmbeddingBagCollection(ebc_tables(PoolingType.SUM)[:3])
        self.b = EmbeddingBagCollection(ebc_tables(PoolingType.SUM)[3:])


def test_round_robin_plan_places_whole_tables_in_turn() -> None:
    plan = round_robin_plan(_Two(), [EmbeddingBagCollectionSharder()], ShardingEnv.from_local(2, 0),
                            torch.device("cpu"))
    assert list(plan.plan) == ["a", "b"]
    placed = {(fqn, t): (ps.sharding_type, ps.compute_kernel, ps.ranks) for fqn, mp in plan.plan.items()
              for t, ps in mp.items()}
    assert placed == {
        ("a", "t0"): ("table_wise", "fused", [0]), ("a", "t1"): ("table_wise", "fused", [1]),
        ("a", "t2"): ("table_wise", "fused", [0]), ("b", "t3"): ("table_wise", "fused", [1]),
    }


def test_shard_modules_rejects_unknown_submodules() -> None:
    with pytest.raises(ValueError, match=r"\['c'\]"):
        shard_modules(_Two(), ShardingEnv.from_local(1, 0), torch.device("cpu"), ShardingPlan({"c": {}}),
                      [EmbeddingBagCollectionSharder()])
