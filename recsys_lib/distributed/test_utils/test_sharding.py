"""Sharding-test drivers (TorchRec's ``torchrec.distributed.test_utils.test_sharding``): build a zoo model and its
inputs, shard a twin of it with the sharders under test, copy the unsharded weights in, take one SGD step on
both and check the sharded predictions gathered from every rank equal the unsharded model's.

Example (inside a spawned rank, e.g. from ``MultiProcessTestBase._run_multi_process_test``)::

    sharding_single_rank_test(rank, world_size, model_class=TestSparseNN, embedding_groups={}, tables=tables,
                              sharders=[create_test_sharder("embedding_bag_collection", ShardingType.ROW_WISE.value, "fused")],
                              backend="gloo", optim=EmbOptimType.EXACT_SGD)
"""

import random
from enum import Enum
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple, Type, Union

import torch
import torch.distributed as dist
from fbgemm_gpu.split_embedding_configs import EmbOptimType
from torch import nn
from torch.distributed._shard.sharded_tensor import ShardedTensor
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import DTensor

from recsys_lib.distributed.fbgemm_qcomm_codec import CommType, QCommsConfig, get_qcomm_codecs_registry
from recsys_lib.distributed.model_parallel import DistributedModelParallel, DMPCollection
from recsys_lib.distributed.planner.planners import EmbeddingShardingPlanner
from recsys_lib.distributed.planner._hardware import Topology
from recsys_lib.distributed.planner.types import ParameterConstraints
from recsys_lib.distributed.test_utils._model_input import ModelInput
from recsys_lib.distributed.test_utils._zoo_archs import TestSparseNNBase
from recsys_lib.distributed.test_utils.emb_sharder import (
    TestEBCSharder,
    TestEBSharder,
    TestECSharder,
    TestETCSharder,
    TestETSharder,
)
from recsys_lib.distributed.test_utils.multi_process_testbase import MultiProcessContext
from recsys_lib.distributed._core.enums import ShardingStrategy, ShardingType
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._core.plan import ShardingPlan
from recsys_lib.distributed._core.sharder import ModuleSharder
from recsys_lib.distributed._parallel2d.env import DMPCollectionConfig
from recsys_lib.modules.embedding_configs import BaseEmbeddingConfig
from recsys_lib.types import DataType
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.optim.keyed import CombinedOptimizer, KeyedOptimizerWrapper
from recsys_lib.optim.optimizers import in_backward_optimizer_filter
from recsys_lib.optim.apply_optimizer_in_backward import apply_optimizer_in_backward

_Tables = List[BaseEmbeddingConfig]


class SharderType(Enum):
    EMBEDDING_BAG = "embedding_bag"
    EMBEDDING_BAG_COLLECTION = "embedding_bag_collection"
    EMBEDDING_TOWER = "embedding_tower"
    EMBEDDING_TOWER_COLLECTION = "embedding_tower_collection"
    EMBEDDING_COLLECTION = "embedding_collection"


class ModelInputCallable(Protocol):
    """``ModelInput.generate``-like: returns ``(global input, per-rank inputs)``."""

    def __call__(
        self, batch_size: int, world_size: int, num_float_features: int, tables: _Tables, weighted_tables: _Tables,
        pooling_avg: int = 10, dedup_tables: Optional[_Tables] = None, variable_batch_size: bool = False,
        use_offsets: bool = False, indices_dtype: torch.dtype = torch.int64,
        offsets_dtype: torch.dtype = torch.int64, lengths_dtype: torch.dtype = torch.int64,
        random_seed: Optional[int] = None,
    ) -> Tuple[ModelInput, List[ModelInput]]: ...


class VariableBatchModelInputCallable(Protocol):
    """``ModelInput.generate_variable_batch_input``-like."""

    def __call__(
        self, average_batch_size: int, world_size: int, num_float_features: int, tables: _Tables,
        weighted_tables: _Tables, pooling_avg: int = 10, global_constant_batch: bool = False,
        use_offsets: bool = False, indices_dtype: torch.dtype = torch.int64,
        offsets_dtype: torch.dtype = torch.int64, lengths_dtype: torch.dtype = torch.int64,
        random_seed: Optional[int] = None,
    ) -> Tuple[ModelInput, List[ModelInput]]: ...


