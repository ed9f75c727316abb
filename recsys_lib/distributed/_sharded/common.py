"""Parts of the sharded ``EmbeddingBagCollection`` / ``EmbeddingCollection`` body (``body.py`` composes them).

* :func:`create_sharding_infos` — plan + module tables → ``EmbeddingShardingInfo`` s per sharding type
  (plan checked: unknown tables, unplanned tables, unknown sharding types or kernels → ``ValueError``);
  fused params merged from the sharder, ``apply_optimizer_in_backward`` and the plan entry.
* :func:`create_shardings` — one strategy object per sharding type, through the registry.
* :class:`TableState` — this rank's shards of every table, for ``state_dict`` / ``load_state_dict``
  (keys of the unsharded module, ``ShardedTensor`` values placed as in the plan) and for copying the
  unsharded module's weights in.
"""

from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
from torch import nn
from torch.distributed._shard.sharded_tensor import Shard, ShardedTensor

from recsys_lib.distributed._parallel2d.placements import sharded_tensor
from recsys_lib.distributed._sharded.shard_tables import global_metadata, spec_shards
from recsys_lib.distributed.embedding_sharding import EmbeddingSharding, EmbeddingShardingInfo
from recsys_lib.distributed._sharded.table_types import EmbeddingComputeKernel
from recsys_lib.distributed.sharding.strategy import strategy_for
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.modules.embedding_configs import EmbeddingTableConfig


def check_plan(table_names: List[str], plan: Mapping[str, Any], owner: str) -> None:
    """Every table planned, every planned name a table, every entry a ``ParameterSharding``."""
    unknown = [n for n in plan if n not in table_names]
    if unknown:
        raise ValueError(f"{owner}: the plan names tables {unknown} that the module does not have; tables: {table_names}")
    missing = [n for n in table_names if n not in plan]
    if missing:
        raise ValueError(f"{owner}: tables {missing} have no entry in the plan (planned: {list(plan)})")
    for name, ps in plan.items():
        if not isinstance(ps, ParameterSharding):
            raise TypeError(f"{owner}: plan[{name!r}] must be a ParameterSharding, got {type(ps).__name__}")
        strategy_for(ps.sharding_type)  # ValueError naming the valid types
        try:
            EmbeddingComputeKernel(ps.compute_kernel)
        except ValueError:
            valid = [k.value for k in EmbeddingComputeKernel]
            raise ValueError(f"{owner}: plan[{name!r}] has unknown compute kernel {ps.compute_kernel!r}; "
                             f"expected one of {valid}") from None


def merge_fused_params(
    sharder_fused_params: Optional[Dict[str, Any]], param: torch.Tensor, ps: ParameterSharding
) -> Optional[Dict[str, Any]]:
    """Sharder ``fused_params``, then the optimizer of ``apply_optimizer_in_backward`` (wins), then plan-entry
    kernel options (``cache_params``, ``stochastic_rounding``, ``bounds_check_mode``, ``output_dtype``)."""
    fused: Dict[str, Any] = dict(sharder_fused_params or {})
    classes = getattr(param, "_optimizer_classes", None)
    if classes:
        from recsys_lib.optim._emb_opt_type import convert_optimizer_kwargs_to_fbgemm, optimizer_type_to_emb_opt_type

        if len(classes) != 1:
            raise ValueError(f"a table can have one in-backward optimizer, got {[c.__name__ for c in classes]}")
        fused["optimizer"] = optimizer_type_to_emb_opt_type(classes[0])
        fused.update(convert_optimizer_kwargs_to_fbgemm(dict(getattr(param, "_optimizer_kwargs", [{}])[0])))
    if ps.cache_params is not None:
        cp = ps.cache_params
        for key, value in (("cache_algorithm", cp.algorithm), ("cache_load_factor", cp.load_factor),
                           ("cache_reserved_memory", cp.reserved_memory), ("cache_precision", cp.precision),
                           ("prefetch_pipeline", cp.prefetch_pipeline)):
            if value is not None:
                fused[key] = value
    for key in ("stochastic_rounding", "bounds_check_mode", "output_dtype"):
        value = getattr(ps, key)
        if value is not None:
            fused[key] = value
    return fused or None


def create_sharding_infos(
    configs: List[EmbeddingTableConfig],
    params: Dict[str, torch.Tensor],
    plan: Mapping[str, ParameterSharding],
    sharder_fused_params: Optional[Dict[str, Any]],
    owner: str,
) -> Dict[str, List[EmbeddingShardingInfo]]:
    """``{sharding_type: infos}`` in order of first appearance over the tables (after :func:`check_plan`)."""
    check_plan([c.name for c in configs], plan, owner)
    out: Dict[str, List[EmbeddingShardingInfo]] = {}
    for config in configs:
        ps = plan[config.name]
        param = params[config.name]
        fused = merge_fused_params(sharder_fused_params, param, ps)
        out.setdefault(ps.sharding_type, []).append(EmbeddingShardingInfo(config, ps, param, fused))
    return out


