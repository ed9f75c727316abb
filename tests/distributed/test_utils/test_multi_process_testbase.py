"""TorchRec-style multi-process tests: ``MultiProcessTestBase`` + ``MultiProcessContext`` on gloo (W=2), and
``run_multi_process_func`` (W=1 runs in-process). Reference: sums computed by hand from every rank's input."""

import torch
import torch.distributed as dist

from recsys_lib.distributed.test_utils.multi_process import (
    MultiProcessContext,
    MultiProcessTestBase,
    run_multi_process_func,
)


def _all_reduce_body(rank, world_size, scale, local_size=None):
    with MultiProcessContext(rank, world_size, backend="gloo", local_size=local_size) as ctx:
        assert ctx.pg is not None and ctx.device.type in ("cpu", "cuda")
        assert torch.are_deterministic_algorithms_enabled()
        t = torch.full((3,), float(rank + 1) * scale)
        dist.all_reduce(t, group=ctx.pg)
        expected = scale * world_size * (world_size + 1) / 2
        assert t.tolist() == [expected] * 3, t
        import os

        assert os.environ["LOCAL_WORLD_SIZE"] == str(local_size or world_size)
    assert not dist.is_initialized()


def _rank_sum(rank, world_size, offset):
    with MultiProcessContext(rank, world_size, backend="gloo"):
        t = torch.tensor([rank + offset])
        dist.all_reduce(t)
        return int(t.item())


class TorchRecStyleTest(MultiProcessTestBase):
    def test_two_ranks(self):
        self._run_multi_process_test(callable=_all_reduce_body, world_size=2, scale=2.0, local_size=1)

    def test_single_rank_runs_in_process(self):
        assert run_multi_process_func(_rank_sum, world_size=1, offset=5) == [5]
