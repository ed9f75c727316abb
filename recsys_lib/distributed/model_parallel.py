"""``DistributedModelParallel``: shard the embedding modules, DDP the rest (a thin wrapper).

``DistributedModelParallel(model, env, device, plan, sharders)``:

1. plan: the given one, else ``shard.default_plan`` (the planner's ``collective_plan``);
2. ``shard._shard_modules`` swaps every planned submodule for its sharded version, in place;
3. meta-device parameters of the rest are materialised (``init_parameters``);
4. the rest is wrapped in ``DistributedDataParallel`` (``DefaultDataParallelWrapper``), ignoring every
   parameter and buffer inside sharded modules (data-parallel tables average their gradients themselves).

Keys of ``state_dict`` / ``named_parameters`` are those of the unsharded model (no ``module.`` or
``_dmp_wrapped_module.`` prefixes); sharded tables are ``ShardedTensor`` s placed as the plan says.
``fused_optimizer`` combines the sharded modules' in-backward optimizers, keyed by the same names.

Example::

    model = DistributedModelParallel(DLRM(...), device=torch.device("cpu"))
    opt = CombinedOptimizer([model.fused_optimizer, dense_optimizer])
"""

import abc
import copy
import warnings
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Type

import torch
import torch.distributed as dist
from torch import nn

from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._core.plan import EmbeddingModuleShardingPlan, ShardingPlan
from recsys_lib.distributed._core.sharder import ModuleSharder, ShardedModule
from recsys_lib.distributed._sharded.state_checks import check_before_load
from recsys_lib.distributed._core.enums import ShardingStrategy
from recsys_lib.distributed._parallel2d.env import DMPCollectionConfig, DMPCollectionContext, ShardingEnv2D, sharding_env
from recsys_lib.distributed._parallel2d.groups import check_sizes, group_local_plan, peer_matrix, remap_plan
from recsys_lib.distributed._parallel2d.sync import average, kernels_to_sync, sync_tensors
from recsys_lib.distributed.collective_utils import create_on_rank_and_share_result
from recsys_lib.distributed.shard import _shard_modules, default_plan
from recsys_lib.distributed.model_tracker.model_delta_tracker import ModelDeltaTracker, ModelDeltaTrackerTrec
from recsys_lib.distributed.model_tracker.trackers.raw_id_tracker import RawIdTracker
from recsys_lib.distributed.model_tracker.types import (
    DeltaTrackerConfig,
    ModelTrackerConfigs,
    RawIdTrackerConfig,
    Trackers,
)
from recsys_lib.distributed.sharding_plan import get_default_sharders  # noqa: F401  (TorchRec re-export)
from recsys_lib.optim.fused import FusedOptimizerModule
from recsys_lib.optim.keyed import CombinedOptimizer, KeyedOptimizer


def get_module(module: nn.Module) -> nn.Module:
    """``module`` without ``DistributedModelParallel`` wrappers (DDP/FSDP wrappers are kept)."""
    while isinstance(module, DistributedModelParallel):
        module = module._dmp_wrapped_module
    return module


def get_unwrapped_module(module: nn.Module) -> nn.Module:
    """``module`` without DMP, DDP or FSDP wrappers."""
    while True:
        if isinstance(module, DistributedModelParallel):
            module = module._dmp_wrapped_module
        elif isinstance(module, nn.parallel.DistributedDataParallel) or type(module).__name__ == "FullyShardedDataParallel":
            module = module.module
        else:
            return module


def sharded_modules(module: nn.Module, prefix: str = "") -> Iterator[Tuple[str, ShardedModule]]:
    """``(fqn, sharded module)`` for every outermost ``ShardedModule`` in ``module``."""
    if isinstance(module, ShardedModule):
        yield prefix, module
        return
    for name, child in module.named_children():
        yield from sharded_modules(child, f"{prefix}.{name}" if prefix else name)


def _inside(name: str, prefixes: List[str]) -> bool:
    return any(p == "" or name == p or name.startswith(p + ".") for p in prefixes)


