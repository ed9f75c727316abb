import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_lib.ops.regroup import plan_regroup, regroup_fbgemm, regroup_reference, regroup_slices


@st.composite
def regroup_case(draw):
    n_inputs = draw(st.integers(1, 3))
    keys, lengths, counter = [], [], 0
    for _ in range(n_inputs):
        k = draw(st.integers(1, 4))
        keys.append([f"k{counter + j}" for j in range(k)])
        lengths.append(draw(st.lists(st.integers(1, 3), min_size=k, max_size=k)))
        counter += k
    all_keys = [k for ks in keys for k in ks]
    groups = draw(st.lists(st.lists(st.sampled_from(all_keys), min_size=1, max_size=4, unique=True), min_size=1, max_size=3))
    return keys, lengths, groups


@settings(derandomize=True, max_examples=40, deadline=None)
@given(regroup_case())
def test_regroup_variants_agree_with_manual_cat(c):
    keys, lengths, groups = c
    torch.manual_seed(0)
    values = [torch.randn(3, sum(ls)) for ls in lengths]
    blocks = {}
    for ks, ls, v in zip(keys, lengths, values):
        for k, piece in zip(ks, torch.split(v, ls, dim=1)):
            blocks[k] = piece
    want = [torch.cat([blocks[k] for k in g], dim=1) for g in groups]
    plan = plan_regroup(keys, lengths, groups)
    for got in (regroup_slices(values, plan), regroup_reference(values, plan), regroup_fbgemm(values, keys, lengths, groups)):
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w)


def test_adjacent_slices_are_merged():
    plan = plan_regroup([["a", "b", "c"]], [[1, 2, 3]], [["a", "b", "c"], ["c", "a"]])
    assert plan == [[(0, 0, 6)], [(0, 3, 3), (0, 0, 1)]]
