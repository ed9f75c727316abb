"""What sharded ``EmbeddingBagCollection`` and ``EmbeddingCollection`` share, written once.

* :func:`create_sharding_infos` — plan + module tables → ``EmbeddingShardingInfo`` s per sharding type
  (plan checked: unknown tables, unplanned tables, unknown sharding types or kernels → ``ValueError``);
  fused params merged from the sharder, ``apply_optimizer_in_backward`` and the plan entry.
* :func:`create_shardings` — one strategy object per sharding type, through the registry.
* :class:`ShardingRouter` — permutes an input KJT into sharding order and splits it per sharding.
* :class:`TableState` — this rank's shards of every table, for ``state_dict`` / ``load_state_dict``
  (keys of the unsharded module, ``ShardedTensor`` values placed as in the plan) and for copying the
  unsharded module's weights in.
"""

from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
from torch import nn
from torch.distributed._shard.sharded_tensor import Shard, ShardedTensor

from recsys_lib.distributed._sharded.input_checks import fail_on_every_rank, input_error
from recsys_lib.distributed._sharded.shard_tables import global_metadata, spec_shards
from recsys_lib.distributed.embedding_sharding import EmbeddingSharding, EmbeddingShardingInfo
from recsys_lib.distributed._sharded.table_types import EmbeddingComputeKernel
from recsys_lib.distributed.sharding.strategy import strategy_for
from recsys_lib.distributed.types import ParameterSharding, QuantizedCommCodecs, ShardingEnv
from recsys_lib.modules.embedding_configs import EmbeddingTableConfig, PoolingType
from recsys_lib.modules.embedding_modules import get_embedding_names_by_table
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


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
        make = strategy.create_sequence if sequence else strategy.create_pooled
        out[st] = make(st_infos, env, device=device, qcomm_codecs_registry=qcomm_codecs_registry)
    return out


class ShardingRouter:
    """Puts an input KJT's features into sharding order (each sharding's ``feature_names()``, concatenated;
    a feature may repeat, e.g. once per column shard) and splits it per sharding."""

    def __init__(self, shardings: List[EmbeddingSharding], owner: str) -> None:
        self._owner = owner
        self.feature_names: List[str] = [f for s in shardings for f in s.feature_names()]
        self.feature_splits: List[int] = [len(s.feature_names()) for s in shardings]
        self._cache: Dict[Tuple[str, ...], Tuple[List[int], torch.Tensor]] = {}

    def _order(self, keys: List[str]) -> Tuple[List[int], torch.Tensor]:
        key = tuple(keys)
        if key not in self._cache:
            index = {k: i for i, k in enumerate(keys)}
            missing = sorted({f for f in self.feature_names if f not in index})
            if missing:
                raise ValueError(f"{self._owner}: input KJT lacks features {missing}; its keys are {keys}")
            order = [index[f] for f in self.feature_names]
            self._cache[key] = (order, torch.tensor(order, dtype=torch.int64))
        return self._cache[key]

    def split(self, features: KeyedJaggedTensor) -> List[KeyedJaggedTensor]:
        order, order_t = self._order(features.keys())
        if order != list(range(len(features.keys()))):
            features = features.permute(order, order_t.to(features.device()))
        return features.split(self.feature_splits)


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
        self.table_names = [c.name for c in configs]
        self.local: Dict[str, List[Tuple[Any, torch.Tensor]]] = {n: [] for n in self.table_names}
        self.global_md: Dict[str, Any] = {}
        for config in configs:
            spec = plan[config.name].sharding_spec
            self.global_md[config.name] = (
                None if spec is None or self._pg is None else global_metadata(config, spec_shards(config.name, plan[config.name]))
            )
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
        return ShardedTensor._init_from_local_shards_and_global_metadata(shards, gmd, process_group=self._pg)

    def load(self, name: str, src: Any, key: str) -> None:
        """Copies ``src`` (a full tensor, or a ``ShardedTensor`` with the same shards here) into the local shards."""
        with torch.no_grad():
            for md, dst in self.local[name]:
                dst.copy_(self._piece(src, md, tuple(dst.shape), key))

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


def internal_state_names(module: nn.Module, children: List[str]) -> List[str]:
    """Parameter and buffer names (relative to ``module``) inside ``children``: kernel internals that the
    sharded module's own state-dict entries replace."""
    names: List[str] = []
    for child in children:
        sub = getattr(module, child)
        for n, _ in nn.Module.named_parameters(sub, prefix=child):
            names.append(n)
        for n, _ in nn.Module.named_buffers(sub, prefix=child):
            names.append(n)
    return names


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


