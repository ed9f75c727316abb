"""The sharding-test driver (``test_utils.test_sharding``): ``sharding_single_rank_test`` shards ``TestSparseNN``
on gloo W=2 (table-wise and row-wise, fused EXACT_SGD) and asserts the gathered predictions after one step equal
the unsharded model's; a sharder stepping with a different learning rate must make it fail. Helpers without a
process group are checked by hand."""

import pytest
import torch
from fbgemm_gpu.split_embedding_configs import EmbOptimType

from recsys_lib.distributed.test_utils.emb_sharder import TestEBCSharder, TestECSharder, TestETCSharder
from recsys_lib.distributed.test_utils.multi_process import MultiProcessContext, MultiProcessTestBase
from recsys_lib.distributed.test_utils.test_model import ModelInput, TestSparseNN
from recsys_lib.distributed.test_utils.test_sharding import (
    SharderType,
    copy_state_dict,
    create_test_sharder,
    gen_model_and_input,
    sharding_single_rank_test,
    sharding_single_rank_test_single_process,
)
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig


def _tables():
    tables = [EmbeddingBagConfig(num_embeddings=r, embedding_dim=d, name=f"t{i}", feature_names=f)
              for i, (r, d, f) in enumerate([(11, 4, ["a"]), (23, 8, ["b", "c"]), (17, 4, ["d"])])]
    weighted = [EmbeddingBagConfig(num_embeddings=13, embedding_dim=4, name="w0", feature_names=["wa"])]
    return tables, weighted


def _cases(rank, world_size):
    """TW, RW and a wrong learning rate, in one process group (``sharding_single_rank_test_single_process``)."""
    tables, weighted = _tables()
    with MultiProcessContext(rank, world_size, "gloo") as ctx:
        for sharding_type in ("table_wise", "row_wise"):
            sharder = create_test_sharder(SharderType.EMBEDDING_BAG_COLLECTION.value, sharding_type, "fused",
                                          {"optimizer": EmbOptimType.EXACT_SGD})
            sharding_single_rank_test_single_process(
                ctx.pg, ctx.device, rank, world_size, model_class=TestSparseNN, embedding_groups={}, tables=tables,
                weighted_tables=weighted, sharders=[sharder], optim=EmbOptimType.EXACT_SGD, random_seed=3)
        wrong = create_test_sharder(SharderType.EMBEDDING_BAG_COLLECTION.value, "row_wise", "fused",
                                    {"optimizer": EmbOptimType.EXACT_SGD, "learning_rate": 0.5})
        with pytest.raises(AssertionError):
            sharding_single_rank_test_single_process(
                ctx.pg, ctx.device, rank, world_size, model_class=TestSparseNN, embedding_groups={}, tables=tables,
                weighted_tables=weighted, sharders=[wrong], optim=EmbOptimType.EXACT_SGD, random_seed=3)


def _wrapper(rank, world_size):
    """``sharding_single_rank_test`` joins the group itself."""
    tables, weighted = _tables()
    sharder = create_test_sharder(SharderType.EMBEDDING_BAG_COLLECTION.value, "row_wise", "fused",
                                  {"optimizer": EmbOptimType.EXACT_SGD})
    sharding_single_rank_test(rank, world_size, model_class=TestSparseNN, embedding_groups={}, tables=tables,
                              weighted_tables=weighted, sharders=[sharder], backend="gloo",
                              optim=EmbOptimType.EXACT_SGD, random_seed=4)


class ShardingDriverTest(MultiProcessTestBase):
    def test_single_process_driver_tw_rw_world_2(self):
        self._run_multi_process_test(callable=_cases, world_size=2)

    def test_sharding_single_rank_test_world_2(self):
        self._run_multi_process_test(callable=_wrapper, world_size=2)


def test_create_test_sharder():
    params = {}
    s = create_test_sharder("embedding_bag_collection", "row_wise", "fused", params)
    assert isinstance(s, TestEBCSharder) and s.sharding_types("cpu") == ["row_wise"]
    assert params == {"learning_rate": 0.1}  # filled in place, as TorchRec
    assert isinstance(create_test_sharder("embedding_collection", "table_wise", "dense"), TestECSharder)
    etc = create_test_sharder("embedding_tower_collection", "table_row_wise", "fused")
    assert isinstance(etc, TestETCSharder) and etc.compute_kernels("table_row_wise", "cpu") == ["fused"]
    with pytest.raises(ValueError, match="not supported"):
        create_test_sharder("nope", "row_wise", "fused")


def test_gen_model_and_input_and_copy_state_dict():
    tables, weighted = _tables()
    model, inputs = gen_model_and_input(TestSparseNN, tables, {}, world_size=2, weighted_tables=weighted,
                                        num_float_features=7, batch_size=3, num_inputs=2, random_seed=5)
    again, _ = gen_model_and_input(TestSparseNN, tables, {}, world_size=2, weighted_tables=weighted,
                                   num_float_features=7, batch_size=3, random_seed=5)
    torch.testing.assert_close(model.state_dict(), again.state_dict())  # seeded model
    assert len(inputs) == 2 and inputs[0][0].float_features.shape == (6, 7) and len(inputs[0][1]) == 2
    vbe, vbe_inputs = gen_model_and_input(TestSparseNN, tables, {}, world_size=2, weighted_tables=weighted,
                                          generate=ModelInput.generate_variable_batch_input, batch_size=3)
    assert vbe_inputs[0][0].idlist_features.variable_stride_per_key()

    other, _ = gen_model_and_input(TestSparseNN, tables, {}, world_size=2, weighted_tables=weighted, random_seed=9)
    target = other.state_dict()
    copy_state_dict(target, model.state_dict(), exclude_predfix="dense.")
    for name, value in model.state_dict().items():
        if "dummy" in name:  # constant zeros / ones in every model
            continue
        same = torch.equal(target[name], value)
        assert same != name.startswith("dense."), name
    with pytest.raises(KeyError, match="extra"):
        copy_state_dict({"extra": torch.zeros(1)}, model.state_dict())
