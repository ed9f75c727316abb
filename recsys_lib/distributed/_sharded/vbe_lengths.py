"""Variable-batch (VBE) KJT lengths padded to a fixed batch (``embedding.pad_vbe_kjt_lengths``)."""

import torch

from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def pad_vbe_kjt_lengths(features: KeyedJaggedTensor) -> KeyedJaggedTensor:
    """The same ids with every key's batch padded to the largest one (empty bags appended).

    Values stay as they are; key ``f``'s ``stride_per_key()[f]`` lengths are followed by zeros up to
    ``B_max = max(stride_per_key())``, giving a fixed-stride KJT::

        keys [a, b], strides [2, 3], lengths [2 1 | 1 1 0]  ->  stride 3, lengths [2 1 0 | 1 1 0]

    Args:
        features: a KJT, usually with a variable batch per key.

    Returns:
        a KJT of stride ``B_max`` with the same keys, values and per-key lengths.
    """
    strides = features.stride_per_key()
    max_stride = max(strides) if strides else 0
    lengths = features.lengths()
    padded = torch.zeros(max_stride * len(strides), dtype=lengths.dtype, device=lengths.device)
    start = 0
    for i, stride in enumerate(strides):
        padded[i * max_stride:i * max_stride + stride] = lengths[start:start + stride]
        start += stride
    return KeyedJaggedTensor(
        keys=features.keys(),
        values=features.values(),
        lengths=padded,
        stride=max_stride,
        length_per_key=features.length_per_key(),
        offset_per_key=features.offset_per_key(),
    )
