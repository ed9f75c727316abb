import pytest
import torch
from fbgemm_gpu.split_embedding_configs import EmbOptimType

from recsys_lib.optim import optimizers as o
from recsys_lib.optim._emb_opt_type import convert_optimizer_kwargs_to_fbgemm, optimizer_type_to_emb_opt_type
from recsys_lib.optim.rowwise_adagrad import RowWiseAdagrad

EXPECTED = [
    (torch.optim.SGD, EmbOptimType.EXACT_SGD),
    (torch.optim.Adagrad, EmbOptimType.EXACT_ADAGRAD),
    (torch.optim.Adam, EmbOptimType.ADAM),
    (o.SGD, EmbOptimType.EXACT_SGD),
    (o.LarsSGD, EmbOptimType.LARS_SGD),
    (o.LAMB, EmbOptimType.LAMB),
    (o.PartialRowWiseLAMB, EmbOptimType.PARTIAL_ROWWISE_LAMB),
    (o.Adam, EmbOptimType.ADAM),
    (o.PartialRowWiseAdam, EmbOptimType.PARTIAL_ROWWISE_ADAM),
    (o.Adagrad, EmbOptimType.EXACT_ADAGRAD),
    (RowWiseAdagrad, EmbOptimType.EXACT_ROWWISE_ADAGRAD),
]


@pytest.mark.parametrize("cls,expected", EXPECTED, ids=[c.__module__ + "." + c.__name__ for c, _ in EXPECTED])
def test_mapping(cls, expected):
    assert optimizer_type_to_emb_opt_type(cls) is expected


@pytest.mark.parametrize("cls", [torch.optim.AdamW, torch.optim.RMSprop, type("MySGD", (torch.optim.SGD,), {})])
def test_unknown_class_raises_naming_it(cls):
    with pytest.raises(ValueError, match=cls.__name__):
        optimizer_type_to_emb_opt_type(cls)


def test_convert_kwargs():
    kw = {"lr": 0.1, "eps": 1e-8}
    assert convert_optimizer_kwargs_to_fbgemm(kw) == {"learning_rate": 0.1, "eps": 1e-8}
    assert kw == {"lr": 0.1, "eps": 1e-8}  # input untouched
    assert convert_optimizer_kwargs_to_fbgemm({"learning_rate": 0.2}) == {"learning_rate": 0.2}
    with pytest.raises(ValueError, match="both"):
        convert_optimizer_kwargs_to_fbgemm({"lr": 0.1, "learning_rate": 0.2})
    with pytest.raises(TypeError):
        convert_optimizer_kwargs_to_fbgemm([("lr", 0.1)])
