"""Batched kernels against plain PyTorch (F.embedding_bag / F.embedding) on identical weights."""

import pytest
import torch
from fbgemm_gpu.split_embedding_configs import EmbOptimType

from recsys_lib.distributed.batched_embedding_kernel import (
    BatchedDenseEmbedding,
    BatchedDenseEmbeddingBag,
    BatchedFusedEmbedding,
    BatchedFusedEmbeddingBag,
    EmbeddingFusedOptimizer,
    TableBatchedEmbeddingSlice,
)
from recsys_lib.distributed.embedding_types import EmbeddingComputeKernel
from recsys_lib.modules.embedding_configs import PoolingType
from recsys_lib.optim.fused import EmptyFusedOptimizer
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor
from tests.distributed._embedding_refs import (
    adagrad,
    group,
    pooled_reference,
    random_kjt,
    rowwise_adagrad,
    sequence_reference,
    sgd,
    table,
)

FUSED, DENSE = EmbeddingComputeKernel.FUSED, EmbeddingComputeKernel.DENSE
BATCH = 5


def _mixed_tables(kernel, pooling=PoolingType.SUM, weighted=False, fused_params=None):
    # Three features over two tables of different dims (t1 serves two features).
    return [
        table("t0", 11, 4, ["f0"], kernel, pooling, weighted, fused_params),
        table("t1", 7, 8, ["f1", "f2"], kernel, pooling, weighted, fused_params),
    ]


def _equal_tables(kernel, fused_params=None):
    return [
        table("t0", 11, 8, ["f0"], kernel, PoolingType.NONE, fused_params=fused_params),
        table("t1", 7, 8, ["f1", "f2"], kernel, PoolingType.NONE, fused_params=fused_params),
    ]


FTM = [0, 1, 1]
ROWS = [11, 7, 7]


def _clone_weights(kernel):
    return [w.detach().clone() for w in kernel.split_embedding_weights()]


# ---------------------------------------------------------------- pooled forward


@pytest.mark.parametrize("kernel_cls,kernel", [(BatchedFusedEmbeddingBag, FUSED), (BatchedDenseEmbeddingBag, DENSE)])
# F.embedding_bag takes per-sample weights only with mode="sum" (weighted features pool by SUM in TorchRec).
@pytest.mark.parametrize("pooling,mode,weighted", [
    (PoolingType.SUM, "sum", False), (PoolingType.MEAN, "mean", False), (PoolingType.SUM, "sum", True)])
def test_pooled_forward_matches_embedding_bag(kernel_cls, kernel, pooling, mode, weighted):
    config = group(_mixed_tables(kernel, pooling, weighted), kernel, pooling, weighted)
    m = kernel_cls(config)
    kjt = random_kjt(["f0", "f1", "f2"], ROWS, BATCH, weighted=weighted, seed=1)
    out = m(kjt)
    assert out.shape == (BATCH, 4 + 8 + 8)
    torch.testing.assert_close(out, pooled_reference(_clone_weights(m), FTM, kjt, mode, weighted))


def test_pooled_variable_batch_per_feature():
    m = BatchedFusedEmbeddingBag(group(_mixed_tables(FUSED)))
    # f0 has 2 samples, f1 has 3, f2 has 1 (one rank).
    lengths = torch.tensor([2, 0, 1, 3, 2, 1])
    values = torch.tensor([1, 10, 4, 0, 1, 2, 6, 6, 5])
    kjt = KeyedJaggedTensor(keys=["f0", "f1", "f2"], values=values, lengths=lengths,
                            stride_per_key_per_rank=[[2], [3], [1]])
    out = m(kjt)
    w = _clone_weights(m)
    expected = torch.cat([
        w[0][[1, 10]].sum(0), torch.zeros(4),                                     # f0: 2 bags, D=4
        w[1][[4]].sum(0), w[1][[0, 1, 2]].sum(0), w[1][[6, 6]].sum(0),            # f1: 3 bags, D=8
        w[1][[5]].sum(0),                                                         # f2: 1 bag
    ])
    torch.testing.assert_close(out.reshape(-1), expected)


