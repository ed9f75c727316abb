"""fx tracing that finds, for each sharded module, how its call arguments are computed from the batch.

The model is traced with the sharded modules as leaves. For a ``call_module`` node of a sharded module,
each argument is walked back to the graph's input (the batch): attribute reads, item reads, constants and
(with ``pipeline_postproc``) calls of non-sharded modules whose own arguments come from the batch. The walk
gives an ``ArgInfo`` per argument; an argument any other expression produces (an arithmetic op, a method
call on the KJT, the output of another sharded module, ...) makes the module not pipelineable, and the
helper records the expression so the pipeline can say why.
"""

import builtins
import operator
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import fx, nn

from recsys_lib.distributed.train_pipeline.pipeline_context import TrainPipelineContext
from recsys_lib.distributed.train_pipeline.postproc import PipelinedPostproc
from recsys_lib.distributed.train_pipeline.types import ArgInfo, BaseArgInfoStep, CallArgs
from recsys_lib.distributed._core.sharder import ShardedModule


class NoopArgInfoStep(BaseArgInfoStep):
    """The value itself."""

    def process(self, arg: Any) -> Any:
        return arg


class GetAttrArgInfoStep(BaseArgInfoStep):
    """``value.<attr_name>``."""

    def __init__(self, attr_name: str) -> None:
        self.attr_name = attr_name

    def process(self, arg: Any) -> Any:
        return getattr(arg, self.attr_name)

    def __repr__(self) -> str:
        return f"GetAttr({self.attr_name!r})"


class GetItemArgInfoStep(BaseArgInfoStep):
    """``value[item_index]``."""

    def __init__(self, item_index: Union[str, int]) -> None:
        self.item_index = item_index

    def process(self, arg: Any) -> Any:
        return arg[self.item_index]

    def __repr__(self) -> str:
        return f"GetItem({self.item_index!r})"


class PostprocArgInfoStep(BaseArgInfoStep):
    """The output of a pipelined postproc module called on the batch."""

    def __init__(self, postproc_module: PipelinedPostproc) -> None:
        self.postproc_module = postproc_module

    def process(self, arg: Any) -> Any:
        return self.postproc_module(arg)


class ScalarArgInfoStep(BaseArgInfoStep):
    """A constant (the batch is ignored)."""

    def __init__(self, value: object) -> None:
        self.value = value

    def process(self, _arg: Any) -> Any:
        return self.value


class ListArgInfoStep(BaseArgInfoStep):
    """A list whose elements are ``ArgInfo`` s (rebuilt from the batch) or constants."""

    def __init__(self, value: List[object]) -> None:
        self.value = value

    def process(self, arg: Any) -> Any:
        return [v.process_steps(arg) if isinstance(v, ArgInfo) else v for v in self.value]


class DictArgInfoStep(BaseArgInfoStep):
    """A dict whose values are ``ArgInfo`` s (rebuilt from the batch) or constants."""

    def __init__(self, value: Dict[str, object]) -> None:
        self.value = value

    def process(self, arg: Any) -> Any:
        return {k: v.process_steps(arg) if isinstance(v, ArgInfo) else v for k, v in self.value.items()}


class ArgInfoStepFactory:
    """Short constructors of the steps."""

    @staticmethod
    def noop() -> NoopArgInfoStep:
        return NoopArgInfoStep()

    @staticmethod
    def get_attr(name: str) -> GetAttrArgInfoStep:
        return GetAttrArgInfoStep(name)

    @staticmethod
    def get_item(index: Union[str, int]) -> GetItemArgInfoStep:
        return GetItemArgInfoStep(index)

    @staticmethod
    def postproc(pipelined_postproc_module: PipelinedPostproc) -> PostprocArgInfoStep:
        return PostprocArgInfoStep(pipelined_postproc_module)

    @staticmethod
    def from_scalar(value: object) -> ScalarArgInfoStep:
        return ScalarArgInfoStep(value)

    @staticmethod
    def from_list(value: List[object]) -> ListArgInfoStep:
        return ListArgInfoStep(value)

    @staticmethod
    def from_dict(value: Dict[str, object]) -> DictArgInfoStep:
        return DictArgInfoStep(value)


