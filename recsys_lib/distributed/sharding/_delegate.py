"""``EmbeddingSharding`` methods forwarded to an inner sharding (flat mix-in for composed strategies:
column-wise runs table-wise on its column shards, table-column-wise runs column-wise)."""

from typing import Any, Dict, List, Optional

import torch


class DelegatedQueries:
    """Forwards every ``EmbeddingSharding`` query (names, dims, tables, metadata) to ``self._inner``."""

    _inner: Any

    def feature_names(self) -> List[str]:
        return self._inner.feature_names()

    def feature_names_per_rank(self) -> List[List[str]]:
        return self._inner.feature_names_per_rank()

    def features_per_rank(self) -> List[int]:
        return self._inner.features_per_rank()

    def embedding_dims(self) -> List[int]:
        return self._inner.embedding_dims()

    def embedding_names(self) -> List[str]:
        return self._inner.embedding_names()

    def embedding_names_per_rank(self) -> List[List[str]]:
        return self._inner.embedding_names_per_rank()

    def embedding_shard_metadata(self) -> List[Optional[Any]]:
        return self._inner.embedding_shard_metadata()

    def embedding_tables(self) -> List[Any]:
        return self._inner.embedding_tables()

    def uncombined_embedding_dims(self) -> List[int]:
        return self._inner.uncombined_embedding_dims()

    def uncombined_embedding_names(self) -> List[str]:
        return self._inner.uncombined_embedding_names()


class DelegatedSharding(DelegatedQueries):
    """Forwards every ``EmbeddingSharding`` query and factory to ``self._inner``; composers override a few."""

    def create_input_dist(self, device: Optional[torch.device] = None) -> Any:
        return self._inner.create_input_dist(device)

    def create_lookup(
        self,
        device: Optional[torch.device] = None,
        fused_params: Optional[Dict[str, Any]] = None,
        feature_processor: Optional[Any] = None,
    ) -> Any:
        return self._inner.create_lookup(device, fused_params, feature_processor)

    def create_output_dist(self, device: Optional[torch.device] = None) -> Any:
        return self._inner.create_output_dist(device)


def init_base_sharding(sharding: Any, inner: Any, env: Any, device: Optional[torch.device]) -> None:
    """State a TorchRec ``Base*EmbeddingSharding`` subclass reads: ``_env``, ``_pg``, ``_world_size``, ``_rank``,
    ``_device``; queries answered by ``inner`` (the strategy's pooled sharding over the same infos)."""
    sharding._inner = inner
    sharding._env = env
    sharding._pg = env.process_group
    sharding._world_size = env.world_size
    sharding._rank = env.rank
    sharding._device = device
