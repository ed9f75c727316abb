"""dist_data.KJEAllToAll (writes: ids plus their rows as weights) and KJTAllToAllTensorsAwaitable.clear_inputs,
against the batches rebuilt by hand on every rank (gloo, W=2)."""

import pytest
import torch
import torch.distributed as dist

from recsys_lib.distributed.dist_data import KJEAllToAll, KJTAllToAll, KJTAllToAllSplitsAwaitable
from recsys_lib.distributed.test_utils import run_multiprocess
from tests.distributed.test_dist_data import KEYS, _rank_batch, _to_kjt


def _check(out, batches, mine, world):
    assert out.keys() == mine
    got = out.to_dict()
    for k in mine:
        samples = [s for r in range(world) for s in batches[r][k]]
        assert got[k].lengths().tolist() == [len(s) for s in samples], k
        assert got[k].values().tolist() == [v for s in samples for v in s], k
        torch.testing.assert_close(got[k].weights(), torch.tensor([v for s in samples for v in s]) / 7.0)


def _kje(rank, world):
    splits = [3, 2]
    batches = [_rank_batch(r, False) for r in range(world)]
    mine = KEYS[sum(splits[:rank]):sum(splits[:rank + 1])]
    splits_awaitable = KJEAllToAll(dist.group.WORLD, splits)(_to_kjt(batches[rank], True, False, world))
    assert isinstance(splits_awaitable, KJTAllToAllSplitsAwaitable)
    _check(splits_awaitable.wait().wait(), batches, mine, world)

    # clear_inputs frees the sent KJT's tensors (lengths, values, weights) after the exchange
    kjt = _to_kjt(batches[rank], True, False, world)
    expected_bytes = sum(t.element_size() * t.numel() for t in (kjt.lengths(), kjt.values(), kjt.weights()))
    tensors = KJTAllToAll(dist.group.WORLD, splits)(kjt).wait()
    assert tensors.clear_inputs() == expected_bytes
    assert kjt.values().untyped_storage().nbytes() == 0
    _check(tensors.wait(), batches, mine, world)
    return "ok"


@pytest.mark.dist
def test_kje_all_to_all_and_clear_inputs():
    assert run_multiprocess(_kje, 2) == ["ok", "ok"]
