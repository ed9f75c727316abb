"""Sharded quantized ``EmbeddingBagCollection`` / ``FeatureProcessedEmbeddingBagCollection`` for inference on one
host, and their sharders.

Every "rank" is a device of this process (``ShardingEnv.from_local(world_size, 0)``; on CPU all are CPU), so no
process group and no global flag is involved. Tables are grouped by sharding type; each group's strategy
(``sharding/<x>_sharding/infer.py``, looked up in the registry) splits the input KJT per rank, runs one local
quantized EBC per rank over its shards and combines the outputs::

    KJT ─┬─ TW: features of each rank ──► local qEBC per rank ──► side by side ─┐
         ├─ CW: every rank of a table ──► local qEBC (its cols) ► side by side ─┼─► cat, columns in module order
         └─ RW: ids of each rank's rows ► local qEBC (SUM) ─────► summed (/L) ──┘        ─► KeyedTensor (B, ΣD)

Outputs equal the unsharded quantized module's (TW / CW exactly; RW up to float summation order).

Example::

    qebc = quantize_inference_model(model).sparse          # recsys_lib.quant EmbeddingBagCollection
    sharder = QuantEmbeddingBagCollectionSharder()
    plan = construct_module_sharding_plan(qebc, {"t0": table_wise(rank=1), "t1": row_wise()}, sharder,
                                          local_size=2, world_size=2, device_type="cpu")
    sharded = sharder.shard(qebc, plan, ShardingEnv.from_local(2, 0), torch.device("cpu"))
    kt = sharded(kjt)                                       # KeyedTensor, same keys and values as qebc(kjt)
"""

from typing import Any, Dict, List, Optional, Tuple, Type

import torch
from torch import nn

from recsys_lib.distributed._core.env import NullShardedModuleContext, ShardingEnv
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._infer.build import (  # noqa: F401  (TorchRec's names here)
    get_device_for_first_shard_from_sharding_infos,
    get_device_from_parameter_sharding,
    get_device_from_sharding_infos,
    infos_by_sharding_type,
    state_dict_weight_cols,
)
from recsys_lib.distributed._infer.dist import check_input
from recsys_lib.distributed._infer.input_dist import ShardedQuantEbcInputDist
from recsys_lib.distributed._infer.modules import InferPooledShards
from recsys_lib.distributed._infer.names import flatten_feature_lengths  # noqa: F401  (TorchRec's name here)
from recsys_lib.distributed._infer.sharding import local_module_fused_params
from recsys_lib.distributed._infer.state import kernel_configs
from recsys_lib.distributed._sharded.module_bases import BaseQuantEmbeddingSharder
from recsys_lib.distributed._sharded.table_types import EmbeddingComputeKernel, GroupedEmbeddingConfig
from recsys_lib.distributed.embedding_sharding import KJTList
from recsys_lib.distributed.embedding_sharding import EmbeddingShardingInfo
from recsys_lib.distributed.fused_params import (
    is_fused_param_quant_state_dict_split_scale_bias,
    is_fused_param_register_tbe,
)
from recsys_lib.distributed.quant_state import ShardedQuantEmbeddingModuleState
from recsys_lib.distributed.sharding.strategy import strategy_for
from recsys_lib.modules.embedding_configs import PoolingType
from recsys_lib.quant.embedding_modules import (
    EmbeddingBagCollection as QuantEmbeddingBagCollection,
    FeatureProcessedEmbeddingBagCollection as QuantFeatureProcessedEmbeddingBagCollection,
)
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor, KeyedTensor


def create_infer_embedding_bag_sharding(
    sharding_type: str,
    sharding_infos: List[EmbeddingShardingInfo],
    env: ShardingEnv,
    device: Optional[torch.device] = None,
) -> Any:
    """The registry's pooled inference sharding of ``sharding_type`` (``ValueError`` if not offered)."""
    return strategy_for(sharding_type).create_infer_pooled(sharding_infos, env, device)


