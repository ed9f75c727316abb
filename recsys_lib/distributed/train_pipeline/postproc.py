"""``PipelinedPostproc``: a non-sharded module between the batch and a sharded module, run ahead by the pipeline.

When a sharded module's input is computed by another module from the batch (``ebc(transform(batch.kjt))``),
the pipeline can still start the input dist early if it runs ``transform`` early too. The pipeline swaps
``transform`` for this wrapper: during the data-dist stage the wrapper computes ``transform``'s output for
the next batch and caches it in that batch's context; when the model's forward later calls it, it returns
the cached value. Parameters and state-dict keys are the wrapped module's (no extra prefix).
"""

from collections import OrderedDict
from typing import Any, Dict, Iterator, Optional, Set, Tuple

import torch
from torch import nn

from recsys_lib.distributed.train_pipeline.pipeline_context import TrainPipelineContext
from recsys_lib.distributed.train_pipeline.types import CallArgs


class NoOpStream:
    """A context manager standing in for ``torch.cuda.stream(stream)`` where there is no side stream (CPU)."""

    def __init__(self, stream: Optional[torch.Stream]) -> None:
        self._stream = stream

    def __enter__(self) -> "NoOpStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def _stream_context(stream: Optional[torch.Stream]) -> Any:
    if stream is not None and stream.device_type == "cuda":
        return torch.cuda.stream(stream)
    return NoOpStream(stream)


def _redirect_keys(state_dict: Dict[str, Any], prefix: str, *args: Any) -> None:
    inner = prefix + "_postproc_module."
    for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(inner)]:
        state_dict[inner + key[len(prefix):]] = state_dict.pop(key)


class PipelinedPostproc(nn.Module):
    """Wraps ``postproc_module`` (named ``fqn`` in the model) so the pipeline can run it one batch ahead.

    Args:
        postproc_module: the wrapped module.
        fqn: its fully qualified name in the model (the cache key).
        args: how to rebuild its arguments from the batch.
        context: the context of the batch being processed now.
        default_stream: the compute stream (CUDA), or None.
        dist_stream: the data-dist stream the early call runs on (CUDA), or None.
    """

    _FORCE_STATE_DICT_LOAD = True

    def __init__(
        self,
        postproc_module: nn.Module,
        fqn: str,
        args: CallArgs,
        context: TrainPipelineContext,
        default_stream: Optional[torch.Stream],
        dist_stream: Optional[torch.Stream],
    ) -> None:
        super().__init__()
        self._postproc_module = postproc_module
        self._fqn = fqn
        self._args = args
        self._context = context
        self._default_stream = default_stream
        self._dist_stream = dist_stream
        # A parent's load_state_dict reaches the wrapped module under "<prefix>_postproc_module.": map our
        # (prefix-free) keys onto that path before it looks.
        self._register_load_state_dict_pre_hook(_redirect_keys)

    @property
    def postproc_module(self) -> nn.Module:
        return self._postproc_module

    @property
    def fqn(self) -> str:
        return self._fqn

    @property
    def args(self) -> CallArgs:
        return self._args

    def set_context(self, context: TrainPipelineContext) -> None:
        self._context = context

    def get_context(self) -> TrainPipelineContext:
        return self._context

    def forward(self, *input: Any, **kwargs: Any) -> Any:
        """The cached output for the current batch; computed (from the batch, ``input[0]``) when absent."""
        results = self._context.postproc_fwd_results
        if self._fqn in results:
            return results[self._fqn]
        args, kw = self._args.build_args_kwargs(input[0] if input else None)
        with _stream_context(self._dist_stream):
            out = self._postproc_module(*args, **kw)
        results[self._fqn] = out
        return out

    # ---- the wrapped module's names, without this wrapper's own prefix ----

    def named_modules(
        self, memo: Optional[Set[nn.Module]] = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, nn.Module]]:
        yield from self._postproc_module.named_modules(memo, prefix, remove_duplicate)

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, nn.Parameter]]:
        yield from self._postproc_module.named_parameters(prefix, recurse, remove_duplicate)

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, torch.Tensor]]:
        yield from self._postproc_module.named_buffers(prefix, recurse, remove_duplicate)

    def state_dict(  # type: ignore[override]
        self, destination: Optional[Dict[str, Any]] = None, prefix: str = "", keep_vars: bool = False
    ) -> Dict[str, Any]:
        if destination is None:
            destination = OrderedDict()
        return self._postproc_module.state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)

    def load_state_dict(  # type: ignore[override]
        self, state_dict: "OrderedDict[str, torch.Tensor]", strict: bool = True
    ) -> Any:
        return self._postproc_module.load_state_dict(state_dict, strict=strict)

    @staticmethod
    def recursive_record_stream(res: Any, stream: torch.Stream) -> None:
        """Marks every tensor in ``res`` (nested lists/dicts/Multistreamables) as used on ``stream`` (CUDA)."""
        if getattr(stream, "device_type", None) != "cuda":  # torch.cpu.Stream has no device_type
            return
        if isinstance(res, torch.Tensor):
            res.record_stream(stream)
        elif isinstance(res, (list, tuple)):
            for v in res:
                PipelinedPostproc.recursive_record_stream(v, stream)
        elif isinstance(res, dict):
            for v in res.values():
                PipelinedPostproc.recursive_record_stream(v, stream)
        elif hasattr(res, "record_stream"):
            res.record_stream(stream)
