"""Sharded embedding towers: a tower computes on the ranks of its host, for every host's batch.

Ranks form ``H`` hosts of ``L`` ranks; the *cross* group of local rank ``l`` holds rank ``l`` of every host.
A tower on host ``h``, per batch (``B`` samples per rank)::

    input dist    KJT all-to-all over the cross group: every host's features of the tower go to host h
                  (rank (h, l) receives the batches of all ranks (*, l):  H*B samples)
    compute       on host h: the tower's tables sharded row-/column-wise over its L ranks (intra group),
                  then the interaction (DDP over the intra group)            -> (H*B, D_tower)
                  elsewhere: an empty (H*B, 0) output
    output dist   pooled all-to-all over the cross group: each rank gets its B rows of every tower's output

``ShardedEmbeddingTowerCollection`` does the same for all towers at once; its output columns follow the hosts'
order (towers of host 0, then host 1, ...; within a host, the collection's order).
"""

from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
import torch.distributed as dist
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.distributed._core.awaitable import Awaitable, LazyAwaitable
from recsys_lib.distributed._core.env import NullShardedModuleContext, ShardingEnv
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._dist.kjt import KJTAllToAll
from recsys_lib.distributed._dist.pooled import PooledEmbeddingsAllToAll
from recsys_lib.distributed._sharded.module_bases import ShardedEmbeddingModule
from recsys_lib.distributed.embedding_sharding import KJTList
from recsys_lib.distributed._tower.placement import host_local_plan, tower_host
from recsys_lib.distributed.embedding_sharding import KJTListSplitsAwaitable
from recsys_lib.optim.fused import FusedOptimizerModule
from recsys_lib.optim.keyed import CombinedOptimizer, KeyedOptimizer
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor
from recsys_lib.streamable import Multistreamable


@public_at("recsys_lib.distributed.embedding_tower_sharding")
class TowerLazyAwaitable(LazyAwaitable[torch.Tensor]):
    """The tower outputs of this rank's batch, ``(B, sum of tower widths)``, once the all-to-all is done."""

    def __init__(self, awaitable: Awaitable[torch.Tensor]) -> None:
        super().__init__()
        self._awaitable = awaitable

    def _wait_impl(self) -> torch.Tensor:
        return self._awaitable.wait()


@public_at("recsys_lib.distributed.embedding_tower_sharding")
@dataclass
class EmbeddingTowerCollectionContext(Multistreamable):
    """Per-batch context of a sharded tower collection (one context per local tower's embedding module)."""

    embedding_contexts: List[NullShardedModuleContext] = field(default_factory=list)

    def record_stream(self, stream: torch.Stream) -> None:
        for ctx in self.embedding_contexts:
            ctx.record_stream(stream)


class _CrossHostRouting(nn.Module):
    """Feature order, KJT all-to-alls (unweighted / weighted) and the output all-to-all over the cross group."""

    def __init__(self, cross_pg: dist.ProcessGroup, kjt_per_host: List[List[str]], wkjt_per_host: List[List[str]],
                 device: Optional[torch.device], codecs: Optional[Dict[str, Any]]) -> None:
        super().__init__()
        self._pg = cross_pg
        self._device = device
        self._codecs = codecs
        self.kjt_names = [f for names in kjt_per_host for f in names]
        self.wkjt_names = [f for names in wkjt_per_host for f in names]
        self._kjt_dist = KJTAllToAll(cross_pg, [len(n) for n in kjt_per_host])
        self._wkjt_dist = KJTAllToAll(cross_pg, [len(n) for n in wkjt_per_host])
        self._output_dist: Optional[PooledEmbeddingsAllToAll] = None
        self.global_batch = 0

    @staticmethod
    def _ordered(kjt: KeyedJaggedTensor, names: List[str]) -> KeyedJaggedTensor:
        if kjt.keys() == names:
            return kjt
        index = {k: i for i, k in enumerate(kjt.keys())}
        missing = [n for n in names if n not in index]
        if missing:
            raise ValueError(f"sharded embedding tower: features {missing} are missing from the input keys {kjt.keys()}")
        return kjt.permute([index[n] for n in names])

    def input_dist(self, ctx: Any, kjt: Optional[KeyedJaggedTensor],
                   wkjt: Optional[KeyedJaggedTensor]) -> KJTListSplitsAwaitable:
        source = kjt if kjt is not None else wkjt
        assert source is not None
        self.global_batch = source.stride() * dist.get_world_size(self._pg)
        awaitables = []
        with torch.no_grad():
            if kjt is not None:
                awaitables.append(self._kjt_dist(self._ordered(kjt, self.kjt_names)))
            if wkjt is not None:
                awaitables.append(self._wkjt_dist(self._ordered(wkjt, self.wkjt_names)))
        return KJTListSplitsAwaitable(awaitables, ctx)

    def output_dist(self, output: torch.Tensor) -> TowerLazyAwaitable:
        if self._output_dist is None:  # widths differ per host: learnt once from the first output
            mine = torch.tensor([output.shape[1]], dtype=torch.int64)
            widths = [torch.zeros(1, dtype=torch.int64) for _ in range(dist.get_world_size(self._pg))]
            dist.all_gather(widths, mine, group=self._pg)
            codec = self._codecs.get("POOLED_EMBEDDINGS_ALL_TO_ALL") if self._codecs else None
            self._output_dist = PooledEmbeddingsAllToAll(self._pg, [int(w.item()) for w in widths], self._device,
                                                         codecs=codec)
        return TowerLazyAwaitable(self._output_dist(output))


