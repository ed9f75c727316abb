"""Inference and embedding-write bucketing against hand-computed buckets."""

import torch

from recsys_lib.distributed.embedding_sharding import (
    bucketize_embeddings_before_all2all_write,
    bucketize_kjt_inference,
)
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def _kjt(weights=None):
    # feature a (block 5): bags [1, 7] | [6];  feature b (block 3): bags [] | [0, 4]
    return KeyedJaggedTensor(keys=["a", "b"], values=torch.tensor([1, 7, 6, 0, 4]),
                             lengths=torch.tensor([2, 1, 0, 2]), weights=weights)


def test_inference_bucketing_reports_bucket_of_each_id():
    out, permute, mapping = bucketize_kjt_inference(_kjt(), 2, torch.tensor([5, 3]), is_sequence=True)
    assert out.keys() == ["a", "b", "a", "b"]
    assert out.lengths().tolist() == [1, 0, 0, 1, 1, 1, 0, 1]
    assert out.values().tolist() == [1, 0, 2, 1, 1]
    assert mapping.tolist() == [0, 1, 1, 0, 1]
    # original id i sits at bucketed position permute[i]
    expected_positions = [0, 2, 3, 1, 4]
    assert permute.tolist() == expected_positions
    plain, p2, m2 = bucketize_kjt_inference(_kjt(), 2, torch.tensor([5, 3]))
    assert p2 is None and m2 is None and plain.values().tolist() == [1, 0, 2, 1, 1]


def test_write_bucketing_moves_rows_with_their_ids():
    rows = torch.arange(10.0).view(5, 2)  # row i belongs to id i of the input order
    out, permute = bucketize_embeddings_before_all2all_write(_kjt(rows), 2, torch.tensor([5, 3]), output_permute=True)
    assert out.values().tolist() == [1, 0, 2, 1, 1]
    # bucketed order: ids 1(a), 0(b) | 7(a), 6(a), 4(b) -> input positions 0, 3, 1, 2, 4
    torch.testing.assert_close(out.weights(), rows[[0, 3, 1, 2, 4]])
    assert permute.tolist() == [0, 2, 3, 1, 4]
