"""Quantized managed-collision collections (``torchrec.quant.embedding_modules.QuantManagedCollisionEmbedding*``).

Inference form of ``ManagedCollisionEmbeddingCollection`` / ``...BagCollection``: the managed-collision collection
remaps raw ids (read-only: its modules are put in inference mode) and the quantized EC/EBC looks the rows up::

    qmc = QuantManagedCollisionEmbeddingCollection.from_float(mc_ec)   # mc_ec.qconfig = QuantConfig(...)
    embeddings, remapped = qmc(kjt)                                    # as mc_ec in eval, quantized rows

The forward returns ``(embeddings, remapped KJT)`` whatever ``return_remapped_features`` says (as TorchRec).
"""

from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig
from recsys_lib.modules.mc_embedding_modules import (
    ManagedCollisionEmbeddingBagCollection as _FloatMCEBC,
    ManagedCollisionEmbeddingCollection as _FloatMCEC,
)
from recsys_lib.modules.mc_modules import ManagedCollisionCollection
from recsys_lib.quant._prep import (
    DEFAULT_ROW_ALIGNMENT,
    module_qconfig,
    post_pruning_rows,
    quant_options,
    quantize_state_dict,
    update_embedding_configs,
)
from recsys_lib.quant._tables import table_rows
from recsys_lib.quant.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, KeyedTensor


def _config_key(configs: Any) -> List[Tuple[str, int, int, List[str], str]]:
    return [(c.name, c.num_embeddings, c.embedding_dim, list(c.feature_names), str(c.data_type)) for c in configs]


class _ManagedCollisionFront(nn.Module):
    """The part both quantized MC collections share: the MCC in front of the quantized lookup."""

    _managed_collision_collection: ManagedCollisionCollection
    _return_remapped_features: bool

    def _init_mc(self, configs: Any, mcc: Optional[ManagedCollisionCollection], return_remapped_features: bool) -> None:
        name = self._get_name()
        if mcc is None:
            raise ValueError(name + ": managed_collision_collection cannot be None")
        if _config_key(configs) != _config_key(mcc.embedding_configs()):
            raise ValueError(name + ": the embedding tables and the managed collision collection must have the same "
                             "configs, got " + str(_config_key(configs)) + " and "
                             + str(_config_key(mcc.embedding_configs())))
        self._managed_collision_collection = mcc
        self._return_remapped_features = return_remapped_features
        for mc in mcc._managed_collision_modules.values():
            mc.reset_inference_mode()

    def forward(  # type: ignore[override]
        self, features: KeyedJaggedTensor
    ) -> Tuple[Union[KeyedTensor, Dict[str, JaggedTensor]], Optional[KeyedJaggedTensor]]:
        """Returns ``(the quantized lookup of the remapped ids, remapped KJT)``."""
        features = self._managed_collision_collection(features)
        return super().forward(features), features  # type: ignore[misc]


def _quantized_kwargs(module: nn.Module, inner: nn.Module, configs: Any, owner: str) -> Dict[str, Any]:
    """Constructor arguments from a float MC module: its ``qconfig``, the inner collection's weights and options;
    the MCC's configs get the same quantized data types (so both sides still describe the same tables)."""
    qconfig = module_qconfig(module, owner)
    pruning = {c.name: c.num_embeddings_post_pruning for c in configs if c.num_embeddings_post_pruning is not None}
    pruning.update(post_pruning_rows(inner))
    tables = update_embedding_configs(configs, qconfig, pruning)
    mcc = module._managed_collision_collection
    mcc._embedding_configs = update_embedding_configs(mcc.embedding_configs(), qconfig, pruning)
    quantized: Dict[str, Tuple[torch.Tensor, Optional[torch.Tensor]]] = {}
    device = quantize_state_dict(inner, quantized, {t.name: t.data_type for t in tables},
                                 {t.name: table_rows(t) for t in tables})
    kwargs: Dict[str, Any] = dict(quant_options(inner))
    kwargs["register_tbes"] = bool(quant_options(module)["register_tbes"])
    kwargs.update(tables=tables, device=device, output_dtype=qconfig.activation().dtype,
                  table_name_to_quantized_weights=quantized, managed_collision_collection=mcc,
                  return_remapped_features=module._return_remapped_features)
    return kwargs


