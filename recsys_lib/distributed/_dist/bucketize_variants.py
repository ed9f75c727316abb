"""Row-block bucketing variants (TorchRec's ``embedding_sharding`` functions), built on
``bucketize_kjt_before_all2all``:

* :func:`bucketize_kjt_inference`: inference input dist; sequence features also get ``bucket_mapping`` (the
  bucket of every original id) next to the unbucketize permutation.
* :func:`bucketize_embeddings_before_all2all_write`: embedding *writes*: ids bucketed as for a lookup, and the
  rows to write (2-D weights ``[N, D]``) carried along to their ids' buckets.

Bucketed layout (bucket-major), 2 buckets of 5 rows, one feature, bags [1, 7] | [6]::

    bucket 0: [1] | []     bucket 1: [2] | [1]      (ids re-based to the block unless keep_original_indices)
    unbucketize_permute = [0, 1, 2]  (original id i sits at bucketed position permute[i])
    bucket_mapping      = [0, 1, 1]
"""

from typing import List, Optional, Tuple

import torch

from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def _bucket_of_positions(bucketed: KeyedJaggedTensor, num_buckets: int) -> torch.Tensor:
    """Bucket index of every value of a bucket-major KJT."""
    per_bucket = bucketed.lengths().view(num_buckets, -1).sum(dim=1)
    return torch.repeat_interleave(torch.arange(num_buckets, device=per_bucket.device), per_bucket)


def bucketize_kjt_inference(
    kjt: KeyedJaggedTensor,
    num_buckets: int,
    block_sizes: torch.Tensor,
    total_num_buckets: Optional[torch.Tensor] = None,
    bucketize_pos: bool = False,
    block_bucketize_row_pos: Optional[List[torch.Tensor]] = None,
    is_sequence: bool = False,
    keep_original_indices: bool = False,
) -> Tuple[KeyedJaggedTensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Buckets ``kjt``'s ids by row block for inference.

    Returns:
        ``(bucketized_kjt, unbucketize_permute, bucket_mapping)``; the last two only for sequence features
        (``is_sequence``), else None.
    """
    from recsys_lib.distributed.embedding_sharding import bucketize_kjt_before_all2all

    out, permute = bucketize_kjt_before_all2all(
        kjt, num_buckets, block_sizes, total_num_buckets, output_permute=is_sequence, bucketize_pos=bucketize_pos,
        block_bucketize_row_pos=block_bucketize_row_pos, keep_original_indices=keep_original_indices,
    )
    if not is_sequence:
        return out, None, None
    assert permute is not None
    mapping = _bucket_of_positions(out, num_buckets).index_select(0, permute.long())
    return out, permute, mapping


def bucketize_embeddings_before_all2all_write(
    kjt: KeyedJaggedTensor,
    num_buckets: int,
    block_sizes: torch.Tensor,
    total_num_blocks: Optional[torch.Tensor] = None,
    output_permute: bool = False,
    bucketize_pos: bool = False,
    block_bucketize_row_pos: Optional[List[torch.Tensor]] = None,
    keep_original_indices: bool = False,
) -> Tuple[KeyedJaggedTensor, Optional[torch.Tensor]]:
    """Buckets the ids of an embedding write; ``kjt.weights()`` (``[N, D]``: the row for each id) follow them.

    Returns:
        ``(bucketized_kjt, unbucketize_permute)`` (the permute only with ``output_permute``); the result's
        weights are the rows in bucketed order (positions instead with ``bucketize_pos``).
    """
    from recsys_lib.distributed.embedding_sharding import bucketize_kjt_before_all2all

    rows = kjt.weights_or_none()
    if rows is None or rows.dim() != 2:
        raise ValueError("bucketize_embeddings_before_all2all_write: kjt.weights() must hold the rows, shape [N, D]")
    if rows.size(0) != kjt.values().numel():
        raise ValueError(f"bucketize_embeddings_before_all2all_write: {rows.size(0)} rows for {kjt.values().numel()} ids")
    ids_only = KeyedJaggedTensor(keys=kjt.keys(), values=kjt.values(), lengths=kjt.lengths(), stride=kjt.stride())
    out, permute = bucketize_kjt_before_all2all(
        ids_only, num_buckets, block_sizes, total_num_blocks, output_permute=True, bucketize_pos=bucketize_pos,
        block_bucketize_row_pos=block_bucketize_row_pos, keep_original_indices=keep_original_indices,
    )
    assert permute is not None
    moved = torch.empty_like(rows)
    moved[permute.long()] = rows
    weights = out.weights() if bucketize_pos else moved
    result = KeyedJaggedTensor(
        keys=out.keys(), values=out.values(), weights=weights, lengths=out.lengths(), stride=out.stride()
    )
    return result, permute if output_permute else None
