"""Hand-built jagged batches and plain-torch pooling references shared by the module tests.

A batch is ``{feature: [[ids of sample 0], [ids of sample 1], ...]}``; the references pool rows with
``torch.stack(...).sum/mean`` so they share no code with the modules under test.
"""

import torch

from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def make_kjt(batch, keys=None, weights=None):
    """KJT from ``{feature: [[ids] per sample]}``; ``weights`` has the same nesting (floats) if given."""
    keys = list(batch) if keys is None else keys
    values = [i for k in keys for bag in batch[k] for i in bag]
    lengths = [len(bag) for k in keys for bag in batch[k]]
    w = None
    if weights is not None:
        w = torch.tensor([x for k in keys for bag in weights[k] for x in bag], dtype=torch.float32)
    return KeyedJaggedTensor.from_lengths_sync(
        keys=keys, values=torch.tensor(values, dtype=torch.int64), lengths=torch.tensor(lengths, dtype=torch.int32),
        weights=w,
    )


def pool(weight, bags, mode="sum", bag_weights=None):
    """``(B, D)``: each bag's rows summed (optionally weighted) or averaged; empty bag → zeros."""
    out = []
    for b, bag in enumerate(bags):
        if not bag:
            out.append(torch.zeros(weight.shape[1], dtype=weight.dtype))
            continue
        rows = weight[torch.tensor(bag)]
        if bag_weights is not None:
            rows = rows * torch.tensor(bag_weights[b]).unsqueeze(1)
        out.append(rows.sum(0) if mode == "sum" else rows.mean(0))
    return torch.stack(out)


def random_batch(gen, features, batch_size, rows, max_len=4):
    """Random ``{feature: bags}`` with empty bags and ids per feature != batch size (almost surely)."""
    out = {}
    for f in features:
        lens = torch.randint(0, max_len + 1, (batch_size,), generator=gen).tolist()
        out[f] = [torch.randint(0, rows[f], (n,), generator=gen).tolist() for n in lens]
    return out
