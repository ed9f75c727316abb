"""Sparse types: construction, views, restructuring, printing, accepted odd inputs."""

from typing import Any, Callable, List, Tuple

import torch

Calls = List[Tuple[str, Callable[[], Any]]]


def kjt_basics(lib: Any) -> Calls:
    jt_mod = lib.m("sparse.jagged_tensor")
    K = jt_mod.KeyedJaggedTensor
    values, lengths = torch.arange(1, 9), torch.tensor([2, 0, 1, 1, 1, 3])
    w = torch.arange(8, dtype=torch.float32) / 4

    def k(**kw: Any) -> Any:
        return K.from_lengths_sync(["a", "b", "c"], values, lengths, **kw)

    return [
        ("to_dict", lambda: k().to_dict()),
        ("getitem", lambda: k()["b"]),
        ("length_per_key", lambda: k().length_per_key()),
        ("offset_per_key", lambda: k().offset_per_key()),
        ("stride", lambda: k().stride()),
        ("offsets", lambda: k().offsets()),
        ("permute", lambda: k().permute([2, 0, 2])),
        ("split", lambda: k().split([1, 0, 2])),
        ("concat", lambda: K.concat(k().split([1, 2]))),
        ("weighted", lambda: k(weights=w).to_dict()),
        ("str", lambda: str(k())),
        ("str weighted", lambda: str(k(weights=w))),
        ("str empty", lambda: str(K.empty())),
        ("empty", lambda: K.empty(is_weighted=True)),
        ("empty_like", lambda: K.empty_like(k(weights=w))),
        ("key_indices", lambda: K(["a", "b", "a"], torch.arange(3), lengths=torch.tensor([1, 1, 1]))._key_indices()),
        ("index_per_key", lambda: k().index_per_key()),
        ("to dtype", lambda: k(weights=w).to(torch.device("cpu"), dtype=torch.float16).weights()),
        ("vbe tensor strides", lambda: K(["a", "b"], torch.arange(4), lengths=torch.tensor([1, 2, 0, 1]),
                                         stride_per_key_per_rank=torch.tensor([[1], [3]])).stride_per_key()),
        ("vbe getitem", lambda: K(["a", "b"], torch.arange(4), lengths=torch.tensor([1, 2, 0, 1]),
                                  stride_per_key_per_rank=[[1], [3]])["b"]),
        ("from_offsets_sync", lambda: K.from_offsets_sync(["a", "b"], torch.arange(4),
                                                          torch.tensor([0, 1, 1, 3, 4])).to_dict()),
        ("from_jt_dict", lambda: K.from_jt_dict(k().to_dict())),
        ("values longer: getitem", lambda: K.from_lengths_sync(["a", "b"], torch.arange(10),
                                                               torch.tensor([1, 2, 0, 1]))["b"]),
        ("values longer: length_per_key", lambda: K.from_lengths_sync(["a", "b"], torch.arange(10),
                                                                      torch.tensor([1, 2, 0, 1])).length_per_key()),
        ("dup keys getitem", lambda: K(["a", "b", "a"], torch.arange(3), lengths=torch.tensor([1, 1, 1]))["a"]),
        ("unknown key", lambda: k()["zz"]),
        ("bad split", lambda: k().split([1, 1])),
        ("size_in_bytes", lambda: k(weights=w).size_in_bytes()),
        ("dist_labels", lambda: k(weights=w).dist_labels()),
        ("dist_splits", lambda: k(weights=w).dist_splits([1, 2])),
        ("flatten_lengths", lambda: k().flatten_lengths()),
        ("kjt_is_equal", lambda: jt_mod.kjt_is_equal(k(), k())),
    ]


