"""Row-wise input bucketing: the pure part of the row-split strategies (RW, TWRW, GRID).

Every feature of a row-split table is cut into ``W`` row buckets (one per shard, in shard order). Id ``i``
of a feature whose table has row boundaries ``[o_0=0, o_1, ..., o_W=R]`` goes to the bucket ``b`` with
``o_b <= i < o_{b+1}`` and becomes the local row ``i - o_b``. With the default layout the boundaries are
multiples of the block ``ceil(R / W)``::

    R=10, W=4: boundaries [0, 3, 6, 9, 10]     id 7 -> bucket 2, local row 1
    R=5,  W=4: boundaries [0, 2, 4, 5, 5]      bucket 3 is empty (a zero-row shard)

``bucketize_features`` returns a KJT whose keys are the input keys repeated per bucket (bucket-major), ready
for a ``KJTAllToAll`` with ``splits = [F] * W``, and optionally

* ``positions`` (``bucketize_pos``): each id's position inside its original bag, sent as the weights so a
  position-weighted feature processor on the owning rank sees the global positions;
* the *unbucketize permutation* (``sequence``): ``permute[i]`` = where original id ``i`` sits in the
  bucketized values; sequence outputs come back in bucketized order and are put back with it.

Ids outside ``[0, R)`` are rejected with a ``ValueError`` naming the feature (FBGEMM would silently send
them to a wrong row).
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch

from recsys_lib.distributed._sharded.routing import check_ids  # noqa: F401  (re-exported: the row-split input dists use it)
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


@dataclass(frozen=True)
class RowBuckets:
    """Row buckets of the features of one row-split sharding (a value: built once from the plan).

    Attributes:
        feature_names: features in the sharding's order (empty: any keys, as many as ``rows``).
        rows: table rows of each feature.
        boundaries: ``W + 1`` row boundaries of each feature's table.
    """

    feature_names: Tuple[str, ...]
    rows: Tuple[int, ...]
    boundaries: Tuple[Tuple[int, ...], ...]

    @property
    def num_buckets(self) -> int:
        return len(self.boundaries[0]) - 1 if self.boundaries else 0

    def uniform_blocks(self) -> Optional[List[int]]:
        """Per-feature block sizes when every table is split in equal blocks (last one partial), else None."""
        blocks: List[int] = []
        for rows, bounds in zip(self.rows, self.boundaries):
            w = len(bounds) - 1
            block = max(1, -(-rows // w))
            if list(bounds) != [min(rows, b * block) for b in range(w + 1)]:
                return None
            blocks.append(block)
        return blocks


def row_boundaries(table: str, rows: int, shard_rows: Sequence[Tuple[int, int]]) -> Tuple[int, ...]:
    """Boundaries from ``(row_offset, row_count)`` of a table's shards in bucket order; they must tile the rows.

    Example: ``row_boundaries("t", 5, [(0, 2), (2, 2), (4, 1), (5, 0)]) == (0, 2, 4, 5, 5)``.
    """
    bounds = [0]
    for offset, count in shard_rows:
        if offset != bounds[-1] or count < 0:
            raise ValueError(
                f"table {table!r}: row-wise shards must be consecutive row blocks in rank order; got "
                f"(offset, rows) = {list(shard_rows)}"
            )
        bounds.append(offset + count)
    if bounds[-1] != rows:
        raise ValueError(f"table {table!r}: row-wise shards cover {bounds[-1]} of {rows} rows")
    return tuple(bounds)


def _per_key_values(kjt: KeyedJaggedTensor) -> List[torch.Tensor]:
    return list(kjt.values().split(kjt.length_per_key()))


def bucketize_features(
    kjt: KeyedJaggedTensor,
    buckets: RowBuckets,
    bucketize_pos: bool = False,
    sequence: bool = False,
) -> Tuple[KeyedJaggedTensor, Optional[torch.Tensor]]:
    """Cuts ``kjt`` (keys = ``buckets.feature_names``) into row buckets (see the module docstring).

    Returns ``(bucketized, unbucketize_permute)``; the permute is ``None`` unless ``sequence`` (and ``None``
    for a single bucket, where it would be the identity). A variable-batch KJT stays variable-batch (each
    bucket copy keeps the per-key batch sizes).
    """
    if buckets.feature_names and list(kjt.keys()) != list(buckets.feature_names):
        raise ValueError(f"row-wise bucketize: KJT keys {kjt.keys()} differ from {list(buckets.feature_names)}")
    if len(kjt.keys()) != len(buckets.rows):
        raise ValueError(f"row-wise bucketize: KJT has {len(kjt.keys())} keys {kjt.keys()}, the dist was built for "
                         f"{len(buckets.rows)} features")
    w = buckets.num_buckets
    if w == 1:  # one shard: ids, order and local rows are unchanged (FBGEMM's op would cost a full pass)
        return _single_bucket(kjt, bucketize_pos), None
    values = kjt.values()
    lengths = kjt.lengths()
    vbe = kjt.variable_stride_per_key()
    blocks = buckets.uniform_blocks()
    row_pos: Optional[List[torch.Tensor]] = None
    if blocks is None:
        blocks = [max(1, -(-r // w)) for r in buckets.rows]
        row_pos = [torch.tensor(list(b), dtype=values.dtype, device=values.device) for b in buckets.boundaries]
    batch_per_feature: Optional[torch.Tensor] = None
    max_b = -1
    if vbe:
        strides = kjt.stride_per_key()
        batch_per_feature = torch.tensor(strides, dtype=values.dtype, device=values.device)
        max_b = max(strides) if strides else 0
    out_lengths, out_values, out_weights, out_pos, permute = torch.ops.fbgemm.block_bucketize_sparse_features(
        lengths.to(values.dtype),
        values,
        bucketize_pos,
        sequence,
        torch.tensor(blocks, dtype=values.dtype, device=values.device),
        w,
        kjt.weights_or_none(),
        batch_size_per_feature=batch_per_feature,
        max_B=max_b,
        block_bucketize_pos=row_pos,
    )
    weights = out_pos.to(torch.float32) if bucketize_pos and out_pos is not None else out_weights
    keys = list(kjt.keys()) * w
    if vbe:
        spkpr = kjt.stride_per_key_per_rank() * w
        out = KeyedJaggedTensor(keys=keys, values=out_values, weights=weights, lengths=out_lengths.to(lengths.dtype),
                                stride_per_key_per_rank=spkpr)
    else:
        out = KeyedJaggedTensor(keys=keys, values=out_values, weights=weights, lengths=out_lengths.to(lengths.dtype),
                                stride=kjt.stride())
    return out, permute if sequence else None


def _single_bucket(kjt: KeyedJaggedTensor, bucketize_pos: bool) -> KeyedJaggedTensor:
    if not bucketize_pos:
        return kjt
    values = kjt.values()
    pos = torch.ops.fbgemm.offsets_range(kjt.offsets().to(torch.int64), values.numel()).to(torch.float32)
    vbe = kjt.variable_stride_per_key()
    return KeyedJaggedTensor(
        keys=kjt.keys(), values=values, weights=pos, lengths=kjt.lengths(), stride=None if vbe else kjt.stride(),
        stride_per_key_per_rank=kjt.stride_per_key_per_rank() if vbe else None,
    )


def mean_divisor(kjt: KeyedJaggedTensor, feature_mask: Sequence[bool]) -> Optional[torch.Tensor]:
    """``[B, F]`` bag lengths of the features with ``feature_mask`` (others 1), clamped to >= 1; ``None`` if no
    feature is masked (variable-batch KJT: 1-D, one entry per bag in key-major order). Dividing partial sums, once summed over shards, by this gives the global mean."""
    if not any(feature_mask):
        return None
    if kjt.variable_stride_per_key():  # one entry per bag, feature-major (the layout of VBE pooled outputs)
        mask = torch.repeat_interleave(
            torch.tensor(list(feature_mask), dtype=torch.bool, device=kjt.device()),
            torch.tensor(kjt.stride_per_key(), dtype=torch.int64, device=kjt.device()),
        )
        bags = kjt.lengths().view(-1).to(torch.float32)
        return torch.where(mask, bags.clamp(min=1.0), torch.ones_like(bags))
    f = len(kjt.keys())
    lengths = kjt.lengths().view(f, -1).t().to(torch.float32)
    mask = torch.tensor(list(feature_mask), dtype=torch.bool, device=lengths.device)
    return torch.where(mask, lengths.clamp(min=1.0), torch.ones_like(lengths))
