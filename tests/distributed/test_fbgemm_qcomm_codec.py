"""fbgemm_qcomm_codec: config validation, registry contents and fallbacks, codec round-trip accuracy."""

import pytest
import torch
from fbgemm_gpu.split_embedding_configs import SparseType

from recsys_lib.distributed.fbgemm_qcomm_codec import (
    CommType,
    QCommsConfig,
    comm_type_to_sparse_type,
    get_qcomm_codecs,
    get_qcomm_codecs_registry,
)
from recsys_lib.distributed.types import CommOp, NoOpQuantizedCommCodec


def test_fp32_means_no_registry():
    assert get_qcomm_codecs_registry(QCommsConfig()) is None
    codecs = get_qcomm_codecs(None)
    assert isinstance(codecs.forward, NoOpQuantizedCommCodec) and isinstance(codecs.backward, NoOpQuantizedCommCodec)


def test_registry_keys_and_reduce_scatter_fallback(caplog):
    cfg = QCommsConfig(forward_precision=CommType.FP8, backward_precision=CommType.BF16)
    reg = get_qcomm_codecs_registry(cfg)
    assert set(reg) == {op.value for op in CommOp}
    assert reg[CommOp.POOLED_EMBEDDINGS_ALL_TO_ALL.value].forward.quantized_dtype == torch.uint8  # fp8 bytes
    assert reg[CommOp.POOLED_EMBEDDINGS_REDUCE_SCATTER.value].forward.quantized_dtype == torch.float16
    assert reg[CommOp.POOLED_EMBEDDINGS_REDUCE_SCATTER.value].backward.quantized_dtype == torch.bfloat16
    assert "using fp16" in caplog.text
    only = get_qcomm_codecs_registry(cfg, comm_ops=[CommOp.SEQUENCE_EMBEDDINGS_ALL_TO_ALL])
    assert list(only) == ["sequence_embeddings_all_to_all"]


@pytest.mark.parametrize("ct,tol", [(CommType.FP16, 1e-3), (CommType.BF16, 1e-2), (CommType.INT8, 1e-2)])
def test_round_trip_error_within_precision(ct, tol):
    codec = get_qcomm_codecs(QCommsConfig(forward_precision=ct)).forward
    x = torch.rand(8, 32)
    ctx = codec.create_context()
    y = codec.decode(codec.encode(x, ctx), ctx).reshape(x.shape)
    assert (y - x).abs().max().item() < tol


def test_config_validation():
    assert comm_type_to_sparse_type(CommType.MX4) is SparseType.MX4
    with pytest.raises(TypeError, match="forward_precision must be a CommType"):
        QCommsConfig(forward_precision="fp16")
    with pytest.raises(ValueError, match="fp8_quantize_dim is set but forward_precision is fp16"):
        QCommsConfig(forward_precision=CommType.FP16, fp8_quantize_dim=8)
