"""Embedding collections behind managed collision (``torchrec.modules.mc_embedding_modules``).

``forward(kjt)`` = remap raw ids with the ``ManagedCollisionCollection``, re-initialise the rows the MC modules
evicted during this batch (with the table's ``init_fn``), then look the rows up in the EC/EBC: an id that takes
over a row starts from a fresh embedding, not from its predecessor's. (TorchRec's unsharded modules skip
that re-initialisation; see ``docs/deviations.md``.)
"""

from typing import cast, Dict, Optional, Tuple, Union

import torch
from torch import nn

from recsys_lib.modules.embedding_configs import BaseEmbeddingConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
from recsys_lib.modules.mc_modules import ManagedCollisionCollection
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, KeyedTensor


def _weights_by_table(module: nn.Module) -> Dict[str, torch.Tensor]:
    if isinstance(module, EmbeddingBagCollection):
        return {name: bag.weight for name, bag in module.embedding_bags.items()}
    if isinstance(module, EmbeddingCollection):
        return {name: emb.weight for name, emb in module.embeddings.items()}
    return {}


def _configs_of(module: nn.Module) -> Dict[str, BaseEmbeddingConfig]:
    if isinstance(module, EmbeddingBagCollection):
        return {c.name: c for c in module.embedding_bag_configs()}
    if isinstance(module, EmbeddingCollection):
        return {c.name: c for c in module.embedding_configs()}
    return {}


@torch.no_grad()
def evict(evictions: Dict[str, Optional[torch.Tensor]], ebc: nn.Module) -> None:
    """Re-initialise evicted rows of ``ebc``'s tables with each table's ``init_fn``.

    Args:
        evictions: ``{table: rows (E,) or None}`` from ``ManagedCollisionCollection.evict()``.
        ebc: the ``EmbeddingCollection`` / ``EmbeddingBagCollection`` holding the tables.
    """
    weights, configs = _weights_by_table(ebc), _configs_of(ebc)
    for table, rows in evictions.items():
        if rows is None or rows.numel() == 0 or table not in weights:
            continue
        weight = weights[table]
        fresh = torch.empty((rows.numel(), weight.shape[1]), dtype=weight.dtype, device=weight.device)
        init_fn = configs[table].init_fn
        if init_fn is not None:
            init_fn(fresh)
        else:
            fresh.zero_()
        weight.index_copy_(0, rows.to(device=weight.device, dtype=torch.int64), fresh)


@torch.fx.wrap
def return_remapped_lengths_as_mask(features: KeyedJaggedTensor) -> torch.Tensor:
    """``(F*B,)`` bool: which bags are non-empty after remapping."""
    return features.lengths().to(torch.bool)


@torch.fx.wrap
def return_custom_metadata(runtime_meta: torch.Tensor) -> torch.Tensor:
    return runtime_meta


