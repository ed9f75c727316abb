"""FP16 / BF16 tables in the unfused and fused collections: storage dtype, float32 outputs, gradients, updates."""

import pytest
import torch

import recsys_lib as R
from recsys_lib.modules.embedding_configs import DataType
from recsys_lib.modules.fused_embedding_modules import FusedEmbeddingBagCollection, FusedEmbeddingCollection

DT = {DataType.FP16: torch.float16, DataType.BF16: torch.bfloat16}


def _kjt():
    return R.KeyedJaggedTensor.from_lengths_sync(["f", "g"], torch.tensor([1, 2, 3, 7, 9]), torch.tensor([2, 1, 0, 2]))


@pytest.mark.parametrize("data_type", list(DT))
def test_unfused_collections_store_reduced_and_output_float32(data_type):
    torch.manual_seed(0)
    ebc = R.EmbeddingBagCollection([
        R.EmbeddingBagConfig(num_embeddings=10, embedding_dim=4, name="a", feature_names=["f"], data_type=data_type),
        R.EmbeddingBagConfig(num_embeddings=10, embedding_dim=8, name="b", feature_names=["g"]),
    ])
    w = ebc.embedding_bags["a"].weight
    assert w.dtype == DT[data_type]
    kt = ebc(_kjt())
    assert kt.values().dtype == torch.float32
    # oracle: the rows summed per bag in float32; aten pools in the table's dtype, so allow one rounding of
    # the sum to it (eps of fp16 / bf16)
    wf = w.detach().float()
    eps = torch.finfo(w.dtype).eps
    torch.testing.assert_close(kt["f"], torch.stack([wf[1] + wf[2], wf[3]]), rtol=eps, atol=1e-6)
    kt.values().sum().backward()
    assert w.grad.dtype == DT[data_type]
    ec = R.EmbeddingCollection([R.EmbeddingConfig(num_embeddings=10, embedding_dim=4, name="a",
                                                  feature_names=["f", "g"], data_type=data_type)])
    out = ec(_kjt())
    assert out["g"].values().dtype == torch.float32
    torch.testing.assert_close(out["g"].values(), ec.embeddings["a"].weight.detach().float()[[7, 9]])


def test_fused_fp16_matches_unfused_and_updates():
    torch.manual_seed(0)
    cfg = [R.EmbeddingBagConfig(num_embeddings=10, embedding_dim=4, name="a", feature_names=["f", "g"],
                                data_type=DataType.FP16)]
    fused = FusedEmbeddingBagCollection(cfg, optimizer_type=torch.optim.SGD, optimizer_kwargs={"lr": 0.5})
    plain = R.EmbeddingBagCollection(cfg)
    plain.load_state_dict(fused.state_dict())
    assert fused.embedding_bags["a"].weight.dtype == torch.float16
    # FBGEMM accumulates fp16 rows in float32, aten in fp16: one fp16 rounding apart
    torch.testing.assert_close(fused(_kjt()).values(), plain(_kjt()).values(), rtol=torch.finfo(torch.float16).eps,
                               atol=1e-6)
    before = fused.embedding_bags["a"].weight.detach().float().clone()
    fused(_kjt()).values().sum().backward()  # the fused optimizer steps in backward
    after = fused.embedding_bags["a"].weight.detach().float()
    # SGD on a sum: every looked-up row moves by -lr per occurrence; others stay
    expected = before.clone()
    for i in [1, 2, 3, 7, 9]:
        expected[i] -= 0.5
    torch.testing.assert_close(after, expected, rtol=0, atol=1e-3)  # fp16 storage rounding


def _bf16_and_fp32_pair(optimizer_type, kwargs, pooling):
    torch.manual_seed(0)
    cfg = [R.EmbeddingBagConfig(num_embeddings=10, embedding_dim=4, name="a", feature_names=["f"],
                                data_type=DataType.BF16, pooling=pooling),
           R.EmbeddingBagConfig(num_embeddings=12, embedding_dim=8, name="b", feature_names=["g"],
                                data_type=DataType.BF16, pooling=pooling)]
    bf16 = FusedEmbeddingBagCollection(cfg, optimizer_type=optimizer_type, optimizer_kwargs=dict(kwargs))
    fp32_cfg = [R.EmbeddingBagConfig(num_embeddings=c.num_embeddings, embedding_dim=c.embedding_dim, name=c.name,
                                     feature_names=c.feature_names, pooling=pooling) for c in cfg]
    fp32 = FusedEmbeddingBagCollection(fp32_cfg, optimizer_type=optimizer_type, optimizer_kwargs=dict(kwargs))
    fp32.load_state_dict({k: v.float() for k, v in bf16.state_dict().items()})  # the same (bf16-exact) values
    return bf16, fp32


