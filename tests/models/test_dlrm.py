"""DLRM, DLRM_DCN, DLRM_Projection and DLRMTrain against hand-computed forward passes and TorchRec's keys."""

import math

import pytest
import torch

from recsys_lib.datasets.utils import Batch
from recsys_lib.models.dlrm import DLRM, DLRM_DCN, DLRM_Projection, DLRMTrain, SparseArch
from tests.models._fixtures import B, D, make_ebc, make_kjt, pooled_by_hand, relu_mlp_by_hand

F = 3
DENSE_IN = 5


def _dense():
    torch.manual_seed(1)
    return torch.randn(B, DENSE_IN)


def _shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _ebc_keys():
    return {
        "sparse_arch.embedding_bag_collection.embedding_bags.t0.weight": (10, D),
        "sparse_arch.embedding_bag_collection.embedding_bags.t1.weight": (7, D),
    }


def _mlp_keys(prefix, in_size, sizes):
    keys = {}
    for i, out in enumerate(sizes):
        keys[f"{prefix}.{i}._linear.weight"] = (out, in_size)
        keys[f"{prefix}.{i}._linear.bias"] = (out,)
        in_size = out
    return keys


def _over_keys(in_size, sizes):
    keys = _mlp_keys("over_arch.model.0._mlp", in_size, sizes[:-1])
    keys["over_arch.model.1.weight"] = (sizes[-1], sizes[-2])
    keys["over_arch.model.1.bias"] = (sizes[-1],)
    return keys


def _over_by_hand(over_arch, x):
    h = relu_mlp_by_hand(over_arch.model[0], x)
    return h @ over_arch.model[1].weight.T + over_arch.model[1].bias


def test_sparse_arch_stacks_pooled_features():
    ebc = make_ebc()
    arch = SparseArch(ebc)
    assert arch.sparse_feature_names == ["f0", "f1", "f2"]
    pooled = pooled_by_hand(ebc)
    expected = torch.stack([pooled[f] for f in ["f0", "f1", "f2"]], dim=1)
    torch.testing.assert_close(arch(make_kjt()), expected)


def test_dlrm_state_dict_matches_torchrec_layout():
    model = DLRM(make_ebc(), DENSE_IN, [6, D], [7, 1])
    expected = {**_ebc_keys(), **_mlp_keys("dense_arch.model._mlp", DENSE_IN, [6, D]),
                **_over_keys(D + F + math.comb(F, 2), [7, 1])}
    assert _shapes(model) == expected
    assert {"sparse_arch", "dense_arch", "inter_arch", "over_arch"} <= dict(model.named_children()).keys()


def test_dlrm_forward_matches_hand_computation():
    model = DLRM(make_ebc(), DENSE_IN, [6, D], [7, 2])
    dense = _dense()
    logits = model(dense, make_kjt())
    assert logits.shape == (B, 2)
    d = relu_mlp_by_hand(model.dense_arch.model, dense)
    pooled = pooled_by_hand(model.sparse_arch.embedding_bag_collection)
    rows = []
    for b in range(B):
        vecs = [d[b]] + [pooled[f][b] for f in ["f0", "f1", "f2"]]
        dots = [torch.dot(vecs[i], vecs[j]) for i in range(F + 1) for j in range(i + 1, F + 1)]
        rows.append(torch.cat([d[b], torch.stack(dots)]))
    torch.testing.assert_close(logits, _over_by_hand(model.over_arch, torch.stack(rows)))


def test_checkpoint_round_trip_strict():
    src = DLRM(make_ebc(), DENSE_IN, [6, D], [7, 1])
    torch.manual_seed(123)
    dst = DLRM(make_ebc(), DENSE_IN, [6, D], [7, 1])
    with torch.no_grad():
        for p in dst.parameters():
            p.add_(1.0)
    state = src.state_dict()
    state["inter_arch.triu_indices"] = src.inter_arch.triu_indices.clone()  # older checkpoints may carry it
    dst.load_state_dict(state, strict=True)
    torch.testing.assert_close(dst(_dense(), make_kjt()), src(_dense(), make_kjt()))


