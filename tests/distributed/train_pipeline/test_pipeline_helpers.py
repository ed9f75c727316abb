"""Single-process checks of the pipeline helpers whose TorchRec signatures changed their behaviour."""

from concurrent.futures import Future

import pytest
import torch
from torch import nn

from recsys_lib.distributed.train_pipeline.pipeline_context import (
    EmbeddingTrainPipelineContext,
    PrefetchTrainPipelineContext,
)
from recsys_lib.distributed.train_pipeline.pipeline_stage import PipelineStage, SparseDataDistUtil
from recsys_lib.distributed.train_pipeline.postproc import PipelinedPostproc
from recsys_lib.distributed.train_pipeline.runtime_forwards import (
    EmbeddingPipelinedForward,
    InSyncEmbeddingPipelinedForward,
    PrefetchEmbeddingPipelinedForward,
)
from recsys_lib.distributed.train_pipeline.tracing import (
    ArgInfo,
    ArgInfoStepFactory,
    GetAttrArgInfoStep,
    GetItemArgInfoStep,
    ScalarArgInfoStep,
)
from recsys_lib.distributed.train_pipeline.types import CallArgs
from recsys_lib.distributed.train_pipeline.utils import FutureDeque
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedTensor


def deque_item(d, i):
    from collections import deque

    return deque.__getitem__(d, i)


def test_future_deque_resolves_on_index_and_pop():
    fut: Future = Future()
    fut.set_result(7)
    d = FutureDeque([1, fut])
    assert d[1] == 7 and deque_item(d, 1) == 7  # resolved and stored in place
    assert d.pop() == 7 and d.popleft() == 1 and len(d) == 0


def test_arg_info_step_factory_builds_working_steps():
    class B:
        x = {"k": [10, 20]}

    steps = [ArgInfoStepFactory.get_attr(name="x"), ArgInfoStepFactory.get_item(index="k"),
             ArgInfoStepFactory.get_item(index=1)]
    assert isinstance(steps[0], GetAttrArgInfoStep) and isinstance(steps[1], GetItemArgInfoStep)
    assert ArgInfo(steps).process_steps(B()) == B.x["k"][1]
    scalar = ArgInfoStepFactory.from_scalar(value=3)
    assert isinstance(scalar, ScalarArgInfoStep) and scalar.process(_arg=B()) == 3
    assert ArgInfoStepFactory.noop().process(5) == 5


def _fwd(cls, training=True):
    module = nn.Module()
    module.train(training)
    return cls("m", CallArgs([], {}), module, EmbeddingTrainPipelineContext(), None)


def test_detach_embeddings_detaches_in_place_and_records_both_ends():
    w = torch.randn(3, 2, requires_grad=True)
    kt = KeyedTensor(keys=["a"], length_per_key=[2], values=w * 2)
    fwd = _fwd(EmbeddingPipelinedForward)
    assert fwd.detach_embeddings(embeddings=kt, cur_stream=None) is None
    assert kt.values().is_leaf and kt.values().requires_grad
    ctx = fwd._context
    assert ctx.embedding_features == [[["a"]]] and ctx.detached_embedding_tensors[0][0] is kt.values()
    kt.values().sum().backward()
    ctx.embedding_tensors[0][0].backward(ctx.detached_embedding_tensors[0][0].grad)
    torch.testing.assert_close(w.grad, torch.full((3, 2), 2.0))  # the dense graph stopped; replayed by hand

    jt = JaggedTensor(values=w * 1.0, lengths=torch.tensor([1, 2]))
    fwd.detach_embeddings(embeddings={"f": jt}, cur_stream=None)
    assert jt.values().is_leaf and ctx.embedding_features[-1] == ["f"]

    kept = KeyedTensor(keys=["a"], length_per_key=[2], values=w * 2)
    before = kept.values()
    _fwd(InSyncEmbeddingPipelinedForward).detach_embeddings(embeddings=kept, cur_stream=None)
    assert kept.values() is before and not before.is_leaf


def test_prefetch_embedding_forward_starts_then_returns_the_lookup():
    calls = []

    class Module(nn.Module):
        def compute_and_output_dist(self, ctx, data):
            calls.append((ctx, data))
            return ("awaitable", data)

    ctx = PrefetchTrainPipelineContext()
    ctx.module_input_post_prefetch["m"] = "data0"
    ctx.module_contexts_post_prefetch["m"] = "ctx0"
    fwd = PrefetchEmbeddingPipelinedForward("m", CallArgs([], {}), Module(), ctx, None)
    assert fwd.compute_and_output_dist() is None and calls == [("ctx0", "data0")]
    assert fwd() == ("awaitable", "data0") and len(calls) == 1  # the call returns the started lookup
    ctx.module_input_post_prefetch["m"] = "data1"
    ctx.module_contexts_post_prefetch["m"] = "ctx1"
    assert fwd() == ("awaitable", "data1") and calls[-1] == ("ctx1", "data1")  # nothing started: runs now


def test_sparse_data_dist_util_stages():
    sdd = SparseDataDistUtil(nn.Linear(2, 2), data_dist_stream=None)
    stage = sdd.start_sparse_data_dist_stage()
    assert isinstance(stage, PipelineStage) and stage.name == "start_sparse_data_dist"
    assert stage.runnable == sdd.start_sparse_data_dist and stage.fill_callback == sdd.wait_sdd_fill_callback
    assert stage.data_exhausted_callback == sdd.data_exhausted_callback
    custom = sdd.start_sparse_data_dist_stage(name="s", runnable=len)
    assert custom.name == "s" and custom.runnable is len
    with pytest.raises(ValueError, match="embedding_lookup_stream"):
        sdd.start_embedding_lookup_stage()


def test_recursive_record_stream_is_static_and_skips_cpu_streams():
    # a CPU stream: nothing to record, nested containers walked without error
    PipelinedPostproc.recursive_record_stream([torch.ones(1), {"a": (torch.ones(2),)}], torch.cpu.current_stream())
