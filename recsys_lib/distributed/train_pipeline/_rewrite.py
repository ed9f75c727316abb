"""Rewrite a model for pipelining: swap each pipelineable sharded module's forward for a pipelined one.

Which modules can be pipelined is read from an fx trace (``tracing.py``). A sharded module that cannot
(its input is not rebuilt from the batch alone, it is called more than once, it is not reached by the
trace, or tracing failed) keeps its own forward and is reported with the reason and input expression.
"""

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

import torch
from torch import nn

from recsys_lib.distributed.model_parallel import DistributedModelParallel
from recsys_lib.distributed.train_pipeline.pipeline_context import TrainPipelineContext
from recsys_lib.distributed.train_pipeline.postproc import PipelinedPostproc
from recsys_lib.distributed.train_pipeline.runtime_forwards import BaseForward, KJTAllToAllForward, PipelinedForward
from recsys_lib.distributed.train_pipeline.tracing import NodeArgsHelper, Tracer, _get_leaf_module_names
from recsys_lib.distributed._core.sharder import ShardedModule


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model under ``DistributedModelParallel`` and ``DistributedDataParallel`` wrappers."""
    if isinstance(model, DistributedModelParallel):
        model = model.module
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    return model


@dataclass
class RewriteResult:
    """What ``rewrite_model`` did.

    Attributes:
        pipelined_modules: sharded modules now running pipelined forwards (graph order).
        original_forwards: their own ``forward`` s, to restore on detach.
        pipelined_postprocs: non-sharded modules wrapped to run ahead.
        not_pipelined: module name → why it keeps its own forward (with the input expression).
    """

    pipelined_modules: List[ShardedModule] = field(default_factory=list)
    original_forwards: List[Callable[..., Any]] = field(default_factory=list)
    pipelined_postprocs: List[PipelinedPostproc] = field(default_factory=list)
    not_pipelined: Dict[str, str] = field(default_factory=dict)


def rewrite_model(
    model: nn.Module,
    context: TrainPipelineContext,
    dist_stream: Optional[torch.Stream],
    pipelined_forward: Type[BaseForward] = PipelinedForward,
    pipeline_postproc: bool = False,
    default_stream: Optional[torch.Stream] = None,
) -> RewriteResult:
    """Swaps forwards in place (see the module docstring); ``model`` may be wrapped by DMP/DDP."""
    inner = unwrap_model(model)
    sharded: Dict[str, ShardedModule] = {}
    for name, m in inner.named_modules():
        # A sharded module inside another (the EBC of a sharded FP-EBC) runs within its parent's stages.
        if isinstance(m, ShardedModule) and not any(name.startswith(outer + ".") for outer in sharded):
            sharded[name] = m
    result = RewriteResult()
    if not sharded:
        return result
    try:
        graph = Tracer(leaf_modules=_get_leaf_module_names(inner)).trace(inner)
    except Exception as e:  # noqa: BLE001 - any tracing failure is reported per module, with its message
        reason = f"fx tracing of {type(inner).__name__}.forward failed ({type(e).__name__}: {e})"
        result.not_pipelined = {name: reason for name in sharded}
        return result
    calls: Dict[str, List[Any]] = {}
    for node in graph.nodes:
        if node.op == "call_module" and node.target in sharded:
            calls.setdefault(str(node.target), []).append(node)
    helper = NodeArgsHelper(inner, context, pipeline_postproc, default_stream, dist_stream)
    for name in sharded:
        if name not in calls:
            result.not_pipelined[name] = "not called by the traced forward (unused, or inside a non-traced module)"
    for name, nodes in calls.items():
        if len(nodes) > 1:
            result.not_pipelined[name] = f"called {len(nodes)} times in one forward"
            continue
        node = nodes[0]
        args, num_found = helper.get_node_args(node)
        if num_found != len(node.args) + len(node.kwargs):
            result.not_pipelined[name] = (
                f"its input `{helper.last_failure}` is not computed from the batch by attribute/item reads"
                + ("" if pipeline_postproc else " (pipeline_postproc=False)")
            )
            continue
        module = sharded[name]
        result.original_forwards.append(module.forward)
        module.forward = pipelined_forward(name, args, module, context, dist_stream)
        result.pipelined_modules.append(module)
    result.pipelined_postprocs = helper.pipelined_postprocs
    return result


def warn_not_pipelined(not_pipelined: Dict[str, str], strict: bool) -> None:
    """One message naming every module left unpipelined; ``strict`` raises it instead of warning."""
    if not not_pipelined:
        return
    lines = "\n".join(f"  {name}: {why}" for name, why in sorted(not_pipelined.items()))
    message = f"{len(not_pipelined)} sharded module(s) cannot be pipelined and run their input dist in forward:\n{lines}"
    if strict:
        raise RuntimeError(message)
    warnings.warn(message, stacklevel=3)


def _rewrite_model(
    model: nn.Module,
    context: TrainPipelineContext,
    dist_stream: Optional[torch.Stream],
    batch: Optional[Any] = None,
    apply_jit: bool = False,
    pipelined_forward: Type[BaseForward] = PipelinedForward,
    pipeline_postproc: bool = False,
    default_stream: Optional[torch.Stream] = None,
) -> Tuple[List[ShardedModule], nn.Module, List[Callable[..., Any]], List[PipelinedPostproc], List[str]]:
    """TorchRec's entry point: ``(pipelined modules, model, original forwards, postprocs, names not pipelined)``.

    Warns, naming each sharded module that cannot be pipelined and why.
    """
    result = rewrite_model(model, context, dist_stream, pipelined_forward, pipeline_postproc, default_stream)
    warn_not_pipelined(result.not_pipelined, strict=False)
    if apply_jit:
        _jit_modules(unwrap_model(model), "_dmp_wrapped_module")
    return (
        result.pipelined_modules, model, result.original_forwards, result.pipelined_postprocs,
        sorted(result.not_pipelined),
    )


def _jit_modules(module: nn.Module, path: str, optional: bool = True) -> bool:
    """Scripts the children of ``module`` that hold no sharded module; True when every one scripted."""
    ok = True
    for name, child in list(module.named_children()):
        if any(isinstance(m, ShardedModule) for m in child.modules()):
            ok = _jit_modules(child, f"{path}.{name}", optional) and ok
            continue
        try:
            setattr(module, name, torch.jit.script(child))
        except Exception as e:  # noqa: BLE001
            if not optional:
                raise
            warnings.warn(f"apply_jit: {path}.{name} ({type(child).__name__}) kept in eager mode: {e}", stacklevel=2)
            ok = False
    return ok


def _pipeline_detach_model(
    model: nn.Module,
    pipelined_modules: List[ShardedModule],
    original_forwards: List[Callable[..., Any]],
    original_kjt_dist_forwards: List[Callable[..., Any]],
    pipelined_postprocs: List[PipelinedPostproc],
) -> None:
    """Undoes the rewrite: own forwards back on the modules, postproc wrappers swapped for their modules."""
    for module, forward in zip(pipelined_modules, original_forwards):
        module.forward = forward
    kjt_a2as = [a for m in pipelined_modules for a in _kjt_all_to_alls(m)]
    for a2a, forward in zip(kjt_a2as, original_kjt_dist_forwards):
        a2a.forward = forward
    inner = unwrap_model(model)
    for postproc in pipelined_postprocs:
        parent_name, _, child = postproc.fqn.rpartition(".")
        parent = inner.get_submodule(parent_name) if parent_name else inner
        setattr(parent, child, postproc.postproc_module)


def _kjt_all_to_alls(module: nn.Module) -> List[nn.Module]:
    from recsys_lib.distributed._dist.kjt import KJTAllToAll

    return [m for m in module.modules() if isinstance(m, KJTAllToAll)]


def _override_input_dist_forwards(pipelined_modules: List[ShardedModule]) -> List[Callable[..., Any]]:
    """Replaces the ``KJTAllToAll`` forwards inside the modules' input dists by ``KJTAllToAllForward`` s."""
    originals: List[Callable[..., Any]] = []
    for module in pipelined_modules:
        for a2a in _kjt_all_to_alls(module):
            originals.append(a2a.forward)
            a2a.forward = KJTAllToAllForward(a2a._pg, a2a._splits, a2a._stagger)
    return originals