# ---------------------------------------------------------------- fused updates


def _pooled_grad_reference(weights, kjt, grad_out, mode="sum"):
    leaves = [w.clone().requires_grad_(True) for w in weights]
    pooled_reference(leaves, FTM, kjt, mode).backward(grad_out)
    return [leaf.grad for leaf in leaves]


@pytest.mark.parametrize("optimizer", ["sgd", "rowwise_adagrad", "adagrad"])
def test_fused_pooled_update_matches_hand_written(optimizer):
    lr, eps = 0.05, 1e-8
    opt_type = {"sgd": EmbOptimType.EXACT_SGD, "rowwise_adagrad": EmbOptimType.EXACT_ROWWISE_ADAGRAD,
                "adagrad": EmbOptimType.EXACT_ADAGRAD}[optimizer]
    fp = {"optimizer": opt_type, "learning_rate": lr, "eps": eps}
    m = BatchedFusedEmbeddingBag(group(_mixed_tables(FUSED), fused_params=fp))
    # Repeated ids inside and across bags: exact optimizers sum their gradients before updating.
    kjt = KeyedJaggedTensor.from_lengths_sync(
        keys=["f0", "f1", "f2"], values=torch.tensor([3, 3, 5, 1, 2, 2, 2, 6, 0, 2]),
        lengths=torch.tensor([2, 1, 3, 1, 2, 1]),
    )
    before = _clone_weights(m)
    grad_out = torch.randn(2, 20, generator=torch.Generator().manual_seed(3))
    m(kjt).backward(grad_out)
    grads = _pooled_grad_reference(before, kjt, grad_out)
    for t, (w0, g, w1) in enumerate(zip(before, grads, m.split_embedding_weights())):
        if optimizer == "sgd":
            expected = sgd(w0, g, lr)
        elif optimizer == "rowwise_adagrad":
            expected, state = rowwise_adagrad(w0, g, lr, eps)
            torch.testing.assert_close(m.fused_optimizer.state[m.fused_optimizer.params[f"t{t}.weight"]][f"t{t}.momentum1"], state)
        else:
            expected, state = adagrad(w0, g, lr, eps)
        torch.testing.assert_close(w1, expected)


def test_fused_learning_rate_write_reaches_kernel():
    fp = {"optimizer": EmbOptimType.EXACT_SGD, "learning_rate": 0.1}
    m = BatchedFusedEmbeddingBag(group(_mixed_tables(FUSED), fused_params=fp))
    opt = m.fused_optimizer
    assert isinstance(opt, EmbeddingFusedOptimizer)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    opt.param_groups[0]["lr"] = 0.5
    opt.zero_grad()  # the training loop's zero_grad pushes the new LR before backward
    kjt = random_kjt(["f0", "f1", "f2"], ROWS, 2, seed=4)
    before = _clone_weights(m)
    grad_out = torch.ones(2, 20)
    m(kjt).backward(grad_out)
    grads = _pooled_grad_reference(before, kjt, grad_out)
    for w0, g, w1 in zip(before, grads, m.split_embedding_weights()):
        torch.testing.assert_close(w1, sgd(w0, g, 0.5))
    opt.step()
    assert m.emb_module.get_learning_rate() == pytest.approx(0.5)
    opt.update_hyper_parameters({"lr": 0.25})
    assert opt.param_groups[0]["lr"] == 0.25 and m.emb_module.get_learning_rate() == pytest.approx(0.25)
    opt.set_optimizer_step(7)  # accepted by the kernel


