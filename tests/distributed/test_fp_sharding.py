"""Sharded FeatureProcessedEmbeddingBagCollection (position weights) vs the unsharded module on gloo.

Tables: t0 (f0, position-weighted) and t1 (f1 position-weighted, f2 plain). Under TW/CW every bag arrives
whole at its table's rank; under RW bags are cut by row block and the input dist sends the ids' original
positions. Two steps each: forward equal, embedding tables equal after FBGEMM's fused SGD, position weights
equal after one SGD step (their gradients summed over ranks == the unsharded gradient); also with variable batch
per feature (VBE, ``+vbe``).
"""

import copy
import traceback

import pytest
import torch
import torch.distributed as dist

from recsys_lib.distributed.grouped_position_weighted import GroupedPositionWeightedModule, apply_position_weights
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

LR = 0.5
MAX_LEN = 6


def test_positions_from_offsets_or_from_weights():
    kjt = KeyedJaggedTensor(keys=["a", "b"], values=torch.tensor([1, 2, 3, 4, 5]), lengths=torch.tensor([2, 1, 2, 0]))
    pw = {"a": torch.tensor([10.0, 20.0, 30.0])}
    assert apply_position_weights(kjt, pw).weights().tolist() == [10.0, 20.0, 10.0, 1.0, 1.0]
    cut = KeyedJaggedTensor(keys=["a"], values=torch.tensor([1, 3]), lengths=torch.tensor([1, 1]),
                            weights=torch.tensor([2.0, 1.0]))  # original positions, sent by a row-wise input dist
    assert apply_position_weights(cut, pw, positions_in_weights=True).weights().tolist() == [30.0, 20.0]
    with pytest.raises(ValueError, match="longer than its max_feature_length 1"):
        apply_position_weights(cut, {"a": torch.tensor([1.0])}, positions_in_weights=True)
    gpw = GroupedPositionWeightedModule({"a": 3})
    assert gpw(kjt).weights().tolist() == [1.0] * 5
    with torch.no_grad():
        gpw.position_weights["a"].copy_(pw["a"])
    assert gpw(kjt).weights().tolist() == [10.0, 20.0, 10.0, 1.0, 1.0]
    assert gpw(cut).weights().tolist() == [30.0, 20.0]  # weights present: they hold the positions (TorchRec)
    assert list(gpw.state_dict(prefix="p.")) == ["p.position_weights.a"]
    assert [n for n, _ in gpw.named_parameters("m")] == ["m.position_weights.a"] and not list(gpw.named_buffers())


def _fp_module():
    from recsys_lib.modules.embedding_configs import EmbeddingBagConfig
    from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
    from recsys_lib.modules.feature_processor_ import PositionWeightedModule
    from recsys_lib.modules.fp_embedding_modules import FeatureProcessedEmbeddingBagCollection

    tables = [EmbeddingBagConfig(num_embeddings=11, embedding_dim=8, name="t0", feature_names=["f0"]),
              EmbeddingBagConfig(num_embeddings=7, embedding_dim=8, name="t1", feature_names=["f1", "f2"])]
    ebc = EmbeddingBagCollection(tables=tables, is_weighted=True)
    fps = {"f0": PositionWeightedModule(MAX_LEN), "f1": PositionWeightedModule(MAX_LEN)}
    m = FeatureProcessedEmbeddingBagCollection(ebc, fps)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.rand(p.shape, generator=g) + 0.5)
    return m


def _batches(world, step, batch=3, vbe=False):
    """Per-rank KJTs; with ``vbe`` every key has its own batch (1..batch) and inverse_indices to ``batch``."""
    g = torch.Generator().manual_seed(50 + step)
    out = []
    for _ in range(world):
        per_key = [int(torch.randint(1, batch + 1, (1,), generator=g)) if vbe else batch for _ in range(3)]
        lengths = torch.randint(0, MAX_LEN + 1, (sum(per_key),), generator=g)
        rows = [11] * per_key[0] + [7] * (per_key[1] + per_key[2])
        vals = torch.cat([torch.randint(0, r, (int(n),), generator=g) for r, n in zip(rows, lengths)])
        if not vbe:
            out.append(KeyedJaggedTensor(keys=["f0", "f1", "f2"], values=vals, lengths=lengths))
            continue
        inverse = torch.stack([torch.randint(0, b, (batch,), generator=g) for b in per_key])
        out.append(KeyedJaggedTensor(keys=["f0", "f1", "f2"], values=vals, lengths=lengths,
                                     stride_per_key_per_rank=[[b] for b in per_key],
                                     inverse_indices=(["f0", "f1", "f2"], inverse)))
    return out


def _plan(kind, module, sharder, world):
    from recsys_lib.distributed.sharding_plan import column_wise, construct_module_sharding_plan, row_wise, table_wise

    gens = {
        "table_wise": {"t0": table_wise(rank=0, compute_kernel="fused"), "t1": table_wise(rank=1, compute_kernel="fused")},
        "column_wise": {t: column_wise(ranks=[0, 1], compute_kernel="fused") for t in ("t0", "t1")},
        "row_wise": {t: row_wise(compute_kernel="fused") for t in ("t0", "t1")},
    }[kind]
    return construct_module_sharding_plan(module, gens, sharder=sharder, local_size=world, world_size=world,
                                          device_type="cpu")