# ---- the sharded module's shared body (ShardedEmbeddingBagCollection / ShardedEmbeddingCollection call these) ----

_INTERNAL_CHILDREN = ["_input_dists", "_lookups", "_output_dists"]


def sharded_table_configs(
    tables: List[Any], pooling: Optional[PoolingType], is_weighted: bool
) -> List[EmbeddingTableConfig]:
    """``EmbeddingTableConfig`` s of a module's table configs with their output names (``pooling=None``
    keeps each table's own pooling)."""
    names = get_embedding_names_by_table(tables)
    return [
        EmbeddingTableConfig(
            num_embeddings=t.num_embeddings, embedding_dim=t.embedding_dim, name=t.name, data_type=t.data_type,
            feature_names=list(t.feature_names), weight_init_max=t.weight_init_max, weight_init_min=t.weight_init_min,
            init_fn=t.init_fn, need_pos=t.need_pos, pooling=t.pooling if pooling is None else pooling,
            is_weighted=is_weighted, has_feature_processor=False, embedding_names=list(n),
        )
        for t, n in zip(tables, names)
    ]


def setup_sharded_module(
    owner: nn.Module,
    configs: List[EmbeddingTableConfig],
    params: Dict[str, torch.Tensor],
    plan: Mapping[str, ParameterSharding],
    env: ShardingEnv,
    device: torch.device,
    fused_params: Optional[Dict[str, Any]],
    qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]],
    sequence: bool,
    weights_attr: str,
) -> None:
    """Builds shardings, dists, lookups and table state on ``owner`` and copies ``params`` in (unless meta).

    Sets ``owner._sharding_type_to_sharding``, ``_router``, ``_input_dists``, ``_lookups``, ``_output_dists``,
    ``_table_state``, ``_weights_attr`` and the ``<weights_attr>`` ModuleDict of :class:`TableHolder` s.
    """
    name = type(owner).__name__
    infos = create_sharding_infos(configs, params, plan, fused_params, name)
    shardings = create_shardings(infos, env, device, qcomm_codecs_registry, sequence)
    owner._sharding_type_to_sharding = shardings
    owner._router = ShardingRouter(list(shardings.values()), name)
    owner._rows_of = {}
    for c in configs:
        for f in c.feature_names:
            owner._rows_of[f] = min(c.num_embeddings, owner._rows_of.get(f, c.num_embeddings))
    owner._input_dists = nn.ModuleList([s.create_input_dist(device) for s in shardings.values()])
    # Kernels initialise their shards with the global RNG, differently per rank; keep the caller's RNG stream
    # untouched so code after sharding draws the same numbers on every rank.
    with torch.random.fork_rng(devices=[]):
        owner._lookups = nn.ModuleList([s.create_lookup(device) for s in shardings.values()])
    owner._output_dists = nn.ModuleList([s.create_output_dist(device) for s in shardings.values()])
    # The module checks every input id against its table once, before any input dist (``sharded_input_dist``):
    # the row-split input dists and the kernels need not repeat that pass.
    for m in list(owner._input_dists.modules()) + list(owner._lookups.modules()):
        if hasattr(m, "_check_ids"):
            m._check_ids = False
    state = TableState(configs, plan, owner._lookups, env)
    owner._table_state = state
    owner._weights_attr = weights_attr
    setattr(owner, weights_attr, nn.ModuleDict({c.name: TableHolder(state, c.name) for c in configs}))
    for c in configs:
        p = params[c.name]
        if p.device.type != "meta":
            state.load(c.name, p.detach().to(device), f"{weights_attr}.{c.name}.weight")
    owner.register_load_state_dict_post_hook(
        drop_internal_missing_keys(internal_state_names(owner, _INTERNAL_CHILDREN))
    )


def _key(owner: nn.Module, prefix: str, table: str) -> str:
    return f"{prefix}{owner._weights_attr}.{table}.weight"


def sharded_state_dict(
    owner: nn.Module, destination: Optional[Dict[str, Any]], prefix: str, keep_vars: bool
) -> Dict[str, Any]:
    """``{prefix + "<weights_attr>.<table>.weight": ShardedTensor or tensor}`` in table order."""
    if destination is None:
        destination = {}
    state: TableState = owner._table_state
    for table in state.table_names:
        destination[_key(owner, prefix, table)] = state.value(table, keep_vars)
    return destination


