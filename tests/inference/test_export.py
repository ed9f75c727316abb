"""torch.export of the float and quantized DLRM with a dynamic batch: exported, saved, reloaded, same outputs."""

import pytest
import torch

from recsys_lib import KeyedJaggedTensor
from recsys_lib.inference.modules import quantize_inference_model
from recsys_lib.pt2.checks import is_pt2_compiling
from recsys_lib.pt2.utils import kjt_for_pt2_tracing, register_fake_classes
from tests.inference._models import KEYS, batch, dlrm


class _Flat(torch.nn.Module):
    """(dense (B, 4), values (N,), lengths (F*B,)) → logits: the KJT is built inside the exported program."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, dense: torch.Tensor, values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model(dense, KeyedJaggedTensor(keys=KEYS, values=values, lengths=lengths))


def _export(model, strict):
    dense, kjt = batch(5)
    b = torch.export.Dim("batch", min=2, max=4096)
    n = torch.export.Dim("ids", min=2, max=1 << 20)
    return torch.export.export(_Flat(model), (dense, kjt.values(), kjt.lengths()),
                               dynamic_shapes=({0: b}, {0: n}, {0: len(KEYS) * b}), strict=strict)


@pytest.mark.parametrize("quantized,strict", [(False, False), (False, True), (True, False), (True, True)])
def test_exported_dlrm_dynamic_batch_round_trip(quantized, strict, tmp_path):
    register_fake_classes()
    model = dlrm()
    if quantized:
        quantize_inference_model(model)
    model.eval()
    ep = _export(model, strict)
    path = tmp_path / "dlrm.pt2"
    torch.export.save(ep, str(path))
    loaded = torch.export.load(str(path)).module()
    for b, seed in [(3, 1), (9, 2), (64, 3)]:  # batch sizes other than the traced one
        dense, kjt = batch(b, seed)
        want = model(dense, kjt)
        assert torch.equal(ep.module()(dense, kjt.values(), kjt.lengths()), want)
        assert torch.equal(loaded(dense, kjt.values(), kjt.lengths()), want)


def test_pt2_checks_are_false_eagerly_and_kjt_for_tracing_drops_caches():
    assert not is_pt2_compiling()
    _, kjt = batch(4)
    kjt.length_per_key()  # fill a host-side cache
    clean = kjt_for_pt2_tracing(kjt)
    assert clean.length_per_key_or_none() is None
    assert torch.equal(clean.values(), kjt.values()) and torch.equal(clean.lengths(), kjt.lengths())
    vb = kjt_for_pt2_tracing(kjt, convert_to_vb=True)
    assert vb.variable_stride_per_key() and vb.stride_per_key() == [4, 4, 4]


def test_pt2_compile_callable_compiles_only_when_enabled(monkeypatch):
    from recsys_lib.pt2.utils import pt2_compile_callable

    compiled = []

    def fake_compile(fn):  # inductor takes ~40 s on CPU: record the call, run the function as compiled
        compiled.append(fn)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)

    class Metric:
        enable_pt2_compile = False

        @pt2_compile_callable
        def update(self, x):
            return x * 2 + 1

    m = Metric()
    assert torch.equal(m.update(torch.ones(3)), torch.full((3,), 3.0))
    assert not hasattr(m, "_update_pt2_compiled")
    m.enable_pt2_compile = True
    assert torch.equal(m.update(torch.ones(3)), torch.full((3,), 3.0))
    assert hasattr(m, "_update_pt2_compiled") and len(compiled) == 1
    m.update(torch.ones(3))
    assert len(compiled) == 1  # compiled once per object


class _Sequence(torch.nn.Module):
    def __init__(self, ec: torch.nn.Module) -> None:
        super().__init__()
        self.ec = ec

    def forward(self, values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out = self.ec(KeyedJaggedTensor(keys=["f0", "f1"], values=values, lengths=lengths))
        return torch.cat([out["f0"].values(), out["f1"].values()], dim=0)


def test_quantized_ec_strict_export_dynamic_batch():
    from recsys_lib import EmbeddingCollection, EmbeddingConfig

    register_fake_classes()
    torch.manual_seed(0)
    ec = EmbeddingCollection([EmbeddingConfig(num_embeddings=20, embedding_dim=8, name="t0", feature_names=["f0"]),
                              EmbeddingConfig(num_embeddings=30, embedding_dim=8, name="t1", feature_names=["f1"])])
    model = quantize_inference_model(torch.nn.Sequential(ec))[0]
    wrapped = _Sequence(model).eval()
    g = torch.Generator().manual_seed(1)

    def inputs(b):
        lengths = torch.randint(1, 4, (2 * b,), generator=g)
        return torch.randint(0, 20, (int(lengths.sum()),), generator=g), lengths

    b, n = torch.export.Dim("batch", min=2, max=1024), torch.export.Dim("ids", min=2, max=1 << 16)
    ep = torch.export.export(wrapped, inputs(4), dynamic_shapes=({0: n}, {0: 2 * b}), strict=True)
    for size in (3, 17):
        values, lengths = inputs(size)
        assert torch.equal(ep.module()(values, lengths), wrapped(values, lengths))