def sharded_state_names(module: nn.Module) -> List[str]:
    """Parameter and buffer names (as DDP sees them) that live inside sharded modules."""
    prefixes = [fqn for fqn, _ in sharded_modules(module)]
    names = []
    for mname, m in module.named_modules():
        if not _inside(mname, prefixes):
            continue
        for pname, _ in m.named_parameters(recurse=False):
            names.append(f"{mname}.{pname}" if mname else pname)
    names += [n for n, _ in module.named_buffers() if _inside(n, prefixes)]
    return names


class DataParallelWrapper(abc.ABC):
    """Wraps the non-sharded part of a ``DistributedModelParallel`` for data parallelism."""

    @abc.abstractmethod
    def wrap(self, dmp: "DistributedModelParallel", env: ShardingEnv, device: torch.device) -> None:
        ...


class DefaultDataParallelWrapper(DataParallelWrapper):
    """``DistributedDataParallel`` over the parameters outside sharded modules.

    Args:
        bucket_cap_mb / static_graph / find_unused_parameters: DDP options.
        allreduce_comm_precision: ``"fp16"`` or ``"bf16"`` compresses gradient all-reduces.
        params_to_ignore: further parameter names DDP leaves alone.
        ddp_kwargs: any other DDP keyword arguments.
    """

    def __init__(
        self,
        bucket_cap_mb: int = 25,
        static_graph: bool = True,
        find_unused_parameters: bool = False,
        allreduce_comm_precision: Optional[str] = None,
        params_to_ignore: Optional[List[str]] = None,
        ddp_kwargs: Optional[Dict[str, Any]] = None,
    ) -> None:
        if allreduce_comm_precision not in (None, "fp16", "bf16"):
            raise ValueError(f"allreduce_comm_precision must be None, 'fp16' or 'bf16', got {allreduce_comm_precision!r}")
        self._bucket_cap_mb = bucket_cap_mb
        self._static_graph = static_graph
        self._find_unused_parameters = find_unused_parameters
        self._allreduce_comm_precision = allreduce_comm_precision
        self._params_to_ignore = list(params_to_ignore or [])
        self._ddp_kwargs = dict(ddp_kwargs or {})

    def wrap(self, dmp: "DistributedModelParallel", env: ShardingEnv, device: torch.device) -> None:
        module = dmp._dmp_wrapped_module
        if env.process_group is None or isinstance(module, ShardedModule):
            return
        ignore = set(sharded_state_names(module)) | set(self._params_to_ignore)
        dense = [n for n, p in nn.Module.named_parameters(module) if p.requires_grad and n not in ignore]
        if not dense:
            return
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, sorted(ignore))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # broadcast_buffers' deprecation notice
            wrapped = nn.parallel.DistributedDataParallel(
                module,
                device_ids=None if device.type == "cpu" else [device],
                process_group=env.process_group,
                gradient_as_bucket_view=True,
                broadcast_buffers=False,
                static_graph=self._static_graph,
                find_unused_parameters=self._find_unused_parameters,
                bucket_cap_mb=self._bucket_cap_mb,
                **self._ddp_kwargs,
            )
        dmp._dmp_wrapped_module = wrapped
        if self._allreduce_comm_precision is not None:
            from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

            hook = default_hooks.fp16_compress_hook if self._allreduce_comm_precision == "fp16" else default_hooks.bf16_compress_hook
            dmp._dmp_wrapped_module.register_comm_hook(env.process_group, hook)


def materialize_meta(module: nn.Module, device: torch.device) -> None:
    """Meta-device parameters outside sharded modules: allocated on ``device`` and re-initialised."""
    if isinstance(module, ShardedModule):
        return
    own = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
    if any(t.is_meta for t in own):
        module.to_empty(device=device, recurse=False)
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            with torch.no_grad():
                reset()
    for child in module.children():
        materialize_meta(child, device)


