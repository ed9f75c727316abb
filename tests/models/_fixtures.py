"""Shared small inputs for the model tests: tables, a KJT and plain-torch reference pieces."""

import torch

from recsys_lib.modules.embedding_configs import EmbeddingBagConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

B = 3
D = 4
KEYS = ["f0", "f1", "f2"]
# feature-major lengths (f0: b0 b1 b2, f1: ..., f2: ...), with an empty bag and uneven counts
LENGTHS = [2, 0, 3, 1, 1, 2, 3, 1, 1]
VALUES = [1, 5, 0, 9, 9, 4, 8, 2, 6, 0, 6, 3, 2, 1]


def tables(dim_t1=D):
    return [
        EmbeddingBagConfig(name="t0", embedding_dim=D, num_embeddings=10, feature_names=["f0", "f1"]),
        EmbeddingBagConfig(name="t1", embedding_dim=dim_t1, num_embeddings=7, feature_names=["f2"]),
    ]


def make_ebc(device=None, dim_t1=D):
    torch.manual_seed(0)
    return EmbeddingBagCollection(tables=tables(dim_t1), device=device)


def make_kjt():
    return KeyedJaggedTensor(
        keys=KEYS, values=torch.tensor(VALUES), lengths=torch.tensor(LENGTHS)
    )


def pooled_by_hand(ebc):
    """{feature: (B, D)} summed rows of the feature's table, one bag at a time."""
    table_of = {"f0": "t0", "f1": "t0", "f2": "t1"}
    out, pos = {}, 0
    for f_idx, feature in enumerate(KEYS):
        weight = ebc.embedding_bags[table_of[feature]].weight
        rows = []
        for b in range(B):
            n = LENGTHS[f_idx * B + b]
            ids = VALUES[pos:pos + n]
            pos += n
            rows.append(sum((weight[i] for i in ids), torch.zeros(weight.shape[1])))
        out[feature] = torch.stack(rows)
    return out


def relu_mlp_by_hand(mlp, x):
    for layer in mlp._mlp:
        x = torch.relu(x @ layer._linear.weight.T + layer._linear.bias)
    return x