def _feature_names_by_host(names: Tuple[List[str], List[str]], host: int, hosts: int) -> Tuple[List[List[str]], List[List[str]]]:
    return ([names[0] if h == host else [] for h in range(hosts)], [names[1] if h == host else [] for h in range(hosts)])


def _embeddings_of(embedding: nn.Module, inputs: KJTList, params: Tuple[bool, bool]) -> Any:
    unweighted, weighted = params
    if unweighted and weighted:
        return embedding(inputs[0], inputs[1])
    if weighted and len(inputs) == 2:
        return embedding(inputs[1])
    return embedding(inputs[0])


def _ddp(module: nn.Module, pg: dist.ProcessGroup, device: Optional[torch.device], static_graph: bool) -> nn.Module:
    module = module.to(device) if device is not None else module
    return nn.parallel.DistributedDataParallel(
        module, device_ids=None if device is None or device.type == "cpu" else [device], process_group=pg,
        gradient_as_bucket_view=True, broadcast_buffers=False, static_graph=static_graph,
    )


def _remap_keys(renames: List[Tuple[str, str]]) -> Any:
    """A load-state-dict pre-hook: state-dict keys ``<prefix><public>...`` read as ``<prefix><internal>...``."""

    def hook(state_dict: Dict[str, Any], prefix: str, *args: Any) -> None:
        for key in list(state_dict):
            for public, internal in renames:
                if key.startswith(prefix + public):
                    state_dict[prefix + internal + key[len(prefix + public):]] = state_dict.pop(key)
                    break

    return hook


def parts_state_dict(parts: List[Tuple[str, nn.Module, nn.Module]], destination: Dict[str, Any], prefix: str,
                     keep_vars: bool) -> Dict[str, Any]:
    """State of ``(name, sharded embedding, DDP interaction)`` parts: ``<name>embedding.*`` (every part), then
    ``<name>interaction.*`` (the interactions' own keys, without DDP's ``module.``)."""
    for name, embedding, _ in parts:
        embedding.state_dict(destination=destination, prefix=f"{prefix}{name}embedding.", keep_vars=keep_vars)
    for name, _, interaction in parts:
        interaction.module.state_dict(destination=destination, prefix=f"{prefix}{name}interaction.", keep_vars=keep_vars)
    return destination


def parts_named(parts: List[Tuple[str, nn.Module, nn.Module]], kind: str, prefix: str,
                recurse: bool) -> Iterator[Tuple[str, Any]]:
    """``named_parameters`` / ``named_buffers`` (``kind``) of the parts, keyed as :func:`parts_state_dict`."""
    for name, embedding, _ in parts:
        yield from getattr(embedding, kind)(_join(prefix, f"{name}embedding"), recurse)
    for name, _, interaction in parts:
        yield from getattr(interaction.module, kind)(_join(prefix, f"{name}interaction"), recurse)


def _host_layout(env: ShardingEnv, device: Optional[torch.device]) -> Tuple[dist.ProcessGroup, dist.ProcessGroup, int, int]:
    intra, cross = env.intra_and_cross_node_pg(device)
    if intra is None or cross is None:
        raise ValueError("sharded embedding towers need a process group (intra- and cross-host groups)")
    return intra, cross, dist.get_world_size(intra), dist.get_world_size(cross)


class TowerParts:
    """State dict and parameter walks of a sharded tower module from its ``_parts()``: ``(name, sharded embedding,
    DDP interaction)`` triples (keys as the unsharded tower's, see :func:`parts_state_dict`)."""

    def _parts(self) -> List[Tuple[str, nn.Module, nn.Module]]:
        raise NotImplementedError

    def state_dict(  # type: ignore[override]
        self, destination: Optional[Dict[str, Any]] = None, prefix: str = "", keep_vars: bool = False
    ) -> Dict[str, Any]:
        return parts_state_dict(self._parts(), {} if destination is None else destination, prefix, keep_vars)

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[Tuple[str, nn.Parameter]]:
        yield from parts_named(self._parts(), "named_parameters", prefix, recurse)

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[Tuple[str, torch.Tensor]]:
        yield from parts_named(self._parts(), "named_buffers", prefix, recurse)

    def sharded_parameter_names(self, prefix: str = "") -> Iterator[str]:
        for name, _ in self.named_parameters(prefix):
            yield name