class DistributedModelParallel(nn.Module, FusedOptimizerModule):
    """Shards the embedding modules of ``module`` and data-parallelises the rest (see the module docstring).

    Args:
        module: the model (may live on ``meta``).
        env: default: the initialised default process group.
        device: default cpu.
        plan: default: the planner's plan (``EmbeddingShardingPlanner.collective_plan``).
        sharders: default ``get_default_sharders()``.
        init_data_parallel: wrap the dense part in DDP now (else call ``init_data_parallel()`` later).
        init_parameters: materialise meta parameters outside sharded modules.
        data_parallel_wrapper: default ``DefaultDataParallelWrapper()``.
        model_tracker_configs: trackers to build now (``ModelTrackerConfigs``); a delta tracker is added with
            ``init_torchrec_delta_tracker``; ``raw_id_tracker_config`` builds a ``RawIdTracker`` now.
    """

    def __init__(
        self,
        module: nn.Module,
        env: Optional[ShardingEnv] = None,
        device: Optional[torch.device] = None,
        plan: Optional[ShardingPlan] = None,
        sharders: Optional[List[ModuleSharder[nn.Module]]] = None,
        init_data_parallel: bool = True,
        init_parameters: bool = True,
        data_parallel_wrapper: Optional[DataParallelWrapper] = None,
        model_tracker_configs: Optional[ModelTrackerConfigs] = None,
    ) -> None:
        super().__init__()
        if env is None:
            if not dist.is_initialized():
                raise RuntimeError("DistributedModelParallel: torch.distributed is not initialised; pass env= or "
                                   "call dist.init_process_group first")
            env = ShardingEnv.from_process_group(dist.GroupMember.WORLD)
        self._env = env
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.sharders = list(sharders) if sharders is not None else get_default_sharders()
        self._sharder_map = {s.module_type: s for s in self.sharders}
        self._data_parallel_wrapper = data_parallel_wrapper or DefaultDataParallelWrapper()
        self._ddp_wrapped = False
        self._plan: ShardingPlan = plan if plan is not None else default_plan(module, self.sharders, env, self.device)
        self._dmp_wrapped_module: nn.Module = self._shard_modules_impl(module)
        if init_parameters:
            materialize_meta(self._dmp_wrapped_module, self.device)
        if init_data_parallel:
            self.init_data_parallel()
        self._optim: KeyedOptimizer = self._init_optim()
        self.model_trackers: Dict[str, ModelDeltaTracker] = {}
        if model_tracker_configs is not None and model_tracker_configs.raw_id_tracker_config is not None:
            self.model_trackers[Trackers.RAW_ID_TRACKER.name] = self._init_raw_id_tracker(
                model_tracker_configs.raw_id_tracker_config, self._dmp_wrapped_module
            )

    def _init_raw_id_tracker(self, raw_id_tracker_config: RawIdTrackerConfig, module: nn.Module) -> RawIdTracker:
        return RawIdTracker(model=module, delete_on_read=raw_id_tracker_config.delete_on_read,
                            fqns_to_skip=raw_id_tracker_config.fqns_to_skip)

    def _shard_modules_impl(self, module: nn.Module) -> nn.Module:
        """Swaps the planned submodules of ``module`` for their sharded versions (``DMPCollection`` shards each
        on its sharding group)."""
        return _shard_modules(module, self._env, self.device, self._plan, self.sharders)

    def _init_optim(self) -> CombinedOptimizer:
        return CombinedOptimizer([
            (fqn, m.fused_optimizer) for fqn, m in sharded_modules(get_unwrapped_module(self))
            if isinstance(m, FusedOptimizerModule)
        ])

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        for tracker in self.model_trackers.values():
            tracker.step()  # batch boundaries for the trackers' per-consumer deltas
        return self._dmp_wrapped_module(*args, **kwargs)

    def init_torchrec_delta_tracker(self, delta_tracker_config: DeltaTrackerConfig) -> ModelDeltaTracker:
        """The model delta tracker, created on the first call (``model_tracker/model_delta_tracker.py``)."""
        key = Trackers.DELTA_TRACKER.name
        if key not in self.model_trackers:
            c = delta_tracker_config
            self.model_trackers[key] = ModelDeltaTrackerTrec(
                model=self._dmp_wrapped_module, consumers=c.consumers, delete_on_read=c.delete_on_read,
                auto_compact=c.auto_compact, mode=c.tracking_mode, fqns_to_skip=c.fqns_to_skip,
            )
        return self.model_trackers[key]

    def get_delta_tracker(self) -> Optional[ModelDeltaTracker]:
        """The delta tracker, or None before ``init_torchrec_delta_tracker``."""
        return self.model_trackers.get(Trackers.DELTA_TRACKER.name)

    def init_data_parallel(self) -> None:
        """Wraps the dense part with the data-parallel wrapper (once)."""
        if not self._ddp_wrapped:
            self._data_parallel_wrapper.wrap(self, self._env, self.device)
            self._ddp_wrapped = True

    @property
    def module(self) -> nn.Module:
        """The sharded model without DMP/DDP wrappers."""
        return get_unwrapped_module(self)

    @module.setter
    def module(self, value: nn.Module) -> None:
        if isinstance(self._dmp_wrapped_module, nn.parallel.DistributedDataParallel):
            raise RuntimeError("DistributedModelParallel.module cannot be set after the model is wrapped in DDP")
        self._dmp_wrapped_module = value

    @property
    def plan(self) -> ShardingPlan:
        return self._plan

    @property
    def fused_optimizer(self) -> KeyedOptimizer:
        return self._optim

    def copy(self, device: torch.device) -> "DistributedModelParallel":
        """A copy on ``device``: tensors (tables and optimizer state included) copied, process groups shared.

        In-backward optimizers are views over their kernels' state; the copy gets new views over its own.
        """
        from recsys_lib.distributed._sharded.common import kernels_of
        from recsys_lib.distributed.utils import copy_to_device, sharded_model_copy

        def fused_kernels(model: nn.Module) -> List[nn.Module]:
            return [k for _, m in sharded_modules(get_unwrapped_module(model)) if hasattr(m, "_lookups")
                    for k in kernels_of(m._lookups) if getattr(k, "_optim", None) is not None]

        memo: Dict[int, Any] = {id(self._optim): None}
        for k in fused_kernels(self):
            memo[id(k._optim)] = None
        with sharded_model_copy(device=None):
            copied = copy.deepcopy(self, memo=memo)
        device = torch.device(device)
        if device != self.device:
            copied = copy_to_device(copied, self.device, device)
            copied.device = device
        from recsys_lib.distributed._tbe.fused_optimizer import EmbeddingFusedOptimizer

        for _, m in sharded_modules(get_unwrapped_module(copied)):
            for k in kernels_of(getattr(m, "_lookups", [])):
                if hasattr(k, "_optim"):
                    k._optim = EmbeddingFusedOptimizer(k.config, k.emb_module, pg=k._pg)
        copied._optim = copied._init_optim()
        return copied  # type: ignore[return-value]

    def reshard(
        self,
        changed_shard_to_params: Dict[str, Tuple[float, EmbeddingModuleShardingPlan]],
        sharded_module_fqn: Optional[str] = None,
    ) -> float:
        """Moves tables of one sharded module to new placements mid-training (collective); returns the data volume
        given with the plan delta.

        Args:
            changed_shard_to_params: ``{module fqn: (volume, {table: new ParameterSharding})}``, e.g. from
                ``sharding.dynamic_sharding.output_sharding_plans_delta(old_plan, new_plan)``.
            sharded_module_fqn: the module to reshard; default the first sharded module (breadth first) whose sharder
                has ``reshard``.

        Weights and fused optimizer state move with the tables; ``fused_optimizer`` and ``plan`` are rebuilt.
        Data-parallel tables are new parameters afterwards: an optimizer holding them must be rebuilt too.
        """
        root = get_unwrapped_module(self)
        found: Optional[Tuple[str, ShardedModule]] = None
        if sharded_module_fqn is None:
            queue: List[Tuple[str, nn.Module]] = [("", root)]
            while queue and found is None:
                path, m = queue.pop(0)
                sharder = self._sharder_map.get(m.unsharded_module_type) if isinstance(m, ShardedModule) else None
                if sharder is not None and hasattr(sharder, "reshard"):
                    found = (path, m)  # type: ignore[assignment]
                    break
                queue += [(f"{path}.{n}" if path else n, c) for n, c in m.named_children()]
        else:
            m = root.get_submodule(sharded_module_fqn) if sharded_module_fqn else root
            if not isinstance(m, ShardedModule):
                raise ValueError(f"DistributedModelParallel.reshard: {sharded_module_fqn!r} is not a sharded module")
            found = (sharded_module_fqn, m)
        if found is None:
            raise ValueError("DistributedModelParallel.reshard: no sharded module whose sharder can reshard")
        fqn, module = found
        sharder = self._sharder_map.get(module.unsharded_module_type)
        if sharder is None or not hasattr(sharder, "reshard"):
            raise ValueError(f"DistributedModelParallel.reshard: the sharder of {fqn!r} cannot reshard")
        if fqn not in changed_shard_to_params:
            raise KeyError(f"DistributedModelParallel.reshard: no plan delta for {fqn!r} "
                           f"(given: {sorted(changed_shard_to_params)})")
        data_volume, delta = changed_shard_to_params[fqn]
        module = sharder.reshard(module, delta, self._env, self.device)
        self._optim = self._init_optim()
        self._plan.plan[fqn] = EmbeddingModuleShardingPlan(module.module_sharding_plan)
        return data_volume

    def write(self, *input: Any, **kwargs: Any) -> None:
        """Writes features into the sharded modules built with ``enable_embedding_update``; none of the sharded
        modules here is (TorchRec's ``RuntimeError`` when there are none)."""
        writable = [m for _, m in sharded_modules(get_unwrapped_module(self)) if callable(getattr(m, "write", None))]
        if not writable:
            raise RuntimeError("No writable sharded modules found. Please check `enable_embedding_update` flag in "
                               "your embedding config")
        for m in writable:
            m.write(*input, **kwargs)

    # ---- unsharded-model names ----

    def state_dict(  # type: ignore[override]
        self, destination: Optional[Dict[str, Any]] = None, prefix: str = "", keep_vars: bool = False
    ) -> Dict[str, Any]:
        out = get_unwrapped_module(self).state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)
        return out

    def load_state_dict(  # type: ignore[override]
        self, state_dict: Mapping[str, Any], prefix: str = "", strict: bool = True
    ) -> Any:
        if prefix:
            state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        # All or nothing: a wrong shape anywhere (or, if strict, a missing or extra key) raises before any
        # parameter, dense or sharded, is copied.
        check_before_load(get_unwrapped_module(self), state_dict, type(self).__name__, strict)
        return get_unwrapped_module(self).load_state_dict(state_dict, strict=strict)

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, nn.Parameter]]:
        yield from _walk_parameters(get_unwrapped_module(self), prefix, recurse)

    def bare_named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[Tuple[str, nn.Parameter]]:
        """Parameters of the modules themselves (kernel internals included), as ``nn.Module`` reports them."""
        yield from nn.Module.named_parameters(get_unwrapped_module(self), prefix=prefix, recurse=recurse)

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, torch.Tensor]]:
        yield from _walk_buffers(get_unwrapped_module(self), prefix, recurse)

    def sparse_grad_parameter_names(self, destination: Optional[List[str]] = None, prefix: str = "") -> List[str]:
        """Names of parameters whose gradients are sparse (``nn.Embedding(Bag)(sparse=True)`` outside sharding)."""
        destination = [] if destination is None else destination
        for name, m in get_unwrapped_module(self).named_modules():
            if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and m.sparse:
                destination.append(_join(prefix, _join(name, "weight")))
        return destination


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _walk_parameters(module: nn.Module, prefix: str, recurse: bool) -> Iterator[Tuple[str, nn.Parameter]]:
    if isinstance(module, ShardedModule):
        yield from module.named_parameters(prefix=prefix, recurse=True)
        return
    for name, p in module.named_parameters(recurse=False):
        yield _join(prefix, name), p
    if recurse:
        for name, child in module.named_children():
            yield from _walk_parameters(child, _join(prefix, name), recurse)