torch.fx.wrap("check_input")


class ShardedQuantEmbeddingBagCollection(ShardedQuantEmbeddingModuleState):
    """A quantized ``EmbeddingBagCollection`` sharded over the devices of this process (see module docstring).

    ``forward(KJT) -> KeyedTensor`` with the unsharded module's keys, order, dims and ``output_dtype``. The state
    dict names the unsharded tables (``embedding_bags.<table>.weight`` ..., see ``quant_state``).

    Args:
        module: the quantized EBC (``recsys_lib.quant.embedding_modules.EmbeddingBagCollection``).
        table_name_to_parameter_sharding: a plan entry per table; shard offsets and sizes in the table's logical
            ``(stored rows, embedding_dim)`` coordinates; types TW / RW / CW.
        env: ``world_size`` "ranks" (``ShardingEnv.from_local``).
        fused_params: ``register_tbes`` / ``quant_state_dict_split_scale_bias`` switches (``fused_params.py``);
            other kernel options come from ``module``.
        device: where the outputs are gathered (default CPU).
    """

    def __init__(
        self,
        module: nn.Module,
        table_name_to_parameter_sharding: Dict[str, ParameterSharding],
        env: ShardingEnv,
        fused_params: Optional[Dict[str, Any]] = None,
        device: Optional[torch.device] = None,
    ) -> None:
        super().__init__()
        if not isinstance(module, QuantEmbeddingBagCollection):
            raise TypeError(f"{type(self).__name__} shards a quantized EmbeddingBagCollection, got {type(module).__name__}")
        owner = type(self).__name__
        configs = module.embedding_bag_configs()
        stored = {t: r for names, rows in zip(module._group_tables, module._group_rows) for t, r in zip(names, rows)}
        names = {t.name: [] for t in configs}  # type: Dict[str, List[str]]
        for f, t, n in zip(module._feature_order, module._table_per_feature, module._embedding_names):
            names[t].append(n)
        infos = infos_by_sharding_type(owner, configs, stored, names, table_name_to_parameter_sharding,
                                       module.is_weighted(), state_dict_weight_cols(module))
        local_params = local_module_fused_params(
            module.output_dtype(), module.register_tbes or is_fused_param_register_tbe(fused_params), module.row_alignment,
            is_fused_param_quant_state_dict_split_scale_bias(fused_params))
        self._env = env
        self._device: torch.device = torch.device(device) if device is not None else torch.device("cpu")
        self._embedding_bag_configs = configs
        self._is_weighted: bool = module.is_weighted()
        self._output_dtype: torch.dtype = module.output_dtype()
        self._sharding_type_to_sharding: Dict[str, Any] = {}
        self._sharding_type_device_group_to_sharding_infos: Dict[Tuple[str, str], List[EmbeddingShardingInfo]] = {
            (st, self._device.type): st_infos for st, st_infos in infos.items()}
        parts: List[nn.Module] = []
        columns: List[Tuple[str, int]] = []
        all_lookups: List[nn.ModuleList] = []
        for st, st_infos in infos.items():
            sharding = create_infer_embedding_bag_sharding(st, st_infos, env, self._device)
            self._sharding_type_to_sharding[st] = sharding
            lookups = sharding.create_lookup(self._device, local_params)
            all_lookups.append(lookups)
            mean = [i.embedding_config.pooling == PoolingType.MEAN and sharding.row_split
                    for i in st_infos for _ in i.embedding_config.feature_names]
            parts.append(InferPooledShards(
                sharding.create_input_dist(), lookups, sharding.create_output_dist(), self._output_dtype,
                sharding.feature_names(), sharding.embedding_dims(), mean,
            ))
            columns.extend(sharding.output_columns())
        self._shards: nn.ModuleList = nn.ModuleList(parts)
        where = {c: i for i, c in enumerate(columns)}
        order = [where[(n, c)] for n, d in zip(module._embedding_names, module._length_per_key) for c in range(d)]
        self.register_buffer("_column_order", torch.tensor(order, dtype=torch.long), persistent=False)
        self._embedding_names: List[str] = list(module._embedding_names)
        self._length_per_key: List[int] = list(module._length_per_key)
        self._all_features: Dict[str, int] = {f: 0 for f in module._feature_order}
        self._owner: str = owner
        self._sharding_type_device_group_to_sharding: Dict[Tuple[str, str], Any] = {
            (st, self._device.type): sh for st, sh in self._sharding_type_to_sharding.items()}
        self._input_dist = ShardedQuantEbcInputDist(self._sharding_type_device_group_to_sharding, self._device)
        self._tbes_configs: Dict[nn.Module, GroupedEmbeddingConfig] = kernel_configs(
            list(self._sharding_type_to_sharding.values()), all_lookups, self._device, fused_params)
        self._initialize_torch_state(self._tbes_configs, table_name_to_parameter_sharding, "embedding_bags")

    def _pool(self, features: KeyedJaggedTensor) -> torch.Tensor:
        check_input(features, self._all_features, self._owner)
        parts: List[torch.Tensor] = []
        for part in self._shards:
            parts.append(part(features))
        values = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return values.index_select(1, self._column_order)

    def forward(self, *input: Any, **kwargs: Any) -> KeyedTensor:  # noqa: A002  (TorchRec's signature)
        """``forward(features: KJT)``: pooled embeddings ``KeyedTensor`` (values ``(B, sum(D))``), as the unsharded
        module returns them."""
        features = input[0] if input else kwargs["features"]
        return KeyedTensor(keys=self._embedding_names, length_per_key=self._length_per_key,
                           values=self._pool(features))

    def tbes_configs(self) -> Dict[nn.Module, GroupedEmbeddingConfig]:
        """``{kernel (one local quantized EBC per rank and sharding type): its tables' shards}``."""
        return self._tbes_configs

    def sharding_type_device_group_to_sharding_infos(self) -> Dict[Tuple[str, str], List[EmbeddingShardingInfo]]:
        """``{(sharding type, device type): the tables' sharding infos}``."""
        return self._sharding_type_device_group_to_sharding_infos

    # ShardedModule's steps (TorchRec's names); ``forward`` runs them as one scriptable call.
    def create_context(self) -> NullShardedModuleContext:
        return NullShardedModuleContext()

    def input_dist(self, ctx: NullShardedModuleContext, features: KeyedJaggedTensor) -> KeyedJaggedTensor:  # type: ignore[override]  # noqa: E501
        """Inference runs the split inside each sharding's part; checks the input and passes it on."""
        check_input(features, self._all_features, self._owner)
        return features

    def compute(self, ctx: NullShardedModuleContext, dist_input: KeyedJaggedTensor) -> torch.Tensor:  # type: ignore[override]  # noqa: E501
        return self._pool(dist_input)

    def output_dist(self, ctx: NullShardedModuleContext, output: torch.Tensor) -> KeyedTensor:  # type: ignore[override]  # noqa: E501
        return KeyedTensor(keys=self._embedding_names, length_per_key=self._length_per_key, values=output)

    def compute_and_output_dist(self, ctx: NullShardedModuleContext, input: KeyedJaggedTensor) -> KeyedTensor:  # type: ignore[override]  # noqa: E501
        return self.output_dist(ctx, self.compute(ctx, input))

    def embedding_bag_configs(self) -> List[Any]:
        return self._embedding_bag_configs

    def shardings(self) -> Dict[str, Any]:
        """``{sharding type: its Infer*Sharding}``."""
        return self._sharding_type_to_sharding

    def is_weighted(self) -> bool:
        return self._is_weighted

    def output_dtype(self) -> torch.dtype:
        return self._output_dtype

    def copy(self, device: torch.device) -> nn.Module:
        return self


