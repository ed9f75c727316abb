"""``ShardedEmbeddingTowerCollection``: every tower of an ``EmbeddingTowerCollection`` on its host at once (one
input all-to-all, one output all-to-all for all towers; see ``sharded.py`` for one tower).

The towers on a host are those whose tables all lie on it ("physical towers"); a tower whose tables span two
hosts is a ``ValueError``. Host ``h``'s features are its towers' features in collection order; the output has
host 0's towers' columns first.
"""

from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import torch
import torch.distributed as dist
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.distributed._core.awaitable import Awaitable, LazyAwaitable
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._sharded.module_bases import ShardedEmbeddingModule
from recsys_lib.distributed.embedding_sharding import KJTList
from recsys_lib.distributed._tower.placement import host_local_plan
from recsys_lib.distributed._tower.sharded import (
    EmbeddingTowerCollectionContext,
    _CrossHostRouting,
    _ddp,
    _embeddings_of,
    _host_layout,
    _remap_keys,
    TowerParts,
)
from recsys_lib.optim.fused import FusedOptimizerModule
from recsys_lib.optim.keyed import CombinedOptimizer, KeyedOptimizer
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def towers_per_host(tables_per_tower: List[Set[str]], plan: Dict[str, ParameterSharding], local_size: int,
                    hosts: int) -> List[List[int]]:
    """``out[h]`` = indices of the towers whose tables all lie on host ``h`` (pure)."""
    on_host: List[Set[str]] = [set() for _ in range(hosts)]
    for name, ps in plan.items():
        on_host[(ps.ranks or [0])[0] // local_size].add(name)
    for i, tables in enumerate(tables_per_tower):
        if not any(tables <= host_tables for host_tables in on_host):
            raise ValueError(f"tables of a logical tower must be on the same physical tower (host): tower {i} has "
                             f"{sorted(tables)}, hosts hold {[sorted(t) for t in on_host]}")
    out = [[i for i, tables in enumerate(tables_per_tower) if tables <= host_tables] for host_tables in on_host]
    for h, host_tables in enumerate(on_host):
        if host_tables and not out[h]:
            raise ValueError(f"Could not find any towers with features: {sorted(host_tables)}")
    return out


@public_at("recsys_lib.distributed.embedding_tower_sharding")
class ShardedEmbeddingTowerCollection(
    TowerParts,
    ShardedEmbeddingModule[KJTList, torch.Tensor, torch.Tensor, EmbeddingTowerCollectionContext], FusedOptimizerModule
):
    """An ``EmbeddingTowerCollection`` with each tower on its host (see the module docstring).

    Args:
        module: the collection. table_name_to_parameter_sharding: all towers' tables (TWRW / TWCW, one host each).
        tower_sharder: the ``EmbeddingTowerSharder`` (its ``embedding_sharder`` shards each tower's embeddings).
        env / fused_params / device / qcomm_codecs_registry: as the other sharded modules.
    """

    def __init__(
        self,
        module: nn.Module,
        table_name_to_parameter_sharding: Dict[str, ParameterSharding],
        tower_sharder: Any,
        env: ShardingEnv,
        fused_params: Optional[Dict[str, Any]] = None,
        device: Optional[torch.device] = None,
        qcomm_codecs_registry: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(qcomm_codecs_registry=qcomm_codecs_registry)
        from recsys_lib.modules.embedding_tower import tower_input_params

        intra, cross, local_size, hosts = _host_layout(env, device)
        self._device = device
        self._tower_id = dist.get_rank() // local_size
        tables = [set(tower_sharder.shardable_parameters(t)) for t in module.towers]
        per_host = towers_per_host(tables, table_name_to_parameter_sharding, local_size, hosts)
        names = [tower_sharder.embedding_feature_names(t) for t in module.towers]
        kjt_per_host = [[f for i in towers for f in names[i][0]] for towers in per_host]
        wkjt_per_host = [[f for i in towers for f in names[i][1]] for towers in per_host]
        self._routing = _CrossHostRouting(cross, kjt_per_host, wkjt_per_host, device, qcomm_codecs_registry)
        self._kjt_feature_names, self._wkjt_feature_names = self._routing.kjt_names, self._routing.wkjt_names
        self.embeddings = nn.ModuleDict()
        self.interactions = nn.ModuleDict()
        self.input_dist_params: List[Tuple[bool, bool]] = []
        local = per_host[self._tower_id]
        if local:
            intra_env = ShardingEnv(local_size, dist.get_rank(intra), intra)
            plan = host_local_plan(table_name_to_parameter_sharding, local_size)
            for i in local:
                tower = module.towers[i]
                sub_plan = {t: ps for t, ps in plan.items() if t in tables[i]}
                self.embeddings[str(i)] = tower_sharder.embedding_sharder(tower).shard(
                    tower.embedding, sub_plan, intra_env, device)
                self.input_dist_params.append(tower_input_params(tower.embedding))
                self.interactions[str(i)] = _ddp(tower.interaction, intra, device, static_graph=True)
        self._output_dists = nn.ModuleList([d for e in self.embeddings.values() for d in e._output_dists])
        renames = [(f"towers.{i}.embedding.", f"embeddings.{i}.") for i in self.embeddings]
        renames += [(f"towers.{i}.interaction.", f"interactions.{i}.module.") for i in self.interactions]
        self._register_load_state_dict_pre_hook(_remap_keys(renames))

    def create_context(self) -> EmbeddingTowerCollectionContext:
        return EmbeddingTowerCollectionContext(embedding_contexts=[])

    def input_dist(self, ctx: EmbeddingTowerCollectionContext, kjt_features: Optional[KeyedJaggedTensor] = None,
                   wkjt_features: Optional[KeyedJaggedTensor] = None) -> Awaitable[Awaitable[KJTList]]:
        return self._routing.input_dist(ctx, kjt_features, wkjt_features)

    def compute(self, ctx: EmbeddingTowerCollectionContext, dist_input: KJTList) -> torch.Tensor:
        if not self.embeddings:
            return torch.empty([self._routing.global_batch, 0], device=self._device, requires_grad=True)
        outs = [interaction(_embeddings_of(embedding, dist_input, params)) for embedding, interaction, params
                in zip(self.embeddings.values(), self.interactions.values(), self.input_dist_params)]
        return torch.cat(outs, dim=1)

    def output_dist(self, ctx: EmbeddingTowerCollectionContext, output: torch.Tensor) -> LazyAwaitable[torch.Tensor]:
        return self._routing.output_dist(output)

    def _parts(self) -> List[Tuple[str, nn.Module, nn.Module]]:
        return [(f"towers.{i}.", e, self.interactions[i]) for i, e in self.embeddings.items()]

    @property
    def fused_optimizer(self) -> KeyedOptimizer:
        return CombinedOptimizer([(f"towers.{i}.embedding", e.fused_optimizer) for i, e in self.embeddings.items()])

    @property
    def unsharded_module_type(self) -> Any:
        from recsys_lib.modules.embedding_tower import EmbeddingTowerCollection

        return EmbeddingTowerCollection
