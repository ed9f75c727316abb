"""Sharded quantized ``EmbeddingCollection`` for inference on one host, and its sharder.

As ``quant_embeddingbag`` for sequences: each sharding type's strategy (``sharding/<x>_sharding/infer.py``)
splits the KJT per rank and runs one local quantized EC per rank; each feature's ``(N_f, D)`` rows are then
assembled::

    TW: the rows of the rank holding the table     CW: the column blocks side by side
    RW: each rank's rows put back at the positions of the ids it owns

``forward(KJT) -> Dict[str, JaggedTensor]`` equals the unsharded module's output exactly (no arithmetic).
"""

from typing import Any, Dict, List, Optional, Type

import torch
from torch import nn

from recsys_lib.distributed._core.env import NullShardedModuleContext, ShardingEnv
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._core.sharder import ShardedModule
from recsys_lib.distributed._infer.build import infos_by_sharding_type, state_dict_weight_cols
from recsys_lib.distributed._infer.dist import check_input, jagged_outputs
from recsys_lib.distributed._infer.modules import InferSequenceShards
from recsys_lib.distributed._infer.sharding import LocalModuleOptions
from recsys_lib.distributed._sharded.module_bases import BaseQuantEmbeddingSharder
from recsys_lib.distributed.embedding_sharding import EmbeddingShardingInfo
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


class ShardedQuantEmbeddingCollection(ShardedModule):
    """A quantized ``EmbeddingCollection`` sharded over the devices of this process.

    Args:
        module: the quantized EC (``recsys_lib.quant.embedding_modules.EmbeddingCollection``).
        table_name_to_parameter_sharding: a plan entry per table (logical ``(stored rows, D)`` coordinates).
        env: ``world_size`` "ranks" (``ShardingEnv.from_local``).
        fused_params: accepted (kernel options come from ``module``).
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
        options = LocalModuleOptions(output_dtype=module.output_dtype(), register_tbes=module.register_tbes,
                                     row_alignment=module.row_alignment)
        self._env = env
        self._device: torch.device = torch.device(device) if device is not None else torch.device("cpu")
        self._embedding_configs = configs
        self._embedding_dim: int = module.embedding_dim()
        self._need_indices: bool = module.need_indices()
        self._output_dtype: torch.dtype = module.output_dtype()
        self._sharding_type_to_sharding: Dict[str, Any] = {}
        parts: List[nn.Module] = []
        for st, st_infos in infos.items():
            sharding = create_infer_embedding_sharding(st, st_infos, env, self._device)
            self._sharding_type_to_sharding[st] = sharding
            lookups = sharding.create_lookup(options)
            parts.append(InferSequenceShards(sharding.create_input_dist(), lookups,
                                             sharding.create_output_dist(lookups)))
        self._shards: nn.ModuleList = nn.ModuleList(parts)
        self._embedding_names: List[str] = list(module._embedding_names)
        self._feature_of_name: List[str] = list(module._feature_order)
        self._all_features: Dict[str, int] = {f: 0 for f in module._feature_order}
        self._owner: str = owner

    def forward(self, features: KeyedJaggedTensor) -> Dict[str, JaggedTensor]:
        """``{embedding name: JaggedTensor(values (N_f, D), lengths)}``, as the unsharded module returns."""
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