def _gather_all_tensors(local_tensor: torch.Tensor, world_size: int,
                        pg: Optional[dist.ProcessGroup] = None) -> List[torch.Tensor]:
    """Every rank's ``local_tensor`` (same shape on all ranks), by rank."""
    out = [torch.empty_like(local_tensor) for _ in range(world_size)]
    dist.all_gather(out, local_tensor, pg)
    return out


def create_test_sharder(
    sharder_type: str,
    sharding_type: str,
    kernel_type: str,
    fused_params: Optional[Dict[str, Any]] = None,
    qcomms_config: Optional[QCommsConfig] = None,
    device: Optional[torch.device] = None,
) -> Union[TestEBSharder, TestEBCSharder, TestETSharder, TestETCSharder, TestECSharder]:
    """A one-type test sharder for ``sharder_type`` (a ``SharderType`` value); ``learning_rate`` defaults to
    0.1 in ``fused_params`` (the dict is updated in place, as TorchRec)."""
    if fused_params is None:
        fused_params = {}
    registry = get_qcomm_codecs_registry(qcomms_config, device=device) if qcomms_config is not None else {}
    fused_params.setdefault("learning_rate", 0.1)
    classes = {
        SharderType.EMBEDDING_BAG.value: TestEBSharder,
        SharderType.EMBEDDING_BAG_COLLECTION.value: TestEBCSharder,
        SharderType.EMBEDDING_COLLECTION.value: TestECSharder,
        SharderType.EMBEDDING_TOWER.value: TestETSharder,
        SharderType.EMBEDDING_TOWER_COLLECTION.value: TestETCSharder,
    }
    if sharder_type not in classes:
        raise ValueError(f"Sharder not supported {sharder_type}")
    return classes[sharder_type](sharding_type, kernel_type, fused_params, registry)


def gen_model_and_input(
    model_class: TestSparseNNBase,
    tables: _Tables,
    embedding_groups: Dict[str, List[str]],
    world_size: int,
    generate: Union[ModelInputCallable, VariableBatchModelInputCallable] = ModelInput.generate,
    weighted_tables: Optional[_Tables] = None,
    num_float_features: int = 16,
    dense_device: Optional[torch.device] = None,
    sparse_device: Optional[torch.device] = None,
    dedup_feature_names: Optional[List[str]] = None,
    dedup_tables: Optional[_Tables] = None,
    variable_batch_size: bool = False,
    batch_size: int = 4,
    feature_processor_modules: Optional[Dict[str, torch.nn.Module]] = None,
    use_offsets: bool = False,
    indices_dtype: torch.dtype = torch.int64,
    offsets_dtype: torch.dtype = torch.int64,
    lengths_dtype: torch.dtype = torch.int64,
    global_constant_batch: bool = False,
    num_inputs: int = 1,
    input_type: str = "kjt",
    random_seed: Optional[int] = None,
) -> Tuple[nn.Module, List[Tuple[ModelInput, List[ModelInput]]]]:
    """``model_class(...)`` (seeded with ``random_seed``, 0 by default) and ``num_inputs`` generated
    ``(global, per-rank)`` inputs; ``dedup_feature_names`` (with ``dedup_tables`` appended to the tables) is
    passed to models that take it."""
    torch.manual_seed(random_seed if random_seed is not None else 0)
    kwargs: Dict[str, Any] = {}
    model_tables = list(tables)
    if dedup_feature_names:
        kwargs["dedup_feature_names"] = dedup_feature_names
        model_tables += list(dedup_tables or [])
    model = model_class(tables=model_tables, num_float_features=num_float_features, weighted_tables=weighted_tables,
                        embedding_groups=embedding_groups, dense_device=dense_device, sparse_device=sparse_device,
                        feature_processor_modules=feature_processor_modules, **kwargs)
    common = dict(world_size=world_size, num_float_features=num_float_features, tables=tables,
                  weighted_tables=weighted_tables or [], use_offsets=use_offsets, indices_dtype=indices_dtype,
                  offsets_dtype=offsets_dtype, lengths_dtype=lengths_dtype, random_seed=random_seed)
    inputs = []
    for _ in range(num_inputs):
        if input_type == "kjt" and generate == ModelInput.generate_variable_batch_input:
            inputs.append(generate(average_batch_size=batch_size, global_constant_batch=global_constant_batch,
                                   **common))
        elif generate == ModelInput.generate:
            inputs.append(ModelInput.generate(batch_size=batch_size, dedup_tables=dedup_tables,
                                              variable_batch_size=variable_batch_size, input_type=input_type,
                                              **common))
        else:
            inputs.append(generate(batch_size=batch_size, dedup_tables=dedup_tables,
                                   variable_batch_size=variable_batch_size, **common))
    return model, inputs


