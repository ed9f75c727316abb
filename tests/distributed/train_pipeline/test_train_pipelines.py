"""Every train pipeline vs the plain loop on a sharded DLRM-like model (2 gloo ranks, one process group).

The model (``_pipeline_model.TinyDLRM``): two EBCs fed from one KJT, an EC, a feature-processed EBC, dense
layers; tables table-, row- and column-wise; fused SGD tables + Adagrad dense. Each case builds a fresh DMP
from the same seed, runs the pipeline until ``StopIteration`` and compares losses and every local weight
with the plain loop (``zero_grad; loss.backward(); step``): exactly equal for the synchronous pipelines.
All cases run in one spawned group (process start-up is paid once); the parent asserts per case.
"""

import warnings

import pytest
import torch

from recsys_lib.distributed.test_utils import run_multiprocess
from tests.distributed.train_pipeline._pipeline_model import make_batches, make_dmp, plain_loop, weights

STEPS = 5
SYNC_PIPELINES = [
    "TrainPipelineBase", "TrainPipelineSparseDist", "TrainPipelineSparseDistLite", "TrainPipelineFusedSparseDist",
    "PrefetchTrainPipelineSparseDist", "TrainPipelineSemiSync(start_batch=100)",
    "TrainPipelineSparseDist(enqueue_batch_after_forward=True)", "TrainPipelineSparseDistCompAutograd(first step)",
]


def _pipeline(name, dmp, opt):
    from recsys_lib.distributed import train_pipeline as tp

    cpu = torch.device("cpu")
    table = {
        "TrainPipelineSemiSync(start_batch=100)": lambda: tp.train_pipelines.TrainPipelineSemiSync(dmp, opt, cpu, start_batch=100),
        "TrainPipelineSemiSync(start_batch=0)": lambda: tp.train_pipelines.TrainPipelineSemiSync(dmp, opt, cpu, start_batch=0),
        "TrainPipelineSparseDist(enqueue_batch_after_forward=True)":
            lambda: tp.TrainPipelineSparseDist(dmp, opt, cpu, enqueue_batch_after_forward=True),
        "TrainPipelineSparseDistCompAutograd(first step)": lambda: tp.TrainPipelineSparseDistCompAutograd(dmp, opt, cpu),
        "TrainPipelinePT2(eager)": lambda: tp.TrainPipelinePT2(
            dmp, opt, cpu, compile_configs=tp.TorchCompileConfig(backend="eager", compile_on_iter=2)),
        "TrainPipelineSparseDistLite": lambda: tp.train_pipelines.TrainPipelineSparseDistLite(dmp, opt, cpu),
    }
    if name in table:
        return table[name]()
    return getattr(tp.train_pipelines, name)(dmp, opt, cpu)


def _drain(pipeline, it):
    outputs = []
    while True:
        try:
            outputs.append(pipeline.progress(it))
        except StopIteration:
            return outputs


def _compare(ref_losses, ref_weights, losses, got_weights):
    same_losses = len(ref_losses) == len(losses) and all(torch.equal(a, b) for a, b in zip(ref_losses, losses))
    bad = [k for k in ref_weights if not torch.equal(ref_weights[k], got_weights[k])]
    return {"losses": same_losses, "weights_differ": bad, "n": len(losses)}


def _loss_recorder(dmp):
    """Records each forward's loss (the pipelines return only the output)."""
    losses = []
    inner = dmp.module

    def hook(module, inputs, out):
        losses.append(out[0].detach().clone())

    handle = inner.register_forward_hook(hook)
    return losses, handle


def _pt2_case(rank, world_size):
    batches = make_batches(rank, STEPS)
    dmp, opt = make_dmp()
    ref_losses = plain_loop(dmp, opt, batches)
    ref_weights = weights(dmp)
    dmp, opt = make_dmp()
    losses, handle = _loss_recorder(dmp)
    _drain(_pipeline("TrainPipelinePT2(eager)", dmp, opt), iter(batches))
    return _compare(ref_losses, ref_weights, losses, weights(dmp))


@pytest.mark.slow  # torch.compile (dynamo, eager backend) of the sharded model: minutes on 2 busy cores
@pytest.mark.dist
def test_pt2_pipeline_compiles_and_equals_plain_loop():
    for r in run_multiprocess(_pt2_case, 2, timeout_s=900):
        assert r["losses"] and r["weights_differ"] == [], r


