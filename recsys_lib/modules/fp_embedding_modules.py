"""``FeatureProcessedEmbeddingBagCollection``: feature processors (e.g. position weights) then a weighted EBC.

Example::

    ebc = EmbeddingBagCollection(tables, is_weighted=True)
    fp_ebc = FeatureProcessedEmbeddingBagCollection(ebc, PositionWeightedModuleCollection({"f0": 10}))
    kt = fp_ebc(kjt)     # each id of f0 weighted by its position in the bag, then pooled

State-dict keys: ``_embedding_bag_collection.embedding_bags.<table>.weight`` and ``_feature_processors.…``
(``_feature_processors.<feature>.position_weight`` for a dict of processors, ``_feature_processors.
position_weights.<feature>`` for a collection).
"""

from typing import Dict, List, Tuple, Union

import torch
from torch import nn

from recsys_lib.modules.embedding_modules import EmbeddingBagCollectionInterface
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig
from recsys_lib.modules.feature_processor_ import FeatureProcessor, FeatureProcessorsCollection
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, KeyedTensor


@torch.fx.wrap
def apply_feature_processors_to_kjt(
    features: KeyedJaggedTensor,
    feature_processors: Dict[str, nn.Module],
) -> KeyedJaggedTensor:
    """``features`` with each key's weights set by its processor (weight 1 for keys without one).

    Keys, values, lengths and the variable batch (VBE strides, inverse indices) are kept. One ``torch.fx`` node.
    """
    jts: Dict[str, JaggedTensor] = features.to_dict()
    parts: List[torch.Tensor] = []
    for key in features.keys():
        jt = jts[key]
        if key in feature_processors:
            parts.append(feature_processors[key](jt).weights())
        else:
            parts.append(torch.ones(jt.values().numel(), device=jt.values().device))
    weights = torch.cat(parts) if len(parts) > 0 else features.weights_or_none()
    vbe = features.variable_stride_per_key()
    values = features.values()
    total = features.offset_per_key()[-1]
    if values.size(0) != total:  # values past the last bag (accepted, as in TorchRec) get no weight: drop them
        values = values[:total]
    return KeyedJaggedTensor(
        keys=features.keys(),
        values=values,
        weights=weights,
        lengths=features.lengths(),
        stride=None if vbe else features.stride(),
        stride_per_key_per_rank=features.stride_per_key_per_rank() if vbe else None,
        length_per_key=features.length_per_key(),
        offset_per_key=features.offset_per_key(),
        inverse_indices=features.inverse_indices_or_none(),
    )


class FeatureProcessorDictWrapper(FeatureProcessorsCollection):
    """A ``{feature: FeatureProcessor}`` ``ModuleDict`` used as one ``FeatureProcessorsCollection``."""

    def __init__(self, feature_processors: nn.ModuleDict) -> None:
        super().__init__()
        self._feature_processors = feature_processors

    def forward(self, features: KeyedJaggedTensor) -> KeyedJaggedTensor:
        return apply_feature_processors_to_kjt(features, self._feature_processors)


class FeatureProcessedEmbeddingBagCollection(nn.Module):
    """Applies feature processors to the input KJT, then a weighted ``EmbeddingBagCollection``.

    Args:
        embedding_bag_collection: an EBC built with ``is_weighted=True``.
        feature_processors: ``{feature: FeatureProcessor}`` (features not listed keep weight 1) or one
            ``FeatureProcessorsCollection`` applied to the whole KJT.
    """

    def __init__(
        self,
        embedding_bag_collection: EmbeddingBagCollectionInterface,
        feature_processors: Union[Dict[str, FeatureProcessor], FeatureProcessorsCollection],
    ) -> None:
        super().__init__()
        if not isinstance(embedding_bag_collection, EmbeddingBagCollectionInterface):
            raise TypeError("FeatureProcessedEmbeddingBagCollection: embedding_bag_collection must be an "
                            f"EmbeddingBagCollection, got {type(embedding_bag_collection).__name__}")
        if not embedding_bag_collection.is_weighted():
            raise ValueError("FeatureProcessedEmbeddingBagCollection needs an EmbeddingBagCollection built with "
                             "is_weighted=True (the processors produce per-id weights)")
        self._embedding_bag_collection = embedding_bag_collection
        features = {f for t in embedding_bag_collection.embedding_bag_configs() for f in t.feature_names}
        if isinstance(feature_processors, FeatureProcessorsCollection):
            self._feature_processors: nn.Module = feature_processors
            self._is_collection = True
        elif isinstance(feature_processors, dict):
            unknown = sorted(set(feature_processors) - features)
            if unknown:
                raise ValueError(f"FeatureProcessedEmbeddingBagCollection: processors for features {unknown} that "
                                 f"no table reads (table features: {sorted(features)})")
            for f, fp in feature_processors.items():
                if not isinstance(fp, nn.Module):
                    raise TypeError(f"feature processor for {f!r} must be an nn.Module, got {type(fp).__name__}")
            self._feature_processors = nn.ModuleDict(feature_processors)
            self._is_collection = False
        else:
            raise TypeError("feature_processors must be a dict of FeatureProcessor or a FeatureProcessorsCollection, "
                            f"got {type(feature_processors).__name__}")

    def forward(self, features: KeyedJaggedTensor) -> KeyedTensor:
        """Process, then pool. Returns the EBC's ``KeyedTensor``."""
        if self._is_collection:
            processed = self._feature_processors(features)
        else:
            processed = apply_feature_processors_to_kjt(features, self._feature_processors)
        return self._embedding_bag_collection(processed)

    def split(self) -> Tuple[nn.Module, EmbeddingBagCollectionInterface]:
        """``(feature processors, embedding bag collection)``: the two stages, e.g. to shard them separately."""
        return self._feature_processors, self._embedding_bag_collection

    def is_weighted(self) -> bool:
        return self._embedding_bag_collection.is_weighted()

    def embedding_bag_configs(self) -> List[EmbeddingBagConfig]:
        return self._embedding_bag_collection.embedding_bag_configs()