class QuantEmbeddingBagCollectionSharder(BaseQuantEmbeddingSharder[QuantEmbeddingBagCollection]):
    """Shards a quantized ``EmbeddingBagCollection`` for inference (TW / RW / CW, ``quant`` kernels)."""

    def shard(
        self,
        module: QuantEmbeddingBagCollection,
        params: Dict[str, ParameterSharding],
        env: Any,
        device: Optional[torch.device] = None,
        module_fqn: Optional[str] = None,
    ) -> ShardedQuantEmbeddingBagCollection:
        return ShardedQuantEmbeddingBagCollection(module, params, _one_env(env), self.fused_params, device)

    @property
    def module_type(self) -> Type[QuantEmbeddingBagCollection]:
        return QuantEmbeddingBagCollection


def _one_env(env: Any) -> ShardingEnv:
    if isinstance(env, dict):
        envs = list(env.values())
        if not envs:
            raise ValueError("an empty {device: ShardingEnv} mapping was given")
        return envs[0]
    return env


class ShardedQuantFeatureProcessedEmbeddingBagCollection(ShardedQuantEmbeddingBagCollection):
    """A sharded quantized FP-EBC: the feature processor runs on the whole input once (so position weights see
    every id of a bag), then the weighted EBC is sharded as above."""

    def __init__(
        self,
        module: nn.Module,
        table_name_to_parameter_sharding: Dict[str, ParameterSharding],
        env: ShardingEnv,
        fused_params: Optional[Dict[str, Any]] = None,
        device: Optional[torch.device] = None,
        feature_processor: Optional[nn.Module] = None,
    ) -> None:
        super().__init__(module, table_name_to_parameter_sharding, env, fused_params, device)
        processor = feature_processor if feature_processor is not None else getattr(module, "feature_processor", None)
        if processor is None:
            raise ValueError(type(self).__name__ + " needs a feature_processor")
        self.feature_processor: nn.Module = processor

    def apply_feature_processor(self, kjt_list: KJTList) -> KJTList:
        """The feature processor applied to each KJT of ``kjt_list`` (e.g. an input dist's per-rank KJTs)."""
        return KJTList([self.feature_processor(kjt) for kjt in kjt_list])

    def forward(self, *input: Any, **kwargs: Any) -> KeyedTensor:  # noqa: A002  (TorchRec's signature)
        features = input[0] if input else kwargs["features"]
        return super().forward(self.feature_processor(features))