def _slice_like(global_tensor: torch.Tensor, offsets: List[int], shape: List[int]) -> torch.Tensor:
    if global_tensor.ndim not in (1, 2):
        raise ValueError("Tensors with ndim > 2 are not supported")
    index = tuple(slice(o, o + n) for o, n in zip(offsets, shape))
    return global_tensor.detach()[index]


def copy_state_dict(
    loc: Dict[str, Union[torch.Tensor, ShardedTensor, DTensor]],
    glob: Dict[str, torch.Tensor],
    exclude_predfix: Optional[Union[str, List[str]]] = None,
) -> None:
    """Copies the unsharded ``glob`` state into the local ``loc`` state in place: each local shard of a
    ``ShardedTensor`` / ``DTensor`` gets its slice of the global tensor, plain tensors the whole tensor. Names
    starting with an ``exclude_predfix`` entry are skipped; any other name must be in ``glob``."""
    prefixes = [exclude_predfix] if isinstance(exclude_predfix, str) else (exclude_predfix or [])
    for name, tensor in loc.items():
        if any(name.startswith(p) for p in prefixes):
            continue
        if name not in glob:
            raise KeyError(f"copy_state_dict: {name!r} is not in the global state dict")
        source = glob[name]
        if isinstance(source, ShardedTensor):
            source = source.local_shards()[0].tensor
        if isinstance(tensor, ShardedTensor):
            for shard in tensor.local_shards():
                if source.ndim != len(shard.tensor.shape) or source.dtype != shard.tensor.dtype:
                    raise ValueError(f"copy_state_dict: {name}: global {source.dtype} {tuple(source.shape)} does "
                                     f"not fit local shard {shard.tensor.dtype} {tuple(shard.tensor.shape)}")
                piece = _slice_like(source, list(shard.metadata.shard_offsets), list(shard.tensor.shape))
                shard.tensor.copy_(piece)
        elif isinstance(tensor, DTensor):
            local = tensor.to_local()
            if hasattr(local, "local_shards"):  # a LocalShardsWrapper (several shards per rank)
                for shard, offsets in zip(local.local_shards(), local.local_offsets()):
                    shard.copy_(_slice_like(source, list(offsets), list(shard.shape)))
            else:
                from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

                shape, offsets = compute_local_shape_and_global_offset(tensor.shape, tensor.device_mesh,
                                                                       tensor.placements)
                local.copy_(_slice_like(source, list(offsets), list(shape)))
        else:
            tensor.copy_(source)


def alter_global_ebc_dtype(model: nn.Module) -> None:
    """Weighted EBCs of ``model`` get float32 tables (in place)."""
    for _, module in model.named_modules():
        if isinstance(module, EmbeddingBagCollection) and module.is_weighted():
            with torch.no_grad():
                for bag in module.embedding_bags.values():
                    bag.weight = nn.Parameter(bag.weight.float())


def create_device_mesh_for_2D(use_inter_host_allreduce: bool, world_size: int, local_size: int) -> DeviceMesh:
    """The ``("replicate", "shard")`` mesh of 2-D parallelism: shard groups of ``local_size`` consecutive ranks
    (``use_inter_host_allreduce``) or strided ranks."""
    if use_inter_host_allreduce:
        peers = [list(range(i, i + local_size)) for i in range(0, world_size, local_size)]
    else:
        step = world_size // local_size
        peers = [[step * r + g for r in range(local_size)] for g in range(step)]
    return DeviceMesh(device_type="cuda" if torch.cuda.is_available() else "cpu", mesh=peers,
                      mesh_dim_names=("replicate", "shard"))


def gen_full_pred_after_one_step(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    input: ModelInput,
    skip_inference: bool = False,
    skip_training: bool = False,
) -> torch.Tensor:
    """One training step (``loss = model(input)[0]``, backward, ``opt.step()``), then the eval-mode
    prediction on ``input``; ``skip_training``: the eval prediction only; ``skip_inference``: the training
    output. A ``DMPCollection`` syncs its replicas after the step."""
    if skip_training:
        model.train(False)
        return model(input)
    opt.zero_grad()
    model.train(True)
    output = model(input)
    output[0].backward()
    opt.step()
    if skip_inference:
        return output
    if isinstance(model, DMPCollection):
        model.sync()
    with torch.no_grad():
        model.train(False)
        return model(input)


