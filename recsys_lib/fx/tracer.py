"""``Tracer``/``symbolic_trace``: ``torch.fx`` tracing in which KJT/JT/KT constants become constructor calls.

Inside a traced ``forward`` the jagged types are proxyable (their metaclass records ``KeyedJaggedTensor(...)`` as a
``call_function`` node), so a graph may build, index and permute KJTs; the traced ``GraphModule`` can then be
``torch.jit.script``-ed because the classes are TorchScript classes.

Example::

    gm = symbolic_trace(model, leaf_modules=["IntNBitTableBatchedEmbeddingBagsCodegen"])
    scripted = torch.jit.script(gm)
"""

from typing import Any, Callable, Dict, List, Optional, Union

import torch
from torch.fx import _symbolic_trace
from torch.fx.graph import Graph
from torch.fx.node import Argument

from recsys_lib.fx._marker import fx_marker
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, KeyedTensor


def is_fx_tracing() -> bool:
    """True while ``torch.fx`` (or ``torch.export``) traces; always ``False`` inside TorchScript."""
    if not torch.jit.is_scripting():
        return _symbolic_trace._is_fx_tracing_flag
    return False


class Tracer(torch.fx.Tracer):
    """An fx tracer with two additions.

    Args:
        leaf_modules (Optional[List[str]]): class names of modules kept as single ``call_module`` nodes
            (e.g. FBGEMM table-batched embedding kernels, which TorchScript can compile but fx cannot trace).
    """

    def __init__(self, leaf_modules: Optional[List[str]] = None) -> None:
        # fx_marker calls stay single nodes wherever a traced forward calls them.
        super().__init__(autowrap_functions=(fx_marker,))
        self._leaf_modules: List[str] = leaf_modules if leaf_modules is not None else []

    def is_leaf_module(self, m: torch.nn.Module, module_qualified_name: str) -> bool:
        if type(m).__name__ in self._leaf_modules:
            return True
        return super().is_leaf_module(m, module_qualified_name)

    def trace(
        self,
        root: Union[torch.nn.Module, Callable[..., Any]],
        concrete_args: Optional[Dict[str, Any]] = None,
    ) -> Graph:
        return super().trace(root, concrete_args)

    def path_of_module(self, mod: torch.nn.Module) -> str:
        # Modules swapped in after construction (e.g. sharded ones) may be absent from the path cache: search.
        try:
            return super().path_of_module(mod)
        except NameError:
            for name, sub in self.root.named_modules():
                if sub is mod:
                    return name
            raise

    def create_arg(self, a: Any) -> Argument:
        """Concrete jagged objects met during tracing are re-created in the graph from their tensors."""
        if isinstance(a, KeyedJaggedTensor):
            kwargs = {
                "keys": a.keys(),
                "values": a.values(),
                "weights": a.weights_or_none(),
                "lengths": a.lengths_or_none(),
                "offsets": a.offsets_or_none(),
                "stride": a._stride,
                "stride_per_key_per_rank": a._stride_per_key_per_rank,
                "length_per_key": a.length_per_key_or_none(),
                "offset_per_key": a.offset_per_key_or_none(),
            }
            return self.create_node("call_function", KeyedJaggedTensor, (), self.create_arg(kwargs))
        if isinstance(a, JaggedTensor):
            kwargs = {
                "values": a.values(),
                "weights": a.weights_or_none(),
                "lengths": a.lengths_or_none(),
                "offsets": a.offsets_or_none(),
            }
            return self.create_node("call_function", JaggedTensor, (), self.create_arg(kwargs))
        if isinstance(a, KeyedTensor):
            kwargs = {
                "keys": a.keys(),
                "length_per_key": a.length_per_key(),
                "values": a.values(),
                "key_dim": a.key_dim(),
            }
            return self.create_node("call_function", KeyedTensor, (), self.create_arg(kwargs))
        if isinstance(a, torch.nn.Module):
            # a submodule handed to a wrapped function (e.g. a dict of feature processors): read it as an attribute
            return self.create_node("get_attr", self.path_of_module(a), (), {})
        return super().create_arg(a)


def symbolic_trace(
    root: Union[torch.nn.Module, Callable[..., Any]],
    concrete_args: Optional[Dict[str, Any]] = None,
    leaf_modules: Optional[List[str]] = None,
) -> torch.fx.GraphModule:
    """``torch.fx.symbolic_trace`` with :class:`Tracer` (jagged-type aware, optional leaf modules)."""
    tracer = Tracer(leaf_modules)
    graph = tracer.trace(root, concrete_args)
    name = root.__class__.__name__ if isinstance(root, torch.nn.Module) else root.__name__
    return torch.fx.GraphModule(tracer.root, graph, name)