def describe_arg(arg: Any) -> str:
    """The Python expression an fx argument stands for (``batch.sparse_features``, ``mul(...)``)."""
    if not isinstance(arg, fx.Node):
        return repr(arg)
    if arg.op == "placeholder":
        return str(arg.target)
    if arg.op == "call_function" and arg.target is builtins.getattr:
        return f"{describe_arg(arg.args[0])}.{arg.args[1]}"
    if arg.op == "call_function" and arg.target is operator.getitem:
        return f"{describe_arg(arg.args[0])}[{arg.args[1]!r}]"
    if arg.op == "call_method":
        return f"{describe_arg(arg.args[0])}.{arg.target}(...)"
    if arg.op == "call_module":
        return f"{arg.target}(...)"
    return f"{getattr(arg.target, '__name__', arg.target)}(...)"


def _check_args_for_call_module(node: fx.Node) -> bool:
    """True when some argument of ``node`` (transitively) is the output of a ``call_module`` node."""
    for arg in list(node.args) + list(node.kwargs.values()):
        if isinstance(arg, fx.Node) and (arg.op == "call_module" or _check_args_for_call_module(arg)):
            return True
    return False


def _check_postproc_pipelineable(module: nn.Module) -> bool:
    """A postproc must not hold sharded modules (those are pipelined on their own)."""
    return not any(isinstance(m, ShardedModule) for m in module.modules())


def _find_postproc_module_recursive(module: nn.Module, postproc_module_fqn: str) -> Optional[nn.Module]:
    try:
        return module.get_submodule(postproc_module_fqn)
    except AttributeError:
        return None