class BaseManagedCollisionEmbeddingCollection(nn.Module):
    """An EC or EBC whose input ids go through a ``ManagedCollisionCollection`` first.

    Args:
        embedding_module: the ``EmbeddingCollection`` / ``EmbeddingBagCollection`` (same table configs as the MCC).
        managed_collision_collection: one MC module per table.
        return_remapped_features: also return the remapped KJT.
        allow_in_place_embed_weight_update: re-initialise evicted rows in place (always done here, under
            ``no_grad``; the flag is kept for API compatibility).
    """

    def __init__(
        self,
        embedding_module: Union[EmbeddingBagCollection, EmbeddingCollection],
        managed_collision_collection: ManagedCollisionCollection,
        return_remapped_features: bool = False,
        allow_in_place_embed_weight_update: bool = False,
    ) -> None:
        super().__init__()
        self._managed_collision_collection = managed_collision_collection
        self._return_remapped_features = return_remapped_features
        self._allow_in_place_embed_weight_update = allow_in_place_embed_weight_update
        self._embedding_module: Union[EmbeddingBagCollection, EmbeddingCollection] = embedding_module
        if isinstance(embedding_module, EmbeddingBagCollection):
            ours = embedding_module.embedding_bag_configs()
        else:
            ours = embedding_module.embedding_configs()
        if list(ours) != list(managed_collision_collection.embedding_configs()):
            raise ValueError(
                f"{type(self).__name__}: the embedding module and the ManagedCollisionCollection must hold the same "
                f"table configs; got {[c.name for c in ours]} vs "
                f"{[c.name for c in managed_collision_collection.embedding_configs()]}"
            )

    def forward(
        self,
        features: KeyedJaggedTensor,
        mutate_miss_lengths: bool = True,
    ) -> Tuple[Union[KeyedTensor, Dict[str, JaggedTensor]], Optional[KeyedJaggedTensor]]:
        """Args: features, KJT of raw ids. Returns: ``(EC/EBC output, remapped KJT or None)``."""
        features = self._managed_collision_collection(features, mutate_miss_lengths=mutate_miss_lengths)
        # re-initialise rows that changed owner in this batch before the new owner reads them
        evict(self._managed_collision_collection.evict(), self._embedding_module)
        embedding_res = self._embedding_module(features)
        if not self._return_remapped_features:
            return embedding_res, None
        return embedding_res, features

    def lookup_remapped_lengths_mask(self, features: KeyedJaggedTensor) -> torch.Tensor:
        """``(F*B,)`` bool mask of non-empty bags after remapping ``features``."""
        features = self._managed_collision_collection(features, mutate_miss_lengths=True)
        return return_remapped_lengths_as_mask(features)

    def lookup_remapped_lengths_mask_and_runtime_meta(
        self, features: KeyedJaggedTensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The mask above plus the MC modules' custom runtime metadata of the remapped ids."""
        features = self._managed_collision_collection(features, mutate_miss_lengths=True)
        mask = return_remapped_lengths_as_mask(features)
        meta = return_custom_metadata(self._managed_collision_collection.lookup_custom_runtime_meta(features))
        return mask, meta


class ManagedCollisionEmbeddingCollection(BaseManagedCollisionEmbeddingCollection):
    """``EmbeddingCollection`` behind managed collision; ``forward`` returns ``({feature: JT (N_f, D)}, kjt?)``.

    Args:
        embedding_collection: the EC.
        managed_collision_collection: one MC module per table.
        return_remapped_features: also return the remapped KJT.
        allow_in_place_embed_weight_update: see the base class.

    Example::

        mc_ec = ManagedCollisionEmbeddingCollection(ec, mcc, return_remapped_features=True)
        embeddings, remapped = mc_ec(kjt_of_raw_64_bit_ids)
    """

    def __init__(
        self,
        embedding_collection: EmbeddingCollection,
        managed_collision_collection: ManagedCollisionCollection,
        return_remapped_features: bool = False,
        allow_in_place_embed_weight_update: bool = False,
    ) -> None:
        super().__init__(
            embedding_collection, managed_collision_collection, return_remapped_features,
            allow_in_place_embed_weight_update,
        )

    @property
    def _embedding_collection(self) -> EmbeddingCollection:
        return cast(EmbeddingCollection, self._embedding_module)


class ManagedCollisionEmbeddingBagCollection(BaseManagedCollisionEmbeddingCollection):
    """``EmbeddingBagCollection`` behind managed collision; ``forward`` returns ``(KeyedTensor (B, sum D), kjt?)``.

    Args:
        embedding_bag_collection: the EBC.
        managed_collision_collection: one MC module per table.
        return_remapped_features: also return the remapped KJT.
        allow_in_place_embed_weight_update: see the base class.
    """

    def __init__(
        self,
        embedding_bag_collection: EmbeddingBagCollection,
        managed_collision_collection: ManagedCollisionCollection,
        return_remapped_features: bool = False,
        allow_in_place_embed_weight_update: bool = False,
    ) -> None:
        super().__init__(
            embedding_bag_collection, managed_collision_collection, return_remapped_features,
            allow_in_place_embed_weight_update,
        )

    @property
    def _embedding_bag_collection(self) -> EmbeddingBagCollection:
        return cast(EmbeddingBagCollection, self._embedding_module)
