"""Encapsulate embedding modules for ``torch.export`` and rebuild them afterwards.

::

    model, fqns = encapsulate_ir_modules(model, JsonSerializer)       # meta forwards + ir_metadata buffers
    ep = torch.export.export(model, (kjt,), preserve_module_call_signature=tuple(fqns), strict=False)
    eager = decapsulate_ir_modules(torch.export.unflatten(ep), JsonSerializer)   # eager modules back

The shape-only forwards call the custom ops below (namespace ``recsys_lib``; TorchRec's are ``torchrec::ir_*``):
each returns ``[empty (batch_size, d) for d in dims]`` on the device of the first given tensor.
"""

import logging
from typing import Any, Dict, List, Optional, Tuple, Type, Union

import torch
from torch import nn
from torch.export import Dim, ShapesCollection

from recsys_lib.ir.types import SerializerInterface
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

DEFAULT_SERIALIZER_CLS = SerializerInterface
logger: logging.Logger = logging.getLogger(__name__)

DIM = Any  # torch.export's Dim type (``torch.export.dynamic_shapes._Dim``)


def qualname(m: Union[nn.Module, Type[nn.Module]]) -> str:
    """``"<module>.<qualified class name>"`` of a module (or module class): the serializers' registry key."""
    cls = m if isinstance(m, type) else type(m)
    return cls.__module__ + "." + cls.__qualname__


def get_device(tensors: List[Optional[torch.Tensor]]) -> Optional[torch.device]:
    """The device of the first tensor in ``tensors`` that is not ``None`` (``None`` if there is none)."""
    for t in tensors:
        if t is not None:
            return t.device
    return None


def _empty_outputs(tensors: List[Optional[torch.Tensor]], batch_size: Any, dims: List[int],
                   dtype: torch.dtype = torch.float32) -> List[torch.Tensor]:
    device = get_device(tensors)
    return [torch.empty(batch_size, d, device=device, dtype=dtype) for d in dims]


@torch.library.custom_op("recsys_lib::ir_emb_lookup", mutates_args=())
def ir_emb_lookup_impl(tensors: List[Optional[torch.Tensor]], batch_size: int, dims: List[int]) -> List[torch.Tensor]:
    """Shape-only pooled lookup: ``[(batch_size, d) for d in dims]`` (uninitialised)."""
    logger.info("recsys_lib::ir_emb_lookup -> (%s, %s)", batch_size, dims)
    return _empty_outputs(tensors, batch_size, dims)


@torch.library.register_fake("recsys_lib::ir_emb_lookup")
def ir_emb_lookup_fake(tensors: List[Optional[torch.Tensor]], batch_size: int, dims: List[int]) -> List[torch.Tensor]:
    return _empty_outputs(tensors, batch_size, dims)


@torch.library.custom_op("recsys_lib::ir_kt_regroup", mutates_args=())
def ir_kt_regroup_impl(tensors: List[Optional[torch.Tensor]], batch_size: int, dims: List[int],
                       dtype: torch.dtype = torch.float32) -> List[torch.Tensor]:
    """Shape-only ``KTRegroupAsDict``: one ``(batch_size, d)`` tensor per output group."""
    logger.info("recsys_lib::ir_kt_regroup -> (%s, %s)", batch_size, dims)
    return _empty_outputs(tensors, batch_size, dims, dtype)


@torch.library.register_fake("recsys_lib::ir_kt_regroup")
def ir_kt_regroup_fake(tensors: List[Optional[torch.Tensor]], batch_size: int, dims: List[int],
                       dtype: torch.dtype = torch.float32) -> List[torch.Tensor]:
    return _empty_outputs(tensors, batch_size, dims, dtype)


@torch.library.custom_op("recsys_lib::ir_dynamic_batch_emb_lookup", mutates_args=())
def ir_dynamic_batch_emb_lookup_impl(tensors: List[Optional[torch.Tensor]], batch_size: int,
                                     dims: List[int]) -> List[torch.Tensor]:
    """As ``ir_emb_lookup``, but under tracing the batch size is a fresh dynamic size (not tied to the input)."""
    logger.info("recsys_lib::ir_dynamic_batch_emb_lookup -> (%s, %s)", batch_size, dims)
    return _empty_outputs(tensors, batch_size, dims)


@torch.library.register_fake("recsys_lib::ir_dynamic_batch_emb_lookup")
def ir_dynamic_batch_emb_lookup_fake(tensors: List[Optional[torch.Tensor]], batch_dize: int,
                                     dims: List[int]) -> List[torch.Tensor]:
    batch_size = torch.library.get_ctx().new_dynamic_size()
    return _empty_outputs(tensors, batch_size, dims)


