"""Helpers to build a DLRM and synthetic batches for the compiled dense path (``DLRM.compile_dense_path``).

Everything is created directly on ``device``; they run on CPU too (``torch.compile`` without CUDA graphs there).
"""

from typing import List, Tuple

import torch

from recsys_lib.models.dlrm import DLRM
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def build_ebc(device: torch.device, *, embedding_dim: int, num_sparse_features: int,
              num_embeddings: int) -> EmbeddingBagCollection:
    """EBC of ``num_sparse_features`` tables ``t{i}`` (feature ``f{i}``), each ``(num_embeddings, embedding_dim)``."""
    tables = [EmbeddingBagConfig(name=f"t{i}", embedding_dim=embedding_dim, num_embeddings=num_embeddings,
                                 feature_names=[f"f{i}"]) for i in range(num_sparse_features)]
    return EmbeddingBagCollection(tables=tables, device=device)


def build_dlrm(
    device: torch.device,
    *,
    embedding_dim: int,
    num_sparse_features: int,
    num_embeddings: int,
    dense_in_features: int,
    over_arch_layer_sizes: Tuple[int, ...] = (512, 256, 1),
) -> DLRM:
    """Unsharded ``DLRM`` on ``device`` in eval mode; dense arch ``[2D, D]``."""
    ebc = build_ebc(device, embedding_dim=embedding_dim, num_sparse_features=num_sparse_features,
                    num_embeddings=num_embeddings)
    model = DLRM(embedding_bag_collection=ebc, dense_in_features=dense_in_features,
                 dense_arch_layer_sizes=[embedding_dim * 2, embedding_dim],
                 over_arch_layer_sizes=list(over_arch_layer_sizes), dense_device=device)
    return model.to(device).eval()


def generate_batch(
    device: torch.device,
    *,
    batch_size: int,
    num_sparse_features: int,
    num_embeddings: int,
    dense_in_features: int,
    pooling_factor: int,
) -> Tuple[torch.Tensor, KeyedJaggedTensor]:
    """One random batch: dense ``(B, dense_in_features)`` and a KJT with ``pooling_factor`` ids per bag."""
    b, f = batch_size, num_sparse_features
    dense = torch.rand(b, dense_in_features, device=device)
    lengths = torch.full((f * b,), pooling_factor, dtype=torch.long, device=device)
    values = torch.randint(0, num_embeddings, (f * b * pooling_factor,), dtype=torch.long, device=device)
    return dense, KeyedJaggedTensor(keys=[f"f{i}" for i in range(f)], values=values, lengths=lengths)


def collect_outputs(model: DLRM, batches: List[Tuple[torch.Tensor, KeyedJaggedTensor]]) -> List[torch.Tensor]:
    """``model`` over ``batches``, one detached copy per batch (a CUDA-graph replay reuses its output buffers)."""
    outputs: List[torch.Tensor] = []
    for dense, kjt in batches:
        torch.compiler.cudagraph_mark_step_begin()
        outputs.append(model(dense_features=dense, sparse_features=kjt).detach().clone())
    return outputs
