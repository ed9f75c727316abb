"""Quantized inference lookups at TorchRec's path (``torchrec.distributed.embedding_lookup``).

* ``MetaInferGroupedPooledEmbeddingsLookup`` / ``MetaInferGroupedEmbeddingsLookup``: one rank's lookup, one
  quantized kernel (``QuantBatchedEmbeddingBag`` / ``QuantBatchedEmbedding``) per grouped config; the KJT is split
  by group, outputs concatenated (pooled ``[B, sum D]`` along dim 1, sequence ``[N, D]`` along dim 0).
* ``InferGroupedPooledEmbeddingsLookup`` / ``InferGroupedEmbeddingsLookup``: one such lookup per rank of a
  single-host inference sharding; ``forward(InputDistOutputs)`` takes one KJT per rank (``features[r]``) and
  returns one tensor per rank. Rank ``r``'s kernels live on ``cuda:r`` for a CUDA device, else on the device type
  given (``cpu`` by default). Pooled lookups skip ranks without tables (their KJTs are ignored).

State dicts use the unsharded table names (``"<table>.weight"``), merged over groups and ranks.
"""

from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.distributed._core.sharder import rank_device
from recsys_lib.distributed._sharded.table_types import (
    BaseEmbeddingLookup,
    BaseGroupedFeatureProcessor,
    GroupedEmbeddingConfig,
)
from recsys_lib.distributed.embedding_kernel import KernelStateViews, load_kernels_state_dict
from recsys_lib.distributed.fused_params import TBEToRegisterMixIn, get_tbes_to_register_from_iterable
from recsys_lib.distributed.quant_embedding_kernel import QuantBatchedEmbedding, QuantBatchedEmbeddingBag


def _inference_cat(embeddings: List[torch.Tensor], dim: int, device: Optional[torch.device]) -> torch.Tensor:
    if len(embeddings) == 0:
        return torch.empty([0], device=device)
    if len(embeddings) == 1:
        return embeddings[0]
    return torch.cat(embeddings, dim=dim)


class _MetaInferBase(KernelStateViews, BaseEmbeddingLookup[Any, torch.Tensor], TBEToRegisterMixIn):
    """One rank's quantized kernels (one per group) and their merged state views."""

    _emb_modules: nn.ModuleList
    _feature_splits: List[int]
    _device: Optional[torch.device]

    def get_tbes_to_register(self) -> Dict[nn.Module, GroupedEmbeddingConfig]:
        return get_tbes_to_register_from_iterable(self._emb_modules)

    def embeddings_cat_empty_rank_handle_inference(self, embeddings: List[torch.Tensor], dim: int = 0) -> torch.Tensor:
        """``cat(embeddings, dim)``; an empty ``[0]`` tensor on this lookup's device when there are none."""
        return _inference_cat(embeddings, dim, self._device)

    def _groups(self, sparse_features: Any) -> List[Any]:
        if len(self._feature_splits) == 0:
            return []
        if len(self._feature_splits) == 1:
            return [sparse_features]
        return sparse_features.split(self._feature_splits)


    def flush(self) -> None:
        """Inference kernels cache nothing: a no-op."""

    def purge(self) -> None:
        """Inference kernels cache nothing: a no-op."""


@public_at("recsys_lib.distributed.embedding_lookup")
class MetaInferGroupedPooledEmbeddingsLookup(_MetaInferBase):
    """One rank's pooled quantized lookup: ``forward(KJT) -> [B, sum D]`` (groups concatenated along dim 1).

    Args:
        grouped_configs: the rank's groups; device: where the kernels live; feature_processor: applied to groups
        with ``has_feature_processor``; fused_params: kernel options (output dtype, TBE registration ...);
        shard_index: passed to the kernels.
    """

    def __init__(
        self,
        grouped_configs: List[GroupedEmbeddingConfig],
        device: Optional[torch.device] = None,
        feature_processor: Optional[BaseGroupedFeatureProcessor] = None,
        fused_params: Optional[Dict[str, Any]] = None,
        shard_index: Optional[int] = None,
    ) -> None:
        super().__init__()
        self._device = device
        self.grouped_configs = list(grouped_configs)
        self._emb_modules = nn.ModuleList(
            [QuantBatchedEmbeddingBag(c, device=device, fused_params=fused_params, shard_index=shard_index)
             for c in self.grouped_configs]
        )
        self._feature_splits = [c.num_features() for c in self.grouped_configs]
        self._feature_processor = feature_processor

    def forward(self, sparse_features: Any) -> torch.Tensor:
        embeddings: List[torch.Tensor] = []
        for config, kernel, features in zip(self.grouped_configs, self._emb_modules, self._groups(sparse_features)):
            if config.has_feature_processor and self._feature_processor is not None:
                features = self._feature_processor(features)
            embeddings.append(kernel(features))
        return self.embeddings_cat_empty_rank_handle_inference(embeddings, dim=1)


@public_at("recsys_lib.distributed.embedding_lookup")
class MetaInferGroupedEmbeddingsLookup(_MetaInferBase):
    """One rank's sequence quantized lookup: ``forward(KJT) -> [N, D]`` (groups concatenated along dim 0)."""

    def __init__(
        self,
        grouped_configs: List[GroupedEmbeddingConfig],
        device: Optional[torch.device] = None,
        fused_params: Optional[Dict[str, Any]] = None,
        shard_index: Optional[int] = None,
    ) -> None:
        super().__init__()
        self._device = device
        self.grouped_configs = list(grouped_configs)
        self._emb_modules = nn.ModuleList(
            [QuantBatchedEmbedding(c, device=device, fused_params=fused_params, shard_index=shard_index)
             for c in self.grouped_configs]
        )
        self._feature_splits = [c.num_features() for c in self.grouped_configs]

    def forward(self, sparse_features: Any) -> torch.Tensor:
        embeddings = [kernel(f) for kernel, f in zip(self._emb_modules, self._groups(sparse_features))]
        return self.embeddings_cat_empty_rank_handle_inference(embeddings, dim=0)


