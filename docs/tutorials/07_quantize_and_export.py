"""Tutorial 7 — quantize a trained model for inference, then script it and export it (CPU, one process).

    python docs/tutorials/07_quantize_and_export.py

The serving path of a recsys_lib model (details: ``docs/inference.md``):

1. train in float;
2. ``quantize_inference_model(model)`` swaps every ``EmbeddingBagCollection`` for a
   ``recsys_lib.quant.EmbeddingBagCollection``: INT8 rows (one fp16 scale and bias per row) in FBGEMM's
   inference-kernel layout, about 4x smaller than FP32;
3. ``recsys_lib.fx.symbolic_trace`` + ``torch.jit.script`` gives a TorchScript module that Python or C++
   (``examples/inference/``) can load;
4. or ``torch.export`` gives an ExportedProgram; here with a dynamic batch size, so one program serves any B.

The script checks each step: the quantized model stays close to the float one (a signal-to-noise ratio), and the
scripted and exported programs, saved and reloaded, return exactly what the quantized model returns.
"""

import copy
import os
import tempfile

import torch
from torch import nn

from recsys_lib import EmbeddingBagCollection, EmbeddingBagConfig, KeyedJaggedTensor
from recsys_lib.fx import symbolic_trace
from recsys_lib.inference.modules import quantize_inference_model
from recsys_lib.pt2.utils import register_fake_classes

KEYS = ["user", "item", "category"]
ROWS = [200, 300, 50]
D = 16
STEPS = 30


class TinyRanker(nn.Module):
    """Pooled embeddings of 3 sparse features + a linear layer: ``(dense (B, 4), kjt) -> logits (B,)``."""

    def __init__(self) -> None:
        super().__init__()
        self.ebc = EmbeddingBagCollection(tables=[
            EmbeddingBagConfig(name=f"t_{k}", embedding_dim=D, num_embeddings=r, feature_names=[k])
            for k, r in zip(KEYS, ROWS)
        ])
        self.dense = nn.Linear(4, D)
        self.over = nn.Linear(D * (len(KEYS) + 1), 1)

    def forward(self, dense: torch.Tensor, kjt: KeyedJaggedTensor) -> torch.Tensor:
        pooled = self.ebc(kjt).values()  # (B, 3 * D)
        return self.over(torch.cat([torch.relu(self.dense(dense)), pooled], dim=1)).squeeze(1)  # (B,)


def make_batch(batch_size: int, seed: int):
    """dense (B, 4) and a KJT with 0 to 3 ids per feature and example."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, 4, (len(KEYS) * batch_size,), generator=g)  # (F*B,), key-major
    values = torch.cat([torch.randint(0, r, (int(n),), generator=g)
                        for r, n in zip(ROWS, lengths.view(len(KEYS), batch_size).sum(1))])
    return torch.rand(batch_size, 4, generator=g), KeyedJaggedTensor(keys=KEYS, values=values, lengths=lengths)


def snr_db(reference: torch.Tensor, approx: torch.Tensor) -> float:
    """Signal-to-noise ratio in decibels: 20 log10(|reference| / |reference - approx|)."""
    return (20 * torch.log10(reference.norm() / (reference - approx).norm())).item()


class Flat(nn.Module):
    """``(dense, values, lengths) -> logits``: plain tensors in, the KJT built inside, as an exported program needs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, dense: torch.Tensor, values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model(dense, KeyedJaggedTensor(keys=KEYS, values=values, lengths=lengths))


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)

    # 1. Train in float on a made-up target (a click if the user id is even).
    model = TinyRanker()
    optimizer = torch.optim.Adagrad(model.parameters(), lr=0.1)
    losses = []
    for step in range(STEPS):
        dense, kjt = make_batch(64, seed=step % 5)
        labels = (kjt["user"].to_padded_dense(desired_length=1).squeeze(1) % 2 == 0).float()  # (B,)
        loss = nn.functional.binary_cross_entropy_with_logits(model(dense, kjt), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    print(f"trained: loss {losses[0]:.3f} -> {losses[-1]:.3f}")

    # 2. Quantize a copy (in place: the EBC becomes recsys_lib.quant.EmbeddingBagCollection, tables INT8).
    model.eval()
    qmodel = quantize_inference_model(copy.deepcopy(model))
    print(type(qmodel.ebc).__module__, type(qmodel.ebc).__name__)
    # uint8 (R, row bytes); a row: fp16 scale, fp16 bias, D int8 values, zero padding to a multiple of 16 bytes
    weight = qmodel.ebc.state_dict()["embedding_bags.t_user.weight"]
    print(f"t_user: float {ROWS[0]}x{D}x4 = {ROWS[0] * D * 4} bytes -> int8 {tuple(weight.shape)} {weight.dtype}")
    dense, kjt = make_batch(32, seed=100)
    with torch.no_grad():
        float_out, quant_out = model(dense, kjt), qmodel(dense, kjt)
        float_pooled, quant_pooled = model.ebc(kjt).values(), qmodel.ebc(kjt).values()
    print(f"SNR pooled embeddings {snr_db(float_pooled, quant_pooled):.1f} dB, logits {snr_db(float_out, quant_out):.1f} dB")
    assert snr_db(float_pooled, quant_pooled) > 30  # INT8 row-wise: ~ 8 bits * 6 dB minus rounding of fp16 scale
    assert snr_db(float_out, quant_out) > 30

    with tempfile.TemporaryDirectory() as tmp:
        # 3. fx trace (the TBE kernels stay leaves) + TorchScript; save, load, compare on another batch size.
        scripted = torch.jit.script(symbolic_trace(qmodel))
        path = os.path.join(tmp, "ranker.pt")
        scripted.save(path)
        loaded = torch.jit.load(path)
        for batch_size, seed in [(7, 1), (32, 100)]:
            dense, kjt = make_batch(batch_size, seed)
            with torch.no_grad():
                assert torch.equal(loaded(dense, kjt), qmodel(dense, kjt))
        print(f"TorchScript: saved {os.path.getsize(path)} bytes; reloaded output equals the quantized model's")

        # 4. torch.export with a dynamic batch. Non-strict: the quantized kernel holds FBGEMM script objects, which
        #    the fake classes registered here stand in for while tracing.
        register_fake_classes()
        dense, kjt = make_batch(5, seed=2)
        b = torch.export.Dim("batch", min=2, max=4096)
        n = torch.export.Dim("ids", min=2, max=1 << 20)
        program = torch.export.export(
            Flat(qmodel), (dense, kjt.values(), kjt.lengths()),
            dynamic_shapes=({0: b}, {0: n}, {0: len(KEYS) * b}),  # lengths: (F*B,)
            strict=False,
        )
        path = os.path.join(tmp, "ranker.pt2")
        torch.export.save(program, path)
        exported = torch.export.load(path).module()
        for batch_size, seed in [(3, 3), (64, 4)]:  # batch sizes other than the traced one
            dense, kjt = make_batch(batch_size, seed)
            with torch.no_grad():
                assert torch.equal(exported(dense, kjt.values(), kjt.lengths()), qmodel(dense, kjt))
        print("torch.export: one program, batch sizes 3 and 64; reloaded output equals the quantized model's")
    print("tutorial 7 OK")


if __name__ == "__main__":
    main()
