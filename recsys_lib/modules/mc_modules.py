"""Managed-collision modules (``torchrec.modules.mc_modules``): raw ids -> table rows with eviction.

The pieces live in private siblings, one concept each: ``_mc_base`` (the ``ManagedCollisionModule`` interface and
the collection's helpers), ``_mch`` (``MCHManagedCollisionModule`` and its remap), ``_mc_eviction`` (eviction
policies and admission filters). This file holds ``ManagedCollisionCollection``, which routes the features of a
KJT to one MC module per table. See ``docs/managed_collision.md``.
"""

from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from recsys_lib.modules._mc_base import (  # noqa: F401
    _cat_jagged_lengths,
    _cat_jagged_values,
    _get_length_per_key,
    _mcc_lazy_init,
    _mcc_lazy_init_inplace,
    _update,
    apply_mc_method_to_jt_dict,
    ManagedCollisionModule,
)
from recsys_lib.modules._mc_eviction import (  # noqa: F401
    average_threshold_filter,
    DistanceLFU_EvictionPolicy,
    dynamic_threshold_filter,
    LFU_EvictionPolicy,
    LRU_EvictionPolicy,
    MCHEvictionPolicy,
    MCHEvictionPolicyMetadataInfo,
    probabilistic_threshold_filter,
)
from recsys_lib.modules._mch import _mch_remap, MCHManagedCollisionModule  # noqa: F401
from recsys_lib.modules.embedding_configs import BaseEmbeddingConfig
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor


class ManagedCollisionCollection(nn.Module):
    """One managed-collision module per table: remaps the ids of each table's features.

    Args:
        managed_collision_modules: ``{table name: ManagedCollisionModule}``; ``output_size()`` must equal the
            table's ``num_embeddings``.
        embedding_configs: the tables (their ``feature_names`` pick the input features).
        need_preprocess: kept for sharded modules (whether ids still need ``preprocess``).

    Example::

        mcc = ManagedCollisionCollection({"t": MCHManagedCollisionModule(...)}, [EmbeddingConfig(name="t", ...)])
        rows = mcc(kjt)  # KJT in table-feature order; values are rows of the tables
    """

    _table_to_features: Dict[str, List[str]]
    _features_order: List[int]
    _created_feature_order: List[bool]

    def __init__(
        self,
        managed_collision_modules: Dict[str, ManagedCollisionModule],
        embedding_configs: Sequence[BaseEmbeddingConfig],
        need_preprocess: bool = True,
    ) -> None:
        super().__init__()
        self._managed_collision_modules = nn.ModuleDict(managed_collision_modules)
        self._embedding_configs = embedding_configs
        self.need_preprocess = need_preprocess
        self._feature_to_table: Dict[str, str] = {f: c.name for c in embedding_configs for f in c.feature_names}
        self._table_to_features = {c.name: c.feature_names for c in embedding_configs}
        self._table_feature_splits: List[int] = [len(fs) for fs in self._table_to_features.values()]
        self._table_name_to_config: Dict[str, BaseEmbeddingConfig] = {c.name: c for c in embedding_configs}
        for name, config in self._table_name_to_config.items():
            if name not in managed_collision_modules:
                raise ValueError(f"Table {name} is not present in managed_collision_modules")
            size = managed_collision_modules[name].output_size()
            if size != config.num_embeddings:
                raise ValueError(
                    f"ManagedCollisionCollection: table {name!r} has num_embeddings {config.num_embeddings} but "
                    f"its managed collision module outputs {size} rows; they must match"
                )
        if list(managed_collision_modules) != list(self._table_name_to_config):
            # features are split in config order and handed to the modules in dict order: they must agree
            raise ValueError(
                f"ManagedCollisionCollection: managed_collision_modules keys {list(managed_collision_modules)} must "
                f"list the tables in embedding_configs order {list(self._table_name_to_config)}"
            )
        self._feature_names: List[str] = [f for c in embedding_configs for f in c.feature_names]
        self._created_feature_order = [False]
        self._features_order = []

    def embedding_configs(self) -> Sequence[BaseEmbeddingConfig]:
        return self._embedding_configs

    def table_to_number_buckets(self) -> Dict[str, int]:
        return {t: m.buckets() for t, m in self._managed_collision_modules.items()}  # type: ignore[operator]

    def forward(self, features: KeyedJaggedTensor, mutate_miss_lengths: bool = True) -> KeyedJaggedTensor:
        """Remap the ids of every table's features.

        Args:
            features: KJT holding (at least) every table feature; other keys are dropped.
            mutate_miss_lengths: passed to each module's ``forward``.

        Returns:
            KJT with keys in table-config order, same lengths, values = rows.
        """
        features = _mcc_lazy_init_inplace(
            features, self._feature_names, self._features_order, self._created_feature_order
        )
        per_table = features.split(self._table_feature_splits)
        output: Optional[Dict[str, JaggedTensor]] = None
        for i, (table, mc_module) in enumerate(self._managed_collision_modules.items()):
            kjt = per_table[i]
            mc_input: Dict[str, JaggedTensor] = {table: JaggedTensor(values=kjt.values(), lengths=kjt.lengths())}
            output = _update(output, mc_module(mc_input, mutate_miss_lengths=mutate_miss_lengths))
        assert output is not None
        return _rebuild_kjt(features, _cat_jagged_values(output), _cat_jagged_lengths(output))

    def evict(self) -> Dict[str, Optional[torch.Tensor]]:
        """``{table: rows (E,) to re-initialise, or None}``."""
        return {t: m.evict() for t, m in self._managed_collision_modules.items()}  # type: ignore[operator]

    def open_slots(self) -> Dict[str, torch.Tensor]:
        return {t: m.open_slots() for t, m in self._managed_collision_modules.items()}  # type: ignore[operator]

    def lookup_runtime_meta(self, features: KeyedJaggedTensor, remapped_ids: KeyedJaggedTensor) -> KeyedJaggedTensor:
        """Per-id runtime metadata of modules that keep it (hash ZCH), as a KJT shaped like ``features``."""
        raw = features.split(self._table_feature_splits)
        rows = remapped_ids.split(self._table_feature_splits)
        metas = [
            m.lookup_runtime_meta(raw[i].values(), rows[i].values()).reshape(-1)  # type: ignore[operator]
            for i, m in enumerate(self._managed_collision_modules.values())
        ]
        return _rebuild_kjt(features, torch.cat(metas), features.lengths())

    def lookup_custom_runtime_meta(self, remapped_ids: KeyedJaggedTensor) -> torch.Tensor:
        """Custom runtime metadata rows of the remapped ids, concatenated over tables."""
        rows = remapped_ids.split(self._table_feature_splits)
        return torch.cat(
            [
                m.lookup_custom_runtime_meta(rows[i].values())  # type: ignore[operator]
                for i, m in enumerate(self._managed_collision_modules.values())
            ],
            dim=0,
        )


def _rebuild_kjt(like: KeyedJaggedTensor, values: torch.Tensor, lengths: torch.Tensor) -> KeyedJaggedTensor:
    # same keys / strides / weights / inverse indices as `like`, new values and lengths
    vbe = like.variable_stride_per_key()
    return KeyedJaggedTensor(
        keys=like.keys(),
        values=values,
        lengths=lengths,
        weights=like.weights_or_none(),
        stride=None if vbe else like.stride(),
        stride_per_key_per_rank=like.stride_per_key_per_rank() if vbe else None,
        inverse_indices=like.inverse_indices_or_none(),
    )