def test_dlrm_dcn_layout_and_forward():
    layers, rank = 2, 3
    model = DLRM_DCN(make_ebc(), DENSE_IN, [6, D], [5, 1], dcn_num_layers=layers, dcn_low_rank_dim=rank)
    n = (F + 1) * D
    cross_keys = {}
    for i in range(layers):
        cross_keys[f"inter_arch.crossnet.W_kernels.{i}"] = (n, rank)
        cross_keys[f"inter_arch.crossnet.V_kernels.{i}"] = (rank, n)
        cross_keys[f"inter_arch.crossnet.bias.{i}"] = (n,)
    assert _shapes(model) == {**_ebc_keys(), **_mlp_keys("dense_arch.model._mlp", DENSE_IN, [6, D]),
                              **cross_keys, **_over_keys(n, [5, 1])}
    with torch.no_grad():
        for b in model.inter_arch.crossnet.bias:
            b.normal_()
    dense = _dense()
    d = relu_mlp_by_hand(model.dense_arch.model, dense)
    pooled = pooled_by_hand(model.sparse_arch.embedding_bag_collection)
    x0 = torch.cat([d] + [pooled[f] for f in ["f0", "f1", "f2"]], dim=1)
    xl = x0
    cn = model.inter_arch.crossnet
    for i in range(layers):
        xl = x0 * (xl @ (cn.W_kernels[i] @ cn.V_kernels[i]).T + cn.bias[i]) + xl
    torch.testing.assert_close(model(dense, make_kjt()), _over_by_hand(model.over_arch, xl))


