"""state_dict_gather / state_dict_to_device over 2 gloo ranks with a row-sharded ShardedTensor and plain tensors."""

import pytest
import torch
import torch.distributed as dist
from torch.distributed._shard.sharded_tensor import Shard, ShardedTensor, ShardMetadata

from recsys_lib.distributed.test_utils.multi_process import run_multiprocess
from recsys_lib.inference.state_dict_transform import (
    state_dict_all_gather_keys,
    state_dict_gather,
    state_dict_to_device,
)


def _full():
    return torch.arange(24, dtype=torch.float32).view(6, 4)


def _check(rank, world_size):
    full = _full()
    shard = Shard(full[3 * rank: 3 * rank + 3].clone(),
                  ShardMetadata(shard_offsets=[3 * rank, 0], shard_sizes=[3, 4], placement=f"rank:{rank}/cpu"))
    st = ShardedTensor._init_from_local_shards([shard], [6, 4])
    src = {"emb": st, "bias": torch.full((2,), float(rank))}
    keys = state_dict_all_gather_keys(src, dist.group.WORLD)
    moved = state_dict_to_device(src, dist.group.WORLD, torch.device("cpu"))
    dst = {"emb": torch.zeros(6, 4), "bias": torch.zeros(2)}
    state_dict_gather(moved, dst)
    return keys, sorted(moved), dst["emb"], dst["bias"], moved["emb"].local_shards()[0].tensor


@pytest.mark.dist
def test_gather_and_move_sharded_state_dict():
    out = run_multiprocess(_check, world_size=2)
    for rank, (keys, moved_keys, emb, bias, local) in enumerate(out):
        assert keys == ["bias", "emb"] == moved_keys
        assert torch.equal(bias, torch.full((2,), float(rank)))
        assert torch.equal(local, _full()[3 * rank: 3 * rank + 3])
    assert torch.equal(out[0][2], _full())  # gathered on rank 0


def test_gather_plain_tensors_and_bad_values():
    dst = {"w": torch.zeros(2)}
    state_dict_gather({"w": torch.ones(2), "extra": torch.zeros(1)}, dst)
    assert torch.equal(dst["w"], torch.ones(2))
    with pytest.raises(KeyError, match="'w' is in dst but not in src"):
        state_dict_gather({}, dst)
    with pytest.raises(TypeError, match="src\\['w'\\] is a str, expected a tensor"):
        state_dict_gather({"w": "x"}, dst)
