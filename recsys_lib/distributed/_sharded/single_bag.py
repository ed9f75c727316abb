"""Sharding one ``nn.EmbeddingBag`` (TorchRec's ``ShardedEmbeddingBag`` / ``EmbeddingBagSharder``).

The bag is served as a one-table, weighted ``EmbeddingBagCollection`` (table ``dummy_embedding_table_name``,
feature ``dummy_feature_name``) sharded by :class:`ShardedEmbeddingBagCollection`; ``forward(input, offsets,
per_sample_weights)`` takes 1-D ids with ``B + 1`` offsets (a KeyedJaggedTensor's, as TorchRec reads them) and
returns ``[B, D]``::

    ids [3, 1, 4, 1, 5], offsets [0, 2, 2, 5]  ->  bags [3, 1] | [] | [4, 1, 5]  ->  out [3, D]

Only SUM pooling; table-wise sharding of a single bag is refused, as in TorchRec (use the unsharded bag).
State-dict keys are the bag's own (``weight``).
"""

from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Type

import torch
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.awaitable import Awaitable, LazyAwaitable
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._sharded.module_bases import BaseEmbeddingSharder, ShardedEmbeddingModule
from recsys_lib.distributed.embeddingbag import (
    EmbeddingAwaitable,
    EmbeddingBagCollectionContext,
    ShardedEmbeddingBagCollection,
)
from recsys_lib.distributed.sharding.strategy import strategy_for
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, PoolingType
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

TABLE = "dummy_embedding_table_name"
FEATURE = "dummy_feature_name"
_INNER_KEY = f"embedding_bags.{TABLE}.weight"


class _BagAsCollection(nn.Module):
    """The bag seen as a one-table weighted EBC (shares the bag's weight; nothing is copied)."""

    def __init__(self, bag: nn.EmbeddingBag) -> None:
        super().__init__()
        self._config = EmbeddingBagConfig(
            num_embeddings=bag.num_embeddings, embedding_dim=bag.embedding_dim, name=TABLE,
            feature_names=[FEATURE], pooling=PoolingType.SUM,
        )
        self.embedding_bags = nn.ModuleDict({TABLE: bag})

    def embedding_bag_configs(self) -> List[EmbeddingBagConfig]:
        return [self._config]

    def is_weighted(self) -> bool:
        return True