def jt_basics(lib: Any) -> Calls:
    J = lib.m("sparse.jagged_tensor").JaggedTensor
    jt = lambda: J(values=torch.arange(6), lengths=torch.tensor([2, 0, 3, 1]))  # noqa: E731
    return [
        ("to_dense", lambda: jt().to_dense()),
        ("to_padded_dense", lambda: jt().to_padded_dense(desired_length=2, padding_value=-1)),
        ("to_padded_dense auto", lambda: jt().to_padded_dense()),
        ("offsets", lambda: jt().offsets()),
        ("from_dense", lambda: J.from_dense([torch.tensor([1, 2]), torch.tensor([3])])),
        ("from_dense_lengths", lambda: J.from_dense_lengths(torch.arange(6).view(2, 3), torch.tensor([1, 3]))),
        ("empty", lambda: J.empty(is_weighted=True)),
        ("str", lambda: str(jt())),
        ("str weighted", lambda: str(J(torch.arange(3), lengths=torch.tensor([1, 2]), weights=torch.ones(3)))),
        ("offsets not at 0", lambda: J(torch.arange(10), offsets=torch.tensor([2, 4, 6])).to_dense()),
        ("values longer", lambda: J(torch.arange(10), lengths=torch.tensor([1, 2])).to_dense()),
        ("2-d values", lambda: J(torch.arange(6.0).view(3, 2), lengths=torch.tensor([1, 2])).to_dense()),
        ("jt_is_equal", lambda: lib.m("sparse.jagged_tensor").jt_is_equal(jt(), jt())),
    ]


def kt_basics(lib: Any) -> Calls:
    KT = lib.m("sparse.jagged_tensor").KeyedTensor
    a, b, c = torch.randn(3, 2), torch.randn(3, 1), torch.randn(3, 4)
    kt1 = lambda: KT.from_tensor_list(["a", "b"], [a, b])  # noqa: E731
    kt2 = lambda: KT.from_tensor_list(["c"], [c])  # noqa: E731
    return [
        ("to_dict", lambda: kt1().to_dict()),
        ("getitem", lambda: kt1()["b"]),
        ("regroup", lambda: KT.regroup([kt1(), kt2()], [["c", "a"], ["b"]])),
        ("regroup_as_dict", lambda: KT.regroup_as_dict([kt1(), kt2()], [["c", "a"], ["b"]], ["x", "y"])),
        ("regroup_kts", lambda: lib.m("sparse.jagged_tensor").regroup_kts([kt1(), kt2()], [["b", "c"]])),
        ("str", lambda: str(kt1())),
        ("str key_dim 0", lambda: str(KT(["a", "b"], [1, 2], torch.ones(3, 2), key_dim=0))),
        ("size_in_bytes", lambda: kt1().size_in_bytes()),
        ("offset_per_key", lambda: kt1().offset_per_key()),
    ]


CASES = {"sparse.KeyedJaggedTensor": kjt_basics, "sparse.JaggedTensor": jt_basics, "sparse.KeyedTensor": kt_basics}


def tensor_dict(lib: Any) -> Calls:
    from tensordict import TensorDict  # noqa: PLC0415 - the compare environment has it

    def nested(bags: List[List[int]]) -> torch.Tensor:
        return torch.nested.nested_tensor([torch.tensor(b, dtype=torch.int64) for b in bags], layout=torch.jagged)

    td = lambda: TensorDict({"f1": nested([[1, 2], [3]]), "f2": nested([[4], [5, 6]])}, batch_size=[2])  # noqa: E731
    conv = lib.m("sparse.tensor_dict").maybe_td_to_kjt
    return [("TensorDict -> KJT", lambda: conv(td())), ("keys order", lambda: conv(td(), ["f2", "f1"]))]


CASES["sparse.tensor_dict"] = tensor_dict


def odd_inputs(lib: Any) -> Calls:
    """Inputs TorchRec accepts but then crashes on or misreads: listed in docs/deviations.md (run.py KNOWN)."""
    K = lib.m("sparse.jagged_tensor").KeyedJaggedTensor
    return [
        ("values longer: to_dict", lambda: K.from_lengths_sync(["a", "b"], torch.arange(10),
                                                               torch.tensor([1, 2, 0, 1])).to_dict()),
        ("offsets not at 0: getitem", lambda: K(["a"], torch.arange(6), offsets=torch.tensor([2, 4, 6]))["a"]),
        ("negative length: sync", lambda: K.from_lengths_sync(["a"], torch.arange(4), torch.tensor([3, -1]))),
        ("lengths past values: sync", lambda: K.from_lengths_sync(["a"], torch.arange(2), torch.tensor([3, 1]))),
        ("lengths/offsets disagree: getitem", lambda: K(["a"], torch.arange(4), lengths=torch.tensor([1, 1]),
                                                         offsets=torch.tensor([0, 2, 4]))["a"]),
    ]


CASES["sparse.odd_inputs"] = odd_inputs