def encapsulate_ir_modules(
    module: nn.Module,
    serializer: Type[SerializerInterface] = DEFAULT_SERIALIZER_CLS,
    fqn: str = "",
) -> Tuple[nn.Module, List[str]]:
    """Encapsulate every module ``serializer`` knows (by ``qualname``), depth first.

    Each such module gets its configuration in an ``ir_metadata`` buffer and a shape-only forward; the children
    its serializer names are visited too, other modules' children always.

    Args:
        module: the model (changed in place).
        serializer: e.g. ``recsys_lib.ir.serializer.JsonSerializer``.
        fqn: ``module``'s name in the model (prefix of the returned names).

    Returns:
        ``(module, fqns of the encapsulated modules)``: pass the fqns to ``torch.export.export`` as
        ``preserve_module_call_signature`` so ``unflatten`` keeps those modules' calls.
    """
    preserve_fqns: List[str] = []
    if qualname(module) in serializer.module_to_serializer_cls:
        children = serializer.encapsulate_module(module)
        preserve_fqns.append(fqn)
    else:
        children = [name for name, _ in module.named_children()]
    for child in children:
        child_fqn = f"{fqn}.{child}" if fqn else child
        _, fqns = encapsulate_ir_modules(module.get_submodule(child), serializer, child_fqn)
        preserve_fqns.extend(fqns)
    return module, preserve_fqns


def decapsulate_ir_modules(
    module: nn.Module,
    serializer: Type[SerializerInterface] = DEFAULT_SERIALIZER_CLS,
    device: Optional[torch.device] = None,
    finalize_interpreter_modules: bool = False,
    short_circuit_pytree_ebc_regroup: bool = False,
) -> nn.Module:
    """Rebuild the eager modules of an unflattened exported program (children first).

    Every submodule carrying an ``ir_metadata`` buffer is replaced by ``serializer.decapsulate_module``'s result.

    Args:
        module: ``torch.export.unflatten(ep)`` (changed in place).
        serializer: the serializer used to encapsulate.
        device: where rebuilt modules live (default: the device recorded at encapsulation).
        finalize_interpreter_modules: call ``finalize()`` on the remaining ``InterpreterModule``s.
        short_circuit_pytree_ebc_regroup: drop the pytree flatten/unflatten between the EBCs and the
            ``KTRegroupAsDict`` that reads them (needs ``finalize_interpreter_modules``).

    Returns:
        The module with eager embedding modules.
    """
    for name, child in list(module.named_children()):
        setattr(module, name, decapsulate_ir_modules(child, serializer, device))
    if "ir_metadata" in dict(module.named_buffers(recurse=False)):
        module = serializer.decapsulate_module(module, device)
    if short_circuit_pytree_ebc_regroup:
        if not finalize_interpreter_modules:
            raise ValueError("short_circuit_pytree_ebc_regroup needs finalize_interpreter_modules=True")
        from recsys_lib.ir._pytree_prune import short_circuit_pytree_ebc_regroup as _short_circuit

        module = _short_circuit(module)
    if finalize_interpreter_modules:
        from torch.export.unflatten import InterpreterModule

        for m in module.modules():
            if isinstance(m, InterpreterModule):
                m.finalize()
    return module


def serialize_embedding_modules(
    model: nn.Module,
    serializer_cls: Type[SerializerInterface] = DEFAULT_SERIALIZER_CLS,
) -> Tuple[nn.Module, List[str]]:
    """The older name of ``encapsulate_ir_modules``: ``(model, fqns of the serialized modules)``."""
    return encapsulate_ir_modules(model, serializer_cls)


def deserialize_embedding_modules(
    ep: torch.export.ExportedProgram,
    serializer_cls: Type[SerializerInterface] = DEFAULT_SERIALIZER_CLS,
    device: Optional[torch.device] = None,
) -> nn.Module:
    """Unflatten ``ep`` and rebuild its serialized embedding modules (``decapsulate_ir_modules``)."""
    return decapsulate_ir_modules(torch.export.unflatten(ep), serializer_cls, device)


def unlift_and_swap_modules(
    ep: torch.export.ExportedProgram,
    serializer: Type[SerializerInterface] = DEFAULT_SERIALIZER_CLS,
    device: Optional[torch.device] = None,
) -> torch.fx.GraphModule:
    """``ep.module()`` (one flat ``GraphModule``) with every serialized module swapped for its eager rebuild.

    Needs the serialized modules' call signatures preserved at export.
    """
    from torch.export._swap import _swap_modules

    gm = ep.module()
    gm.graph.eliminate_dead_code()
    suffix = ".ir_metadata"
    fqns = {key[: -len(suffix)] for key in ep.constants.keys() if key.endswith(suffix)}
    fqns |= {key[: -len(suffix)] for key in ep.state_dict.keys() if key.endswith(suffix)}
    rebuilt: Dict[str, nn.Module] = {}
    for fqn in sorted(fqns, key=lambda f: -f.count(".")):  # children first: a parent rebuilds from them
        # the graph keeps reading gm's own submodules, so a parent is rebuilt from a stand-in holding its rebuilt
        # children (gm itself is left as it is)
        original = gm.get_submodule(fqn)
        stand_in = nn.Module()
        for name, child in original.named_children():
            stand_in.add_module(name, rebuilt.get(f"{fqn}.{name}", child))
        for name, t in original.named_parameters(recurse=False):
            stand_in.register_parameter(name, t)
        for name, t in original.named_buffers(recurse=False):
            stand_in.register_buffer(name, t)
        rebuilt[fqn] = serializer.decapsulate_module(stand_in, device)
    # swap the outermost ones: the eager forward of a parent calls its rebuilt children itself
    swaps = {f: m for f, m in rebuilt.items() if not any(f.startswith(o + ".") for o in rebuilt)}
    return _swap_modules(ep, swaps)