@public_at("recsys_lib.distributed.embeddingbag")
class ShardedEmbeddingBag(
    ShardedEmbeddingModule[KeyedJaggedTensor, torch.Tensor, torch.Tensor, EmbeddingBagCollectionContext],
):
    """A sharded ``nn.EmbeddingBag`` (see the module docstring).

    Args:
        module: the bag (``mode="sum"``).
        table_name_to_parameter_sharding: one plan entry (its key is the bag's parameter name).
        env / fused_params / device: as ``ShardedEmbeddingBagCollection``.
    """

    def __init__(
        self,
        module: nn.EmbeddingBag,
        table_name_to_parameter_sharding: Dict[str, ParameterSharding],
        env: ShardingEnv,
        fused_params: Optional[Dict[str, Any]] = None,
        device: Optional[torch.device] = None,
    ) -> None:
        super().__init__()
        if len(table_name_to_parameter_sharding) != 1:
            raise ValueError(
                f"ShardedEmbeddingBag: expected 1 plan entry, got {list(table_name_to_parameter_sharding)}"
            )
        if module.mode != "sum":
            raise ValueError(f"ShardedEmbeddingBag supports mode='sum' only, got mode={module.mode!r}")
        self.parameter_sharding: ParameterSharding = next(iter(table_name_to_parameter_sharding.values()))
        if strategy_for(self.parameter_sharding.sharding_type).short_name == "TW":
            raise RuntimeError("table-wise sharding of a single EmbeddingBag is not supported; keep it unsharded")
        self._ebc = ShardedEmbeddingBagCollection(
            _BagAsCollection(module), {TABLE: self.parameter_sharding}, env, fused_params, device
        )

    @classmethod
    def create_embedding_bag_sharding(
        cls,
        sharding_infos: List[Any],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        permute_embeddings: bool = False,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> Any:
        """The registry's pooled sharding of the (single) sharding type of ``sharding_infos``."""
        return ShardedEmbeddingBagCollection.create_embedding_bag_sharding(
            sharding_infos, env, device, permute_embeddings, qcomm_codecs_registry
        )

    def create_context(self) -> EmbeddingBagCollectionContext:
        return self._ebc.create_context()

    def input_dist(  # type: ignore[override]
        self,
        ctx: EmbeddingBagCollectionContext,
        input: torch.Tensor,
        offsets: Optional[torch.Tensor] = None,
        per_sample_weights: Optional[torch.Tensor] = None,
    ) -> Awaitable[Awaitable[Any]]:
        if per_sample_weights is None:
            per_sample_weights = torch.ones_like(input, dtype=torch.float)
        features = KeyedJaggedTensor(keys=[FEATURE], values=input, offsets=offsets, weights=per_sample_weights)
        return self._ebc.input_dist(ctx, features)

    def compute(self, ctx: EmbeddingBagCollectionContext, dist_input: Any) -> Any:
        return self._ebc.compute(ctx, dist_input)

    def output_dist(self, ctx: EmbeddingBagCollectionContext, output: Any) -> LazyAwaitable[torch.Tensor]:
        return EmbeddingAwaitable(_Values(self._ebc.output_dist(ctx, output)))

    def state_dict(  # type: ignore[override]
        self, destination: Optional[Dict[str, Any]] = None, prefix: str = "", keep_vars: bool = False
    ) -> Dict[str, Any]:
        if destination is None:
            destination = {}
        for key, value in self._ebc.state_dict(keep_vars=keep_vars).items():
            destination[prefix + key.split(".")[-1]] = value
        return destination

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any:  # type: ignore[override]
        renamed = {(_INNER_KEY if k == "weight" else k): v for k, v in state_dict.items()}
        return self._ebc.load_state_dict(renamed, strict)

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, nn.Parameter]]:
        for name, param in self._ebc.named_parameters("", recurse):
            yield (f"{prefix}." if prefix else "") + name.split(".")[-1], param

    def sharded_parameter_names(self, prefix: str = "") -> Iterator[str]:
        if strategy_for(self.parameter_sharding.sharding_type).replicated:
            return
        for name, _ in self.named_parameters(prefix):
            yield name

    @property
    def fused_optimizer(self) -> Any:
        return self._ebc.fused_optimizer

    @property
    def unsharded_module_type(self) -> Type[nn.EmbeddingBag]:
        return nn.EmbeddingBag


class _Values(Awaitable[torch.Tensor]):
    """The ``[B, D]`` values of the one-key ``KeyedTensor`` an awaitable returns."""

    def __init__(self, awaitable: Awaitable[Any]) -> None:
        super().__init__()
        self._awaitable = awaitable

    def _wait_impl(self) -> torch.Tensor:
        return self._awaitable.wait().values()


@public_at("recsys_lib.distributed.embeddingbag")
class EmbeddingBagSharder(BaseEmbeddingSharder[nn.EmbeddingBag]):
    """Shards a single ``nn.EmbeddingBag`` (row-wise, column-wise or data-parallel; not table-wise)."""

    def shard(
        self,
        module: nn.EmbeddingBag,
        params: Dict[str, ParameterSharding],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        module_fqn: Optional[str] = None,
    ) -> ShardedEmbeddingBag:
        return ShardedEmbeddingBag(module, params, env, self.fused_params, device)

    def shardable_parameters(self, module: nn.EmbeddingBag) -> Dict[str, nn.Parameter]:
        return {name: param for name, param in module.named_parameters()}

    @property
    def module_type(self) -> Type[nn.EmbeddingBag]:
        return nn.EmbeddingBag