def test_fused_optimizer_state_keys_and_views():
    fp = {"optimizer": EmbOptimType.EXACT_ROWWISE_ADAGRAD, "learning_rate": 0.1}
    m = BatchedFusedEmbeddingBag(group(_mixed_tables(FUSED), fused_params=fp))
    sd = m.fused_optimizer.state_dict()["state"]
    assert set(sd) == {"t0.weight", "t1.weight"}
    assert set(sd["t0.weight"]) == {"t0.momentum1"} and sd["t1.weight"]["t1.momentum1"].shape == (7,)
    # The state is the kernel's own buffer (a view), not a copy.
    m(random_kjt(["f0", "f1", "f2"], ROWS, 3, seed=5)).sum().backward()
    sd = m.fused_optimizer.state_dict()["state"]
    torch.testing.assert_close(sd["t1.weight"]["t1.momentum1"], m.emb_module.split_optimizer_states()[1][0])
    assert float(sd["t1.weight"]["t1.momentum1"].sum()) > 0


# ---------------------------------------------------------------- dense grads


def test_dense_pooled_grads_match_reference():
    m = BatchedDenseEmbeddingBag(group(_mixed_tables(DENSE), DENSE))
    kjt = random_kjt(["f0", "f1", "f2"], ROWS, BATCH, seed=6)
    grad_out = torch.randn(BATCH, 20, generator=torch.Generator().manual_seed(7))
    before = _clone_weights(m)
    m(kjt).backward(grad_out)
    grads = _pooled_grad_reference(before, kjt, grad_out)
    for (name, sl), g in zip(m.named_parameters_by_table(), grads):
        assert isinstance(sl, TableBatchedEmbeddingSlice)
        torch.testing.assert_close(sl.grad, g)
    # A dense optimizer over the one flat parameter trains every table.
    (name, flat), = list(m.named_parameters())
    assert name == "t0/t1.weight" and flat is m.emb_module.weights
    torch.optim.SGD([flat], lr=0.1).step()
    for w0, g, w1 in zip(before, grads, m.split_embedding_weights()):
        torch.testing.assert_close(w1, sgd(w0, g, 0.1))


# ---------------------------------------------------------------- sequence kernels


@pytest.mark.parametrize("kernel_cls,kernel", [(BatchedFusedEmbedding, FUSED), (BatchedDenseEmbedding, DENSE)])
@pytest.mark.parametrize("dims", ["equal", "mixed"])
def test_sequence_forward_matches_embedding(kernel_cls, kernel, dims):
    tables = _equal_tables(kernel) if dims == "equal" else _mixed_tables(kernel, PoolingType.NONE)
    m = kernel_cls(group(tables, kernel, PoolingType.NONE))
    kjt = random_kjt(["f0", "f1", "f2"], ROWS, BATCH, seed=8)
    out = m(kjt)
    expected = sequence_reference(_clone_weights(m), FTM, kjt, flat=dims == "mixed")
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("dims", ["equal", "mixed"])
def test_dense_sequence_grads_match_reference(dims):
    tables = _equal_tables(DENSE) if dims == "equal" else _mixed_tables(DENSE, PoolingType.NONE)
    m = BatchedDenseEmbedding(group(tables, DENSE, PoolingType.NONE))
    kjt = random_kjt(["f0", "f1", "f2"], ROWS, BATCH, seed=9)
    before = _clone_weights(m)
    out = m(kjt)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(10))
    out.backward(grad_out)
    leaves = [w.clone().requires_grad_(True) for w in before]
    sequence_reference(leaves, FTM, kjt, flat=dims == "mixed").backward(grad_out)
    for (_, sl), leaf in zip(m.named_parameters_by_table(), leaves):
        torch.testing.assert_close(sl.grad, leaf.grad)


