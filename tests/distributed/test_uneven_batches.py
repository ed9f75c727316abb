"""Different batch sizes per rank (rank 0: 3 samples, rank 1: 5), gloo W=2, one spawn for every case.

TorchRec accepts this under table-wise sharding (each rank gets its own rows back); recsys_lib accepts it under
every sharding: each rank's output equals the unsharded module's rows for that rank's samples of the
concatenated global batch, and (fused kernels, EXACT_SGD) one backward step updates every table as plain
SGD on the unsharded module with the global loss divided by the world size does (gradient division).
"""

import copy
from typing import Dict

import torch
import torch.distributed as dist

from recsys_lib.distributed.embedding import EmbeddingCollectionSharder
from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder
from recsys_lib.distributed.model_parallel import DistributedModelParallel
from recsys_lib.distributed.sharding_plan import (
    column_wise,
    construct_module_sharding_plan,
    data_parallel,
    row_wise,
    table_row_wise,
    table_wise,
)
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.distributed.types import ShardingEnv, ShardingPlan
from recsys_lib.modules.embedding_configs import PoolingType
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
from tests.distributed._sharding_helpers import check_local_shards, concat_batches, ebc_tables, ec_tables, global_batch, with_compute_kernel

BATCH = [3, 5]
LR = 0.1
GENS = {
    "table_wise": lambda i: table_wise(rank=i % 2, compute_kernel="fused"),
    "column_wise": lambda i: column_wise(ranks=[0, 1], compute_kernel="fused"),
    "row_wise": lambda i: row_wise(compute_kernel="fused"),
    "table_row_wise": lambda i: with_compute_kernel(table_row_wise(host_index=0), "fused"),
    "data_parallel": lambda i: data_parallel(),
}
CASES = [("ebc", s) for s in GENS] + [("ec", s) for s in GENS if s != "table_row_wise"]


def _case(module: str, sharding: str, rank: int, env: ShardingEnv) -> None:
    from fbgemm_gpu.split_embedding_configs import EmbOptimType

    torch.manual_seed(0)
    tables = ebc_tables(PoolingType.SUM, dims=(8, 16, 8, 24)) if module == "ebc" else ec_tables()
    m = EmbeddingBagCollection(tables) if module == "ebc" else EmbeddingCollection(tables)
    ref = copy.deepcopy(m)
    fused = {"optimizer": EmbOptimType.EXACT_SGD, "learning_rate": LR}
    sharder = EmbeddingBagCollectionSharder(fused_params=fused) if module == "ebc" else EmbeddingCollectionSharder(
        fused_params=fused)
    plan = construct_module_sharding_plan(m, {f"t{i}": GENS[sharding](i) for i in range(4)}, sharder=sharder,
                                          local_size=2, world_size=2, device_type="cpu")
    dmp = DistributedModelParallel(m, env=env, device=torch.device("cpu"), plan=ShardingPlan({"": plan}),
                                   sharders=[sharder])
    kjts = [global_batch(tables, 1, BATCH[r], False, seed=10 + r)[0] for r in range(2)]
    lo, n = sum(BATCH[:rank]), BATCH[rank]
    what = f"{module}/{sharding}"

    out = dmp(kjts[rank])
    full = ref(concat_batches(kjts))
    g = torch.Generator().manual_seed(3)
    if module == "ebc":
        target = torch.randn(sum(BATCH), full.values().size(1), generator=g)
        torch.testing.assert_close(out.values(), full.values()[lo:lo + n], msg=lambda m: f"{what}: {m}")
        loss, ref_loss = (out.values() * target[lo:lo + n]).sum(), (full.values() * target).sum()
    else:
        loss, ref_loss = 0, 0
        for k in sorted(full):
            offsets = full[k].offsets()
            want = full[k].values()[offsets[lo]:offsets[lo + n]]
            torch.testing.assert_close(out[k].values(), want, msg=lambda m: f"{what} {k}: {m}")
            target = torch.randn(full[k].values().shape, generator=g)
            loss = loss + (out[k].values() * target[offsets[lo]:offsets[lo + n]]).sum()
            ref_loss = ref_loss + (full[k].values() * target).sum()
    if sharding == "data_parallel":
        return  # dense kernel: DDP averages gradients over ranks (covered by the model-parallel tests)
    loss.backward()
    (ref_loss / 2).backward()  # the embedding comms divide gradients by the world size (as DDP averages)
    state = dmp.state_dict()
    attr = "embedding_bags" if module == "ebc" else "embeddings"
    for t in (c.name for c in tables):
        w = getattr(ref, attr)[t].weight
        check_local_shards(state[f"{attr}.{t}.weight"], w.detach() - LR * w.grad, f"{what} {t}")


def _all_cases(rank: int, world: int) -> Dict[str, str]:
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    for module, sharding in CASES:
        _case(module, sharding, rank, env)
    return "ok"


def test_different_batch_sizes_per_rank_match_unsharded_world_2() -> None:
    assert run_multiprocess(_all_cases, 2, timeout_s=600) == ["ok", "ok"]
