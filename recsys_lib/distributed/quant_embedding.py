"""Sharded quantized ``EmbeddingCollection`` for inference on one host, and its sharder.

As ``quant_embeddingbag`` for sequences: each sharding type's strategy (``sharding/<x>_sharding/infer.py``)
splits the KJT per rank and runs one local quantized EC per rank; each feature's ``(N_f, D)`` rows are then
assembled::

    TW: the rows of the rank holding the table     CW: the column blocks side by side
    RW: each rank's rows put back at the positions of the ids it owns

``forward(KJT) -> Dict[str, JaggedTensor]`` equals the unsharded module's output exactly (no arithmetic).
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
from recsys_lib.distributed._infer.dist import check_input, jagged_outputs
from recsys_lib.distributed._infer.input_dist import (  # noqa: F401  (TorchRec's names here)
    EmbeddingCollectionContext,
    ShardedQuantEcInputDist,
)
from recsys_lib.distributed._infer.modules import InferSequenceShards
from recsys_lib.distributed._infer.names import (  # noqa: F401  (TorchRec's names here)
    annotate_embedding_names,
    format_embedding_names_per_rank_per_sharding,
    input_dist_permute,
)
from recsys_lib.distributed._infer.sharding import local_module_fused_params
from recsys_lib.distributed._infer.state import kernel_configs
from recsys_lib.distributed._sharded.module_bases import BaseQuantEmbeddingSharder
from recsys_lib.distributed._sharded.table_types import GroupedEmbeddingConfig
from recsys_lib.distributed.embedding_sharding import KJTList
from recsys_lib.distributed.embedding_sharding import EmbeddingShardingInfo
from recsys_lib.distributed.fused_params import (
    is_fused_param_quant_state_dict_split_scale_bias,
    is_fused_param_register_tbe,
)
from recsys_lib.distributed.quant_state import ShardedQuantEmbeddingModuleState
from recsys_lib.distributed.quant_embeddingbag import _one_env
from recsys_lib.distributed.sharding.strategy import strategy_for
from recsys_lib.quant.embedding_modules import EmbeddingCollection as QuantEmbeddingCollection
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor

torch.fx.wrap("check_input")
torch.fx.wrap("jagged_outputs")


def create_infer_embedding_sharding(
    sharding_type: str,
    sharding_infos: List[EmbeddingShardingInfo],
    env: ShardingEnv,
    device: Optional[torch.device] = None,
) -> Any:
    """The registry's sequence inference sharding of ``sharding_type`` (``ValueError`` if not offered)."""
    return strategy_for(sharding_type).create_infer_sequence(sharding_infos, env, device)


