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