@public_at("recsys_lib.quant.embedding_modules")
class QuantManagedCollisionEmbeddingCollection(_ManagedCollisionFront, EmbeddingCollection):
    """A quantized EC behind a managed-collision collection (see the module docstring).

    Args:
        tables / device / need_indices / output_dtype / table_name_to_quantized_weights / register_tbes /
            quant_state_dict_split_scale_bias / row_alignment / cache_features_order: as the quantized
            ``EmbeddingCollection``.
        managed_collision_collection: remaps raw ids; must describe the same tables (required).
        return_remapped_features: kept for API compatibility (the remapped KJT is always returned).
    """

    def __init__(
        self,
        tables: List[EmbeddingConfig],
        device: torch.device,
        need_indices: bool = False,
        output_dtype: torch.dtype = torch.float,
        table_name_to_quantized_weights: Optional[Dict[str, Tuple[torch.Tensor, torch.Tensor]]] = None,
        register_tbes: bool = False,
        quant_state_dict_split_scale_bias: bool = False,
        row_alignment: int = DEFAULT_ROW_ALIGNMENT,
        managed_collision_collection: Optional[ManagedCollisionCollection] = None,
        return_remapped_features: bool = False,
        cache_features_order: bool = False,
    ) -> None:
        super().__init__(tables, device, need_indices, output_dtype, table_name_to_quantized_weights, register_tbes,
                         quant_state_dict_split_scale_bias, row_alignment, cache_features_order)
        self._init_mc(self.embedding_configs(), managed_collision_collection, return_remapped_features)

    def _get_name(self) -> str:
        return "QuantManagedCollisionEmbeddingCollection"

    @classmethod
    def from_float(  # type: ignore[override]
        cls, module: _FloatMCEC, return_remapped_features: bool = False
    ) -> "QuantManagedCollisionEmbeddingCollection":
        """Quantize a float MC-EC (``module.qconfig`` names the dtypes; the MCC is shared, not copied)."""
        ec = module._embedding_module
        kwargs = _quantized_kwargs(module, ec, ec.embedding_configs(), cls.__name__)
        return cls(need_indices=ec.need_indices(), **kwargs)


@public_at("recsys_lib.quant.embedding_modules")
class QuantManagedCollisionEmbeddingBagCollection(_ManagedCollisionFront, EmbeddingBagCollection):
    """A quantized EBC behind a managed-collision collection (arguments as
    ``QuantManagedCollisionEmbeddingCollection`` with the quantized ``EmbeddingBagCollection``'s)."""

    def __init__(
        self,
        tables: List[EmbeddingBagConfig],
        is_weighted: bool,
        device: torch.device,
        output_dtype: torch.dtype = torch.float,
        table_name_to_quantized_weights: Optional[Dict[str, Tuple[torch.Tensor, torch.Tensor]]] = None,
        register_tbes: bool = False,
        quant_state_dict_split_scale_bias: bool = False,
        row_alignment: int = DEFAULT_ROW_ALIGNMENT,
        managed_collision_collection: Optional[ManagedCollisionCollection] = None,
        return_remapped_features: bool = False,
        cache_features_order: bool = False,
    ) -> None:
        super().__init__(tables, is_weighted, device, output_dtype, table_name_to_quantized_weights, register_tbes,
                         quant_state_dict_split_scale_bias, row_alignment, cache_features_order)
        self._init_mc(self.embedding_bag_configs(), managed_collision_collection, return_remapped_features)

    def _get_name(self) -> str:
        return "QuantManagedCollisionEmbeddingBagCollection"

    @classmethod
    def from_float(  # type: ignore[override]
        cls, module: _FloatMCEBC, return_remapped_features: bool = False
    ) -> "QuantManagedCollisionEmbeddingBagCollection":
        """Quantize a float MC-EBC (``module.qconfig`` names the dtypes; the MCC is shared, not copied)."""
        ebc = module._embedding_module
        kwargs = _quantized_kwargs(module, ebc, ebc.embedding_bag_configs(), cls.__name__)
        return cls(is_weighted=ebc.is_weighted(), **kwargs)