@pytest.mark.parametrize("dims", ["equal", "mixed"])
@pytest.mark.parametrize("optimizer", ["sgd", "rowwise_adagrad"])
def test_fused_sequence_update_matches_hand_written(dims, optimizer):
    lr, eps = 0.05, 1e-8
    opt_type = EmbOptimType.EXACT_SGD if optimizer == "sgd" else EmbOptimType.EXACT_ROWWISE_ADAGRAD
    fp = {"optimizer": opt_type, "learning_rate": lr, "eps": eps}
    tables = _equal_tables(FUSED, fp) if dims == "equal" else _mixed_tables(FUSED, PoolingType.NONE, fused_params=fp)
    m = BatchedFusedEmbedding(group(tables, FUSED, PoolingType.NONE, fused_params=fp))
    kjt = random_kjt(["f0", "f1", "f2"], ROWS, BATCH, seed=11)
    before = _clone_weights(m)
    out = m(kjt)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(12))
    out.backward(grad_out)
    leaves = [w.clone().requires_grad_(True) for w in before]
    sequence_reference(leaves, FTM, kjt, flat=dims == "mixed").backward(grad_out)
    for w0, leaf, w1 in zip(before, leaves, m.split_embedding_weights()):
        expected = sgd(w0, leaf.grad, lr) if optimizer == "sgd" else rowwise_adagrad(w0, leaf.grad, lr, eps)[0]
        torch.testing.assert_close(w1, expected)


def test_fused_sequence_variable_batch():
    m = BatchedFusedEmbedding(group(_equal_tables(FUSED), FUSED, PoolingType.NONE))
    kjt = KeyedJaggedTensor(keys=["f0", "f1", "f2"], values=torch.tensor([1, 10, 4, 0, 1, 2, 6, 6, 5]),
                            lengths=torch.tensor([2, 0, 1, 3, 2, 1]), stride_per_key_per_rank=[[2], [3], [1]])
    w = _clone_weights(m)
    expected = torch.cat([w[0][[1, 10]], w[1][[4, 0, 1, 2, 6, 6]], w[1][[5]]])
    torch.testing.assert_close(m(kjt), expected)


# ---------------------------------------------------------------- parameters and state dict


def test_fused_parameters_buffers_and_state_dict():
    m = BatchedFusedEmbeddingBag(group(_mixed_tables(FUSED)))
    params = dict(m.named_parameters(prefix="embedding_bags"))
    assert list(params) == ["embedding_bags.t0.weight", "embedding_bags.t1.weight"]
    for p in params.values():
        assert isinstance(p, TableBatchedEmbeddingSlice)
        assert isinstance(p._in_backward_optimizers[0], EmptyFusedOptimizer)
    assert list(m.named_buffers()) == []
    sd = m.state_dict(prefix="embedding_bags.")
    assert list(sd) == ["embedding_bags.t0.weight", "embedding_bags.t1.weight"]
    assert sd["embedding_bags.t1.weight"].shape == (7, 8)
    torch.testing.assert_close(sd["embedding_bags.t1.weight"], params["embedding_bags.t1.weight"].detach())
    # Writing through a parameter view changes what the kernel looks up.
    with torch.no_grad():
        params["embedding_bags.t0.weight"][3].fill_(2.0)
    kjt = KeyedJaggedTensor.from_lengths_sync(keys=["f0", "f1", "f2"], values=torch.tensor([3]),
                                              lengths=torch.tensor([1, 0, 0]))
    torch.testing.assert_close(m(kjt)[0, :4], torch.full((4,), 2.0))
    names = [n for n, _ in m.named_split_embedding_weights()]
    assert names == ["t0.weight", "t1.weight"]


@pytest.mark.parametrize("kernel_cls,kernel,pooling", [
    (BatchedFusedEmbeddingBag, FUSED, PoolingType.SUM), (BatchedDenseEmbeddingBag, DENSE, PoolingType.SUM),
    (BatchedFusedEmbedding, FUSED, PoolingType.NONE), (BatchedDenseEmbedding, DENSE, PoolingType.NONE)])