@pytest.mark.parametrize("pooling", [R.PoolingType.SUM, R.PoolingType.MEAN])
@pytest.mark.parametrize("optimizer_type, kwargs", [
    (torch.optim.SGD, {"lr": 0.5}),
    (torch.optim.Adagrad, {"lr": 0.3, "eps": 1e-4}),
    ("rowwise", {"lr": 0.3}),
])
def test_fused_bf16_on_cpu_matches_fbgemm_fp32_rounded(optimizer_type, kwargs, pooling):
    """Our BF16 CPU path against FBGEMM's FP32 kernel run on the same (bf16-exact) weights: the same pooled
    outputs, and after a step the FP32 weights rounded to bf16."""
    if optimizer_type == "rowwise":
        from recsys_lib.optim.rowwise_adagrad import RowWiseAdagrad as optimizer_type
    bf16, fp32 = _bf16_and_fp32_pair(optimizer_type, kwargs, pooling)
    assert bf16.embedding_bags["a"].weight.dtype == torch.bfloat16
    for step in range(2):
        kjt = _kjt() if step == 0 else R.KeyedJaggedTensor.from_lengths_sync(
            ["f", "g"], torch.tensor([1, 1, 4, 11, 0]), torch.tensor([3, 0, 1, 1]))
        out, want = bf16(kjt).values(), fp32(kjt).values()
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-6)  # float32 sums of the same rows
        (out * torch.arange(out.numel()).view_as(out)).sum().backward()
        (want * torch.arange(want.numel()).view_as(want)).sum().backward()
        for t in ("a", "b"):
            got = bf16.embedding_bags[t].weight.detach()
            ref = fp32.embedding_bags[t].weight.detach()
            # the float32 update rounded to the nearest bf16 (one ulp apart where float32 sums differ in a last bit)
            torch.testing.assert_close(got.float(), ref.bfloat16().float(), rtol=torch.finfo(torch.bfloat16).eps,
                                       atol=1e-6)
            fp32.embedding_bags[t].weight.data.copy_(got.float())  # continue from the same weights
    states = bf16.fused_optimizer().state_dict()["state"]
    assert ("a.weight" in states) and (optimizer_type is torch.optim.SGD or len(states["a.weight"]) >= 1)


def test_fused_bf16_ec_on_cpu_rows_and_update():
    torch.manual_seed(0)
    ec = FusedEmbeddingCollection([R.EmbeddingConfig(num_embeddings=10, embedding_dim=4, name="a",
                                                     feature_names=["f", "g"], data_type=DataType.BF16)],
                                  optimizer_type=torch.optim.SGD, optimizer_kwargs={"lr": 0.25})
    w = ec.embeddings["a"].weight
    before = w.detach().float().clone()
    out = ec(_kjt())
    assert torch.equal(out["g"].values(), before[[7, 9]]) and torch.equal(out["f"].values(), before[[1, 2, 3]])
    sum(v.values().sum() for v in out.values()).backward()
    expected = before.clone()
    expected[[1, 2, 3, 7, 9]] -= 0.25
    assert torch.equal(w.detach().float(), expected.bfloat16().float())


def test_fused_bf16_on_cpu_rejects_what_it_cannot_fuse():
    cfg = [R.EmbeddingBagConfig(num_embeddings=10, embedding_dim=4, name="a", feature_names=["f"],
                                data_type=DataType.BF16)]
    with pytest.raises(ValueError, match="weight_decay"):
        FusedEmbeddingBagCollection(cfg, optimizer_type=torch.optim.SGD,
                                    optimizer_kwargs={"lr": 0.1, "weight_decay": 0.1})
