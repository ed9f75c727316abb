"""Shared builders for the quantized-module tests: float collections, qconfigs, batches, plain-torch oracles."""

import torch

from recsys_lib import EmbeddingBagConfig, KeyedJaggedTensor
from recsys_lib.modules.embedding_configs import DataType, QuantConfig

# weight dtype → (DataType, bits)
DTYPES = {
    torch.float32: (DataType.FP32, 32),
    torch.float16: (DataType.FP16, 16),
    torch.qint8: (DataType.INT8, 8),
    torch.quint4x2: (DataType.INT4, 4),
    torch.quint2x4: (DataType.INT2, 2),
}


def qconfig(weight_dtype: torch.dtype, output_dtype: torch.dtype = torch.float) -> QuantConfig:
    obs = torch.ao.quantization.PlaceholderObserver
    return QuantConfig(activation=obs.with_args(dtype=output_dtype), weight=obs.with_args(dtype=weight_dtype))


def bag_tables(mean: bool = False) -> list:
    # Ids per feature differ from the batch size, and one table reads two features.
    from recsys_lib import PoolingType

    return [
        EmbeddingBagConfig(num_embeddings=11, embedding_dim=8, name="t0", feature_names=["f0"]),
        EmbeddingBagConfig(num_embeddings=13, embedding_dim=16, name="t1", feature_names=["f1", "f2"],
                           pooling=PoolingType.MEAN if mean else PoolingType.SUM),
    ]


def batch(weighted: bool, seed: int = 0, keys=("f2", "f0", "f1"), batch_size: int = 3) -> KeyedJaggedTensor:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, 4, (len(keys) * batch_size,), generator=g)
    ids = torch.randint(0, 11, (int(lengths.sum()),), generator=g)
    weights = torch.rand(ids.numel(), generator=g) if weighted else None
    return KeyedJaggedTensor.from_lengths_sync(list(keys), ids, lengths, weights=weights)


def fake_quant_rows(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Independent oracle: row-wise min/max quantise-dequantise in plain torch (fp16 scale and bias)."""
    if bits == 32:
        return w.float()
    if bits == 16:
        return w.half().float()
    lo = w.min(1, keepdim=True).values
    bias = lo.half().float()
    scale = ((w.max(1, keepdim=True).values - bias) / (2 ** bits - 1)).half().float()
    q = torch.clamp(torch.round((w - bias) / torch.where(scale == 0, torch.ones_like(scale), scale)), 0, 2 ** bits - 1)
    return q * scale + bias


def pooled_oracle(tables, weights_by_table, kjt: KeyedJaggedTensor, weighted: bool) -> dict:
    """{feature: (B, D)} pooled with ``torch.nn.functional.embedding_bag`` from dense tables."""
    jts = kjt.to_dict()
    out = {}
    for t in tables:
        for f in t.feature_names:
            jt = jts[f]
            out[f] = torch.nn.functional.embedding_bag(
                jt.values(), weights_by_table[t.name], jt.offsets(), mode=t.pooling.value.lower(),
                per_sample_weights=jt.weights() if weighted else None, include_last_offset=True,
            )
    return out