def test_dlrm_projection_layout_and_forward():
    b1, b2 = [8, 3 * D], [2 * D]
    model = DLRM_Projection(make_ebc(), DENSE_IN, [6, D], [5, 1], b1, b2)
    branch_in = F * D + D
    assert _shapes(model) == {
        **_ebc_keys(), **_mlp_keys("dense_arch.model._mlp", DENSE_IN, [6, D]),
        **_mlp_keys("inter_arch.interaction_branch1.model._mlp", branch_in, b1),
        **_mlp_keys("inter_arch.interaction_branch2.model._mlp", branch_in, b2),
        **_over_keys(D + 3 * 2, [5, 1]),
    }
    dense = _dense()
    d = relu_mlp_by_hand(model.dense_arch.model, dense)
    pooled = pooled_by_hand(model.sparse_arch.embedding_bag_collection)
    x = torch.cat([d] + [pooled[f] for f in ["f0", "f1", "f2"]], dim=1)
    p1 = relu_mlp_by_hand(model.inter_arch.interaction_branch1.model, x)
    p2 = relu_mlp_by_hand(model.inter_arch.interaction_branch2.model, x)
    dots = torch.stack([
        torch.stack([torch.dot(p1[b, i * D:(i + 1) * D], p2[b, j * D:(j + 1) * D]) for i in range(3) for j in range(2)])
        for b in range(B)
    ])
    inter = torch.cat([d, dots], dim=1)
    torch.testing.assert_close(model(dense, make_kjt()), _over_by_hand(model.over_arch, inter))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: DLRM(make_ebc(), DENSE_IN, [6, D + 1], [5, 1]), r"embedding dim 4.*\[6, 5\]"),
        (lambda: DLRM(make_ebc(), DENSE_IN, [], [5, 1]), "dense_arch_layer_sizes"),
        (lambda: DLRM(make_ebc(dim_t1=D + 2), DENSE_IN, [6, D], [5, 1]), r"embedding_dim.*'t1': 6"),
        (lambda: DLRM(make_ebc(), DENSE_IN, [6, D], [1]), "OverArch"),
        (lambda: DLRM_Projection(make_ebc(), DENSE_IN, [6, D], [5, 1], [D + 1], [D]), r"branch1.*multiple.*\[5\]"),
        (lambda: DLRM_Projection(make_ebc(), DENSE_IN, [6, D], [5, 1], [D], [2 * D + 2]), r"branch2.*\[10\]"),
        (lambda: DLRM_DCN(make_ebc(), DENSE_IN, [6, D], [5, 1], 2, 0), "low_rank"),
    ],
)
def test_bad_layer_sizes(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_empty_collection_rejected():
    class _Empty(torch.nn.Module):
        def embedding_bag_configs(self):
            return []

    with pytest.raises(ValueError, match="no tables"):
        DLRM(_Empty(), DENSE_IN, [D], [5, 1])


def test_meta_device_construction_keeps_keys():
    meta = torch.device("meta")
    model = DLRM(make_ebc(device=meta), DENSE_IN, [6, D], [7, 1], dense_device=meta)
    assert all(p.is_meta for p in model.parameters())
    assert _shapes(model) == _shapes(DLRM(make_ebc(), DENSE_IN, [6, D], [7, 1]))
    # the derived interaction buffer keeps real values (it is never materialised from meta)
    assert not model.inter_arch.triu_indices.is_meta
    dcn = DLRM_DCN(make_ebc(device=meta), DENSE_IN, [6, D], [5, 1], 1, 1, dense_device=meta)
    assert dcn.over_arch.model[1].weight.is_meta


def test_dlrm_train_loss_and_step():
    model = DLRMTrain(DLRM(make_ebc(), DENSE_IN, [6, D], [7, 1]))
    labels = torch.tensor([1, 0, 1])
    batch = Batch(dense_features=_dense(), sparse_features=make_kjt(), labels=labels)
    loss, (loss_d, logits, labels_d) = model(batch)
    z = model.model(batch.dense_features, batch.sparse_features)[:, 0]
    y = labels.float()
    expected = -(y * torch.log(torch.sigmoid(z)) + (1 - y) * torch.log(1 - torch.sigmoid(z))).mean()
    torch.testing.assert_close(loss, expected)
    assert logits.shape == (B,) and not logits.requires_grad and not loss_d.requires_grad
    assert torch.equal(labels_d, labels)
    torch.testing.assert_close(logits, z.detach())
    loss.backward()
    table = model.model.sparse_arch.embedding_bag_collection.embedding_bags.t0.weight
    assert table.grad is not None and table.grad[3].abs().sum() == 0 and table.grad[1].abs().sum() > 0
    assert model.model.dense_arch.model._mlp[0]._linear.weight.grad is not None


def test_dlrm_train_label_shape_mismatch_is_an_error():
    model = DLRMTrain(DLRM(make_ebc(), DENSE_IN, [6, D], [7, 1]))
    batch = Batch(dense_features=_dense(), sparse_features=make_kjt(), labels=torch.ones(B + 1))
    with pytest.raises(ValueError, match="size"):
        model(batch)


def _mixed_pooling_ebc():
    # TorchScript needs a scriptable EBC; one MEAN table also exercises mean pooling end to end
    from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, PoolingType
    from recsys_lib.modules.embedding_modules import EmbeddingBagCollection

    torch.manual_seed(0)
    return EmbeddingBagCollection(tables=[
        EmbeddingBagConfig(name="t0", embedding_dim=D, num_embeddings=10, feature_names=["f0", "f1"],
                           pooling=PoolingType.MEAN),
        EmbeddingBagConfig(name="t1", embedding_dim=D, num_embeddings=7, feature_names=["f2"]),
    ])


@pytest.mark.parametrize("variant", ["dlrm", "dcn", "projection"])
def test_models_are_scriptable(variant):
    import warnings

    make = {
        "dlrm": lambda: DLRM(_mixed_pooling_ebc(), DENSE_IN, [6, D], [7, 1]),
        "dcn": lambda: DLRM_DCN(_mixed_pooling_ebc(), DENSE_IN, [6, D], [7, 1], 2, 2),
        "projection": lambda: DLRM_Projection(_mixed_pooling_ebc(), DENSE_IN, [6, D], [7, 1], [2 * D], [D]),
    }[variant]
    model = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(model)
    torch.testing.assert_close(scripted(_dense(), make_kjt()), model(_dense(), make_kjt()))


def test_dlrm_train_learns_on_random_batches():
    # the golden-training flow in miniature: RandomRecDataset batches -> DLRMTrain -> SGD; the loss must drop
    from recsys_lib.datasets.random import RandomRecDataset

    data = RandomRecDataset(keys=["f0", "f1", "f2"], batch_size=16, hash_sizes=[10, 10, 7], ids_per_feature=2,
                            num_dense=DENSE_IN, manual_seed=0, num_generated_batches=1, num_batches=1)
    batch = next(iter(data))
    model = DLRMTrain(DLRM(make_ebc(), DENSE_IN, [8, D], [8, 1]))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(30):
        loss, (_, logits, labels) = model(batch)
        assert logits.shape == labels.shape == (16,)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def _call_order(model):
    order = []
    for name, m in (("sparse", model.sparse_arch.embedding_bag_collection), ("dense", model.dense_arch)):
        m.register_forward_pre_hook(lambda *_, n=name: order.append(n))
    return order


def test_dlrm_looks_up_first_in_eager_and_falls_back_when_sparse_arch_is_hooked():
    torch.manual_seed(0)
    model = DLRM(make_ebc(), DENSE_IN, [6, D], [7, 2])
    hooked = DLRM(make_ebc(), DENSE_IN, [6, D], [7, 2])
    hooked.load_state_dict(model.state_dict())
    seen = []
    hooked.sparse_arch.register_forward_hook(lambda m, args, out: seen.append(tuple(out.shape)))
    order, hooked_order = _call_order(model), _call_order(hooked)
    dense = _dense()
    out, hooked_out = model(dense, make_kjt()), hooked(dense, make_kjt())
    assert order == ["sparse", "dense"] and hooked_order == ["dense", "sparse"]
    assert seen == [(B, F, D)]  # the hook on sparse_arch ran: calling it was not bypassed
    torch.testing.assert_close(out, hooked_out)
    out.sum().backward()
    hooked_out.sum().backward()
    grads = {n: p.grad for n, p in hooked.named_parameters()}
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], msg=n)
    traced = torch.fx.symbolic_trace(model)  # graph capture keeps TorchRec's order: dense arch first
    targets = [str(n.target) for n in traced.graph.nodes]
    first_dense = next(i for i, t in enumerate(targets) if t.startswith("dense_arch"))
    first_lookup = next(i for i, t in enumerate(targets) if t.startswith("sparse_arch"))
    assert first_dense < first_lookup, targets
