"""Graph surgery on unflattened programs: skip the pytree flatten/unflatten between preserved modules.

An unflattened program calls a preserved module (e.g. an EBC) and flattens its ``KeyedTensor`` output with
``tree_flatten_spec``; the next preserved module (e.g. ``KTRegroupAsDict``) rebuilds its inputs with
``tree_unflatten``. Removing both passes the flat tensors from one to the other directly.
"""

import logging
import operator
from typing import List, Tuple

import torch
from torch import nn
from torch.fx import Node

logger: logging.Logger = logging.getLogger(__name__)


def _call_node(module: nn.Module, fqn: str) -> Tuple[nn.Module, Node]:
    """The ``call_module`` node of ``fqn`` and the (sub)module whose graph holds it."""
    graph = getattr(module, "graph", None)
    if graph is not None:
        for node in graph.nodes:
            if node.op == "call_module" and node.target == fqn:
                return module, node
    if "." not in fqn:
        raise ValueError(f"no call of module {fqn!r} in the graph of {type(module).__name__}")
    head, rest = fqn.split(".", 1)
    return _call_node(getattr(module, head), rest)


def _is_call(node: object, target: object) -> bool:
    return isinstance(node, Node) and node.op == "call_function" and node.target == target


def prune(module: nn.Module, in_fqns: List[str], out_fqns: List[str]) -> nn.Module:
    """See ``recsys_lib.ir.utils.prune_pytree_flatten_unflatten``."""
    for fqn in in_fqns:
        owner, node = _call_node(module, fqn)
        if len(node.args) != 1:
            raise ValueError(f"{fqn}: expected one argument, got {len(node.args)}")
        outer = node.args[0]
        inner = outer.args[0] if _is_call(outer, operator.getitem) else None  # type: ignore[union-attr]
        unflat = inner.args[0] if _is_call(inner, operator.getitem) else None  # type: ignore[union-attr]
        if not _is_call(unflat, torch.utils._pytree.tree_unflatten):
            raise ValueError(f"{fqn}: its input is not a pytree tree_unflatten")
        logger.info("removing tree_unflatten before %s", fqn)
        node.args = (unflat.args[0],)  # type: ignore[union-attr]
        owner.graph.eliminate_dead_code()  # type: ignore[union-attr, operator]
    for fqn in out_fqns:
        owner, node = _call_node(module, fqn)
        users = list(node.users)
        if len(users) != 1 or not _is_call(users[0], torch.fx._pytree.tree_flatten_spec):
            raise ValueError(f"{fqn}: its output is not flattened by one tree_flatten_spec")
        getters = list(users[0].users)
        if len(getters) != 1 or not _is_call(getters[0], operator.getitem):
            raise ValueError(f"{fqn}: the flattened output is not read by one getitem")
        logger.info("removing tree_flatten_spec after %s", fqn)
        getters[0].replace_all_uses_with(node)
        owner.graph.eliminate_dead_code()  # type: ignore[union-attr, operator]
    return module


def short_circuit_pytree_ebc_regroup(module: nn.Module) -> nn.Module:
    """Prune the pytree steps between the (FP-)EBCs and the ``KTRegroupAsDict`` modules of ``module`` (nothing
    when either kind is absent)."""
    from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
    from recsys_lib.modules.fp_embedding_modules import FeatureProcessedEmbeddingBagCollection
    from recsys_lib.modules.regroup import KTRegroupAsDict

    ebc_fqns: List[str] = []
    regroup_fqns: List[str] = []
    for fqn, m in module.named_modules():
        if isinstance(m, FeatureProcessedEmbeddingBagCollection):
            ebc_fqns.append(fqn)
        elif isinstance(m, EmbeddingBagCollection):
            if ebc_fqns and fqn.startswith(ebc_fqns[-1] + "."):
                continue  # the EBC inside an FP-EBC: the FP-EBC's call is the one in the graph
            ebc_fqns.append(fqn)
        elif isinstance(m, KTRegroupAsDict):
            regroup_fqns.append(fqn)
    if not ebc_fqns or not regroup_fqns:
        if ebc_fqns or regroup_fqns:
            logger.warning("EBCs and KTRegroupAsDict are not both present; nothing pruned")
        return module
    return prune(module, regroup_fqns, ebc_fqns)
