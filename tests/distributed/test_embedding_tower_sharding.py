"""Embedding-tower sharding on 2 gloo ranks, against the unsharded towers on the same weights.

* Two hosts of one rank: an ``EmbeddingTowerCollection`` with tower 0 on host 0 and tower 1 on host 1; each
  rank's output is its batch's rows of every tower, and one fused-SGD step (loss: the sum over all ranks)
  updates each tower's tables and interaction exactly as the unsharded collection on the global batch.
* One host of two ranks: an ``EmbeddingTower`` whose tables are table-row-wise / table-column-wise over both
  ranks; forward and one step as above.
"""

from typing import Any, Dict, List

import pytest
import torch
import torch.distributed as dist
from fbgemm_gpu.split_embedding_configs import EmbOptimType
from torch import nn

from recsys_lib.distributed.embedding_tower_sharding import (
    EmbeddingTowerCollectionSharder,
    EmbeddingTowerSharder,
    ShardedEmbeddingTower,
    ShardedEmbeddingTowerCollection,
)
from recsys_lib.distributed.sharding_plan import construct_module_sharding_plan, table_row_wise
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.distributed.types import ShardingEnv
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.modules.embedding_tower import EmbeddingTower, EmbeddingTowerCollection
from tests.distributed._sharding_helpers import concat_batches, global_batch, param_sharding

LR = 0.1
B = 3


class Interaction(nn.Module):
    def __init__(self, din: int, dout: int) -> None:
        super().__init__()
        self.lin = nn.Linear(din, dout)

    def forward(self, kt: Any) -> torch.Tensor:
        return torch.relu(self.lin(kt.values()))


def tower(tables: List[EmbeddingBagConfig], dout: int) -> EmbeddingTower:
    ebc = EmbeddingBagCollection(tables)
    return EmbeddingTower(ebc, Interaction(sum(t.embedding_dim for t in tables), dout))


def tables(first: int, count: int) -> List[EmbeddingBagConfig]:
    rows = [11, 23, 7, 17]
    return [EmbeddingBagConfig(num_embeddings=rows[i], embedding_dim=8, name=f"t{i}", feature_names=[f"f{i}"])
            for i in range(first, first + count)]


def table_column_wise(ranks: List[int]) -> Any:
    """Column halves on ``ranks`` of one host (no helper in ``sharding_plan``, as in TorchRec)."""
    def gen(param: torch.Tensor, local_size: int, world_size: int, device_type: str, sharder: Any) -> Any:
        return param_sharding("table_column_wise", param.shape[0], param.shape[1], ranks)
    return gen


def _check_step(sharded: nn.Module, ref: nn.Module, kjts: List[Any], rank: int, prefix_map: Dict[str, str]) -> int:
    """Forward on this rank's batch, one step (fused SGD for tables, plain SGD for interactions), then every
    value this rank holds equals the unsharded module after the same step on the global batch."""
    out = sharded(kjts[rank]).wait()
    expected = ref(kjts[rank])
    torch.testing.assert_close(out, expected, msg=lambda m: f"forward: {m}")
    out.sum().backward()
    with torch.no_grad():
        for _, p in sharded.named_parameters():
            if p.grad is not None:
                p -= LR * p.grad
    # The output all-to-all divides gradients by the number of ranks (as TorchRec's): the job's loss is the
    # mean over ranks of their sums.
    (ref(concat_batches(kjts)).sum() / dist.get_world_size()).backward()
    with torch.no_grad():
        for p in ref.parameters():
            p -= LR * p.grad
    ref_sd = ref.state_dict()
    checked = 0
    for key, value in sharded.state_dict().items():
        want = ref_sd[prefix_map.get(key, key)]
        if hasattr(value, "local_shards"):
            for s in value.local_shards():
                (r0, c0), (nr, nc) = s.metadata.shard_offsets, s.metadata.shard_sizes
                torch.testing.assert_close(s.tensor, want[r0:r0 + nr, c0:c0 + nc], msg=lambda m: f"{key}: {m}")
                checked += 1
        else:
            torch.testing.assert_close(value, want, msg=lambda m: f"{key}: {m}")
            checked += 1
    return checked


def _two_hosts(rank: int, world_size: int) -> Dict[str, Any]:
    torch.manual_seed(0)
    coll = EmbeddingTowerCollection([tower(tables(0, 2), 3), tower(tables(2, 2), 2)])
    ref = EmbeddingTowerCollection([tower(tables(0, 2), 3), tower(tables(2, 2), 2)])
    ref.load_state_dict(coll.state_dict())
    sharder = EmbeddingTowerCollectionSharder(fused_params={"optimizer": EmbOptimType.EXACT_SGD, "learning_rate": LR})
    gens = {f"t{i}": table_row_wise(i // 2) for i in range(4)}
    plan = construct_module_sharding_plan(coll, gens, sharder=sharder, world_size=2, local_size=1, device_type="cpu")
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    sharded = sharder.shard(coll, plan, env, torch.device("cpu"))
    assert isinstance(sharded, ShardedEmbeddingTowerCollection)
    assert list(sharded.embeddings) == [str(rank)]  # tower i on host i
    kjts = global_batch(tables(0, 4), 2, B, weighted=False, seed=5)
    checked = _check_step(sharded, ref, kjts, rank, {})
    return {"keys": sorted(sharded.state_dict()), "checked": checked}


def _one_host(rank: int, world_size: int) -> Dict[str, Any]:
    torch.manual_seed(0)
    t = tower(tables(0, 3), 4)
    ref = tower(tables(0, 3), 4)
    ref.load_state_dict(t.state_dict())
    sharder = EmbeddingTowerSharder(fused_params={"optimizer": EmbOptimType.EXACT_SGD, "learning_rate": LR})
    gens = {"t0": table_row_wise(0), "t1": table_column_wise([0, 1]),
            "t2": table_row_wise(0)}
    plan = construct_module_sharding_plan(t, gens, sharder=sharder, world_size=2, local_size=2, device_type="cpu")
    sharded = sharder.shard(t, plan, ShardingEnv.from_process_group(dist.group.WORLD), torch.device("cpu"))
    assert isinstance(sharded, ShardedEmbeddingTower)
    kjts = global_batch(tables(0, 3), 2, B, weighted=False, seed=6)
    # On one host the input and output all-to-alls are within a rank; the interaction's DDP and the row-wise
    # reduce-scatter average over the host's 2 ranks: the same "mean over ranks" loss as above.
    _check_step(sharded, ref, kjts, rank, {})
    return {"keys": sorted(sharded.state_dict())}


@pytest.mark.dist
def test_tower_collection_two_hosts_equals_unsharded() -> None:
    results = run_multiprocess(_two_hosts, 2, local_world_size=1, timeout_s=180)
    assert results[0]["keys"] == ["towers.0.embedding.embedding_bags.t0.weight",
                                  "towers.0.embedding.embedding_bags.t1.weight",
                                  "towers.0.interaction.lin.bias", "towers.0.interaction.lin.weight"]
    assert results[1]["keys"][0].startswith("towers.1.embedding")
    assert all(r["checked"] == 4 for r in results)


@pytest.mark.dist
def test_tower_on_one_host_two_ranks_equals_unsharded() -> None:
    results = run_multiprocess(_one_host, 2, local_world_size=2, timeout_s=180)
    assert results[0]["keys"] == results[1]["keys"] == [
        "embedding.embedding_bags.t0.weight", "embedding.embedding_bags.t1.weight",
        "embedding.embedding_bags.t2.weight", "interaction.lin.bias", "interaction.lin.weight"]
