"""Tutorial 1 — sparse data: JaggedTensor, KeyedJaggedTensor (KJT) and KeyedTensor (KT).

    python docs/tutorials/01_sparse_data.py

A recommender's input is a batch of *id lists*: for each example and each sparse feature, a variable number of
ids (the pages a user liked, the ads shown, ...). recsys_lib stores such a batch without padding:

* ``JaggedTensor``: one feature — ``values`` (all ids, concatenated) + ``lengths`` (ids per example).
* ``KeyedJaggedTensor``: several features — the jagged tensors of all features laid end to end, key-major.
* ``KeyedTensor``: the dense output of pooled embeddings — one ``(B, sum(D))`` tensor plus the keys and widths.

Shape letters (docs/glossary.md): ``F`` features, ``B`` batch size, ``L`` lengths, ``D`` embedding dim.
Every statement below is checked with an ``assert``; the script prints what it built.
"""

import torch

from recsys_lib import JaggedTensor, KeyedJaggedTensor, KeyedTensor

# --- 1. JaggedTensor: one feature, B = 3 examples ----------------------------------------------------------
#   example:   b0      b1    b2
#   ids:     [1, 2]    []    [3]
jt = JaggedTensor(values=torch.tensor([1, 2, 3]), lengths=torch.tensor([2, 0, 1]))
assert jt.offsets().tolist() == [0, 2, 2, 3]  # offsets: (B+1,) = cumulative sum of lengths, starting at 0
assert [t.tolist() for t in jt.to_dense()] == [[1, 2], [], [3]]
print("JaggedTensor:", jt)

# --- 2. KeyedJaggedTensor: F = 2 features over the same B = 3 examples ----------------------------------------
#             b0      b1    b2
#   f1     [1, 2]    []    [3]
#   f2     [4]       [5]   [6, 7]
# lengths are key-major: all of f1's examples, then all of f2's.  lengths: (F*B,)  values: (sum(L),)
kjt = KeyedJaggedTensor(
    keys=["f1", "f2"],
    values=torch.tensor([1, 2, 3, 4, 5, 6, 7]),
    lengths=torch.tensor([2, 0, 1, 1, 1, 2]),
)
assert kjt.stride() == 3  # the batch size B: len(lengths) / len(keys)
assert kjt.offsets().tolist() == [0, 2, 2, 3, 4, 5, 7]  # offsets: (F*B+1,)
assert kjt.length_per_key() == [3, 4]  # ids per feature
assert kjt.offset_per_key() == [0, 3, 7]  # where each feature's ids start in values
print("KeyedJaggedTensor:", kjt)

# Per-feature views: indexing by key gives that feature's JaggedTensor (no copy of the ids).
f2 = kjt["f2"]
assert f2.values().tolist() == [4, 5, 6, 7] and f2.lengths().tolist() == [1, 1, 2]
assert sorted(kjt.to_dict()) == ["f1", "f2"]

# Optional per-id weights (e.g. a score per id) travel with the ids: weights: (sum(L),)
weighted = KeyedJaggedTensor(
    keys=["f1", "f2"],
    values=torch.tensor([1, 2, 3, 4, 5, 6, 7]),
    lengths=torch.tensor([2, 0, 1, 1, 1, 2]),
    weights=torch.tensor([0.5, 1.0, 1.0, 2.0, 1.0, 1.0, 0.25]),
)
assert weighted["f1"].weights().tolist() == [0.5, 1.0, 1.0]

# Reorder or drop features with permute (indices into keys); split into groups of features with split.
swapped = kjt.permute([1, 0])
assert swapped.keys() == ["f2", "f1"] and swapped.values().tolist() == [4, 5, 6, 7, 1, 2, 3]
only_f1, only_f2 = kjt.split([1, 1])
assert only_f1.keys() == ["f1"] and only_f2.lengths().tolist() == [1, 1, 2]

# --- 3. Variable batch per feature (VBE) ----------------------------------------------------------------------
# A feature may carry fewer rows than the batch when examples share a value (e.g. all examples of one user).
# stride_per_key_per_rank gives each feature's own batch; inverse_indices map the B examples onto those rows.
#   f1: 3 rows, one per example;  f2: 2 distinct rows, examples (0, 1, 2) use rows (0, 1, 1).
vbe = KeyedJaggedTensor(
    keys=["f1", "f2"],
    values=torch.tensor([1, 2, 3, 4, 5]),
    lengths=torch.tensor([2, 0, 1, 1, 1]),  # f1: 3 bags, f2: 2 bags
    stride_per_key_per_rank=[[3], [2]],
    inverse_indices=(["f1", "f2"], torch.tensor([[0, 1, 2], [0, 1, 1]])),
)
assert vbe.variable_stride_per_key() and vbe.stride_per_key() == [3, 2]
assert vbe.stride() == 3  # the full batch: the largest feature batch
print("VBE KeyedJaggedTensor strides per key:", vbe.stride_per_key())

# --- 4. KeyedTensor: pooled, dense values for several keys --------------------------------------------------
# Pooled embeddings of F features with dims D_f are one (B, sum(D)) tensor, sliced by key.
B = 3
dense_f1 = torch.arange(B * 2, dtype=torch.float32).view(B, 2)  # (B, D=2)
dense_f2 = torch.ones(B, 4)  # (B, D=4)
kt = KeyedTensor.from_tensor_list(keys=["f1", "f2"], tensors=[dense_f1, dense_f2])
assert kt.values().shape == (B, 6)  # values: (B, sum(D))
assert kt.length_per_key() == [2, 4]
torch.testing.assert_close(kt["f1"], dense_f1)
torch.testing.assert_close(kt.to_dict()["f2"], dense_f2)
print("KeyedTensor keys and widths:", kt.keys(), kt.length_per_key())

# Regroup several KeyedTensors into dense groups of keys (what interaction layers consume).
(g1, g2) = KeyedTensor.regroup([kt], [["f2"], ["f1", "f2"]])
torch.testing.assert_close(g1, dense_f2)
torch.testing.assert_close(g2, torch.cat([dense_f1, dense_f2], dim=1))

print("tutorial 1 OK")