def gen_full_model_pred_after_x_steps(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    input: List[ModelInput],
    skip_inference: bool = False,
    steps: int = 1,
) -> torch.Tensor:
    """``gen_full_pred_after_one_step`` on ``input[0 .. steps-1]``; the last prediction."""
    output = torch.Tensor()
    for i in range(steps):
        output = gen_full_pred_after_one_step(model, opt, input[i], skip_inference)
    return output


def _mirror_optimizers_in_backward(
    config: Optional[Dict[str, Tuple[Type[torch.optim.Optimizer], Dict[str, Any]]]],
    global_model: nn.Module, local_model: nn.Module,
) -> None:
    """Applies each ``{name fragment: (optimizer class, kwargs)}`` in backward to the matching parameters of
    both models."""
    if config is None:
        return
    local_params = dict(local_model.named_parameters())
    for fragment, (optimizer, kwargs) in config.items():
        for name, param in global_model.named_parameters():
            if fragment not in name:
                continue
            if name not in local_params:
                raise KeyError(f"apply_optimizer_in_backward_config: {name!r} is not a parameter of the local model")
            apply_optimizer_in_backward(optimizer, [param], kwargs)
            apply_optimizer_in_backward(optimizer, [local_params[name]], kwargs)


def _tolerances(qcomms_config: Optional[QCommsConfig], weighted_tables: Optional[_Tables], global_pred: torch.Tensor,
                atol: Optional[float], rtol: Optional[float]) -> Tuple[Optional[float], Optional[float]]:
    if qcomms_config is not None:  # quantized comms: relative error of the codec, scaled to the predictions
        low = CommType.FP8 in (qcomms_config.forward_precision, qcomms_config.backward_precision)
        rel = 0.05 if low else 0.003
        return global_pred.max().item() * rel, rel
    if weighted_tables and weighted_tables[0].data_type == DataType.FP16:
        return 1e-4, 1e-4  # FP16 weighted tables
    return atol, rtol


