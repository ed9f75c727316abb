"""Sharding the fused modules (FusedEmbeddingBagCollection / FusedEmbeddingCollection), gloo W=2.

The sharded module keeps the module's optimizer: after one backward its table-wise shards equal the
unsharded fused module trained on the global batch (loss = mean over ranks), both updated by FBGEMM's
row-wise Adagrad. Also: the sharder reads the optimizer from the module, not from its own fused_params.
"""

import torch
import torch.distributed as dist

from recsys_lib.distributed.fused_embedding import FusedEmbeddingCollectionSharder, ShardedFusedEmbeddingCollection
from recsys_lib.distributed.fused_embeddingbag import (
    FusedEmbeddingBagCollectionSharder,
    ShardedFusedEmbeddingBagCollection,
)
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.distributed.types import ShardingEnv
from recsys_lib.modules.embedding_configs import PoolingType
from recsys_lib.modules.fused_embedding_modules import FusedEmbeddingBagCollection, FusedEmbeddingCollection
from recsys_lib.optim.rowwise_adagrad import RowWiseAdagrad
from tests.distributed._sharding_helpers import (
    check_local_shards,
    concat_batches,
    ebc_tables,
    ec_tables,
    global_batch,
    param_sharding,
)

B = 3
KW = {"lr": 0.05, "eps": 1e-8}


def _plan(tables):
    ranks = {"t0": 1, "t1": 0, "t2": 0, "t3": 1}
    return {t.name: param_sharding("table_wise", t.num_embeddings, t.embedding_dim, [ranks[t.name]]) for t in tables}


def _fused_checks(rank: int, world: int) -> str:
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    # pooled
    tables = ebc_tables(PoolingType.SUM)
    torch.manual_seed(3)
    febc = FusedEmbeddingBagCollection(tables, RowWiseAdagrad, dict(KW))
    ref = FusedEmbeddingBagCollection(tables, RowWiseAdagrad, dict(KW))
    ref.load_state_dict(febc.state_dict())
    sharder = FusedEmbeddingBagCollectionSharder(fused_params={"learning_rate": 9.0})  # module's lr wins
    sharded = sharder.shard(febc, _plan(tables), env, torch.device("cpu"))
    assert isinstance(sharded, ShardedFusedEmbeddingBagCollection)
    kjts = global_batch(tables, world, B, False, seed=17)
    target = torch.randn(world, B, 60, generator=torch.Generator().manual_seed(2))
    kt = sharded(kjts[rank]).wait()
    ref_kt = ref(concat_batches(kjts))
    torch.testing.assert_close(kt.values(), ref_kt.values()[rank * B:(rank + 1) * B])
    (kt.values() * target[rank]).sum().backward()
    ((ref_kt.values() * target.view(world * B, -1)).sum() / world).backward()
    state, ref_state = sharded.state_dict(), ref.state_dict()
    for key, value in state.items():
        check_local_shards(value, ref_state[key], key)
    assert "grid_shard" not in sharder.sharding_types("cuda")
    # sequence
    etables = ec_tables(8)
    torch.manual_seed(4)
    fec = FusedEmbeddingCollection(etables, RowWiseAdagrad, dict(KW))
    ref_ec = FusedEmbeddingCollection(etables, RowWiseAdagrad, dict(KW))
    ref_ec.load_state_dict(fec.state_dict())
    sharded_ec = FusedEmbeddingCollectionSharder().shard(fec, _plan(etables), env, torch.device("cpu"))
    assert isinstance(sharded_ec, ShardedFusedEmbeddingCollection)
    out = sharded_ec(kjts[rank]).wait()
    ref_out = ref_ec(concat_batches(kjts))
    loss = 0.0
    ref_loss = 0.0
    for k, jt in out.items():
        r = ref_out[k]
        lo, hi = int(r.lengths()[:rank * B].sum()), int(r.lengths()[:(rank + 1) * B].sum())
        torch.testing.assert_close(jt.values(), r.values()[lo:hi])
        loss = loss + jt.values().sum() * 0.5
        ref_loss = ref_loss + r.values().sum() * 0.5
    loss.backward()
    (ref_loss / world).backward()
    state, ref_state = sharded_ec.state_dict(), ref_ec.state_dict()
    for key, value in state.items():
        check_local_shards(value, ref_state[key], key)
    return "ok"


def test_sharded_fused_modules_keep_their_optimizer_world_2() -> None:
    assert run_multiprocess(_fused_checks, 2, timeout_s=600) == ["ok", "ok"]