@public_at("recsys_lib.distributed.embedding_lookup")
class InferGroupedLookupMixin:
    """Per-rank lookups of a single-host inference sharding (``self._embedding_lookups_per_rank``)."""

    _embedding_lookups_per_rank: nn.ModuleList

    def forward(self, input_dist_outputs: Any) -> List[torch.Tensor]:
        """``input_dist_outputs.features[r]`` → rank ``r``'s lookup; one output per rank."""
        features = input_dist_outputs.features
        return [lookup(features[i]) for i, lookup in enumerate(self._embedding_lookups_per_rank)]

    def state_dict(
        self, destination: Optional[Dict[str, Any]] = None, prefix: str = "", keep_vars: bool = False
    ) -> Dict[str, Any]:
        if destination is None:
            destination = {}
        for lookup in self._embedding_lookups_per_rank:
            lookup.state_dict(destination, prefix, keep_vars)
        return destination

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any:
        return load_kernels_state_dict(list(self._embedding_lookups_per_rank), state_dict, strict)

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[Tuple[str, nn.Parameter]]:
        for lookup in self._embedding_lookups_per_rank:
            yield from lookup.named_parameters(prefix, recurse)

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[Tuple[str, torch.Tensor]]:
        for lookup in self._embedding_lookups_per_rank:
            yield from lookup.named_buffers(prefix, recurse)


def _rank_device_type(device: Optional[torch.device]) -> str:
    return "cpu" if device is None else torch.device(device).type


def _shard_index(rank: int, configs: List[GroupedEmbeddingConfig], device_types: Optional[Union[str, Tuple[str, ...]]]) -> Optional[int]:
    """Kernels learn their rank when the plan mixes device types or a table is virtual."""
    if isinstance(device_types, tuple) or any(c.is_using_virtual_table() for c in configs):
        return rank
    return None


@public_at("recsys_lib.distributed.embedding_lookup")
class InferGroupedPooledEmbeddingsLookup(InferGroupedLookupMixin, BaseEmbeddingLookup[Any, List[torch.Tensor]],
                                         TBEToRegisterMixIn):
    """Pooled quantized lookups of every rank of a single-host inference sharding (module doc).

    Args:
        grouped_configs_per_rank: each rank's groups; world_size: number of ranks; fused_params: kernel options;
        device: a CUDA device places rank ``r`` on ``cuda:r``, other types on that device type;
        device_type_from_sharding_infos: the plan's device type(s) (a tuple: mixed devices).
    """

    def __init__(
        self,
        grouped_configs_per_rank: List[List[GroupedEmbeddingConfig]],
        world_size: int,
        fused_params: Optional[Dict[str, Any]] = None,
        device: Optional[torch.device] = None,
        device_type_from_sharding_infos: Optional[Union[str, Tuple[str, ...]]] = None,
    ) -> None:
        super().__init__()
        device_type = _rank_device_type(device)
        lookups: List[nn.Module] = []
        self._is_empty_rank: List[bool] = []
        for rank in range(world_size):
            configs = grouped_configs_per_rank[rank]
            self._is_empty_rank.append(len(configs) == 0)
            if configs:
                lookups.append(MetaInferGroupedPooledEmbeddingsLookup(
                    grouped_configs=configs, device=rank_device(device_type, rank), fused_params=fused_params,
                    shard_index=_shard_index(rank, configs, device_type_from_sharding_infos),
                ))
        self._embedding_lookups_per_rank = nn.ModuleList(lookups)

    def get_tbes_to_register(self) -> Dict[nn.Module, GroupedEmbeddingConfig]:
        return get_tbes_to_register_from_iterable(self._embedding_lookups_per_rank)

    def forward(self, input_dist_outputs: Any) -> List[torch.Tensor]:
        features = [f for f, empty in zip(input_dist_outputs.features, self._is_empty_rank) if not empty]
        return [lookup(f) for lookup, f in zip(self._embedding_lookups_per_rank, features)]


@public_at("recsys_lib.distributed.embedding_lookup")
class InferGroupedEmbeddingsLookup(InferGroupedLookupMixin, BaseEmbeddingLookup[Any, List[torch.Tensor]],
                                   TBEToRegisterMixIn):
    """Sequence quantized lookups of every rank of a single-host inference sharding (module doc; arguments as
    :class:`InferGroupedPooledEmbeddingsLookup`; ranks without tables keep an empty lookup)."""

    def __init__(
        self,
        grouped_configs_per_rank: List[List[GroupedEmbeddingConfig]],
        world_size: int,
        fused_params: Optional[Dict[str, Any]] = None,
        device: Optional[torch.device] = None,
        device_type_from_sharding_infos: Optional[Union[str, Tuple[str, ...]]] = None,
    ) -> None:
        super().__init__()
        device_type = _rank_device_type(device)
        self._embedding_lookups_per_rank = nn.ModuleList([
            MetaInferGroupedEmbeddingsLookup(
                grouped_configs=grouped_configs_per_rank[rank], device=rank_device(device_type, rank),
                fused_params=fused_params,
                shard_index=_shard_index(rank, grouped_configs_per_rank[rank], device_type_from_sharding_infos),
            )
            for rank in range(world_size)
        ])

    def get_tbes_to_register(self) -> Dict[nn.Module, GroupedEmbeddingConfig]:
        return get_tbes_to_register_from_iterable(self._embedding_lookups_per_rank)