def sharding_single_rank_test_single_process(
    pg: dist.ProcessGroup,
    device: torch.device,
    rank: int,
    world_size: int,
    model_class: TestSparseNNBase,
    embedding_groups: Dict[str, List[str]],
    tables: _Tables,
    sharders: List[ModuleSharder[nn.Module]],
    optim: EmbOptimType,
    weighted_tables: Optional[_Tables] = None,
    constraints: Optional[Dict[str, ParameterConstraints]] = None,
    local_size: Optional[int] = None,
    pod_size: Optional[int] = None,
    qcomms_config: Optional[QCommsConfig] = None,
    apply_optimizer_in_backward_config: Optional[Dict[str, Tuple[Type[torch.optim.Optimizer], Dict[str, Any]]]] = None,
    variable_batch_size: bool = False,
    batch_size: int = 4,
    feature_processor_modules: Optional[Dict[str, torch.nn.Module]] = None,
    variable_batch_per_feature: bool = False,
    global_constant_batch: bool = False,
    world_size_2D: Optional[int] = None,
    node_group_size: Optional[int] = None,
    use_inter_host_allreduce: bool = False,
    input_type: str = "kjt",
    allow_zero_batch_size: bool = False,
    custom_all_reduce: bool = False,
    submodule_configs: Optional[List[DMPCollectionConfig]] = None,
    use_offsets: bool = False,
    indices_dtype: torch.dtype = torch.int64,
    offsets_dtype: torch.dtype = torch.int64,
    lengths_dtype: torch.dtype = torch.int64,
    random_seed: Optional[int] = None,
    sharding_strategy: ShardingStrategy = ShardingStrategy.DEFAULT,
    rs_awaitable_hook_module: Optional[str] = None,
    atol: Optional[float] = None,
    rtol: Optional[float] = None,
) -> None:
    """The body of ``sharding_single_rank_test`` on an existing process group ``pg``.

    Builds the unsharded model and inputs (``gen_model_and_input``, 16 dense features), a twin with its sparse
    part on meta, plans it collectively with ``sharders`` and shards it (``DistributedModelParallel``, or
    ``DMPCollection`` with ``world_size_2D``), copies the unsharded weights in, takes one step on each (sharded:
    fused optimizer + SGD(0.1) on the dense part; unsharded: SGD(0.1), so ``optim`` must be EXACT_SGD) and
    asserts the gathered eval predictions equal the unsharded model's.

    Raises:
        AssertionError: predictions differ (or ``optim`` is not EXACT_SGD, or a custom all-reduce was unused).
    """
    batch_size = random.randint(0, batch_size) if allow_zero_batch_size else batch_size
    generate = ModelInput.generate_variable_batch_input if variable_batch_per_feature else ModelInput.generate
    global_model, inputs = gen_model_and_input(
        model_class=model_class, tables=tables, generate=generate, weighted_tables=weighted_tables,
        embedding_groups=embedding_groups, world_size=world_size, num_float_features=16,
        variable_batch_size=variable_batch_size, batch_size=batch_size,
        feature_processor_modules=feature_processor_modules, global_constant_batch=global_constant_batch,
        input_type=input_type, use_offsets=use_offsets, indices_dtype=indices_dtype, offsets_dtype=offsets_dtype,
        lengths_dtype=lengths_dtype, random_seed=random_seed,
    )
    global_model = global_model.to(device)
    global_input = inputs[0][0].to(device)
    local_input = inputs[0][1][rank].to(device)
    local_model = model_class(tables=tables, weighted_tables=weighted_tables, embedding_groups=embedding_groups,
                              dense_device=device, sparse_device=torch.device("meta"), num_float_features=16,
                              feature_processor_modules=feature_processor_modules)
    _mirror_optimizers_in_backward(apply_optimizer_in_backward_config, global_model, local_model)

    planner = EmbeddingShardingPlanner(
        topology=Topology(world_size=world_size_2D or world_size, compute_device=device.type,
                          local_world_size=node_group_size or local_size, pod_size=pod_size, ssd_cap=2 * 1024**4),
        constraints=constraints,
    )
    plan: ShardingPlan = planner.collective_plan(local_model, sharders, pg)
    for config in submodule_configs or []:
        sub_planner = EmbeddingShardingPlanner(
            topology=Topology(world_size=config.sharding_group_size, compute_device=device.type,
                              local_world_size=config.node_group_size, ssd_cap=2 * 1024**4),
            constraints=constraints,
        )
        registry = get_qcomm_codecs_registry(qcomms_config, device=device) if qcomms_config is not None else None
        sub_sharder = TestECSharder(ShardingType.ROW_WISE.value, "fused", {}, registry)
        sharders.append(sub_sharder)
        config.plan = sub_planner.collective_plan(local_model, [sub_sharder], pg)

    hook_calls: List[int] = []
    if world_size_2D is not None:
        all_reduce: Optional[Callable[[List[torch.Tensor]], None]] = None
        if custom_all_reduce:
            replicate_pg = create_device_mesh_for_2D(use_inter_host_allreduce, world_size=world_size,
                                                     local_size=world_size_2D).get_group(mesh_dim="replicate")

            def all_reduce(tensors: List[torch.Tensor]) -> None:
                for t in tensors:
                    dist.all_reduce(t, op=dist.ReduceOp.SUM, group=replicate_pg)
                    t.div_(dist.get_world_size(replicate_pg))
                hook_calls.append(1)

        sharded: nn.Module = DMPCollection(
            module=local_model, sharding_group_size=world_size_2D, world_size=world_size, global_pg=pg,
            node_group_size=node_group_size, plan=plan, sharders=sharders, device=device,
            use_inter_host_allreduce=use_inter_host_allreduce, custom_all_reduce=all_reduce,
            submodule_configs=submodule_configs, sharding_strategy=sharding_strategy,
            rs_awaitable_hook_module=rs_awaitable_hook_module,
        )
    else:
        sharded = DistributedModelParallel(local_model, env=ShardingEnv.from_process_group(pg), plan=plan,
                                           sharders=sharders, device=device)
    dense_optim = KeyedOptimizerWrapper(dict(in_backward_optimizer_filter(sharded.named_parameters())),
                                        lambda params: torch.optim.SGD(params, lr=0.1))
    local_opt = CombinedOptimizer([sharded.fused_optimizer, dense_optim])
    copy_state_dict(sharded.state_dict(), global_model.state_dict(),
                    exclude_predfix="sparse.pooled_embedding_arch.embedding_modules._itp_iter")
    alter_global_ebc_dtype(global_model)

    local_pred = gen_full_pred_after_one_step(sharded, local_opt, local_input)
    if world_size_2D is not None and custom_all_reduce:
        assert hook_calls, "custom all reduce hook was not called"
    if allow_zero_batch_size:
        return
    gathered = _gather_all_tensors(local_pred, world_size, pg)
    assert optim == EmbOptimType.EXACT_SGD, f"the unsharded reference steps with SGD; got {optim}"
    global_pred = gen_full_pred_after_one_step(global_model, torch.optim.SGD(global_model.parameters(), lr=0.1),
                                               global_input)
    atol, rtol = _tolerances(qcomms_config, weighted_tables, global_pred, atol, rtol)
    torch.testing.assert_close(global_pred, torch.cat(gathered), atol=atol, rtol=rtol)


