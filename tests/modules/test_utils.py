import pytest
import torch
from torch import nn

from recsys_lib.modules.utils import (
    check_module_output_dimension,
    construct_jagged_tensors,
    construct_jagged_tensors_inference,
    construct_modulelist_from_single_module,
    convert_list_of_modules_to_modulelist,
    deterministic_dedup,
    extract_module_or_tensor_callable,
    get_module_output_dimension,
    init_mlp_weights_xavier_uniform,
    jagged_index_select_with_empty,
)
from tests.modules._batches import make_kjt


def test_construct_jagged_tensors_splits_rows_per_feature():
    kjt = make_kjt({"a": [[1, 2], []], "b": [[3], [4, 5]]})
    emb = torch.arange(10.0).view(5, 2)
    out = construct_jagged_tensors(emb, kjt, ["ea", "eb"], need_indices=True)
    assert out["ea"].values().tolist() == [[0, 1], [2, 3]] and out["ea"].lengths().tolist() == [2, 0]
    assert out["eb"].values().tolist() == [[4, 5], [6, 7], [8, 9]] and out["eb"].weights().tolist() == [3, 4, 5]


def test_construct_jagged_tensors_column_pieces_and_dedup():
    # feature "a" looked up in two column pieces (positions 0 and 2)
    kjt = make_kjt({"a": [[1], [2]], "b": [[3], []], "a2": [[1], [2]]})
    emb = torch.tensor([[1.0], [2.0], [3.0], [10.0], [20.0]])
    out = construct_jagged_tensors(emb, kjt, ["a", "b", "a_piece"], features_to_permute_indices={"a": [0, 2]})
    assert sorted(out) == ["a", "b"]
    assert out["a"].values().tolist() == [[1.0, 10.0], [2.0, 20.0]]
    uniq = torch.tensor([[7.0], [9.0]])
    orig = make_kjt({"a": [[5, 6, 5]]})
    out = construct_jagged_tensors(uniq, make_kjt({"a": [[5, 6]]}), ["a"], original_features=orig,
                                   reverse_indices=torch.tensor([0, 1, 0]))
    assert out["a"].values().flatten().tolist() == [7.0, 9.0, 7.0]


def test_construct_jagged_tensors_inference():
    lengths = torch.tensor([[1, 1], [0, 2]])
    out = construct_jagged_tensors_inference(torch.arange(8.0).view(4, 2), lengths, torch.tensor([4, 5, 6, 7]),
                                             ["x", "y"], need_indices=True)
    assert out["y"].values().tolist() == [[4, 5], [6, 7]] and out["y"].lengths().tolist() == [0, 2]
    with pytest.raises(ValueError, match=r"\(F, B\)"):
        construct_jagged_tensors_inference(torch.zeros(2, 2), torch.tensor([1, 1]), torch.tensor([0, 1]), ["x"])


def test_module_list_helpers():
    torch.manual_seed(0)
    base = nn.Linear(3, 2)
    nested = construct_modulelist_from_single_module(base, (2, 3))
    assert len(nested) == 2 and len(nested[0]) == 3
    assert not torch.equal(nested[0][0].weight, nested[1][2].weight) and (nested[0][0].bias == 0).all()
    lst = convert_list_of_modules_to_modulelist([[nn.ReLU(), nn.ReLU()]], (1, 2))
    assert isinstance(lst[0], nn.ModuleList) and len(lst[0]) == 2
    with pytest.raises(ValueError, match="expected 2"):
        convert_list_of_modules_to_modulelist([nn.ReLU()], (2,))
    lin = nn.Linear(4, 5)
    init_mlp_weights_xavier_uniform(lin)
    assert (lin.bias == 0).all() and lin.weight.abs().max() <= (6 / 9) ** 0.5


def test_callable_helpers_and_output_dimension():
    assert isinstance(extract_module_or_tensor_callable(nn.ReLU), nn.ReLU)
    assert extract_module_or_tensor_callable(torch.relu) is torch.relu
    m = nn.Sequential(nn.Linear(3, 7))
    assert get_module_output_dimension(m, 3) == 7
    assert check_module_output_dimension([m, nn.Linear(3, 7)], 3, 7)
    assert not check_module_output_dimension(m, 3, 6)


def test_jagged_index_select_with_empty_matches_fbgemm():
    import fbgemm_gpu  # noqa: F401

    values = torch.arange(10.0)
    offsets = torch.tensor([3, 3, 7, 10])  # inclusive: segments [0:3] [] [3:7] [7:10]
    ids, out_off = torch.tensor([2, 1, 0]), torch.tensor([4, 4, 7])
    got = jagged_index_select_with_empty(values, ids, offsets, out_off)
    want = torch.ops.fbgemm.jagged_index_select_2d_forward_v2(values.unsqueeze(-1), ids, offsets, out_off)
    assert got.flatten().tolist() == [3, 4, 5, 6, 0, 1, 2]
    torch.testing.assert_close(got, want)
    assert jagged_index_select_with_empty(values, torch.tensor([], dtype=torch.long), offsets,
                                          torch.tensor([], dtype=torch.long)).numel() == 0


def test_deterministic_dedup_keeps_last_occurrence():
    uniq, last = deterministic_dedup(torch.tensor([5, 3, 5, 1, 3]))
    assert uniq.tolist() == [1, 3, 5] and last.tolist() == [3, 4, 2]
