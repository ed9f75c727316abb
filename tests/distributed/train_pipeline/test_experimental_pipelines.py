"""experimental_pipelines on the sharded DLRM-like model (2 gloo ranks) vs independent references.

References: the plain loop (``zero_grad; loss.backward(); step``), the model's eval forward, and for the
backward-optimizer pipeline a plain loop whose ``optimizer.step()`` is called from a tensor hook on
``ebc_a``'s output (plain torch hooks), which is what that pipeline promises.
"""

import pytest
import torch

from recsys_lib.distributed.test_utils import run_multiprocess
from tests.distributed.train_pipeline._pipeline_model import make_batches, make_dmp, plain_loop, weights
from tests.distributed.train_pipeline.test_train_pipelines import _compare, _drain, _loss_recorder

STEPS = 5


def _run_train(cls, batches, **kw):
    dmp, opt = make_dmp()
    losses, handle = _loss_recorder(dmp)
    _drain(cls(dmp, opt, torch.device("cpu"), **kw), iter(batches))
    handle.remove()
    return losses, weights(dmp)


def _hooked_step_loop(batches):
    """Plain loop with optimizer.step() fired by the gradient of ebc_a's output."""
    dmp, opt = make_dmp()
    ebc_a = dmp.module.ebc_a

    def fwd_hook(module, inputs, out):
        if torch.is_grad_enabled():
            out.values().register_hook(lambda g: opt.step())  # attribute access waits a lazy output once

    handle = ebc_a.register_forward_hook(fwd_hook)
    losses = []
    for batch in batches:
        opt.zero_grad()
        loss, _ = dmp(batch)
        loss.backward()
        losses.append(loss.detach().clone())
    handle.remove()
    return losses, weights(dmp)


def _cases(rank, world_size):
    from recsys_lib.distributed.train_pipeline import experimental_pipelines as ep

    batches = make_batches(rank, STEPS)
    results = {}
    dmp, opt = make_dmp()
    ref_losses = plain_loop(dmp, opt, batches)
    ref_weights = weights(dmp)
    for name, cls, kw in [
        ("hybrid", ep.TrainEvalHybridPipelineBase, {}),
        ("threaded_copy", ep.TrainPipelineSparseDistT, {}),
        ("opt_stash", ep.TrainPipelineSparseDistOptStash, {"site_fqn": "ebc_a"}),
    ]:
        losses, got = _run_train(cls, batches, **kw)
        results[name] = _compare(ref_losses, ref_weights, losses, got)

    ref_l, ref_w = _hooked_step_loop(batches)
    dmp, opt = make_dmp()
    steps = []
    inner_step = opt.step
    opt.step = lambda *a, **k: (steps.append(1), inner_step(*a, **k))[1]
    losses, handle = _loss_recorder(dmp)
    _drain(ep.TrainPipelineSparseDistBwdOpt(dmp, opt, torch.device("cpu"), site_fqn="ebc_a"), iter(batches))
    handle.remove()
    results["bwd_opt"] = _compare(ref_l, ref_w, losses, weights(dmp))
    results["bwd_opt_steps"] = len(steps)

    # Hybrid: train for 3 steps, then eval: the eval outputs equal the eval forward, weights stay.
    dmp, opt = make_dmp()
    pipe = ep.TrainEvalHybridPipelineBase(dmp, opt, torch.device("cpu"))
    it = iter(batches)
    for _ in range(3):
        pipe.progress(it)
    dmp.eval()
    before = weights(dmp)
    got = _drain(pipe, it)
    pipe.detach()  # run the model directly; eval left the weights as they were
    with torch.no_grad():
        direct = [dmp(b)[1] for b in batches[3:]]
    results["hybrid_eval"] = (len(got) == 2 and all(torch.equal(a, b) for a, b in zip(direct, got))
                              and all(torch.equal(before[k], v) for k, v in weights(dmp).items()))

    for name, kw in [("cpu_sparse", {}), ("cpu_sparse_mt", {"multi_thread": True, "pipeline_depth": 3})]:
        dmp, opt = make_dmp()
        dmp.eval()
        with torch.no_grad():
            direct = [dmp(b)[1] for b in batches]
        got = _drain(ep.EvalPipelineCPUSparse(dmp, opt, torch.device("cpu"), **kw), iter(batches))
        results[name] = len(got) == STEPS and all(torch.equal(a, b) for a, b in zip(direct, got))

    for cls in (ep.TrainPipelineSparseDistEmbStash, ep.TrainPipelinePrefetchEMS):
        dmp, opt = make_dmp()
        try:
            cls(dmp, opt, torch.device("cpu"), site_fqn="over")
            results[cls.__name__] = "no error"
        except RuntimeError as e:
            results[cls.__name__] = str(e)
    return results


@pytest.fixture(scope="module")
def results():
    return run_multiprocess(_cases, 2, timeout_s=600)


@pytest.mark.dist
@pytest.mark.parametrize("name", ["hybrid", "threaded_copy", "opt_stash", "bwd_opt"])
def test_training_pipeline_equals_its_reference(results, name):
    for r in results:
        assert r[name]["losses"] and r[name]["weights_differ"] == [] and r[name]["n"] == STEPS, (name, r[name])


@pytest.mark.dist
def test_backward_optimizer_steps_once_per_batch(results):
    assert [r["bwd_opt_steps"] for r in results] == [STEPS, STEPS]


@pytest.mark.dist
@pytest.mark.parametrize("name", ["hybrid_eval", "cpu_sparse", "cpu_sparse_mt"])
def test_eval_outputs_equal_eval_forward(results, name):
    assert all(r[name] for r in results)


@pytest.mark.dist
@pytest.mark.parametrize("name", ["TrainPipelineSparseDistEmbStash", "TrainPipelinePrefetchEMS"])
def test_memory_stashing_pipelines_need_cuda(results, name):
    for r in results:
        assert "CUDA" in r[name] and "cpu" in r[name], r[name]