def sharding_single_rank_test(
    rank: int,
    world_size: int,
    model_class: TestSparseNNBase,
    embedding_groups: Dict[str, List[str]],
    tables: _Tables,
    sharders: List[ModuleSharder[nn.Module]],
    backend: str,
    optim: EmbOptimType,
    weighted_tables: Optional[_Tables] = None,
    constraints: Optional[Dict[str, ParameterConstraints]] = None,
    local_size: Optional[int] = None,
    pod_size: Optional[int] = None,
    qcomms_config: Optional[QCommsConfig] = None,
    apply_optimizer_in_backward_config: Optional[Dict[str, Tuple[Type[torch.optim.Optimizer], Dict[str, Any]]]] = None,
    variable_batch_size: bool = False,
    batch_size: int = 4,
    feature_processor_modules: Optional[Dict[str, torch.nn.Module]] = None,
    variable_batch_per_feature: bool = False,
    global_constant_batch: bool = False,
    world_size_2D: Optional[int] = None,
    node_group_size: Optional[int] = None,
    use_inter_host_allreduce: bool = False,
    input_type: str = "kjt",
    allow_zero_batch_size: bool = False,
    custom_all_reduce: bool = False,
    submodule_configs: Optional[List[DMPCollectionConfig]] = None,
    use_offsets: bool = False,
    indices_dtype: torch.dtype = torch.int64,
    offsets_dtype: torch.dtype = torch.int64,
    lengths_dtype: torch.dtype = torch.int64,
    random_seed: Optional[int] = None,
    sharding_strategy: ShardingStrategy = ShardingStrategy.DEFAULT,
    rs_awaitable_hook_module: Optional[str] = None,
    atol: Optional[float] = None,
    rtol: Optional[float] = None,
) -> None:
    """Joins the process group (``MultiProcessContext``: the parent sets ``MASTER_ADDR`` / ``MASTER_PORT``) and
    runs ``sharding_single_rank_test_single_process`` on it; arguments as there."""
    with MultiProcessContext(rank, world_size, backend, local_size) as ctx:
        assert ctx.pg is not None
        sharding_single_rank_test_single_process(
            pg=ctx.pg, device=ctx.device, rank=rank, world_size=world_size, model_class=model_class,
            embedding_groups=embedding_groups, tables=tables, sharders=sharders, optim=optim,
            weighted_tables=weighted_tables, constraints=constraints, local_size=local_size, pod_size=pod_size,
            qcomms_config=qcomms_config, apply_optimizer_in_backward_config=apply_optimizer_in_backward_config,
            variable_batch_size=variable_batch_size, batch_size=batch_size,
            feature_processor_modules=feature_processor_modules,
            variable_batch_per_feature=variable_batch_per_feature, global_constant_batch=global_constant_batch,
            world_size_2D=world_size_2D, node_group_size=node_group_size,
            use_inter_host_allreduce=use_inter_host_allreduce, input_type=input_type,
            allow_zero_batch_size=allow_zero_batch_size, custom_all_reduce=custom_all_reduce,
            submodule_configs=submodule_configs, use_offsets=use_offsets, indices_dtype=indices_dtype,
            offsets_dtype=offsets_dtype, lengths_dtype=lengths_dtype, random_seed=random_seed,
            sharding_strategy=sharding_strategy, rs_awaitable_hook_module=rs_awaitable_hook_module,
            atol=atol, rtol=rtol,
        )
