"""TorchScript: the jagged types compile as TorchScript classes inside scripted modules and give eager results."""

from typing import Dict, List

import pytest
import torch

from recsys_lib.sparse.jagged_tensor import (
    ComputeJTDictToKJT,
    ComputeKJTToJTDict,
    JaggedTensor,
    KeyedJaggedTensor,
    KeyedTensor,
    kjt_is_equal,
    permute_multi_embedding,
    regroup_kts,
)


class BuildIndexPermute(torch.nn.Module):
    """Builds a KJT from Dict[str, Tensor], indexes, permutes, splits, concatenates and regroups."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: List[str] = ["f1", "f2", "f3"]

    def forward(self, features: Dict[str, torch.Tensor]) -> List[torch.Tensor]:
        kjt = KeyedJaggedTensor(keys=self.keys, values=features["values"], lengths=features["lengths"])
        p = kjt.permute([2, 0, 1])
        jt = p["f1"]
        a, b = p.split([1, 2])
        c = KeyedJaggedTensor.concat([b, a])
        d = c.to_dict()
        kt = KeyedTensor.from_tensor_list(
            ["x", "y"], [jt.to_padded_dense(3).float(), d["f3"].to_padded_dense(2).float()]
        )
        regrouped = KeyedTensor.regroup([kt], [["y", "x"]])
        return [p.values(), p.lengths(), c.values(), c.offsets(), regrouped[0], jt.offsets()]


def _features():
    # f1: [1,2] [] [3] | f2: [4] [5] [6,7] | f3: [] [8,9,10] [11]
    return {"values": torch.arange(1, 12), "lengths": torch.tensor([2, 0, 1, 1, 1, 2, 0, 3, 1])}


def test_script_build_index_permute_matches_eager():
    m = BuildIndexPermute()
    scripted = torch.jit.script(m)
    for got, want in zip(scripted(_features()), m(_features())):
        torch.testing.assert_close(got, want)
    p_values = m(_features())[0]
    assert p_values.tolist() == [8, 9, 10, 11, 1, 2, 3, 4, 5, 6, 7]


class TakesKJT(torch.nn.Module):
    def forward(self, kjt: KeyedJaggedTensor) -> Dict[str, torch.Tensor]:
        out: Dict[str, torch.Tensor] = {}
        for k, jt in kjt.to_dict().items():
            out[k] = jt.to_padded_dense(2)
        out["lpk"] = torch.tensor(kjt.length_per_key())
        return out


def test_script_kjt_argument_and_modules():
    kjt = KeyedJaggedTensor(["f1", "f2"], torch.arange(1, 8), lengths=torch.tensor([2, 0, 1, 1, 1, 2]))
    scripted = torch.jit.script(TakesKJT())
    out = scripted(kjt)
    assert out["f1"].tolist() == [[1, 2], [0, 0], [3, 0]] and out["lpk"].tolist() == [3, 4]
    to_dict, back = torch.jit.script(ComputeKJTToJTDict()), torch.jit.script(ComputeJTDictToKJT())
    assert kjt_is_equal(back(to_dict(kjt)), kjt)


def test_scripted_module_saves_and_loads(tmp_path):
    scripted = torch.jit.script(BuildIndexPermute())
    path = tmp_path / "m.pt"
    scripted.save(str(path))
    loaded = torch.jit.load(str(path))
    for got, want in zip(loaded(_features()), BuildIndexPermute()(_features())):
        torch.testing.assert_close(got, want)


def test_record_stream_is_unused_in_script():
    class M(torch.nn.Module):
        def forward(self, jt: JaggedTensor) -> torch.Tensor:
            return jt.values()

    # Compiles although record_stream/pin_memory are not scriptable: they are @torch.jit.unused.
    scripted = torch.jit.script(M())
    assert scripted(JaggedTensor(torch.tensor([1, 2]), lengths=torch.tensor([2]))).tolist() == [1, 2]


class MovedMethodsTour(torch.nn.Module):
    """Calls every method whose body lives in a private module (``_build``, ``_kjt_views``, ``_kt_regroup``,
    ``_kjt_dist``, ``_kjt_ops``, ``_utils``) so that TorchScript compiles them all; returns plain tensors."""

    def forward(
        self, values: torch.Tensor, lengths: torch.Tensor, weights: torch.Tensor, pooled: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        out: Dict[str, torch.Tensor] = {}
        keys = ["f1", "f2", "f3"]
        kjt = KeyedJaggedTensor.from_lengths_sync(keys, values, lengths, weights=weights)
        offs = KeyedJaggedTensor.from_offsets_sync(keys, values, kjt.offsets())
        # stride inferred from offsets only (no lengths given)
        bare = KeyedJaggedTensor(keys=keys, values=values, offsets=kjt.offsets())
        out["stride"] = torch.tensor([bare.stride(), offs.stride()] + offs.length_per_key())
        a, empty_piece, b = kjt.split([1, 0, 2])
        out["split_a"] = a.values()
        out["split_a_w"] = a.weights()
        out["split_empty_lengths"] = empty_piece.lengths()
        out["split_b_lengths"] = b.lengths()
        out["split_b_opk"] = torch.tensor(b.offset_per_key())
        p = kjt.permute([2, 0, 2])
        out["permute_values"] = p.values()
        out["permute_weights"] = p.weights()
        out["permute_lengths"] = p.lengths()
        pt = kjt.permute([1, 0], torch.tensor([1, 0], dtype=torch.int32))
        out["permute_tensor_values"] = pt.values()
        out["getitem_f2"] = kjt["f2"].values()
        out["getitem_f2_w"] = kjt["f2"].weights()
        d = kjt.to_dict()
        out["to_dict_f3_offsets"] = d["f3"].offsets()
        back = KeyedJaggedTensor.from_jt_dict(d)
        out["from_jt_dict_values"] = back.values()
        cat = KeyedJaggedTensor.concat([b, a])
        out["concat_lengths"] = cat.lengths()
        out["concat_opk"] = torch.tensor(cat.offset_per_key())
        # VBE: f1 has batch 2, f2 batch 1; concat of KJTs with different strides is VBE too
        vbe = KeyedJaggedTensor(keys=["v1", "v2"], values=values[:5], lengths=torch.tensor([2, 1, 2]),
                                weights=weights[:5], stride_per_key_per_rank=[[2], [1]])
        vp = vbe.permute([1, 0])
        out["vbe_permute_values"] = vp.values()
        out["vbe_permute_spk"] = torch.tensor(vp.stride_per_key())
        vs = vbe.split([1, 1])
        out["vbe_split_lengths"] = vs[1].lengths()
        mixed = KeyedJaggedTensor.concat([a, vbe])
        out["vbe_concat_spk"] = torch.tensor(mixed.stride_per_key())
        out["flatten"] = kjt.flatten_lengths().lengths()
        out["to"] = kjt.to(torch.device("cpu"), dtype=torch.float64).weights()
        out["size_in_bytes"] = torch.tensor([kjt.size_in_bytes(), d["f1"].size_in_bytes()])
        out["index_per_key"] = torch.tensor([kjt.index_per_key()["f3"]])
        out["dist_labels"] = torch.tensor([len(kjt.dist_labels()), len(vbe.dist_labels())])
        out["dist_splits"] = torch.tensor(kjt.dist_splits([2, 1])[1])
        tensors = kjt.dist_tensors()
        re = KeyedJaggedTensor.dist_init(keys, tensors, False, 1, torch.tensor([0, 1, 2]), None)
        out["dist_init_values"] = re.values()
        out["dist_init_w"] = re.weights()
        vre = KeyedJaggedTensor.dist_init(["v1", "v2"], vbe.dist_tensors(), True, 1, None, None)
        out["dist_init_vbe_spk"] = torch.tensor(vre.stride_per_key())
        e = KeyedJaggedTensor.empty(is_weighted=True, values_dtype=torch.int64)
        el = KeyedJaggedTensor.empty_like(kjt)
        out["empty"] = torch.tensor([len(e.keys()), e.weights().numel(), el.stride(), len(el.keys())])
        jt_e = JaggedTensor.empty(is_weighted=True)
        jt_el = JaggedTensor.empty_like(kjt["f1"])
        out["jt_empty"] = torch.cat([jt_e.offsets(), jt_el.lengths()])
        dense = JaggedTensor.from_dense([values[:2], values[2:5]], [weights[:2], weights[2:5]])
        out["jt_from_dense"] = dense.to_padded_dense(3)
        out["jt_from_dense_w"] = dense.weights()
        fdl = JaggedTensor.from_dense_lengths(pooled[:, :3], torch.tensor([1, 3]))
        out["jt_from_dense_lengths"] = fdl.values()
        kt1 = KeyedTensor.from_tensor_list(["x", "y"], [pooled[:, :1], pooled[:, 1:3]])
        kt2 = KeyedTensor(keys=["z"], length_per_key=[2], values=pooled[:, 3:5])
        groups = [["z", "x"], ["y"]]
        rg = KeyedTensor.regroup([kt1, kt2], groups)
        out["regroup_0"] = rg[0]
        out["regroup_as_dict_g1"] = KeyedTensor.regroup_as_dict([kt1, kt2], groups, ["g0", "g1"])["g1"]
        out["regroup_kts"] = regroup_kts([kt1, kt2], groups)[1]
        out["permute_multi_embedding"] = permute_multi_embedding([kt1, kt2], groups)[0]
        out["kt_getitem"] = kt1["y"]
        out["kt_to_dict"] = kt1.to(torch.device("cpu")).to_dict()["x"]
        return out


def _tour_inputs():
    # f1: [1,2] [] [3] | f2: [4] [5] [6,7] | f3: [] [8,9,10] [11]; lengths int32 as data loaders give them
    return (torch.arange(1, 12), torch.tensor([2, 0, 1, 1, 1, 2, 0, 3, 1], dtype=torch.int32),
            torch.linspace(0.5, 1.5, 11), torch.arange(10.0).view(2, 5))


def test_script_moved_methods_match_eager():
    m = MovedMethodsTour()
    want = m(*_tour_inputs())
    got = torch.jit.script(m)(*_tour_inputs())
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], msg=k)
    # hand-checked anchors, so the eager side is pinned as well
    assert want["split_a"].tolist() == [1, 2, 3] and want["split_b_opk"].tolist() == [0, 4, 8]
    assert want["permute_values"].tolist() == [8, 9, 10, 11, 1, 2, 3, 8, 9, 10, 11]
    assert want["permute_lengths"].tolist() == [0, 3, 1, 2, 0, 1, 0, 3, 1]
    assert want["vbe_permute_values"].tolist() == [4, 5, 1, 2, 3] and want["vbe_permute_spk"].tolist() == [1, 2]
    assert want["vbe_concat_spk"].tolist() == [3, 2, 1]
    assert want["regroup_0"].tolist() == [[3.0, 4.0, 0.0], [8.0, 9.0, 5.0]]
    assert want["stride"].tolist() == [3, 3, 3, 4, 4] and want["split_empty_lengths"].dtype == torch.int32