class NodeArgsHelper:
    """Turns a sharded module's ``call_module`` node into ``CallArgs`` (see the module docstring).

    Args:
        model: the traced (unwrapped) model; pipelined postprocs are swapped into it.
        context: the context postprocs start with.
        pipeline_postproc: whether non-sharded modules on the way may be run ahead as postprocs.
        default_stream / dist_stream: handed to the postprocs (CUDA), or None.
    """

    def __init__(
        self,
        model: nn.Module,
        context: TrainPipelineContext,
        pipeline_postproc: bool,
        default_stream: Optional[torch.Stream] = None,
        dist_stream: Optional[torch.Stream] = None,
    ) -> None:
        self._model = model
        self._context = context
        self._pipeline_postproc = pipeline_postproc
        self._default_stream = default_stream
        self._dist_stream = dist_stream
        self._pipelined_postprocs: Dict[str, PipelinedPostproc] = {}
        self.last_failure: Optional[str] = None  # the expression the last get_node_args could not rebuild

    @property
    def pipelined_postprocs(self) -> List[PipelinedPostproc]:
        return list(self._pipelined_postprocs.values())

    def _swap_postproc_module_recursive(self, fqn: str, args: CallArgs) -> PipelinedPostproc:
        if fqn in self._pipelined_postprocs:
            return self._pipelined_postprocs[fqn]
        parent_name, _, child = fqn.rpartition(".")
        parent = self._model.get_submodule(parent_name) if parent_name else self._model
        original = getattr(parent, child)
        wrapped = PipelinedPostproc(original, fqn, args, self._context, self._default_stream, self._dist_stream)
        setattr(parent, child, wrapped)
        self._pipelined_postprocs[fqn] = wrapped
        return wrapped

    def _handle_constant(self, arg: Any) -> Optional[ArgInfo]:
        return ArgInfo([ScalarArgInfoStep(arg)])

    def _handle_collection_element(self, arg: Any) -> Optional[ArgInfo]:
        if isinstance(arg, (list, tuple)):
            infos = [self._get_node_args_helper_inner(a) for a in arg]
            return None if any(i is None for i in infos) else ArgInfo([ListArgInfoStep(list(infos))])
        infos_d = {k: self._get_node_args_helper_inner(v) for k, v in arg.items()}
        return None if any(i is None for i in infos_d.values()) else ArgInfo([DictArgInfoStep(dict(infos_d))])

    def _handle_placeholder(self, node: fx.Node, steps: List[BaseArgInfoStep]) -> Optional[ArgInfo]:
        first = next(n for n in node.graph.nodes if n.op == "placeholder")
        if node is not first:
            return None
        return ArgInfo(steps if steps else [NoopArgInfoStep()])

    def _handle_module(self, node: fx.Node, steps: List[BaseArgInfoStep]) -> Optional[ArgInfo]:
        if not self._pipeline_postproc:
            return None
        module = _find_postproc_module_recursive(self._model, str(node.target))
        if module is None or not _check_postproc_pipelineable(module):
            return None
        args = [self._get_node_args_helper_inner(a) for a in node.args]
        kwargs = {k: self._get_node_args_helper_inner(v) for k, v in node.kwargs.items()}
        if any(a is None for a in args) or any(v is None for v in kwargs.values()):
            return None
        postproc = self._swap_postproc_module_recursive(str(node.target), CallArgs(list(args), dict(kwargs)))
        return ArgInfo([PostprocArgInfoStep(postproc)] + steps)

    def _get_node_args_helper_inner(self, arg: Any) -> Optional[ArgInfo]:
        if isinstance(arg, (list, tuple, dict)):
            return self._handle_collection_element(arg)
        if not isinstance(arg, fx.Node):
            return self._handle_constant(arg)
        steps: List[BaseArgInfoStep] = []
        node = arg
        while True:
            if node.op == "placeholder":
                return self._handle_placeholder(node, steps)
            if node.op == "call_function" and node.target in (builtins.getattr, operator.getitem):
                step = GetAttrArgInfoStep(node.args[1]) if node.target is builtins.getattr else GetItemArgInfoStep(node.args[1])
                steps.insert(0, step)
                node = node.args[0]
                continue
            if node.op == "call_module":
                return self._handle_module(node, steps)
            return None

    def _get_node_args_helper(self, arguments: Any, num_found: int) -> Tuple[List[ArgInfo], int]:
        infos: List[ArgInfo] = []
        for arg in arguments:
            info = self._get_node_args_helper_inner(arg)
            if info is None:
                if self.last_failure is None:
                    self.last_failure = describe_arg(arg)
                continue
            num_found += 1
            infos.append(info)
        return infos, num_found

    def get_node_args(self, node: fx.Node, for_postproc_module: bool = False) -> Tuple[CallArgs, int]:
        """``(CallArgs, number of arguments rebuilt)``; all rebuilt ⇔ ``num_found == len(args) + len(kwargs)``.

        ``for_postproc_module`` (TorchRec: route ``None`` constants through the constant handling, which may
        refuse them) changes nothing here: every constant, ``None`` included, is kept as a scalar step.
        """
        self.last_failure = None
        args, num_found = self._get_node_args_helper(node.args, 0)
        kw_infos, num_found = self._get_node_args_helper(node.kwargs.values(), num_found)
        kwargs = dict(zip(node.kwargs.keys(), kw_infos)) if len(kw_infos) == len(node.kwargs) else {}
        return CallArgs(args, kwargs), num_found


def _get_leaf_module_names(model: nn.Module) -> List[str]:
    """Names of the modules fx must not trace into: sharded modules and modules marked not fx-traceable."""
    names: List[str] = []
    for name, module in model.named_modules():
        if isinstance(module, ShardedModule) or getattr(module, "_is_pytorch_fx_traceable", True) is False:
            names.append(name)
    return names


class Tracer(fx.Tracer):
    """fx tracer with sharded modules (and ``leaf_modules``) kept as leaves; buffers are not proxied.

    Args:
        leaf_modules: fully qualified names to keep as leaves.
        extend_leaf_fqn: also treat every module *under* a leaf name as a leaf.
    """

    proxy_buffer_attributes = False

    def __init__(self, leaf_modules: Optional[List[str]] = None, extend_leaf_fqn: bool = False) -> None:
        super().__init__()
        self._leaf_modules: List[str] = leaf_modules if leaf_modules is not None else []
        self._extend_leaf_fqn = extend_leaf_fqn

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(m, (ShardedModule, PipelinedPostproc)) or module_qualified_name in self._leaf_modules:
            return True
        if self._extend_leaf_fqn and self.is_extended_leaf_modules(m, module_qualified_name):
            return True
        return super().is_leaf_module(m, module_qualified_name)

    def is_extended_leaf_modules(self, m: nn.Module, module_qualified_name: str) -> bool:
        return any(module_qualified_name.startswith(leaf + ".") for leaf in self._leaf_modules)