def sharded_load_from_state_dict(
    owner: nn.Module, state_dict: Mapping[str, Any], prefix: str, strict: bool,
    missing_keys: List[str], unexpected_keys: List[str],
) -> None:
    """Copies this module's table entries in; other keys under ``prefix`` are unexpected."""
    state: TableState = owner._table_state
    own = {_key(owner, prefix, t): t for t in state.table_names}
    for key, table in own.items():
        if key in state_dict:
            state.load(table, state_dict[key], key)
        elif strict:
            missing_keys.append(key)
    if strict:
        unexpected_keys.extend(k for k in state_dict if k.startswith(prefix) and k not in own)


def sharded_named_parameters(owner: nn.Module, prefix: str, recurse: bool) -> Iterator[Tuple[str, nn.Parameter]]:
    """The kernels' parameters under the unsharded names (``<weights_attr>.<table>.weight``)."""
    if not recurse:
        return
    base = f"{prefix}.{owner._weights_attr}" if prefix else owner._weights_attr
    for lookup in owner._lookups:
        for name, param in unwrap(lookup).named_parameters():
            yield f"{base}.{name}", param


def sharded_fused_optimizer(owner: nn.Module) -> Any:
    """``CombinedOptimizer`` of the fused kernels' optimizers, keyed ``<weights_attr>.<table>.weight``."""
    from recsys_lib.optim.fused import FusedOptimizerModule
    from recsys_lib.optim.keyed import CombinedOptimizer

    optims = [(owner._weights_attr, k.fused_optimizer) for k in kernels_of(owner._lookups)
              if isinstance(k, FusedOptimizerModule)]
    return CombinedOptimizer(optims)


def sharded_input_dist(
    owner: nn.Module, ctx: Any, features: KeyedJaggedTensor, sequence: bool, weighted: bool = False,
    pooled: bool = False,
) -> Any:
    """Checks ``features`` (on error: raises on every rank, see ``_input_checks``), routes them per sharding and
    starts every sharding's input dist (split sizes first)."""
    from recsys_lib.distributed.embedding_sharding import EmbeddingShardingContext, KJTListSplitsAwaitable

    error = input_error(type(owner).__name__, features, owner._router.feature_names, owner._rows_of, weighted, pooled)
    if error is not None:
        fail_on_every_rank(owner._input_dists, error)
    vbe = features.variable_stride_per_key()
    awaitables = []
    for features_i, dist in zip(owner._router.split(features), owner._input_dists):
        sctx = EmbeddingShardingContext(variable_batch_per_feature=vbe)
        if vbe:
            sctx.batch_size_per_feature_pre_a2a = features_i.stride_per_key()
        if sequence:
            sctx.length_per_key_before_input_dist = features_i.length_per_key()
        ctx.sharding_contexts.append(sctx)
        awaitable = dist(features_i)
        sctx.input_dist_facts = getattr(awaitable, "input_dist_facts", None)
        awaitables.append(awaitable)
    return KJTListSplitsAwaitable(awaitables, ctx)


class ShardedTablesMixin:
    """State, parameters and optimizer of a sharded EBC/EC, written once for both (flat mix-in).

    Put it first among the bases so these override ``nn.Module``'s; the table bookkeeping comes from
    :func:`setup_sharded_module`.
    """

    _sharding_type_to_sharding: Dict[str, EmbeddingSharding]

    def state_dict(  # type: ignore[override]
        self, destination: Optional[Dict[str, Any]] = None, prefix: str = "", keep_vars: bool = False
    ) -> Dict[str, Any]:
        return sharded_state_dict(self, destination, prefix, keep_vars)  # type: ignore[arg-type]

    def _load_from_state_dict(
        self, state_dict: Mapping[str, Any], prefix: str, local_metadata: Any, strict: bool,
        missing_keys: List[str], unexpected_keys: List[str], error_msgs: List[str],
    ) -> None:
        sharded_load_from_state_dict(self, state_dict, prefix, strict, missing_keys, unexpected_keys)  # type: ignore[arg-type]

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, nn.Parameter]]:
        yield from sharded_named_parameters(self, prefix, recurse)  # type: ignore[arg-type]

    def sharded_parameter_names(self, prefix: str = "") -> Iterator[str]:
        for name, _ in self.named_parameters(prefix=prefix):
            yield name

    @property
    def fused_optimizer(self) -> Any:
        return sharded_fused_optimizer(self)  # type: ignore[arg-type]

    @property
    def shardings(self) -> Dict[str, Any]:
        return dict(self._sharding_type_to_sharding)