def _get_dim(name: str, shapes_collection: ShapesCollection, min: Optional[int] = None,
             max: Optional[int] = None) -> DIM:
    """A fresh ``Dim`` named ``<name>_<n>``, ``n`` unique within ``shapes_collection``."""
    taken = {d.__name__ for shape in shapes_collection._shapes.values() if isinstance(shape, (tuple, list))
             for d in shape if hasattr(d, "__name__")}
    n = 0
    while f"{name}_{n}" in taken:
        n += 1
    return Dim(f"{name}_{n}", min=min, max=max)


def _has_dim(t: Optional[torch.Tensor]) -> bool:
    return t is not None and t.dim() > 0


def mark_dynamic_kjt(
    kjt: KeyedJaggedTensor,
    shapes_collection: Optional[ShapesCollection] = None,
    variable_length: bool = False,
    variable_batch: bool = False,
    vlen: Optional[DIM] = None,
    llen: Optional[DIM] = None,
) -> ShapesCollection:
    """Mark ``kjt``'s tensors dynamic in a ``ShapesCollection`` for ``torch.export``.

    Always dynamic: the number of ids (``values`` and ``weights``: ``(vlen,)``). With ``variable_length`` also
    ``lengths`` ``(llen,)`` and ``offsets`` ``(llen + 1,)``; else with ``variable_batch`` the batch:
    ``lengths`` ``(F * B,)``, ``offsets`` ``(F * B + 1,)``. An empty ``values`` is replaced by two ones (a dynamic
    dimension cannot be traced at size 0; lengths/offsets still say "no ids").

    Args:
        kjt: the example input (its ``values`` may be replaced, see above).
        shapes_collection: the collection to add to (default: a new one).
        variable_length: lengths/offsets vary independently of the keys.
        variable_batch: the batch varies (``len(lengths) == F * B``); ignored with ``variable_length``.
        vlen: the ``Dim`` to use for the ids (default: a new ``vlen_<n>``, ``min=2``).
        llen: the ``Dim`` to use for the lengths (default: a new ``llen_<n>``).

    Returns:
        The shapes collection (``dynamic_shapes=collection.dynamic_shapes(model, args)``).
    """
    if shapes_collection is None:
        shapes_collection = ShapesCollection()
    vlen = _get_dim("vlen", shapes_collection, min=2) if vlen is None else vlen
    if _has_dim(kjt._values):
        if kjt._values.numel() == 0:
            kjt._values = torch.ones(2, device=kjt._values.device, dtype=kjt._values.dtype)
        shapes_collection[kjt._values] = (vlen,)
    if _has_dim(kjt._weights):
        shapes_collection[kjt._weights] = (vlen,)  # type: ignore[index]
    if variable_length:
        llen = _get_dim("llen", shapes_collection) if llen is None else llen
        if _has_dim(kjt._lengths):
            shapes_collection[kjt._lengths] = (llen,)  # type: ignore[index]
        if _has_dim(kjt._offsets):
            shapes_collection[kjt._offsets] = (llen + 1,)  # type: ignore[index]
    elif variable_batch and len(kjt.keys()) > 0:
        batch = _get_dim("batch_size", shapes_collection)
        num_keys = len(kjt.keys())
        if _has_dim(kjt._lengths):
            shapes_collection[kjt._lengths] = (batch * num_keys,)  # type: ignore[index]
        if _has_dim(kjt._offsets):
            shapes_collection[kjt._offsets] = (batch * num_keys + 1,)  # type: ignore[index]
    return shapes_collection


def move_to_copy_nodes_to_device(unflattened_module: nn.Module, device: torch.device) -> nn.Module:
    """Point every ``_to_copy`` node's device keyword of ``unflattened_module.graph`` at ``device``."""
    for node in unflattened_module.graph.nodes:  # type: ignore[union-attr]
        if "_to_copy" in node.name:
            node.kwargs = {k: (device if isinstance(v, torch.device) else v) for k, v in node.kwargs.items()}
    return unflattened_module


def prune_pytree_flatten_unflatten(module: nn.Module, in_fqns: List[str], out_fqns: List[str]) -> nn.Module:
    """Remove the pytree ``tree_unflatten`` feeding the modules ``in_fqns`` and the ``tree_flatten_spec`` after
    the modules ``out_fqns`` in an unflattened program, so their tensors pass straight through."""
    from recsys_lib.ir._pytree_prune import prune

    return prune(module, in_fqns, out_fqns)
