"""MemoryStashingManager: class-level bookkeeping on CPU; the device round trip (stash frees device memory,
restore brings the same values back) where CUDA is present."""

import pytest
import torch

from recsys_lib.distributed.memory_stashing import MemoryStashingManager as M


@pytest.fixture(autouse=True)
def _clean():
    M.reset()
    yield
    M.reset()


def test_settings_executor_and_reset():
    assert not M.is_enabled()
    M.set_trunk_size(1024)
    M.set_delay_stash(True)
    assert M.thread_submit(lambda a, b=0: a + b, 2, b=3).result() == 5
    M.reset()
    assert M._stash_chunk_size_bytes == 32 * 1024 * 1024 and not M._delay_stash and M._stash_executor is None
    with pytest.raises(RuntimeError, match="call set_streams first"):
        M.h2d_stream()


def test_cpu_state_is_never_stashed():
    w = torch.nn.Parameter(torch.randn(512, 1024))  # 2 MiB of CPU state
    opt = torch.optim.Adam([w])
    w.grad = torch.ones_like(w)
    opt.step()
    before = opt.state[w]["exp_avg"].clone()
    await_restore, restore = M.stash_optimizer_state(opt)
    assert torch.equal(opt.state[w]["exp_avg"], before)  # host tensors stay where they are
    assert len(M._optimizer_state_restore_callbacks) == 1
    M.restore_optimizer_state()
    await_restore()
    assert M._optimizer_state_restore_callbacks == [] and torch.equal(opt.state[w]["exp_avg"], before)
    assert M.staged_cpu_view_for(before) is None
    M.set_delay_stash(True)
    assert M.stash_embedding_weights(torch.nn.Linear(2, 2)) is None and M._pending_stash_callbacks == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_threaded_calls_name_cuda_on_cpu():
    with pytest.raises(RuntimeError, match="needs CUDA"):
        M.restore_embedding_weights_threaded()
    with pytest.raises(RuntimeError, match="needs CUDA"):
        M.stash_optimizer_state_threaded(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_round_trip_frees_and_restores():
    M.set_streams(torch.cuda.Stream(), torch.cuda.Stream())
    w = torch.nn.Parameter(torch.randn(1024, 1024, device="cuda"))
    opt = torch.optim.Adam([w])
    w.grad = torch.ones_like(w)
    opt.step()
    exp_avg = opt.state[w]["exp_avg"]
    expected = exp_avg.clone().cpu()
    storage = exp_avg.untyped_storage()
    await_restore, restore = M.stash_optimizer_state(opt)
    torch.cuda.synchronize()
    assert storage.size() == 0 and opt.state[w]["exp_avg"].device.type == "cpu"
    M.restore_optimizer_state()
    await_restore()
    torch.cuda.synchronize()
    assert opt.state[w]["exp_avg"].is_cuda and torch.equal(opt.state[w]["exp_avg"].cpu(), expected)
