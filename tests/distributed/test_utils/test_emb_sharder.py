"""Single-type test sharders: the planner gives every table the one sharding type (and kernel) offered."""

import pytest
import torch

from recsys_lib.distributed.planner import EmbeddingShardingPlanner, Topology
from recsys_lib.distributed.test_utils.emb_sharder import (
    TestEBCSharder,
    TestEBSharder,
    TestECSharder,
    TestFusedEBCSharder,
    TestFusedECSharder,
)
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection


def _ebc():
    return EmbeddingBagCollection([EmbeddingBagConfig(num_embeddings=40, embedding_dim=8, name=f"t{i}",
                                                      feature_names=[f"f{i}"]) for i in range(3)])


def _ec():
    return EmbeddingCollection([EmbeddingConfig(num_embeddings=40, embedding_dim=8, name=f"t{i}",
                                                feature_names=[f"f{i}"]) for i in range(3)])


@pytest.mark.parametrize("sharding_type,kernel", [("table_wise", "fused"), ("row_wise", "fused"),
                                                   ("data_parallel", "dense")])
def test_ebc_and_ec_sharders_offer_one_type(sharding_type, kernel):
    planner = EmbeddingShardingPlanner(topology=Topology(world_size=2, compute_device="cpu"))
    for module, sharder in ((_ebc(), TestEBCSharder(sharding_type, kernel)), (_ec(), TestECSharder(sharding_type, kernel))):
        assert sharder.sharding_types("cpu") == [sharding_type]
        assert sharder.compute_kernels(sharding_type, "cpu") == [kernel]
        plan = planner.plan(module, [sharder])
        entries = plan.plan[""]
        assert {ps.sharding_type for ps in entries.values()} == {sharding_type}
        assert {ps.compute_kernel for ps in entries.values()} == {kernel}


def test_fused_and_single_bag_sharders():
    assert TestFusedEBCSharder("column_wise").sharding_types("cpu") == ["column_wise"]
    assert TestFusedEBCSharder("column_wise").fused_params == {}
    assert TestFusedECSharder("table_wise").sharding_types("cuda") == ["table_wise"]
    eb = TestEBSharder("row_wise", "fused", {"learning_rate": 0.5})
    assert eb.sharding_types("cpu") == ["row_wise"] and eb.compute_kernels("row_wise", "cpu") == ["fused"]
    assert eb.fused_params == {"learning_rate": 0.5}
    assert eb.module_type is torch.nn.EmbeddingBag
