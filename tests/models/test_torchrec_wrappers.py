"""Model names TorchRec 1.8.0 adds: ModelInput wrappers, the transformer DLRM, the dense-path helpers."""

from types import SimpleNamespace

import torch

from recsys_lib.models.cuda_graph_utils import build_dlrm, collect_outputs, generate_batch
from recsys_lib.models.deepfm import SimpleDeepFMNN, SimpleDeepFMNNWrapper
from recsys_lib.models.dlrm import DLRM, DLRMWrapper
from recsys_lib.models.experimental.transformerdlrm import DLRM_Transformer
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def _ebc():
    torch.manual_seed(0)
    return EmbeddingBagCollection([EmbeddingBagConfig(num_embeddings=10, embedding_dim=8, name=f"t{i}",
                                                      feature_names=[f"f{i}"]) for i in range(2)])


def _input():
    kjt = KeyedJaggedTensor.from_lengths_sync(["f0", "f1"], torch.tensor([1, 2, 3, 4, 5]), torch.tensor([2, 1, 0, 2]))
    return SimpleNamespace(float_features=torch.rand(2, 3), idlist_features=kjt, label=torch.tensor([0.0, 1.0]))


def test_wrappers_return_loss_and_prediction_like_the_base_model():
    mi = _input()
    for wrapper_cls, base_cls, kwargs in [
        (DLRMWrapper, DLRM, dict(dense_in_features=3, dense_arch_layer_sizes=[8], over_arch_layer_sizes=[4, 1])),
        (SimpleDeepFMNNWrapper, SimpleDeepFMNN, dict(num_dense_features=3, hidden_layer_size=4,
                                                     deep_fm_dimension=2)),
    ]:
        torch.manual_seed(1)
        wrapper = wrapper_cls(embedding_bag_collection=_ebc(), **kwargs)
        torch.manual_seed(1)
        base = base_cls(embedding_bag_collection=_ebc(), **kwargs)
        want = base(mi.float_features, mi.idlist_features)
        loss, pred = wrapper(mi)
        torch.testing.assert_close(pred, want)
        torch.testing.assert_close(loss, torch.nn.functional.binary_cross_entropy_with_logits(want.squeeze(), mi.label))
        wrapper.eval()
        torch.testing.assert_close(wrapper(mi), want)


def test_dlrm_transformer_shapes_and_gradients():
    model = DLRM_Transformer(_ebc(), dense_in_features=3, dense_arch_layer_sizes=[8], over_arch_layer_sizes=[4, 1],
                             nhead=2, ntransformer_layers=1)
    mi = _input()
    out = model(mi.float_features, mi.idlist_features)
    assert out.shape == (2, 1)
    out.sum().backward()
    assert model.inter_arch.interarch_TE.layers[0].linear1.weight.grad is not None


def test_dense_path_helpers_batch_layout():
    dense, kjt = generate_batch(torch.device("cpu"), batch_size=3, num_sparse_features=2, num_embeddings=7,
                                dense_in_features=4, pooling_factor=2)
    assert dense.shape == (3, 4) and kjt.keys() == ["f0", "f1"] and kjt.lengths().tolist() == [2] * 6
    assert int(kjt.values().max()) < 7
    model = build_dlrm(torch.device("cpu"), embedding_dim=8, num_sparse_features=2, num_embeddings=7,
                       dense_in_features=4, over_arch_layer_sizes=(4, 1))
    assert not model.training
    (out,) = collect_outputs(model, [(dense, kjt)])
    torch.testing.assert_close(out, model(dense, kjt))
