"""A stalled or dead peer: the surviving rank raises within the process group's timeout (stall) or within
seconds (dead peer), and the error names the collective it was waiting in (``_collectives/waits.py``).

One spawn (gloo W=2) on a separate process group with a 3 s timeout: rank 1 first skips a sharded EBC's forward
(rank 0 must time out in the input dist's split exchange), then exits without a word (rank 0 must see the closed
connection). Rank 0 reports through a file, since rank 1's exit fails the spawn helper on purpose.
"""

import json
import os
import time
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist

from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.distributed.types import ShardingEnv
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor
from tests.distributed._sharding_helpers import param_sharding

PG_TIMEOUT_S = 3.0


def _failing_forward(sharded, kjt):
    start = time.monotonic()
    try:
        sharded(kjt).wait()
    except RuntimeError as e:
        return str(e), time.monotonic() - start
    return None, time.monotonic() - start


def _sharded_on(pg):
    tables = [EmbeddingBagConfig(num_embeddings=10, embedding_dim=4, name=f"t{i}", feature_names=[f"f{i}"])
              for i in range(2)]
    plan = {f"t{i}": param_sharding("table_wise", 10, 4, [i]) for i in range(2)}
    return EmbeddingBagCollectionSharder().shard(EmbeddingBagCollection(tables), plan,
                                                  ShardingEnv.from_process_group(pg), torch.device("cpu"))


def _faults(rank: int, world: int, report: str) -> str:
    # one group per scenario: gloo closes a group's connections after a timeout
    stall_module = _sharded_on(dist.new_group(backend="gloo", timeout=timedelta(seconds=PG_TIMEOUT_S)))
    dead_module = _sharded_on(dist.new_group(backend="gloo", timeout=timedelta(seconds=60)))
    kjt = KeyedJaggedTensor(keys=["f0", "f1"], values=torch.tensor([1, 2, 3]), lengths=torch.tensor([1, 1, 0, 1]))
    stall_module(kjt).wait()  # both ranks healthy: one good step each
    dead_module(kjt).wait()
    dist.barrier()
    if rank == 1:
        time.sleep(PG_TIMEOUT_S + 1)  # stall: skip the forward past rank 0's timeout
        dist.barrier()
        os._exit(3)  # then die without a word
    stalled = _failing_forward(stall_module, kjt)
    dist.barrier()  # the default group still works; rank 1 exits right after it
    dead = _failing_forward(dead_module, kjt)  # a 60 s timeout: only the closed connection can end this fast
    with open(report, "w") as f:
        json.dump({"stalled": stalled, "dead": dead}, f)
    return "ok"


@pytest.mark.timeout(120)
def test_stalled_and_dead_peer_name_the_collective(tmp_path) -> None:
    report = str(tmp_path / "rank0.json")
    with pytest.raises(RuntimeError, match="rank 1 exited with code 3"):
        run_multiprocess(_faults, 2, report, timeout_s=90)
    with open(report) as f:
        out = json.load(f)
    message, elapsed = out["stalled"]
    assert message is not None, "rank 0 did not fail although rank 1 skipped the collective"
    assert "KJTAllToAll splits (all_to_all_single) failed on rank 0 of 2" in message, message
    assert "Timed out" in message or "timed out" in message, message
    assert PG_TIMEOUT_S - 0.5 <= elapsed <= PG_TIMEOUT_S + 3, elapsed
    message, elapsed = out["dead"]
    assert message is not None, "rank 0 did not fail although rank 1 died"
    assert "KJTAllToAll splits (all_to_all_single) failed on rank 0 of 2" in message, message
    assert elapsed <= 7, (elapsed, message)
