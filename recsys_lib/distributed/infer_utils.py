"""Inspecting sharded quantized models: their FBGEMM kernels, device attributes and TorchRec modules."""

from typing import Dict, List, Optional, Set, Tuple, Type

import torch

from recsys_lib.distributed.quant_embedding import ShardedQuantEmbeddingCollection
from recsys_lib.distributed.quant_embeddingbag import ShardedQuantEmbeddingBagCollection
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
from recsys_lib.quant.embedding_modules import (
    EmbeddingBagCollection as QuantEmbeddingBagCollection,
    EmbeddingCollection as QuantEmbeddingCollection,
)

_SHARDED_QUANT = (ShardedQuantEmbeddingBagCollection, ShardedQuantEmbeddingCollection)


def _check_sharded(module: torch.nn.Module, what: str) -> None:
    if not isinstance(module, _SHARDED_QUANT):
        raise TypeError(f"{what}: expected a ShardedQuantEmbeddingBagCollection or ShardedQuantEmbeddingCollection, "
                        f"got {type(module).__name__}")


def get_tbes_from_sharded_module(module: torch.nn.Module) -> List[torch.nn.Module]:
    """The FBGEMM inference TBEs (``IntNBitTableBatchedEmbeddingBagsCodegen``) of a sharded quantized collection,
    sharding by sharding, rank by rank (none without FBGEMM)."""
    _check_sharded(module, "get_tbes_from_sharded_module")
    from recsys_lib.ops._fbgemm import fbgemm_available

    if not fbgemm_available():
        return []
    from fbgemm_gpu.split_table_batched_embeddings_ops_inference import IntNBitTableBatchedEmbeddingBagsCodegen

    return [m for m in module.modules() if isinstance(m, IntNBitTableBatchedEmbeddingBagsCodegen)]


def get_tbe_specs_from_sharded_module(module: torch.nn.Module) -> List[Tuple[str, int, int, str, str]]:
    """``(table, rows, dim, str(SparseType), "EmbeddingLocation.<name>")`` of every table shard in the kernels."""
    _check_sharded(module, "get_tbe_specs_from_sharded_module")
    out: List[Tuple[str, int, int, str, str]] = []
    for tbe in get_tbes_from_sharded_module(module):
        for spec in tbe.embedding_specs:  # type: ignore[union-attr]
            out.append((spec[0], spec[1], spec[2], str(spec[3]), f"{type(spec[4]).__name__}.{spec[4].name}"))
    return out


_DEVICE_ATTRS = ("device", "_device", "_device_str", "_device_type")


def get_path_device_tuples(module: object, ignore_list: Optional[List[str]] = None) -> List[Tuple[str, str]]:
    """``(".path.to.attr", str(device))`` for every device attribute reachable from ``module`` (attributes,
    list items ``[i]`` and dict values ``[key]``, 50 levels deep at most; names in ``ignore_list`` are skipped,
    default ``["embedding_tables"]``)."""
    ignore = ignore_list if ignore_list else ["embedding_tables"]
    found: List[Tuple[str, str]] = []
    seen: Set[str] = set()

    def visit(obj: object, depth: int, path: str) -> None:
        if depth > 50 or path in seen:
            return
        seen.add(path)
        if obj is None or isinstance(obj, (int, float, str, bool, torch.Tensor)) or \
                type(obj).__name__ in ("method", "function", "Proxy"):
            return
        for name in dir(obj):
            if name in ignore or name.startswith("__"):
                continue
            try:
                child = getattr(obj, name)
            except Exception:  # properties that need state the object lacks
                continue
            if name in _DEVICE_ATTRS:
                found.append((f"{path}.{name}", str(child)))
            elif isinstance(child, list):
                for i, item in enumerate(child):
                    visit(item, depth + 1, f"{path}.{name}[{i}]")
            elif isinstance(child, dict):
                for key, item in child.items():
                    visit(item, depth + 1, f"{path}.{name}[{key}]")
            else:
                visit(child, depth + 1, f"{path}.{name}")

    visit(module, 0, "")
    return found


def get_all_torchrec_modules(
    model: torch.nn.Module,
    trec_module_class_types: Optional[List[Type[torch.nn.Module]]] = None,
) -> Dict[str, torch.nn.Module]:
    """``{fqn: module}`` of the outermost modules of exactly the given types (default: the sharded quantized,
    quantized and float EBC / EC); the search does not descend into a match."""
    types = trec_module_class_types or [
        ShardedQuantEmbeddingBagCollection, ShardedQuantEmbeddingCollection, QuantEmbeddingBagCollection,
        QuantEmbeddingCollection, EmbeddingBagCollection, EmbeddingCollection,
    ]
    found: Dict[str, torch.nn.Module] = {}

    def visit(module: torch.nn.Module, path: str) -> None:
        if type(module) in types:
            found[path] = module
            return
        for name, child in module.named_children():
            visit(child, f"{path}.{name}" if path else name)

    visit(model, "")
    return found


def get_non_scriptable_trec_module(model: torch.nn.Module) -> Dict[str, torch.nn.Module]:
    """The sharded quantized collections of ``model`` (TorchRec's inference flow fx-traces them before
    scripting)."""
    return get_all_torchrec_modules(model, [ShardedQuantEmbeddingBagCollection, ShardedQuantEmbeddingCollection])