@public_at("recsys_lib.distributed.embedding_tower_sharding")
class ShardedEmbeddingTower(
    TowerParts, ShardedEmbeddingModule[KJTList, torch.Tensor, torch.Tensor, NullShardedModuleContext], FusedOptimizerModule
):
    """One ``EmbeddingTower`` on the ranks of its host (see the module docstring).

    Args:
        module: the tower. table_name_to_parameter_sharding: its tables, TWRW / TWCW on one host.
        embedding_sharder: shards the tower's embedding module over the host.
        kjt_features / wkjt_features: the tower's unweighted / weighted features.
        env: the world (its intra- and cross-host groups are used). fused_params / device / qcomm_codecs_registry:
            as the other sharded modules.
    """

    def __init__(
        self,
        module: nn.Module,
        table_name_to_parameter_sharding: Dict[str, ParameterSharding],
        embedding_sharder: Any,
        kjt_features: List[str],
        wkjt_features: List[str],
        env: ShardingEnv,
        fused_params: Optional[Dict[str, Any]] = None,
        device: Optional[torch.device] = None,
        qcomm_codecs_registry: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(qcomm_codecs_registry=qcomm_codecs_registry)
        from recsys_lib.modules.embedding_tower import tower_input_params

        intra, cross, local_size, hosts = _host_layout(env, device)
        self._device = device
        self._tower_node = tower_host(table_name_to_parameter_sharding, local_size)
        self._active_device = dist.get_rank() // local_size == self._tower_node
        self._input_params = tower_input_params(module.embedding)
        kjt_per_host, wkjt_per_host = _feature_names_by_host((kjt_features, wkjt_features), self._tower_node, hosts)
        self._routing = _CrossHostRouting(cross, kjt_per_host, wkjt_per_host, device, qcomm_codecs_registry)
        self._kjt_feature_names, self._wkjt_feature_names = list(kjt_features), list(wkjt_features)
        self.embedding: Optional[nn.Module] = None
        self.interaction: Optional[nn.Module] = None
        if self._active_device:
            intra_env = ShardingEnv(local_size, dist.get_rank(intra), intra)
            plan = host_local_plan(table_name_to_parameter_sharding, local_size)
            self.embedding = embedding_sharder.shard(module.embedding, plan, intra_env, device)
            self.interaction = _ddp(module.interaction, intra, device, static_graph=False)
        self._output_dists = self.embedding._output_dists if self.embedding is not None else nn.ModuleList()
        self._register_load_state_dict_pre_hook(_remap_keys([("interaction.", "interaction.module.")]))

    def create_context(self) -> NullShardedModuleContext:
        return NullShardedModuleContext()

    def input_dist(self, ctx: NullShardedModuleContext, features: KeyedJaggedTensor,
                   optional_features: Optional[KeyedJaggedTensor] = None) -> Awaitable[Awaitable[KJTList]]:
        if self._kjt_feature_names and self._wkjt_feature_names:
            return self._routing.input_dist(ctx, features, optional_features)
        if self._wkjt_feature_names:
            return self._routing.input_dist(ctx, None, features)
        return self._routing.input_dist(ctx, features, None)

    def compute(self, ctx: NullShardedModuleContext, dist_input: KJTList) -> torch.Tensor:
        if self.embedding is None or self.interaction is None:
            return torch.empty([self._routing.global_batch, 0], device=self._device, requires_grad=True)
        return self.interaction(_embeddings_of(self.embedding, dist_input, self._input_params))

    def output_dist(self, ctx: NullShardedModuleContext, output: torch.Tensor) -> LazyAwaitable[torch.Tensor]:
        return self._routing.output_dist(output)

    def _parts(self) -> List[Tuple[str, nn.Module, nn.Module]]:
        if self.embedding is None or self.interaction is None:
            return []
        return [("", self.embedding, self.interaction)]

    @property
    def fused_optimizer(self) -> KeyedOptimizer:
        return self.embedding.fused_optimizer if self.embedding is not None else CombinedOptimizer([])

    @property
    def unsharded_module_type(self) -> Any:
        from recsys_lib.modules.embedding_tower import EmbeddingTower

        return EmbeddingTower


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
