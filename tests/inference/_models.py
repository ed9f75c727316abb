"""Small models and batches for the inference tests."""

import torch

from recsys_lib import EmbeddingBagCollection, EmbeddingBagConfig, KeyedJaggedTensor
from recsys_lib.models.dlrm import DLRM

KEYS = ["f0", "f1", "f2"]


def dlrm(seed: int = 0) -> DLRM:
    torch.manual_seed(seed)
    tables = [EmbeddingBagConfig(num_embeddings=50 + 10 * i, embedding_dim=8, name="t" + str(i), feature_names=[k])
              for i, k in enumerate(KEYS)]
    return DLRM(embedding_bag_collection=EmbeddingBagCollection(tables), dense_in_features=4,
                dense_arch_layer_sizes=[16, 8], over_arch_layer_sizes=[8, 1])


def batch(batch_size: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, 4, (len(KEYS) * batch_size,), generator=g)
    values = torch.randint(0, 50, (int(lengths.sum()),), generator=g)
    dense = torch.rand(batch_size, 4, generator=g)
    return dense, KeyedJaggedTensor.from_lengths_sync(KEYS, values, lengths)