def _run(kind, rank, world):
    from fbgemm_gpu.split_embedding_configs import EmbOptimType

    from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from recsys_lib.distributed.fp_embeddingbag import FeatureProcessedEmbeddingBagCollectionSharder
    from recsys_lib.distributed.types import ShardingEnv

    ref = _fp_module()
    sharder = FeatureProcessedEmbeddingBagCollectionSharder(
        EmbeddingBagCollectionSharder(fused_params={"optimizer": EmbOptimType.EXACT_SGD, "learning_rate": LR}))
    kind, vbe = kind.split("+")[0], kind.endswith("+vbe")
    plan = _plan(kind, ref, sharder, world)
    sharded = sharder.shard(copy.deepcopy(ref), plan, ShardingEnv.from_process_group(dist.group.WORLD))
    for step in range(2):
        kjts = _batches(world, step, vbe=vbe)
        awaitable = sharded(kjts[rank])
        if step == 0:  # the zero tie to the feature-processor parameters leaves the output as it is
            assert sharded.add_fp_params_grad_sync_callback(awaitable) is awaitable
        out = awaitable.wait().values()
        ref_outs = [ref(k).values() for k in kjts]
        grads = [torch.randn(o.shape, generator=torch.Generator().manual_seed(9 + step * 10 + r))
                 for r, o in enumerate(ref_outs)]
        (out * grads[rank]).sum().backward()
        with torch.no_grad():
            for name, p in sharded.named_parameters():
                if "_feature_processors" in name:
                    p -= LR * p.grad
                    p.grad = None
        ref.zero_grad()
        (sum((o * g).sum() for o, g in zip(ref_outs, grads)) / world).backward()
        with torch.no_grad():
            for p in ref.parameters():
                p -= LR * p.grad
        torch.testing.assert_close(out.detach(), ref_outs[rank].detach(), msg=lambda m: f"{kind} step {step}: {m}")
        for f in ("f0", "f1"):
            torch.testing.assert_close(sharded._feature_processors[f].position_weight,
                                       ref._feature_processors[f].position_weight,
                                       msg=lambda m: f"{kind} step {step} position weights {f}: {m}")
        sd = sharded.state_dict()
        for t in ("t0", "t1"):
            full = ref._embedding_bag_collection.embedding_bags[t].weight.detach()
            for shard in sd[f"_embedding_bag_collection.embedding_bags.{t}.weight"].local_shards():
                (r0, c0), (nr, nc) = shard.metadata.shard_offsets, shard.metadata.shard_sizes
                torch.testing.assert_close(shard.tensor, full[r0:r0 + nr, c0:c0 + nc],
                                           msg=lambda m: f"{kind} step {step} table {t}: {m}")


def _worker(rank, world, kinds):
    out = {}
    for kind in kinds:
        try:
            _run(kind, rank, world)
            out[kind] = None
        except Exception:
            out[kind] = traceback.format_exc()
        dist.barrier()
    return out


KINDS = ["table_wise", "column_wise", "row_wise", "table_wise+vbe", "column_wise+vbe", "row_wise+vbe"]


@pytest.fixture(scope="module")
def fp_results():
    return run_multiprocess(_worker, 2, KINDS, timeout_s=600)


@pytest.mark.dist
@pytest.mark.parametrize("kind", KINDS)
def test_fp_ebc_sharded_equals_unsharded(fp_results, kind):
    errors = [r[kind] for r in fp_results if r[kind] is not None]
    assert not errors, "\n".join(errors)


def test_sharder_rejects_unsupported_sharding_types():
    from recsys_lib.distributed.fp_embeddingbag import FeatureProcessedEmbeddingBagCollectionSharder
    from recsys_lib.distributed.types import ParameterSharding, ShardingEnv

    sharder = FeatureProcessedEmbeddingBagCollectionSharder()
    assert "row_wise" in sharder.sharding_types("cpu") and "grid_shard" not in sharder.sharding_types("cpu")
    with pytest.raises(ValueError, match="grid_shard"):
        sharder.shard(_fp_module(), {"t0": ParameterSharding("grid_shard", "fused")}, ShardingEnv.from_local(1, 0))


def test_unsharded_fp_ebc_vbe_equals_the_expanded_batch():
    """The reference above on VBE input: pooling a VBE batch and expanding it with inverse_indices equals
    pooling the expanded batch (each full-batch sample's bag copied from the row it maps to)."""
    m = _fp_module()
    kjt = _batches(1, 0, batch=4, vbe=True)[0]
    keys, inverse = kjt.inverse_indices()
    jts = kjt.to_dict()
    lengths, values = [], []
    for i, k in enumerate(keys):
        bags = list(jts[k].values().split(jts[k].lengths().tolist()))
        picked = [bags[j] for j in inverse[i].tolist()]
        lengths.append(torch.tensor([p.numel() for p in picked]))
        values.append(torch.cat(picked))
    expanded = KeyedJaggedTensor(keys=keys, values=torch.cat(values), lengths=torch.cat(lengths))
    torch.testing.assert_close(m(kjt).values(), m(expanded).values())


def test_grouped_position_weighted_module_reads_positions_from_weights():
    # TorchRec: a KJT that carries weights gives the positions (row-wise shards receive them that way)
    gpw = GroupedPositionWeightedModule({"a": 3})
    with torch.no_grad():
        gpw.position_weights["a"].copy_(torch.tensor([10.0, 20.0, 30.0]))
    kjt = KeyedJaggedTensor(keys=["a"], values=torch.tensor([7, 8, 9]), lengths=torch.tensor([2, 1]))
    assert gpw(kjt).weights().tolist() == [10.0, 20.0, 10.0]
    with_pos = KeyedJaggedTensor(keys=["a"], values=torch.tensor([7, 8, 9]), lengths=torch.tensor([2, 1]),
                                 weights=torch.tensor([2.0, 0.0, 1.0]))
    assert gpw(with_pos).weights().tolist() == [30.0, 10.0, 20.0]
    assert list(gpw.state_dict(prefix="p.")) == ["p.position_weights.a"]
    assert [n for n, _ in gpw.named_parameters("m")] == ["m.position_weights.a"]
