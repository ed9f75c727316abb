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


def test_fused_bf16_on_cpu_is_a_clear_error():
    cfg = [R.EmbeddingBagConfig(num_embeddings=10, embedding_dim=4, name="a", feature_names=["f"],
                                data_type=DataType.BF16)]
    with pytest.raises(ValueError, match="CPU TBE has no BF16 kernels"):
        FusedEmbeddingBagCollection(cfg, optimizer_type=torch.optim.SGD, optimizer_kwargs={"lr": 0.1})
    with pytest.raises(ValueError, match="CPU TBE has no BF16 kernels"):
        FusedEmbeddingCollection([R.EmbeddingConfig(num_embeddings=10, embedding_dim=4, name="a", feature_names=["f"],
                                                    data_type=DataType.BF16)],
                                 optimizer_type=torch.optim.SGD, optimizer_kwargs={"lr": 0.1})