def create_shardings(
    infos: Dict[str, List[EmbeddingShardingInfo]],
    env: ShardingEnv,
    device: torch.device,
    qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]],
    sequence: bool,
) -> Dict[str, EmbeddingSharding]:
    """One ``EmbeddingSharding`` per sharding type, built by the registry's pooled or sequence class."""
    out: Dict[str, EmbeddingSharding] = {}
    for st, st_infos in infos.items():
        strategy = strategy_for(st)
        # Sharded modules always want each feature's column shards back in column order.
        out[st] = strategy.create_for_module(sequence, st_infos, env, device, permute_embeddings=True,
                                             qcomm_codecs_registry=qcomm_codecs_registry)
    return out


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper (data-parallel lookups)."""
    while isinstance(module, nn.parallel.DistributedDataParallel):
        module = module.module
    return module


def kernels_of(lookups: nn.ModuleList) -> Iterator[nn.Module]:
    for lookup in lookups:
        yield from unwrap(lookup)._emb_modules


class TableState:
    """This rank's shards of every table (views into the kernels' weights) and the tables' global metadata.

    Args:
        configs: every table of the module, in module order.
        plan: table name → ``ParameterSharding``.
        lookups: the module's lookups (their kernels hold the shards).
        env: its process group makes sharded tables ``ShardedTensor`` s.
    """

    def __init__(
        self,
        configs: List[EmbeddingTableConfig],
        plan: Mapping[str, ParameterSharding],
        lookups: nn.ModuleList,
        env: ShardingEnv,
    ) -> None:
        self._pg = env.process_group
        self.process_group = env.process_group
        self.table_names = [c.name for c in configs]
        self.local: Dict[str, List[Tuple[Any, torch.Tensor]]] = {n: [] for n in self.table_names}
        self.global_md: Dict[str, Any] = {}
        for config in configs:
            spec = plan[config.name].sharding_spec
            self.global_md[config.name] = (
                None if spec is None or self._pg is None else global_metadata(config, spec_shards(config.name, plan[config.name]))
            )
        self.refresh(lookups)

    def refresh(self, lookups: nn.ModuleList) -> None:
        """Re-reads this rank's shards from the kernels (after their weight buffers were replaced)."""
        self.local = {n: [] for n in self.table_names}
        for kernel in kernels_of(lookups):
            for table, weight in zip(kernel.config.embedding_tables, kernel.split_embedding_weights()):
                self.local[table.name].append((table.local_metadata, weight))

    def value(self, name: str, keep_vars: bool) -> Any:
        """The state-dict value of table ``name``: a ``ShardedTensor``, or the local tensor (replicated)."""
        pieces = [(md, w if keep_vars else w.detach()) for md, w in self.local[name]]
        gmd = self.global_md[name]
        if gmd is None:
            return pieces[0][1]
        shards = [Shard(tensor=w, metadata=md) for md, w in pieces]
        return sharded_tensor(shards, gmd, self._pg)  # placements on global ranks (2-D: group ranks differ)

    def load(self, name: str, src: Any, key: str) -> None:
        """Copies ``src`` (a full tensor, or a ``ShardedTensor`` with the same shards here) into the local shards."""
        with torch.no_grad():
            for dst, piece in self.pieces(name, src, key):
                dst.copy_(piece)

    def pieces(self, name: str, src: Any, key: str) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """``(local shard, the piece of src it takes)`` for every local shard of ``name``; copies nothing
        (``ValueError`` / ``TypeError`` naming ``key`` if ``src`` lacks a piece)."""
        return [(dst, self._piece(src, md, tuple(dst.shape), key)) for md, dst in self.local[name]]

    @staticmethod
    def _piece(src: Any, md: Any, shape: Tuple[int, ...], key: str) -> torch.Tensor:
        if isinstance(src, ShardedTensor):
            for s in src.local_shards():
                if md is None or list(s.metadata.shard_offsets) == list(md.shard_offsets):
                    if tuple(s.tensor.shape) != shape:
                        break
                    return s.tensor
            where = "the whole table" if md is None else f"offsets {list(md.shard_offsets)}"
            raise ValueError(f"state_dict[{key!r}]: the ShardedTensor has no local shard at {where} with shape "
                             f"{list(shape)} (loading a differently sharded checkpoint needs resharding)")
        if not isinstance(src, torch.Tensor):
            raise TypeError(f"state_dict[{key!r}]: expected a tensor or ShardedTensor, got {type(src).__name__}")
        if md is None:
            piece = src
        else:
            (r0, c0), (nr, nc) = md.shard_offsets, md.shard_sizes
            if src.dim() != 2 or src.size(0) < r0 + nr or src.size(1) < c0 + nc:
                raise ValueError(f"state_dict[{key!r}]: shape {list(src.shape)} does not contain shard at offsets "
                                 f"{[r0, c0]} with sizes {[nr, nc]}")
            piece = src[r0:r0 + nr, c0:c0 + nc]
        if tuple(piece.shape) != shape:
            raise ValueError(f"state_dict[{key!r}]: shape {list(piece.shape)} does not match {list(shape)}")
        return piece


def drop_internal_missing_keys(internal: List[str]) -> Any:
    """A ``load_state_dict`` post hook removing kernel internals from ``missing_keys``."""
    suffixes = tuple("." + n for n in internal)
    exact = set(internal)

    def hook(module: nn.Module, incompatible_keys: Any) -> None:
        missing = incompatible_keys.missing_keys
        missing[:] = [k for k in missing if k not in exact and not k.endswith(suffixes)]

    return hook


class TableHolder(nn.Module):
    """Placeholder under ``embedding_bags.<table>`` / ``embeddings.<table>`` (TorchRec's attribute layout).
    ``weight`` gives the table's current value; loading is done by the sharded module."""

    def __init__(self, state: TableState, name: str) -> None:
        super().__init__()
        self._state_ref = [state]  # a list: keep the state out of nn.Module attribute handling
        self._name = name

    @property
    def weight(self) -> Any:
        return self._state_ref[0].value(self._name, keep_vars=True)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        pass
