"""Plain-PyTorch references for the batched kernels and lookups (independent of FBGEMM)."""

import torch
import torch.nn.functional as F

from recsys_lib.distributed.embedding_types import (
    EmbeddingComputeKernel,
    GroupedEmbeddingConfig,
    ShardedEmbeddingTable,
)
from recsys_lib.modules.embedding_configs import PoolingType
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor
from recsys_lib.types import DataType


def table(name, rows, dim, features, kernel=EmbeddingComputeKernel.FUSED, pooling=PoolingType.SUM,
          weighted=False, fused_params=None):
    return ShardedEmbeddingTable(
        num_embeddings=rows, embedding_dim=dim, name=name, feature_names=list(features),
        local_rows=rows, local_cols=dim, compute_kernel=kernel, pooling=pooling, is_weighted=weighted,
        fused_params=fused_params,
    )


def group(tables, kernel=EmbeddingComputeKernel.FUSED, pooling=PoolingType.SUM, weighted=False, fused_params=None):
    return GroupedEmbeddingConfig(DataType.FP32, pooling, weighted, False, kernel, tables, fused_params=fused_params)


def random_kjt(keys, rows_per_key, batch, max_len=4, weighted=False, seed=0):
    """Bags of 0..max_len ids (some empty; ids per feature != batch size)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, max_len + 1, (len(keys) * batch,), generator=g)
    values = []
    for f, rows in enumerate(rows_per_key):
        n = int(lengths[f * batch:(f + 1) * batch].sum())
        values.append(torch.randint(0, rows, (n,), generator=g))
    values = torch.cat(values)
    weights = torch.rand(values.numel(), generator=g) + 0.5 if weighted else None
    return KeyedJaggedTensor.from_lengths_sync(keys=list(keys), values=values, lengths=lengths, weights=weights)


def pooled_reference(weights_per_table, feature_table_map, kjt, mode, weighted=False):
    """Per-feature ``F.embedding_bag`` on the table's weight, concatenated along dim 1."""
    outs = []
    batch = kjt.stride()
    for f, key in enumerate(kjt.keys()):
        jt = kjt[key]
        lengths = jt.lengths()
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(lengths, 0)[:-1]])
        w = weights_per_table[feature_table_map[f]]
        psw = jt.weights() if weighted else None
        out = F.embedding_bag(jt.values(), w, offsets, mode=mode, per_sample_weights=psw)
        assert out.shape[0] == batch
        outs.append(out)
    return torch.cat(outs, dim=1)


def sequence_reference(weights_per_table, feature_table_map, kjt, flat=False):
    outs = [F.embedding(kjt[key].values(), weights_per_table[feature_table_map[f]]) for f, key in enumerate(kjt.keys())]
    if flat:
        return torch.cat([o.reshape(-1) for o in outs])
    return torch.cat(outs, dim=0)


def sgd(weight, grad, lr):
    return weight - lr * grad


def rowwise_adagrad(weight, grad, lr, eps, state=None):
    state = torch.zeros(weight.shape[0]) if state is None else state
    new_state = state + (grad * grad).mean(dim=1)
    return weight - lr * grad / (new_state.sqrt() + eps).unsqueeze(1), new_state


def adagrad(weight, grad, lr, eps, state=None):
    state = torch.zeros_like(weight) if state is None else state
    new_state = state + grad * grad
    return weight - lr * grad / (new_state.sqrt() + eps), new_state
