"""embedding_sharding.bucketize_embeddings_before_all2all_write / bucketize_kjt_inference and
embedding.pad_vbe_kjt_lengths against hand-bucketed ids (block size 5, 2 buckets).

    a: [[1, 7], [9]]   b: [[3, 0], [8]]
    bucket 0 (ids < 5):  a [[1], []]      b [[3, 0], []]
    bucket 1 (ids >= 5): a [[7-5], [9-5]] b [[], [8-5]]
"""

import torch

from recsys_lib.distributed.embedding import pad_vbe_kjt_lengths
from recsys_lib.distributed.embedding_sharding import bucketize_embeddings_before_all2all_write, bucketize_kjt_inference
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

VALUES = torch.tensor([1, 7, 9, 3, 0, 8])
LENGTHS = torch.tensor([2, 1, 2, 1])
BUCKETED_VALUES = [1, 3, 0, 2, 4, 3]
BUCKETED_LENGTHS = [1, 0, 2, 0, 1, 1, 0, 1]
# original position → bucketized position: 1→0, 7→3, 9→4, 3→1, 0→2, 8→5
PERMUTE = [0, 3, 4, 1, 2, 5]


def test_write_bucketing_carries_rows():
    rows = torch.arange(12, dtype=torch.float32).view(6, 2)
    kjt = KeyedJaggedTensor(keys=["a", "b"], values=VALUES, lengths=LENGTHS, weights=rows)
    out, permute = bucketize_embeddings_before_all2all_write(kjt, 2, torch.tensor([5, 5]), output_permute=True)
    assert out.keys() == ["a", "b", "a", "b"] and out.stride() == 2
    assert out.values().tolist() == BUCKETED_VALUES and out.lengths().tolist() == BUCKETED_LENGTHS
    expected_rows = torch.empty_like(rows)
    expected_rows[torch.tensor(PERMUTE)] = rows
    torch.testing.assert_close(out.weights(), expected_rows)
    assert permute.tolist() == PERMUTE


def test_inference_bucketing_sequence_and_positions():
    kjt = KeyedJaggedTensor(keys=["a", "b"], values=VALUES, lengths=LENGTHS)
    out, permute, mapping = bucketize_kjt_inference(kjt, 2, torch.tensor([5, 5]))
    assert out.values().tolist() == BUCKETED_VALUES and out.lengths().tolist() == BUCKETED_LENGTHS
    assert permute is None and mapping is None
    out, permute, mapping = bucketize_kjt_inference(kjt, 2, torch.tensor([5, 5]), is_sequence=True)
    assert permute.tolist() == PERMUTE
    assert mapping.tolist() == [int(v) // 5 for v in VALUES.tolist()]  # each id's bucket
    out, _, _ = bucketize_kjt_inference(kjt, 2, torch.tensor([5, 5]), bucketize_pos=True)
    assert out.weights().tolist() == [0, 0, 1, 1, 0, 0]  # position of each id in its original bag


def test_pad_vbe_kjt_lengths():
    kjt = KeyedJaggedTensor(keys=["a", "b"], values=torch.tensor([1, 7, 9, 3, 0]), lengths=torch.tensor([2, 1, 1, 1, 0]),
                            stride_per_key_per_rank=[[2], [3]])
    out = pad_vbe_kjt_lengths(kjt)
    assert not out.variable_stride_per_key() and out.stride() == 3
    assert out.lengths().tolist() == [2, 1, 0, 1, 1, 0]
    assert out.length_per_key() == [3, 2] and torch.equal(out.values(), kjt.values())
    assert out.to_dict()["b"].lengths().tolist() == [1, 1, 0]