def _cases(rank, world_size):
    import torch.distributed as dist  # noqa: F401

    from recsys_lib.distributed.train_pipeline import (
        EvalPipelineSparseDist, GradientAccumulationConfig, GradientAccumulationWrapper, PipelineStage,
        SparseDataDistUtil, StagedTrainPipeline, TrainPipelineSparseDist,
    )
    from recsys_lib.distributed.train_pipeline.train_pipelines import TrainPipelineFusedSparseDist

    torch.use_deterministic_algorithms(False)
    results = {}
    batches = make_batches(rank, STEPS)
    dmp, opt = make_dmp()
    ref_losses = plain_loop(dmp, opt, batches)
    ref_weights = weights(dmp)

    for name in SYNC_PIPELINES:
        dmp, opt = make_dmp()
        losses, handle = _loss_recorder(dmp)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pipeline = _pipeline(name, dmp, opt)
            if name.startswith("TrainPipelineSparseDistCompAutograd"):
                # compiled autograd starts at step 2 (TorchRec's schedule); step 1 runs eagerly.
                pipeline.progress(iter(batches[:1]))
                results[name] = _compare(ref_losses[:1], None or {}, losses, {})
                continue
            _drain(pipeline, iter(batches))
        handle.remove()
        results[name] = _compare(ref_losses, ref_weights, losses, weights(dmp))
        results[name]["warnings"] = [str(w.message) for w in caught if "pipelined" in str(w.message)]
        results[name]["pipelined"] = getattr(pipeline, "num_pipelined_modules", None)

    # Uneven data: rank 1 has one batch fewer; every rank stops after STEPS-1 steps, no hang.
    short = batches[: STEPS - 1] if rank == 1 else batches
    dmp, opt = make_dmp()
    losses, handle = _loss_recorder(dmp)
    _drain(TrainPipelineSparseDist(dmp, opt, torch.device("cpu")), iter(short))
    ref_d, ref_o = make_dmp()
    results["uneven"] = _compare(plain_loop(ref_d, ref_o, batches[: STEPS - 1]), weights(ref_d), losses, weights(dmp))

    # Very uneven, the other rank short, batch read after the forward: rank 0 has 2 batches, rank 1 all;
    # the batch read ahead by rank 1 is dropped on both ranks (end-of-data agreed one step late), 2 steps each.
    short = batches[:2] if rank == 0 else batches
    dmp, opt = make_dmp()
    losses, handle = _loss_recorder(dmp)
    _drain(TrainPipelineSparseDist(dmp, opt, torch.device("cpu"), enqueue_batch_after_forward=True), iter(short))
    ref_d, ref_o = make_dmp()
    results["uneven_2"] = _compare(plain_loop(ref_d, ref_o, batches[:2]), weights(ref_d), losses, weights(dmp))

    # Epoch restart: two iterators, one after the other == one plain loop over all batches.
    dmp, opt = make_dmp()
    losses, handle = _loss_recorder(dmp)
    pipeline = TrainPipelineSparseDist(dmp, opt, torch.device("cpu"))
    _drain(pipeline, iter(batches[:2]))
    _drain(pipeline, iter(batches[2:]))
    results["epochs"] = _compare(ref_losses, ref_weights, losses, weights(dmp))

    # Detach in the middle, run the model directly on nothing, attach again: same result.
    dmp, opt = make_dmp()
    losses, handle = _loss_recorder(dmp)
    pipeline = TrainPipelineSparseDist(dmp, opt, torch.device("cpu"))
    it = iter(batches)
    pipeline.progress(it)
    detached = pipeline.detach()
    recorded = len(losses)
    with torch.no_grad():  # the plain model runs directly while batches are in flight in the pipeline
        detached.eval()
        detached(batches[0])
        detached.train()
    del losses[recorded:]
    pipeline.attach()
    _drain(pipeline, it)
    handle.remove()
    results["detach_attach"] = _compare(ref_losses, ref_weights, losses, weights(dmp))

    # Eval pipeline: outputs == the model's eval forward, batch by batch.
    dmp, opt = make_dmp()
    dmp.eval()
    with torch.no_grad():
        direct = [dmp(b)[1] for b in batches]
        got = _drain(EvalPipelineSparseDist(dmp, opt, torch.device("cpu")), iter(batches))
    results["eval"] = len(got) == len(direct) and all(torch.equal(a, b) for a, b in zip(direct, got))

    # Forward only in eval mode: the fused eval pipeline and TrainPipelineSparseDist give the eval forward's
    # outputs and leave every weight as it was.
    from recsys_lib.distributed.train_pipeline.train_pipelines import EvalPipelineFusedSparseDist

    dmp, opt = make_dmp()
    dmp.eval()
    before = weights(dmp)
    fused = _drain(EvalPipelineFusedSparseDist(dmp, opt, torch.device("cpu")), iter(batches))
    sparse = _drain(TrainPipelineSparseDist(dmp, opt, torch.device("cpu")), iter(batches))
    results["eval_mode"] = (
        all(torch.equal(a, b) for a, b in zip(direct, fused)) and all(torch.equal(a, b) for a, b in zip(direct, sparse))
        and len(fused) == len(sparse) == STEPS and all(torch.equal(before[k], v) for k, v in weights(dmp).items())
    )

    # Backward injection: a hook at the over arch runs once per training step.
    from recsys_lib.distributed.train_pipeline.backward_injection import FirstGradTensorFinder, InjectionSite

    dmp, opt = make_dmp()
    pipeline = TrainPipelineSparseDist(dmp, opt, torch.device("cpu"))
    calls = []
    pipeline.register_backward_hook(InjectionSite("over", FirstGradTensorFinder()), lambda p: calls.append(p))
    _drain(pipeline, iter(batches))
    results["backward_hook_calls"] = len(calls) == STEPS and all(c is pipeline for c in calls)

    # Staged pipeline with the sparse-data-dist stage; the caller runs the model.
    dmp, opt = make_dmp()
    sdd = SparseDataDistUtil(dmp, data_dist_stream=None)
    staged = StagedTrainPipeline([
        PipelineStage("to_device", lambda b: b.to(torch.device("cpu")), stream=None),
        PipelineStage("sdd", sdd.start_sparse_data_dist, stream=None, fill_callback=sdd.wait_sdd_fill_callback,
                      data_exhausted_callback=sdd.data_exhausted_callback),
    ])
    it, losses = iter(batches), []
    while (batch := staged.progress(it)) is not None:
        opt.zero_grad()
        loss, _ = dmp(batch)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    results["staged"] = _compare(ref_losses, ref_weights, losses, weights(dmp))

    # Gradient accumulation over 2 micro-batches (DDP no_sync between) == a plain loop stepping every 2nd batch.
    ga_batches = batches[:4]
    ref_d, ref_o = make_dmp()
    for i, b in enumerate(ga_batches):
        if i % 2 == 0:
            ref_o.zero_grad()
        ref_d(b)[0].backward()
        if i % 2 == 1:
            ref_o.step()
    dmp, opt = make_dmp()
    ga = GradientAccumulationWrapper(TrainPipelineBase_(dmp, opt), opt, dmp, GradientAccumulationConfig(True, 2, 1))
    _drain(ga, iter(ga_batches))
    results["grad_accum"] = (weights(ref_d), weights(dmp))

    # Semi-sync from batch 0: batch 1 is looked up in the tables of before step 0's update, while the dense
    # layers it meets are those after step 0 (the docs' promise), checked on a hybrid of two plain models.
    dmp, opt = make_dmp()
    losses, handle = _loss_recorder(dmp)
    _drain(_pipeline("TrainPipelineSemiSync(start_batch=0)", dmp, opt), iter(batches[:3]))
    stale, _ = make_dmp()
    stepped, stepped_opt = make_dmp()
    plain_loop(stepped, stepped_opt, batches[:1])
    dense_names = ("dense.", "over.")
    fresh = dict(stepped.named_parameters())
    with torch.no_grad():
        for n, p in stale.named_parameters():
            if any(d in n for d in dense_names):
                p.copy_(fresh[n])
        expected_1 = stale(batches[1])[0]
    results["semi_sync"] = (ref_losses[0], losses[0], expected_1, losses[1], ref_losses[1], len(losses))
    handle.remove()
    # With stash_gradients, semi-sync steps apply the previous step's dense gradients: the first semi-sync step
    # applies none, so the dense weights after step 0 (synchronous) and step 1 are the same.
    dmp, opt = make_dmp()
    from recsys_lib.distributed.train_pipeline.train_pipelines import TrainPipelineSemiSync

    stash = TrainPipelineSemiSync(dmp, opt, torch.device("cpu"), start_batch=1, stash_gradients=True)
    it = iter(batches[:3])
    stash.progress(it)
    after_0 = {k: v for k, v in weights(dmp).items() if k.startswith(("over", "dense"))}
    stash.progress(it)
    after_1 = {k: v for k, v in weights(dmp).items() if k.startswith(("over", "dense"))}
    results["semi_sync_stash"] = all(torch.equal(after_0[k], after_1[k]) for k in after_0) and len(after_0) == 4

    # A module whose input is computed by a method call: warned by default, raised with strict=True.
    dmp, opt = make_dmp(unpipelineable=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipeline = TrainPipelineSparseDist(dmp, opt, torch.device("cpu"))
        _drain(pipeline, iter(batches[:2]))
    results["unpipelineable_warning"] = [str(w.message) for w in caught if "cannot be pipelined" in str(w.message)]
    results["unpipelineable_count"] = pipeline.num_pipelined_modules
    dmp, opt = make_dmp(unpipelineable=True)
    try:
        TrainPipelineFusedSparseDist(dmp, opt, torch.device("cpu"), strict=True).progress(iter(batches[:2]))
        results["strict"] = "no error"
    except RuntimeError as e:
        results["strict"] = str(e)
    return results


def TrainPipelineBase_(dmp, opt):
    from recsys_lib.distributed.train_pipeline import TrainPipelineBase

    return TrainPipelineBase(dmp, opt, torch.device("cpu"))


@pytest.fixture(scope="module")
def results():
    return run_multiprocess(_cases, 2, timeout_s=600)


@pytest.mark.dist
@pytest.mark.parametrize("name", SYNC_PIPELINES)
def test_synchronous_pipeline_equals_plain_loop(results, name):
    for rank_results in results:
        r = rank_results[name]
        assert r["losses"], (name, r)
        assert r["weights_differ"] == [], (name, r)
        assert r.get("warnings", []) == [], (name, r)
        if r.get("pipelined") is not None:
            assert r["pipelined"] == 4, (name, r)  # ebc_a, ebc_b, ec, fp


@pytest.mark.dist
@pytest.mark.parametrize("case", ["uneven", "uneven_2", "epochs", "detach_attach", "staged"])
def test_pipeline_flows_equal_plain_loop(results, case):
    for rank_results in results:
        r = rank_results[case]
        assert r["losses"] and r["weights_differ"] == [], (case, r)
    if case == "uneven":
        assert [r["uneven"]["n"] for r in results] == [STEPS - 1, STEPS - 1]
    if case == "uneven_2":
        assert [r["uneven_2"]["n"] for r in results] == [2, 2]


@pytest.mark.dist
def test_eval_pipeline_outputs_equal_eval_forward(results):
    assert all(r["eval"] for r in results)
    assert all(r["eval_mode"] for r in results)


@pytest.mark.dist
def test_backward_hook_and_semi_sync_gradient_stash(results):
    assert all(r["backward_hook_calls"] for r in results)
    assert all(r["semi_sync_stash"] for r in results)


@pytest.mark.dist
def test_unpipelineable_module_is_named(results):
    for r in results:
        (message,) = r["unpipelineable_warning"]
        assert "ebc_b" in message and "batch.sparse_features.permute(...)" in message, message
        assert r["unpipelineable_count"] == 3
        assert "ebc_b" in r["strict"] and "cannot be pipelined" in r["strict"], r["strict"]


@pytest.mark.dist
def test_gradient_accumulation_equals_stepping_every_second_batch(results):
    for r in results:
        ref, got = r["grad_accum"]
        assert sorted(ref) == sorted(got)
        for k in ref:
            # DDP all-reduces the accumulated sum once instead of each micro-batch's gradient: rounding differs.
            torch.testing.assert_close(got[k], ref[k], msg=k)


@pytest.mark.dist
def test_semi_sync_looks_up_one_step_stale(results):
    for r in results:
        plain_0, semi_0, expected_1, semi_1, plain_1, n = r["semi_sync"]
        assert n == 3
        assert torch.equal(semi_0, plain_0)
        torch.testing.assert_close(semi_1, expected_1)
        assert not torch.equal(semi_1, plain_1)  # the stale lookup is visible
