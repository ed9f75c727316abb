"""pytree registration: KJT/JT/KT flatten to their tensors, rebuild exactly, and pass through torch.export."""

import torch
import torch.utils._pytree as pytree

from recsys_lib.sparse.jagged_tensor import (
    JaggedTensor,
    KeyedJaggedTensor,
    KeyedTensor,
    flatten_kjt_list,
    jt_is_equal,
    kjt_is_equal,
    unflatten_kjt_list,
)


def _kjt(weighted=False):
    w = torch.linspace(0, 1, 7) if weighted else None
    return KeyedJaggedTensor(["f1", "f2"], torch.arange(1, 8), weights=w, lengths=torch.tensor([2, 0, 1, 1, 1, 2]))


def test_tree_round_trip_and_tree_map():
    kjt, jt = _kjt(weighted=True), JaggedTensor(torch.tensor([1.0, 2.0]), lengths=torch.tensor([1, 1]))
    kt = KeyedTensor.from_tensor_list(["a", "b"], [torch.ones(2, 1), torch.zeros(2, 2)])
    leaves, spec = pytree.tree_flatten({"kjt": kjt, "jt": jt, "kt": kt})
    assert all(x is None or isinstance(x, torch.Tensor) for x in leaves)
    assert sum(isinstance(x, torch.Tensor) for x in leaves) == 3 + 2 + 1  # kjt: values/weights/lengths
    back = pytree.tree_unflatten(leaves, spec)
    assert kjt_is_equal(back["kjt"], kjt) and jt_is_equal(back["jt"], jt)
    assert back["kt"].keys() == ["a", "b"] and torch.equal(back["kt"].values(), kt.values())
    doubled = pytree.tree_map(lambda t: t * 2 if t is not None and t.is_floating_point() else t, kjt)
    torch.testing.assert_close(doubled.weights(), kjt.weights() * 2)
    assert torch.equal(doubled.values(), kjt.values())


def test_flatten_unflatten_kjt_list():
    a, b = _kjt(), _kjt(weighted=True).permute([1, 0])
    flat, ctx = flatten_kjt_list([a, b])
    out = unflatten_kjt_list(flat, ctx)
    assert kjt_is_equal(out[0], a) and kjt_is_equal(out[1], b)


class _SumKJT(torch.nn.Module):
    def forward(self, kjt: KeyedJaggedTensor, kt: KeyedTensor) -> torch.Tensor:
        return kjt.values().float().sum() * 2 + kjt.lengths().float().sum() + kt["b"].sum()


class _BuildKJT(torch.nn.Module):
    def forward(self, values: torch.Tensor, lengths: torch.Tensor) -> KeyedJaggedTensor:
        return KeyedJaggedTensor(keys=["a", "b"], values=values * 2, lengths=lengths)


def test_export_kjt_and_kt_inputs():
    kjt = _kjt()
    kt = KeyedTensor.from_tensor_list(["a", "b"], [torch.ones(2, 1), torch.full((2, 2), 3.0)])
    ep = torch.export.export(_SumKJT(), (kjt, kt))
    expected = 2 * 28 + 7 + 12.0
    assert float(ep.module()(kjt, kt)) == expected


def test_export_kjt_output():
    ep = torch.export.export(_BuildKJT(), (torch.arange(4), torch.tensor([1, 1, 2, 0])))
    out = ep.module()(torch.arange(1, 5), torch.tensor([2, 0, 2, 0]))  # same shapes as the example inputs
    assert isinstance(out, KeyedJaggedTensor) and out.keys() == ["a", "b"]
    assert out.values().tolist() == [2, 4, 6, 8] and out.lengths().tolist() == [2, 0, 2, 0]


class _PermuteIndex(torch.nn.Module):
    def forward(self, kjt: KeyedJaggedTensor) -> torch.Tensor:
        p = kjt.permute([1, 0])
        return p.values().float() * 2 + p["f1"].values().float().sum()


def test_export_permute_and_getitem_of_synced_kjt():
    # A synced KJT carries length_per_key in its pytree context, so the per-key sizes are static for export.
    kjt = KeyedJaggedTensor.from_lengths_sync(["f1", "f2"], torch.arange(1, 8), torch.tensor([2, 0, 1, 1, 1, 2]))
    ep = torch.export.export(_PermuteIndex(), (kjt,))
    got = ep.module()(kjt)
    want = torch.tensor([4.0, 5, 6, 7, 1, 2, 3]) * 2 + 6.0
    torch.testing.assert_close(got, want)