def _walk_buffers(module: nn.Module, prefix: str, recurse: bool) -> Iterator[Tuple[str, torch.Tensor]]:
    if isinstance(module, ShardedModule):
        return
    for name, b in module.named_buffers(recurse=False):
        yield _join(prefix, name), b
    if recurse:
        for name, child in module.named_children():
            yield from _walk_buffers(child, _join(prefix, name), recurse)


class DMPCollection(DistributedModelParallel):
    """2-D parallelism: the model is sharded over each *sharding group* of ``sharding_group_size`` ranks and
    replicated across the groups; :meth:`sync` averages the replicas' tables (and fused optimizer state).

    ``W = world_size`` ranks form ``W / G`` sharding groups (layout: ``_parallel2d/groups.py``)::

        W = 4, G = 2:   sharding groups [0, 2], [1, 3]     replica groups [0, 1], [2, 3]

    ``plan`` is made for ``G`` ranks (group ranks ``0..G-1``); it is rewritten in place to each group's global
    ranks (as TorchRec does). Sparse inputs are data parallel over all ``W`` ranks, the dense part is DDP over
    ``global_pg``; the embedding tables of each sharding group see only that group's batches, until ``sync()``.
    With plain SGD, ``sync()`` after every step gives the 1-D model's weights exactly.

    Args:
        module: the model. device: its device (CPU works, on gloo).
        plan: sharding plan for ``sharding_group_size`` ranks. world_size: ``W``. sharding_group_size: ``G``.
        global_pg: the group of all ``W`` ranks.
        sharding_strategy: ``DEFAULT`` / ``PER_MODULE`` (``FULLY_SHARDED``: ``ValueError``).
        node_group_size: ranks per logical node for TWRW / GRID inside a sharding group.
        sharders / init_data_parallel / init_parameters / data_parallel_wrapper: as ``DistributedModelParallel``.
        use_inter_host_allreduce: sharding groups of consecutive ranks (replicas on different hosts).
        custom_all_reduce: replaces the averaging all-reduce of ``sync()`` (gets each dtype's tensor list).
        submodule_configs: other plans / group sizes for given module types (``DMPCollectionConfig``).
        rs_awaitable_hook_module: only with ``FULLY_SHARDED``. use_sharded_relay: an NCCL relay; the plain
            all-reduce is used instead.

    Example::

        model = DMPCollection(module=m, device=torch.device("cpu"), plan=plan_for_2_ranks, world_size=4,
                              sharding_group_size=2, global_pg=dist.group.WORLD)
        loss = model(batch); loss.backward(); opt.step()
        model.sync()
    """

    def __init__(
        self,
        module: nn.Module,
        device: torch.device,
        plan: ShardingPlan,
        world_size: int,
        sharding_group_size: int,
        global_pg: dist.ProcessGroup,
        sharding_strategy: ShardingStrategy = ShardingStrategy.DEFAULT,
        node_group_size: Optional[int] = None,
        sharders: Optional[List[ModuleSharder[nn.Module]]] = None,
        init_data_parallel: bool = True,
        init_parameters: bool = True,
        data_parallel_wrapper: Optional[DataParallelWrapper] = None,
        use_inter_host_allreduce: bool = False,
        custom_all_reduce: Optional[Callable[[List[torch.Tensor]], None]] = None,
        submodule_configs: Optional[List[DMPCollectionConfig]] = None,
        rs_awaitable_hook_module: Optional[str] = None,
        use_sharded_relay: bool = False,
    ) -> None:
        from torch.distributed.device_mesh import DeviceMesh

        device = torch.device(device)
        if dist.get_world_size(global_pg) != world_size:
            raise ValueError(f"DMPCollection: world_size={world_size} but global_pg has "
                             f"{dist.get_world_size(global_pg)} ranks")
        configs = [DMPCollectionConfig(None, plan, sharding_group_size, node_group_size,  # type: ignore[arg-type]
                                       use_inter_host_allreduce, sharding_strategy)] + list(submodule_configs or [])
        for c in configs:
            check_sizes(world_size, c.sharding_group_size)
            if c.sharding_strategy == ShardingStrategy.FULLY_SHARDED:
                raise ValueError("DMPCollection: ShardingStrategy.FULLY_SHARDED (weights reduce-scattered across "
                                 "replicas every step) is not provided; use DEFAULT or PER_MODULE with sync()")
        self._pg = global_pg
        self._global_rank = dist.get_rank(global_pg)
        self._custom_all_reduce = custom_all_reduce
        sharders = list(sharders) if sharders is not None else get_default_sharders()
        self._ctxs: List[DMPCollectionContext] = []
        self._group_envs: List[ShardingEnv2D] = []
        self._local_plans: List[ShardingPlan] = []
        for c in configs:
            ctx = DMPCollectionContext(c.module, c.plan, c.sharding_group_size, c.node_group_size,
                                       c.use_inter_host_allreduce, c.sharding_strategy)
            matrix = peer_matrix(world_size, c.sharding_group_size, c.use_inter_host_allreduce)
            ctx.device_mesh = DeviceMesh(device.type, matrix, mesh_dim_names=("replicate", "shard"))
            ctx.sharding_pg = ctx.device_mesh.get_group("shard")
            ctx.replica_pg = ctx.device_mesh.get_group("replicate")
            self._local_plans.append(group_local_plan(c.plan))
            remap_plan(ctx.plan, self._global_rank, matrix, device.type)
            self._group_envs.append(ShardingEnv2D(ctx.sharding_pg, ctx.replica_pg, global_pg, ctx.device_mesh,
                                                  c.node_group_size if c.module is not None else node_group_size,
                                                  c.use_inter_host_allreduce, c.sharding_strategy))
            self._ctxs.append(ctx)
        self._default_ctx = self._ctxs[0]
        consolidated = self._default_ctx.plan
        for ctx in self._ctxs[1:]:
            consolidated.plan.update(ctx.plan.plan)
        super().__init__(module, self._group_envs[0], device, consolidated, sharders, init_data_parallel,
                         init_parameters, data_parallel_wrapper)
        by_fqn = dict(sharded_modules(get_unwrapped_module(self)))
        for i, ctx in enumerate(self._ctxs):
            mine = [m for fqn, m in by_fqn.items() if self._fqn_ctx.get(fqn, 0) == i]
            ctx.sharded_module = type(mine[0]) if ctx.module is not None and mine else None
            ctx.modules_to_sync = kernels_to_sync(mine)
            ctx.weights_by_dtype, ctx.optimizer_tensors_by_dtype = sync_tensors(ctx.modules_to_sync)

    def _shard_modules_impl(self, module: nn.Module) -> nn.Module:
        """Each planned submodule sharded on its context's sharding group (group-rank plan, group env)."""
        modules = dict(module.named_modules())
        self._fqn_ctx: Dict[str, int] = {}  # planned submodule -> index of the context sharding it
        for fqn in list(self._plan.plan):
            if fqn not in modules:
                raise ValueError(f"DMPCollection: the plan names submodule {fqn!r} that the model does not have")
            index = next((i for i, c in enumerate(self._ctxs) if i > 0 and c.module is type(modules[fqn])), 0)
            if fqn not in self._local_plans[index].plan:
                index = next(i for i, p in enumerate(self._local_plans) if fqn in p.plan)
            self._fqn_ctx[fqn] = index
            sub_plan = ShardingPlan({fqn: self._local_plans[index].plan[fqn]})
            sharded = _shard_modules(module, sharding_env(self._group_envs[index]), self.device, sub_plan, self.sharders)
            if fqn == "":
                return sharded
        return module

    @property
    def device_mesh(self) -> Any:
        """The default context's 2-D mesh (dimensions ``("replicate", "shard")``)."""
        return self._default_ctx.device_mesh

    def sync(self, include_optimizer_state: bool = True) -> None:
        """Averages every replicated table (and, with ``include_optimizer_state``, the fused optimizers'
        floating-point states) over its replica group: one flat all-reduce per context and dtype."""
        for ctx in self._ctxs:
            assert ctx.replica_pg is not None
            for tensors in ctx.weights_by_dtype.values():
                average(tensors, ctx.replica_pg, self._custom_all_reduce)
            if include_optimizer_state:
                for tensors in ctx.optimizer_tensors_by_dtype.values():
                    average(tensors, ctx.replica_pg, self._custom_all_reduce)

    def set_all_reduce_hook(self, reduce_hook: Callable[[List[torch.Tensor]], None]) -> None:
        """Replaces the averaging all-reduce of :meth:`sync` (the hook reduces each list in place)."""
        if self._custom_all_reduce is not None:
            warnings.warn("DMPCollection: replacing the custom all-reduce already set")
        self._custom_all_reduce = reduce_hook

    def reshard(
        self,
        changed_shard_to_params: Dict[str, Tuple[float, EmbeddingModuleShardingPlan]],
        sharded_module_fqn: Optional[str] = None,
    ) -> float:
        """Not provided under 2-D parallelism (``ValueError``): the replicas of every sharding group would have to
        move together; reshard a 1-D ``DistributedModelParallel`` or build a new ``DMPCollection``."""
        raise ValueError("DMPCollection.reshard: dynamic resharding under 2-D parallelism is not provided; save a "
                         "checkpoint and load it into a DMPCollection built with the new plan")

    def ensure_reduce_scatter_complete(self) -> None:
        """Nothing to wait for: no context uses ``FULLY_SHARDED`` (rejected at construction)."""