class QuantFeatureProcessedEmbeddingBagCollectionSharder(
    BaseQuantEmbeddingSharder[QuantFeatureProcessedEmbeddingBagCollection]
):
    """Shards a quantized ``FeatureProcessedEmbeddingBagCollection`` for inference: TW / CW (TorchRec offers no
    row-wise here; the sharded module itself handles every type the registry offers)."""

    def sharding_types(self, compute_device_type: str) -> List[str]:
        return [t for t in super().sharding_types(compute_device_type) if not strategy_for(t).pools_partial_sums]

    def compute_kernels(self, sharding_type: str, compute_device_type: str) -> List[str]:
        return [EmbeddingComputeKernel.QUANT.value]

    def shard(
        self,
        module: QuantFeatureProcessedEmbeddingBagCollection,
        params: Dict[str, ParameterSharding],
        env: Any,
        device: Optional[torch.device] = None,
        module_fqn: Optional[str] = None,
    ) -> ShardedQuantFeatureProcessedEmbeddingBagCollection:
        return ShardedQuantFeatureProcessedEmbeddingBagCollection(
            module, params, _one_env(env), self.fused_params, device, module.feature_processor
        )

    @property
    def module_type(self) -> Type[QuantFeatureProcessedEmbeddingBagCollection]:
        return QuantFeatureProcessedEmbeddingBagCollection


from recsys_lib.distributed._infer.mc_quant import (  # noqa: E402,F401  (TorchRec defines them in this module)
    QuantManagedCollisionEmbeddingBagCollectionSharder,
    ShardedMCEBCLookup,
    ShardedQuantManagedCollisionEmbeddingBagCollection,
)
