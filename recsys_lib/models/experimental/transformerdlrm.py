"""DLRM whose feature interaction is a transformer encoder over the ``F + 1`` embeddings.

::

    dense (B, D) ─┐
    sparse (B, F, D) ┴─ cat → (B, F+1, D) → TransformerEncoder → flatten (B, (F+1)*D) → over arch → (B, out)
"""

from typing import List, Optional

import torch
from torch import nn

from recsys_lib.models.dlrm import DLRM
from recsys_lib.models._dlrm_dense_arches import OverArch
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection


class InteractionTransformerArch(nn.Module):
    """Interaction of the dense and sparse embeddings through ``ntransformer_layers`` encoder layers.

    Args:
        num_sparse_features: ``F``.
        embedding_dim: ``D`` (the encoder's model width; must be divisible by ``nhead``).
        nhead: attention heads.
        ntransformer_layers: encoder layers.

    ``forward(dense (B, D), sparse (B, F, D)) -> (B, (F + 1) * D)`` (the dense input unchanged when ``F == 0``).
    """

    def __init__(self, num_sparse_features: int, embedding_dim: int, nhead: int = 8,
                 ntransformer_layers: int = 4) -> None:
        super().__init__()
        self.F: int = num_sparse_features
        self.nhead = nhead
        self.ntransformer_layers = ntransformer_layers
        layer = nn.TransformerEncoderLayer(d_model=embedding_dim, nhead=nhead)
        self.interarch_TE = nn.TransformerEncoder(layer, num_layers=ntransformer_layers)

    def forward(self, dense_features: torch.Tensor, sparse_features: torch.Tensor) -> torch.Tensor:
        if self.F <= 0:
            return dense_features
        b = dense_features.size(0)
        tokens = torch.cat((dense_features.unsqueeze(1), sparse_features), dim=1)  # (B, F+1, D)
        # batch_first=False in the encoder layer, as TorchRec: dim 0 (B) is read as the sequence axis
        return self.interarch_TE(tokens).reshape(b, -1)


class DLRM_Transformer(DLRM):
    """``DLRM`` with :class:`InteractionTransformerArch` as its interaction (over-arch input ``(F + 1) * D``).

    Args:
        embedding_bag_collection, dense_in_features, dense_arch_layer_sizes, over_arch_layer_sizes, dense_device:
            as :class:`~recsys_lib.models.dlrm.DLRM`.
        nhead: attention heads.
        ntransformer_layers: encoder layers.
    """

    def __init__(
        self,
        embedding_bag_collection: EmbeddingBagCollection,
        dense_in_features: int,
        dense_arch_layer_sizes: List[int],
        over_arch_layer_sizes: List[int],
        nhead: int = 8,
        ntransformer_layers: int = 4,
        dense_device: Optional[torch.device] = None,
    ) -> None:
        super().__init__(embedding_bag_collection, dense_in_features, dense_arch_layer_sizes, over_arch_layer_sizes,
                         dense_device)
        embedding_dim = embedding_bag_collection.embedding_bag_configs()[0].embedding_dim
        num_sparse = len(self.sparse_arch.sparse_feature_names)
        self.inter_arch = InteractionTransformerArch(num_sparse, embedding_dim, nhead, ntransformer_layers)
        if dense_device is not None:
            self.inter_arch.to(dense_device)
        self.over_arch = OverArch((num_sparse + 1) * embedding_dim, over_arch_layer_sizes, device=dense_device)
