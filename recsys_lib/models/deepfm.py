"""A small DeepFM model (``torchrec.models.deepfm``).

Data flow (``B`` batch, ``F`` sparse features, ``D`` embedding dim shared by all tables)::

    dense_features (B, in) ──dense_arch──> (B, D) ───────┐
    sparse_features KJT ──sparse_arch──> KeyedTensor ─────┴─inter_arch─> (B, D + deep_fm_dimension + 1)
                                                                           ─over_arch─> sigmoid (B, 1)

``inter_arch`` concatenates the dense output, DeepFM's deep part over ``[dense] + per-feature embeddings``
and the factorization-machine term over the same list. The over arch ends in a sigmoid, so the model
returns probabilities, not logits (as TorchRec's does).
"""

from typing import List, Tuple, Union

import torch
from torch import nn

from recsys_lib.models._model_input import loss_and_prediction
from recsys_lib.modules.deepfm import DeepFM, FactorizationMachine
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor, KeyedTensor


def _check_positive(owner: str, name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")


class SparseArch(nn.Module):
    """Pools the sparse features with an EmbeddingBagCollection.

    Args:
        embedding_bag_collection: the tables.

    ``forward(features: KJT) -> KeyedTensor`` with one ``(B, D)`` block per feature.
    """

    def __init__(self, embedding_bag_collection: EmbeddingBagCollection) -> None:
        super().__init__()
        self.embedding_bag_collection: EmbeddingBagCollection = embedding_bag_collection

    def forward(self, features: KeyedJaggedTensor) -> KeyedTensor:
        return self.embedding_bag_collection(features)


class DenseArch(nn.Module):
    """Two ReLU layers: ``in_features -> hidden_layer_size -> embedding_dim``.

    State-dict keys: ``model.0.*`` and ``model.2.*`` (``model = Sequential(Linear, ReLU, Linear, ReLU)``).

    Example::

        arch = DenseArch(in_features=10, hidden_layer_size=16, embedding_dim=8)
        y = arch(torch.randn(4, 10))  # (4, 8)
    """

    def __init__(self, in_features: int, hidden_layer_size: int, embedding_dim: int) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("hidden_layer_size", hidden_layer_size),
                            ("embedding_dim", embedding_dim)):
            _check_positive("DenseArch", name, value)
        self.model: nn.Module = nn.Sequential(
            nn.Linear(in_features, hidden_layer_size),
            nn.ReLU(),
            nn.Linear(hidden_layer_size, embedding_dim),
            nn.ReLU(),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, in_features)`` -> ``(B, embedding_dim)``."""
        return self.model(features)


class FMInteractionArch(nn.Module):
    """DeepFM deep part plus the FM term over ``[dense] + [sparse[name] for name in sparse_feature_names]``.

    Args:
        fm_in_features: total flattened width of that list, ``D + sum of the features' dims``.
        sparse_feature_names: keys looked up in the sparse ``KeyedTensor``, in this order.
        deep_fm_dimension: output width of the deep part (``Linear(fm_in_features, .)`` + ReLU,
            state-dict keys ``deep_fm.dense_module.0.*``).

    ``forward(dense (B, D), sparse KeyedTensor) -> (B, D + deep_fm_dimension + 1)``; with no sparse
    features the dense input is returned unchanged.
    """

    def __init__(self, fm_in_features: int, sparse_feature_names: List[str], deep_fm_dimension: int) -> None:
        super().__init__()
        _check_positive("FMInteractionArch", "fm_in_features", fm_in_features)
        _check_positive("FMInteractionArch", "deep_fm_dimension", deep_fm_dimension)
        self.sparse_feature_names: List[str] = list(sparse_feature_names)
        self.deep_fm = DeepFM(dense_module=nn.Sequential(nn.Linear(fm_in_features, deep_fm_dimension), nn.ReLU()))
        self.fm = FactorizationMachine()

    def forward(self, dense_features: torch.Tensor, sparse_features: KeyedTensor) -> torch.Tensor:
        if len(self.sparse_feature_names) == 0:
            return dense_features
        tensor_list: List[torch.Tensor] = [dense_features]
        for feature_name in self.sparse_feature_names:
            tensor_list.append(sparse_features[feature_name])  # (B, D_f)
        deep_interaction = self.deep_fm(tensor_list)  # (B, deep_fm_dimension)
        fm_interaction = self.fm(tensor_list)  # (B, 1)
        return torch.cat([dense_features, deep_interaction, fm_interaction], dim=1)


class OverArch(nn.Module):
    """``sigmoid(Linear(in_features, 1))``; state-dict keys ``model.0.*``."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        _check_positive("OverArch", "in_features", in_features)
        self.model: nn.Module = nn.Sequential(nn.Linear(in_features, 1), nn.Sigmoid())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, in_features)`` -> probabilities ``(B, 1)``."""
        return self.model(features)


class SimpleDeepFMNN(nn.Module):
    """DeepFM (Guo et al., 2017) with a dense tower, as TorchRec's example model.

    Args:
        num_dense_features: number of dense features.
        embedding_bag_collection: tables (one shared ``embedding_dim`` ``D``).
        hidden_layer_size: hidden width of the dense arch.
        deep_fm_dimension: output width of the DeepFM deep part.

    Example::

        model = SimpleDeepFMNN(num_dense_features=13, embedding_bag_collection=ebc,
                               hidden_layer_size=20, deep_fm_dimension=5)
        probs = model(dense_features, kjt)  # (B, 1), in (0, 1)
    """

    def __init__(
        self,
        num_dense_features: int,
        embedding_bag_collection: EmbeddingBagCollection,
        hidden_layer_size: int,
        deep_fm_dimension: int,
    ) -> None:
        super().__init__()
        configs = embedding_bag_collection.embedding_bag_configs()
        if len(configs) == 0:
            raise ValueError("SimpleDeepFMNN: the embedding bag collection has no tables")
        dims = {c.name: c.embedding_dim for c in configs}
        if len(set(dims.values())) != 1:
            raise ValueError(f"SimpleDeepFMNN: all tables must share one embedding_dim, got {dims}")
        embedding_dim = configs[0].embedding_dim
        feature_names: List[str] = []
        fm_in_features = embedding_dim  # the dense arch output joins the FM input
        for conf in configs:
            for feature in conf.feature_names:
                feature_names.append(feature)
                fm_in_features += conf.embedding_dim
        self.sparse_arch = SparseArch(embedding_bag_collection)
        self.dense_arch = DenseArch(num_dense_features, hidden_layer_size, embedding_dim)
        self.inter_arch = FMInteractionArch(fm_in_features, feature_names, deep_fm_dimension)
        self.over_arch = OverArch(embedding_dim + deep_fm_dimension + 1)

    def forward(self, dense_features: torch.Tensor, sparse_features: KeyedJaggedTensor) -> torch.Tensor:
        """``dense_features``: ``(B, num_dense_features)``; ``sparse_features``: KJT -> ``(B, 1)`` probabilities."""
        embedded_dense = self.dense_arch(dense_features)
        embedded_sparse = self.sparse_arch(sparse_features)
        concatenated = self.inter_arch(dense_features=embedded_dense, sparse_features=embedded_sparse)
        return self.over_arch(concatenated)


class SimpleDeepFMNNWrapper(SimpleDeepFMNN):
    """``SimpleDeepFMNN`` fed one ``ModelInput`` (``float_features``, ``idlist_features``, ``label``).

    ``forward(model_input)`` returns ``(loss, logits)`` in training mode (binary cross-entropy with logits against
    ``label``) and the logits ``(B, 1)`` in eval mode.
    """

    def forward(  # type: ignore[override]
        self, model_input: "ModelInput"  # noqa: F821 - recsys_lib.distributed.test_utils' batch type
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        pred = super().forward(dense_features=model_input.float_features, sparse_features=model_input.idlist_features)
        return loss_and_prediction(pred, model_input.label, self.training)