class HybridEvalDMP(DistributedModelParallel):
    """A ``DistributedModelParallel`` for evaluation with split placement (e.g. embeddings on CPU, dense on GPU).

    Differences from the parent: ``init_data_parallel`` defaults to False (no gradient synchronisation for
    eval); ``to()`` moves only the dense part (subtrees under a ``ShardedModule`` keep their placement);
    ``share_embedding_memory(pg)`` maps the CPU embedding storage of every rank of ``pg`` onto rank 0's copy in
    shared memory (``/dev/shm``), so one host keeps one copy.

    Args:
        module: the model; ``init_data_parallel``: wrap the dense part in DDP; ``kwargs``: as the parent.
    """

    def __init__(self, module: nn.Module, *, init_data_parallel: bool = False, **kwargs: Any) -> None:
        super().__init__(module, init_data_parallel=init_data_parallel, **kwargs)

    def to(self, *args: Any, **kwargs: Any) -> "HybridEvalDMP":  # type: ignore[override]
        """Moves parameters and buffers outside sharded modules (``Tensor.to`` arguments)."""

        def move(mod: nn.Module) -> None:
            for key, param in mod._parameters.items():
                if param is not None:
                    mod._parameters[key] = nn.Parameter(param.data.to(*args, **kwargs), requires_grad=param.requires_grad)
            for key, buf in mod._buffers.items():
                if buf is not None:
                    mod._buffers[key] = buf.to(*args, **kwargs)
            for child in mod.children():
                if not isinstance(child, ShardedModule):
                    move(child)

        move(self.module)
        return self

    def share_embedding_memory(self, pg: dist.ProcessGroup) -> None:
        """Makes the CPU parameters of every sharded module use rank 0's storage, placed in shared memory.

        Storages are de-duplicated (several views of one buffer share it once); ranks other than 0 keep their
        views' offsets, shapes and strides over the shared storage. ``pg`` must hold ranks of one host.
        """
        first: Dict[int, torch.Tensor] = {}
        params: List[Tuple[torch.Tensor, int]] = []
        for _, module in self.module.named_modules():
            if isinstance(module, ShardedModule):
                for _, param in module.named_parameters():
                    if param.device.type == "cpu":
                        ptr = param.data.untyped_storage().data_ptr()
                        first.setdefault(ptr, param.data)
                        params.append((param, ptr))
        if not first:
            return
        ptrs = list(first)
        shared = create_on_rank_and_share_result(
            pg, 0, creator=lambda: [first[p] for p in ptrs], extractor=lambda ts: list(ts),
            constructor=lambda ts: [t for t in ts if t is not None],
        )
        if dist.get_rank(pg) == 0:
            return
        storage_of = {ptr: shared[i].untyped_storage() for i, ptr in enumerate(ptrs)}
        with torch.no_grad():
            for param, ptr in params:
                # on the parameter itself (``param.data`` would re-point only a temporary alias)
                param.set_(storage_of[ptr], param.storage_offset(), param.shape, param.stride())
