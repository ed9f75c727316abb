"""The shared body of sharded EBC/EC: plan checks, fused-param merging, input routing (pure), plus the
``embedding_sharding`` helpers (batch-size check, row bucketing against a plain-torch reference)."""

import pytest
import torch
from fbgemm_gpu.split_embedding_configs import EmbOptimType

from recsys_lib.distributed._sharded.common import check_plan, merge_fused_params
from recsys_lib.distributed._sharded.body import ShardingRouter, check_ids, input_error, split_by_keys
from recsys_lib.distributed.embedding_sharding import (
    EmbeddingShardingContext,
    bucketize_kjt_before_all2all,
    record_batch_sizes,
)
from recsys_lib.distributed.types import CacheParams, ParameterSharding
from recsys_lib.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
from recsys_lib.optim.rowwise_adagrad import RowWiseAdagrad
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def test_check_plan_names_unknown_missing_and_bad_entries() -> None:
    ps = ParameterSharding("table_wise", "fused")
    with pytest.raises(ValueError, match=r"\['t9'\].*does not have"):
        check_plan(["t0"], {"t0": ps, "t9": ps}, "M")
    with pytest.raises(ValueError, match=r"\['t1'\] have no entry"):
        check_plan(["t0", "t1"], {"t0": ps}, "M")
    with pytest.raises(ValueError, match="unknown sharding type 'diagonal'"):
        check_plan(["t0"], {"t0": ParameterSharding("diagonal", "fused")}, "M")
    with pytest.raises(ValueError, match="unknown compute kernel 'magic'"):
        check_plan(["t0"], {"t0": ParameterSharding("table_wise", "magic")}, "M")
    with pytest.raises(TypeError, match="ParameterSharding"):
        check_plan(["t0"], {"t0": "table_wise"}, "M")


def test_merge_fused_params_order() -> None:
    w = torch.nn.Parameter(torch.zeros(4, 4))
    ps = ParameterSharding("table_wise", "fused", cache_params=CacheParams(load_factor=0.5), stochastic_rounding=True)
    out = merge_fused_params({"learning_rate": 0.5, "optimizer": EmbOptimType.EXACT_SGD}, w, ps)
    assert out == {"learning_rate": 0.5, "optimizer": EmbOptimType.EXACT_SGD, "cache_load_factor": 0.5,
                   "stochastic_rounding": True}
    apply_optimizer_in_backward(RowWiseAdagrad, [w], {"lr": 0.02, "eps": 0.001})
    out = merge_fused_params({"learning_rate": 0.5}, w, ParameterSharding("table_wise", "fused"))
    assert out == {"learning_rate": 0.02, "optimizer": EmbOptimType.EXACT_ROWWISE_ADAGRAD, "eps": 0.001}
    assert merge_fused_params(None, torch.zeros(1), ParameterSharding("table_wise", "fused")) is None


class _Sharding:
    def __init__(self, names):
        self._names = names

    def feature_names(self):
        return self._names


def test_router_permutes_repeats_and_splits() -> None:
    kjt = KeyedJaggedTensor(keys=["b", "a"], values=torch.tensor([1, 2, 3]), lengths=torch.tensor([1, 0, 1, 1]))
    router = ShardingRouter([_Sharding(["a"]), _Sharding(["b", "a"])], "M")
    first, second = router.split(kjt)
    assert first.keys() == ["a"] and first.values().tolist() == [2, 3]
    assert second.keys() == ["b", "a"] and second.values().tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match=r"lacks features \['c'\]"):
        ShardingRouter([_Sharding(["c"])], "M").split(kjt)


def _pieces(kjts):
    return [(k.keys(), k.values().tolist(), k.lengths().tolist(), k.stride_per_key(),
             None if k.weights_or_none() is None else k.weights().tolist()) for k in kjts]


@pytest.mark.parametrize("vbe", [False, True])
def test_split_by_keys_equals_kjt_split(vbe) -> None:
    kw = ({"stride_per_key_per_rank": [[2], [1], [3]]} if vbe else {"stride": 2})
    lengths = torch.tensor([1, 0, 2, 1, 1, 0] if vbe else [1, 0, 2, 1, 1, 0], dtype=torch.int32)
    kjt = KeyedJaggedTensor(keys=["a", "b", "c"], values=torch.arange(5), lengths=lengths,
                            weights=torch.arange(5, dtype=torch.float32), **kw)
    for splits in ([1, 2], [0, 3], [3], [2, 0, 1]):
        assert _pieces(split_by_keys(kjt, splits, True)) == _pieces(kjt.split(splits))
        no_w = _pieces(split_by_keys(kjt, splits, False))
        assert no_w == [p[:4] + (None,) for p in _pieces(kjt.split(splits))]