def test_load_state_dict_round_trip(kernel_cls, kernel, pooling):
    a = kernel_cls(group(_mixed_tables(kernel, pooling), kernel, pooling))
    b = kernel_cls(group(_mixed_tables(kernel, pooling), kernel, pooling))
    assert not torch.equal(a.state_dict()["t0.weight"], b.state_dict()["t0.weight"])
    result = b.load_state_dict({k: v.clone() for k, v in a.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v)
    with pytest.raises(KeyError, match="t1.weight"):
        b.load_state_dict({"t0.weight": a.state_dict()["t0.weight"]})
    with pytest.raises(ValueError, match="shape"):
        b.load_state_dict({"t0.weight": torch.zeros(3, 4), "t1.weight": torch.zeros(7, 8)})


def test_init_uses_table_init_fn():
    tables = _mixed_tables(FUSED)
    tables[1].init_fn = lambda w: torch.nn.init.constant_(w, 0.5)
    m = BatchedFusedEmbeddingBag(group(tables))
    w0, w1 = m.split_embedding_weights()
    assert torch.all(w1 == 0.5)
    bound = (1.0 / 11) ** 0.5
    assert float(w0.abs().max()) <= bound and float(w0.std()) > 0


# ---------------------------------------------------------------- bad input


def test_fused_dims_must_be_multiples_of_four():
    with pytest.raises(ValueError, match=r"divisible by 4.*'t0', 6"):
        BatchedFusedEmbeddingBag(group([table("t0", 5, 6, ["f0"])]))


def test_unsupported_optimizer_on_cpu_names_it():
    fp = {"optimizer": EmbOptimType.ADAM}
    with pytest.raises(ValueError, match=r"'adam' is not supported on CPU"):
        BatchedFusedEmbeddingBag(group(_mixed_tables(FUSED), fused_params=fp))
    with pytest.raises(ValueError, match=r"'adam' is not supported on CPU"):
        BatchedFusedEmbedding(group(_equal_tables(FUSED), FUSED, PoolingType.NONE, fused_params=fp))


def test_unknown_fused_param_is_named():
    with pytest.raises(ValueError, match="learning_rat"):
        BatchedFusedEmbeddingBag(group(_mixed_tables(FUSED), fused_params={"learning_rat": 0.1}))


@pytest.mark.parametrize("kernel_cls,kernel,pooling", [
    (BatchedFusedEmbeddingBag, FUSED, PoolingType.SUM), (BatchedDenseEmbeddingBag, DENSE, PoolingType.SUM),
    (BatchedFusedEmbedding, FUSED, PoolingType.NONE), (BatchedDenseEmbedding, DENSE, PoolingType.NONE)])
@pytest.mark.parametrize("bad_id", [7, -1])
def test_out_of_range_id_names_the_table(kernel_cls, kernel, pooling, bad_id):
    m = kernel_cls(group(_mixed_tables(kernel, pooling), kernel, pooling))
    kjt = KeyedJaggedTensor.from_lengths_sync(keys=["f0", "f1", "f2"], values=torch.tensor([10, 1, bad_id]),
                                              lengths=torch.tensor([1, 0, 1, 0, 0, 1]))
    with pytest.raises(ValueError, match=rf"feature 'f2': id {bad_id} is out of range for table 't1' with 7 rows"):
        m(kjt)


def test_wrong_feature_count_and_missing_weights():
    m = BatchedFusedEmbeddingBag(group(_mixed_tables(FUSED, weighted=True), weighted=True))
    two = KeyedJaggedTensor.from_lengths_sync(keys=["f0", "f1"], values=torch.tensor([1]), lengths=torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="expects 3 features"):
        m(two)
    unweighted = random_kjt(["f0", "f1", "f2"], ROWS, 2)
    with pytest.raises(ValueError, match="weighted but the features have no weights"):
        m(unweighted)


# ---------------------------------------------------------------- sharded state (2 gloo ranks)


def _global_weights():
    return {"cw": torch.arange(48.0).view(6, 8) / 10, "rw": torch.arange(40.0).view(10, 4) / 10 + 100,
            "tw2": torch.arange(32.0).view(4, 8) / 10 - 100}


def _sharded_kernel(rank):
    from torch.distributed._shard.metadata import ShardMetadata
    from torch.distributed._shard.sharded_tensor import ShardedTensorMetadata, TensorProperties

    props = TensorProperties(dtype=torch.float32)
    shards = {  # table -> [(offsets, sizes, rank)]
        "cw": [([0, 0], [6, 4], 0), ([0, 4], [6, 4], 1)],    # column-wise over both ranks
        "rw": [([0, 0], [6, 4], 0), ([6, 0], [4, 4], 1)],    # row-wise, uneven
        "tw2": [([0, 0], [4, 4], 0), ([0, 4], [4, 4], 0)],   # two column shards, both on rank 0
    }
    sizes = {"cw": (6, 8), "rw": (10, 4), "tw2": (4, 8)}
    fp = {"optimizer": EmbOptimType.EXACT_ROWWISE_ADAGRAD, "learning_rate": 0.1}
    tables = []
    for name, placed in shards.items():
        mds = [ShardMetadata(o, s, f"rank:{r}/cpu") for o, s, r in placed]
        gmd = ShardedTensorMetadata(mds, torch.Size(sizes[name]), props)
        for md in mds:
            if md.placement.rank() != rank:
                continue
            t = table(name, sizes[name][0], sizes[name][1], [f"f_{name}"], FUSED, fused_params=fp)
            t.local_rows, t.local_cols = md.shard_sizes
            t.local_metadata, t.global_metadata = md, gmd
            tables.append(t)
    m = BatchedFusedEmbeddingBag(group(tables, fused_params=fp), pg=torch.distributed.group.WORLD)
    full = _global_weights()
    with torch.no_grad():
        for t, w in zip(tables, m.split_embedding_weights()):
            (r0, c0), (nr, nc) = t.local_metadata.shard_offsets, t.local_metadata.shard_sizes
            w.copy_(full[t.name][r0:r0 + nr, c0:c0 + nc])
    return m, tables


def _sharded_state_case(rank, world_size):
    from torch.distributed._shard.sharded_tensor import ShardedTensor

    m, tables = _sharded_kernel(rank)
    sd = m.state_dict()
    out = {"keys": sorted(sd), "types": {k: type(v).__name__ for k, v in sd.items()}}
    for name in ("cw", "rw"):
        full = torch.zeros(_global_weights()[name].shape) if rank == 0 else None
        sd[f"{name}.weight"].gather(dst=0, out=full)
        out[f"gathered_{name}"] = full
    if rank == 0:
        out["tw2_local"] = [(s.metadata.shard_offsets, s.tensor.clone()) for s in sd["tw2.weight"].local_shards()]
    # Load the same sharded state into a second kernel.
    m2, _ = _sharded_kernel(rank)
    with torch.no_grad():
        for w in m2.split_embedding_weights():
            w.zero_()
    m2.load_state_dict(sd)
    out["reload_equal"] = all(torch.equal(a, b) for a, b in zip(m.split_embedding_weights(), m2.split_embedding_weights()))
    # One backward; then the row-wise state as ShardedTensors.
    keys = [f"f_{t.name}" for t in tables]
    kjt = random_kjt(keys, [t.local_rows for t in tables], 3, seed=rank)
    m(kjt).sum().backward()
    opt_state = m.fused_optimizer.state_dict()["state"]
    out["local_momentum"] = [s[0].clone() for s in m.emb_module.split_optimizer_states()]
    cw_m = opt_state["cw.weight"]["cw.momentum1"]
    assert isinstance(cw_m, ShardedTensor)
    out["cw_momentum_size"] = tuple(cw_m.size())
    full = torch.zeros(6, 2) if rank == 0 else None
    cw_m.gather(dst=0, out=full)
    out["cw_momentum"] = full
    rw_m = opt_state["rw.weight"]["rw.momentum1"]
    full = torch.zeros(10) if rank == 0 else None
    rw_m.gather(dst=0, out=full)
    out["rw_momentum"] = full
    if rank == 0:
        out["tw2_momentum_size"] = tuple(opt_state["tw2.weight"]["tw2.momentum1"].size())
    return out


@pytest.mark.dist
def test_sharded_state_dict_and_optimizer_state_two_ranks():
    from recsys_lib.distributed.test_utils import run_multiprocess

    r0, r1 = run_multiprocess(_sharded_state_case, 2)
    full = _global_weights()
    assert r0["keys"] == ["cw.weight", "rw.weight", "tw2.weight"] and r1["keys"] == ["cw.weight", "rw.weight"]
    assert set(r0["types"].values()) == {"ShardedTensor"}
    torch.testing.assert_close(r0["gathered_cw"], full["cw"])
    torch.testing.assert_close(r0["gathered_rw"], full["rw"])
    (o0, t0), (o1, t1) = r0["tw2_local"]
    assert (o0, o1) == ([0, 0], [0, 4])
    torch.testing.assert_close(torch.cat([t0, t1], dim=1), full["tw2"])
    assert r0["reload_equal"] and r1["reload_equal"]
    # Row-wise state of a column-split table: one column per column shard.
    assert r0["cw_momentum_size"] == (6, 2) and r0["tw2_momentum_size"] == (4, 2)
    # Kernel table order on each rank: cw, rw (, tw2, tw2).
    torch.testing.assert_close(r0["cw_momentum"], torch.stack([r0["local_momentum"][0], r1["local_momentum"][0]], 1))
    torch.testing.assert_close(r0["rw_momentum"], torch.cat([r0["local_momentum"][1], r1["local_momentum"][1]]))
    assert float(r0["rw_momentum"].sum()) > 0


# ---------------------------------------------------------------- smaller behaviours


def test_all_bags_empty_gives_zeros():
    m = BatchedFusedEmbeddingBag(group(_mixed_tables(FUSED)))
    kjt = KeyedJaggedTensor.from_lengths_sync(keys=["f0", "f1", "f2"], values=torch.zeros(0, dtype=torch.long),
                                              lengths=torch.zeros(9, dtype=torch.long))
    torch.testing.assert_close(m(kjt), torch.zeros(3, 20))


def test_row_wise_mean_pools_as_sum():
    # Row-split shardings pool partial sums; the MEAN division happens after the cross-rank reduction.
    config = group(_mixed_tables(FUSED, PoolingType.MEAN), pooling=PoolingType.MEAN)
    m = BatchedFusedEmbeddingBag(config, sharding_type="row_wise")
    kjt = random_kjt(["f0", "f1", "f2"], ROWS, BATCH, seed=13)
    torch.testing.assert_close(m(kjt), pooled_reference(_clone_weights(m), FTM, kjt, "sum"))


def test_fused_optimizer_for_one_table():
    fp = {"optimizer": EmbOptimType.EXACT_ROWWISE_ADAGRAD}
    m = BatchedFusedEmbeddingBag(group(_mixed_tables(FUSED), fused_params=fp))
    sl = dict(m.named_parameters_by_table())["t1"]
    opt = EmbeddingFusedOptimizer(m.config, m.emb_module, create_for_table="t1", param_weight_for_table=sl)
    assert list(opt.params) == ["t1.weight"] and opt.params["t1.weight"] is sl
    assert list(opt.state[sl]) == ["t1.momentum1"]
    with pytest.raises(ValueError, match="'t9' is not one of"):
        EmbeddingFusedOptimizer(m.config, m.emb_module, create_for_table="t9")


# ---------------------------------------------------------------- GPU tier (skipped without CUDA)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kernel_cls,kernel,pooling", [
    (BatchedFusedEmbeddingBag, FUSED, PoolingType.SUM), (BatchedDenseEmbeddingBag, DENSE, PoolingType.MEAN),
    (BatchedFusedEmbedding, FUSED, PoolingType.NONE), (BatchedDenseEmbedding, DENSE, PoolingType.NONE)])