class ShardedQuantEmbeddingCollection(ShardedQuantEmbeddingModuleState):
    """A quantized ``EmbeddingCollection`` sharded over the devices of this process.

    Args:
        module: the quantized EC (``recsys_lib.quant.embedding_modules.EmbeddingCollection``).
        table_name_to_parameter_sharding: a plan entry per table (logical ``(stored rows, D)`` coordinates).
        env: ``world_size`` "ranks" (``ShardingEnv.from_local``).
        fused_params: ``register_tbes`` / ``quant_state_dict_split_scale_bias`` switches (``fused_params.py``);
            other kernel options come from ``module``. The state dict names the unsharded tables
            (``embeddings.<table>.weight`` ..., see ``quant_state``).
        device: where the outputs are gathered (default CPU).
    """

    def __init__(
        self,
        module: QuantEmbeddingCollection,
        table_name_to_parameter_sharding: Dict[str, ParameterSharding],
        env: ShardingEnv,
        fused_params: Optional[Dict[str, Any]] = None,
        device: Optional[torch.device] = None,
    ) -> None:
        super().__init__()
        if not isinstance(module, QuantEmbeddingCollection):
            raise TypeError(f"{type(self).__name__} shards a quantized EmbeddingCollection, got {type(module).__name__}")
        owner = type(self).__name__
        configs = module.embedding_configs()
        stored = {c.name: r for c, r in zip(configs, module._rows)}
        names = {c.name: list(n) for c, n in zip(configs, module.embedding_names_by_table())}
        infos = infos_by_sharding_type(owner, configs, stored, names, table_name_to_parameter_sharding, False,
                                       state_dict_weight_cols(module))
        local_params = local_module_fused_params(
            module.output_dtype(), module.register_tbes or is_fused_param_register_tbe(fused_params), module.row_alignment,
            is_fused_param_quant_state_dict_split_scale_bias(fused_params))
        self._env = env
        self._device: torch.device = torch.device(device) if device is not None else torch.device("cpu")
        self._embedding_configs = configs
        self._embedding_dim: int = module.embedding_dim()
        self._need_indices: bool = module.need_indices()
        self._output_dtype: torch.dtype = module.output_dtype()
        self._sharding_type_to_sharding: Dict[str, Any] = {}
        self._sharding_type_device_group_to_sharding_infos: Dict[Tuple[str, str], List[EmbeddingShardingInfo]] = {
            (st, self._device.type): st_infos for st, st_infos in infos.items()}
        parts: List[nn.Module] = []
        all_lookups: List[nn.ModuleList] = []
        for st, st_infos in infos.items():
            sharding = create_infer_embedding_sharding(st, st_infos, env, self._device)
            self._sharding_type_to_sharding[st] = sharding
            lookups = sharding.create_lookup(self._device, local_params)
            all_lookups.append(lookups)
            parts.append(InferSequenceShards(sharding.create_input_dist(), lookups,
                                             sharding.create_output_dist()))
        self._shards: nn.ModuleList = nn.ModuleList(parts)
        self._embedding_names: List[str] = list(module._embedding_names)
        self._feature_of_name: List[str] = list(module._feature_order)
        self._all_features: Dict[str, int] = {f: 0 for f in module._feature_order}
        self._owner: str = owner
        self._sharding_type_device_group_to_sharding: Dict[Tuple[str, str], Any] = {
            (st, self._device.type): sh for st, sh in self._sharding_type_to_sharding.items()}
        self._input_dist = ShardedQuantEcInputDist(list(module._feature_order),
                                                   self._sharding_type_device_group_to_sharding, self._device)
        self._tbes_configs: Dict[nn.Module, GroupedEmbeddingConfig] = kernel_configs(
            list(self._sharding_type_to_sharding.values()), all_lookups, self._device, fused_params)
        self._initialize_torch_state(self._tbes_configs, table_name_to_parameter_sharding, "embeddings")

    def forward(self, *input: Any, **kwargs: Any) -> Dict[str, JaggedTensor]:  # noqa: A002  (TorchRec's signature)
        """``forward(features: KJT)``: ``{embedding name: JaggedTensor(values (N_f, D), lengths)}``, as the
        unsharded module returns."""
        features: KeyedJaggedTensor = input[0] if input else kwargs["features"]
        check_input(features, self._all_features, self._owner)
        parts: List[Dict[str, torch.Tensor]] = []
        for part in self._shards:
            parts.append(part(features))
        return jagged_outputs(features, parts, self._embedding_names, self._feature_of_name, self._need_indices)

    # ShardedModule's steps (TorchRec's names); ``forward`` runs them as one scriptable call.
    def create_context(self) -> NullShardedModuleContext:
        return NullShardedModuleContext()

    def input_dist(self, ctx: NullShardedModuleContext, features: KeyedJaggedTensor) -> KeyedJaggedTensor:  # type: ignore[override]  # noqa: E501
        """Inference runs the split inside each sharding's part; checks the input and passes it on."""
        check_input(features, self._all_features, self._owner)
        return features

    def compute(self, ctx: NullShardedModuleContext, dist_input: KeyedJaggedTensor) -> Dict[str, JaggedTensor]:  # type: ignore[override]  # noqa: E501
        return self.forward(dist_input)

    def output_dist(self, ctx: NullShardedModuleContext, output: Dict[str, JaggedTensor]) -> Dict[str, JaggedTensor]:  # type: ignore[override]  # noqa: E501
        return output

    def compute_and_output_dist(self, ctx: NullShardedModuleContext, input: KeyedJaggedTensor) -> Dict[str, JaggedTensor]:  # type: ignore[override]  # noqa: E501
        return self.compute(ctx, input)

    def embedding_configs(self) -> List[Any]:
        return self._embedding_configs

    def shardings(self) -> Dict[str, Any]:
        """``{sharding type: its Infer*SequenceEmbeddingSharding}``."""
        return self._sharding_type_to_sharding

    def output_jt_dict(
        self,
        emb_per_sharding: List[List[torch.Tensor]],
        features_per_sharding: List[KJTList],
        features_before_input_dist_per_sharding: List[KeyedJaggedTensor],
        unbucketize_tensors: List[Optional[torch.Tensor]],
        bucket_mapping_tensors: List[Optional[torch.Tensor]],
        bucketized_lengths: List[Optional[torch.Tensor]],
    ) -> Dict[str, JaggedTensor]:
        """Assemble ``{embedding name: JaggedTensor}`` from per-sharding, per-rank lookup rows.

        Args:
            emb_per_sharding: per sharding type, per active rank: rows ``(N_r, D)`` for the ids of that rank's KJT
                (its keys in order).
            features_per_sharding: the per-rank KJTs (``ShardedQuantEcInputDist``'s first output).
            features_before_input_dist_per_sharding: each sharding's input (its second output).
            unbucketize_tensors / bucket_mapping_tensors / bucketized_lengths: accepted (row-split rows are put
                back from the kept positions, recomputed from the inputs).
        """
        parts: List[Dict[str, torch.Tensor]] = []
        jts: Dict[str, JaggedTensor] = {}
        for part, embs, kjts, before in zip(self._shards, emb_per_sharding, features_per_sharding,
                                            features_before_input_dist_per_sharding):
            positions = part._input_dist(before)[1]
            outs: List[Dict[str, JaggedTensor]] = []
            for lookup, emb, kjt in zip(part._lookups, embs, kjts):
                name_of = dict(zip(lookup._feature_order, lookup._embedding_names))
                rows = emb.split(kjt.length_per_key())
                outs.append({name_of[f]: JaggedTensor(values=r, lengths=kjt[f].lengths())
                             for f, r in zip(kjt.keys(), rows)})
            parts.append(part._output_dist(before, outs, positions))
            jts.update(before.to_dict())
        out: Dict[str, JaggedTensor] = {}
        for name, f in zip(self._embedding_names, self._feature_of_name):
            rows_ = [p[name] for p in parts if name in p][0]
            out[name] = JaggedTensor(values=rows_, lengths=jts[f].lengths(),
                                     weights=jts[f].values() if self._need_indices else None)
        return out

    def tbes_configs(self) -> Dict[nn.Module, GroupedEmbeddingConfig]:
        """``{kernel (one local quantized EC per rank, sharding type and width): its tables' shards}``."""
        return self._tbes_configs

    def sharding_type_device_group_to_sharding_infos(self) -> Dict[Tuple[str, str], List[EmbeddingShardingInfo]]:
        """``{(sharding type, device type): the tables' sharding infos}``."""
        return self._sharding_type_device_group_to_sharding_infos

    def copy(self, device: torch.device) -> nn.Module:
        return self


class QuantEmbeddingCollectionSharder(BaseQuantEmbeddingSharder[QuantEmbeddingCollection]):
    """Shards a quantized ``EmbeddingCollection`` for inference (TW / RW / CW, ``quant`` kernels)."""

    def shard(
        self,
        module: QuantEmbeddingCollection,
        params: Dict[str, ParameterSharding],
        env: Any,
        device: Optional[torch.device] = None,
        module_fqn: Optional[str] = None,
    ) -> ShardedQuantEmbeddingCollection:
        return ShardedQuantEmbeddingCollection(module, params, _one_env(env), self.fused_params, device)

    @property
    def module_type(self) -> Type[QuantEmbeddingCollection]:
        return QuantEmbeddingCollection


from recsys_lib.distributed._infer.mc_quant import (  # noqa: E402,F401  (TorchRec defines them in this module)
    ManagedCollisionEmbeddingCollectionContext,
    QuantManagedCollisionEmbeddingCollectionSharder,
    ShardedMCECLookup,
    ShardedQuantManagedCollisionEmbeddingCollection,
)