def test_router_drops_weights_for_unweighted_modules() -> None:
    kjt = KeyedJaggedTensor(keys=["a"], values=torch.tensor([1, 2]), lengths=torch.tensor([1, 1]),
                            weights=torch.tensor([0.5, 2.0]))
    router = ShardingRouter([_Sharding(["a"])], "M")
    assert router.split(kjt)[0].weights().tolist() == [0.5, 2.0]
    (piece,) = router.split(kjt, keep_weights=False)
    assert piece.weights_or_none() is None and piece.values().tolist() == [1, 2]


def test_check_ids_reads_only_table_features_and_bags() -> None:
    # "x" is read by no table (rows None): any id is fine there; the trailing value 99 belongs to no bag
    kjt = KeyedJaggedTensor(keys=["a", "x"], values=torch.tensor([1, -5, 99]), lengths=torch.tensor([1, 1]))
    check_ids(kjt, [2, None], "M")
    with pytest.raises(ValueError, match=r"feature 'a' has id 1 outside its table's rows \[0, 1\)"):
        check_ids(kjt, [1, None], "M")
    with pytest.raises(TypeError, match="ids must be integers"):
        check_ids(KeyedJaggedTensor(keys=["a"], values=torch.tensor([0.5]), lengths=torch.tensor([1])), [3], "M")


def test_input_error_checks_lengths_even_without_ids() -> None:
    kjt = KeyedJaggedTensor(keys=["a"], values=torch.empty(0, dtype=torch.long), lengths=torch.tensor([-1, 1]))
    assert "lengths must be >= 0" in input_error("M", kjt, ["a"], {"a": 3}, False)
    kjt = KeyedJaggedTensor(keys=["a"], values=torch.tensor([0]), lengths=torch.tensor([1, 2]))
    assert "needs values up to index 3" in input_error("M", kjt, ["a"], {"a": 3}, False)
    kjt = KeyedJaggedTensor(keys=["a"], values=torch.tensor([0, 1]), lengths=torch.tensor([1, 1]))
    assert input_error("M", kjt, ["a"], {"a": 3}, False) is None
    assert "weighted but the input KJT has no weights" in input_error("M", kjt, ["a"], {"a": 3}, True)


def test_record_batch_sizes_stores_per_rank_sizes() -> None:
    class Ctx:
        sharding_contexts = [EmbeddingShardingContext()]

    ctx = Ctx()
    record_batch_sizes(ctx, 0, [3, 3])
    assert ctx.sharding_contexts[0].batch_size_per_rank == [3, 3]
    record_batch_sizes(ctx, 0, [3, 4])  # ranks may differ: the output dists send each rank its own rows
    assert ctx.sharding_contexts[0].batch_size_per_rank == [3, 4]


def test_bucketize_matches_plain_torch() -> None:
    # f0 rows blocks of 5, f1 blocks of 3; 2 buckets
    kjt = KeyedJaggedTensor(keys=["f0", "f1"], values=torch.tensor([1, 7, 9, 0, 4, 5]),
                            lengths=torch.tensor([2, 1, 2, 1]), weights=torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]))
    out, _ = bucketize_kjt_before_all2all(kjt, 2, torch.tensor([5, 3]))
    assert out.keys() == ["f0", "f1", "f0", "f1"]
    per = {"f0": [[1, 7], [9]], "f1": [[0, 4], [5]]}
    blocks = {"f0": 5, "f1": 3}
    exp_lengths, exp_values = [], []
    for bucket in range(2):
        for k in ("f0", "f1"):
            for sample in per[k]:
                ids = [i % blocks[k] for i in sample if i // blocks[k] == bucket]
                exp_lengths.append(len(ids))
                exp_values += ids
    assert out.lengths().tolist() == exp_lengths
    assert out.values().tolist() == exp_values
    assert sorted(out.weights().tolist()) == sorted(kjt.weights().tolist())