def test_cuda_kernels_match_reference(kernel_cls, kernel, pooling):
    tables = _equal_tables(kernel) if pooling == PoolingType.NONE else _mixed_tables(kernel, pooling)
    m = kernel_cls(group(tables, kernel, pooling), device=torch.device("cuda"))
    kjt = random_kjt(["f0", "f1", "f2"], ROWS, BATCH, seed=14)
    out = m(kjt.to(torch.device("cuda"))).cpu()
    weights = [w.detach().cpu() for w in m.split_embedding_weights()]
    if pooling == PoolingType.NONE:
        expected = sequence_reference(weights, FTM, kjt)
    else:
        expected = pooled_reference(weights, FTM, kjt, "mean" if pooling == PoolingType.MEAN else "sum")
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("kernel_cls,kernel,pooling", [
    (BatchedFusedEmbeddingBag, FUSED, PoolingType.SUM), (BatchedDenseEmbeddingBag, DENSE, PoolingType.SUM),
    (BatchedFusedEmbedding, FUSED, PoolingType.NONE), (BatchedDenseEmbedding, DENSE, PoolingType.NONE)])
def test_fp16_tables_store_half_and_return_float(kernel_cls, kernel, pooling):
    from recsys_lib.distributed.embedding_types import GroupedEmbeddingConfig
    from recsys_lib.types import DataType

    config = GroupedEmbeddingConfig(DataType.FP16, pooling, False, False, kernel, _equal_tables(kernel))
    m = kernel_cls(config)
    assert m.state_dict()["t0.weight"].dtype == torch.float16
    kjt = random_kjt(["f0", "f1", "f2"], ROWS, BATCH, seed=15)
    out = m(kjt)
    assert out.dtype == torch.float32
    weights = [w.float() for w in m.state_dict().values()]
    expected = pooled_reference(weights, FTM, kjt, "sum") if pooling == PoolingType.SUM else sequence_reference(weights, FTM, kjt)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("lengths,mode", [
    ([3, 4, 2, 1, 2, 3], "padded"),            # L_f = 7, 3, 5: little padding
    ([20, 20, 0, 0, 1, 0], "variable_batch"),  # L_f = 40, 0, 1: padding would be ~5x the rows
    ([0, 0, 0, 0, 0, 0], "variable_batch"),    # no ids at all
])
def test_fused_sequence_mixed_dims_layouts(lengths, mode):
    from recsys_lib.distributed._tbe.sequence import one_id_per_bag_mode

    fp = {"optimizer": EmbOptimType.EXACT_SGD, "learning_rate": 0.1}
    m = BatchedFusedEmbedding(group(_mixed_tables(FUSED, PoolingType.NONE, fused_params=fp), FUSED, PoolingType.NONE,
                                    fused_params=fp))
    lengths = torch.tensor(lengths)
    per_key = lengths.view(3, 2).sum(1).tolist()
    assert one_id_per_bag_mode(per_key, [4, 8, 8]) == mode
    values = torch.cat([torch.randint(0, r, (n,), generator=torch.Generator().manual_seed(16)) for r, n in zip(ROWS, per_key)])
    kjt = KeyedJaggedTensor.from_lengths_sync(keys=["f0", "f1", "f2"], values=values, lengths=lengths)
    before = _clone_weights(m)
    out = m(kjt)
    torch.testing.assert_close(out, sequence_reference(before, FTM, kjt, flat=True))
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(17))
    out.backward(grad_out)
    leaves = [w.clone().requires_grad_(True) for w in before]
    sequence_reference(leaves, FTM, kjt, flat=True).backward(grad_out)
    for w0, leaf, w1 in zip(before, leaves, m.split_embedding_weights()):
        torch.testing.assert_close(w1, sgd(w0, leaf.grad, 0.1))


def test_fused_optimizer_state_round_trips_into_the_kernel():
    fp = {"optimizer": EmbOptimType.EXACT_ROWWISE_ADAGRAD, "learning_rate": 0.1}
    a = BatchedFusedEmbeddingBag(group(_mixed_tables(FUSED), fused_params=fp))
    b = BatchedFusedEmbeddingBag(group(_mixed_tables(FUSED), fused_params=fp))
    a(random_kjt(["f0", "f1", "f2"], ROWS, BATCH, seed=18)).sum().backward()
    b.fused_optimizer.load_state_dict(a.fused_optimizer.state_dict())
    for sa, sb in zip(a.emb_module.split_optimizer_states(), b.emb_module.split_optimizer_states()):
        assert float(sa[0].sum()) > 0
        torch.testing.assert_close(sb[0], sa[0])  # copied into the TBE's own buffer
