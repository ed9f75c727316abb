"""Helpers over models holding quantized collections: fx path names of kernels, meta → CPU placement."""

from typing import Optional

import torch
from torch import nn

from recsys_lib.quant.embedding_modules import EmbeddingBagCollection as QuantEmbeddingBagCollection
from recsys_lib.quant.embedding_modules import EmbeddingCollection as QuantEmbeddingCollection


def populate_fx_names(quant_ebc: QuantEmbeddingBagCollection) -> None:
    """Give each kernel of a quantized EBC the fx path ``emb_module.<its tables, comma-joined>``.

    Tracers that keep kernels as leaves read ``_fx_path`` to name them. (Sharded quantized EBCs: phase 2.)
    """
    if not isinstance(quant_ebc, QuantEmbeddingBagCollection):
        raise TypeError("populate_fx_names expects a quantized EmbeddingBagCollection, got " + type(quant_ebc).__name__)
    groups = quant_ebc._group_tables
    for names, tbe in zip(groups, quant_ebc.tbes):
        tbe._fx_path = "emb_module." + ",".join(names)


def recursive_populate_fx_names(module: nn.Module) -> None:
    """:func:`populate_fx_names` on every quantized EBC in ``module`` (not descending into them)."""
    if isinstance(module, QuantEmbeddingBagCollection):
        populate_fx_names(module)
        return
    for child in module.children():
        recursive_populate_fx_names(child)


def meta_to_cpu_placement(module: torch.nn.Module) -> None:
    """Replace every quantized EBC/EC on ``meta`` inside ``module`` by an empty CPU one with the same options."""
    _meta_to_cpu_placement(module, module)


def _meta_to_cpu_placement(module: nn.Module, root_module: nn.Module, name: Optional[str] = None) -> None:
    if name is not None and isinstance(module, QuantEmbeddingBagCollection) and module.device.type == "meta":
        setattr(root_module, name, QuantEmbeddingBagCollection(
            tables=module.embedding_bag_configs(), is_weighted=module.is_weighted(), device=torch.device("cpu"),
            output_dtype=module.output_dtype(), register_tbes=module.register_tbes,
            row_alignment=module.row_alignment,
        ))
    elif name is not None and isinstance(module, QuantEmbeddingCollection) and module.device.type == "meta":
        setattr(root_module, name, QuantEmbeddingCollection(
            tables=module.embedding_configs(), device=torch.device("cpu"), need_indices=module.need_indices(),
            output_dtype=module.output_dtype(), register_tbes=module.register_tbes,
            row_alignment=module.row_alignment,
        ))
    else:
        for child_name, child in module.named_children():
            _meta_to_cpu_placement(child, module, child_name)
