"""Quantized ``EmbeddingBagCollection`` / ``EmbeddingCollection`` / ``FeatureProcessedEmbeddingBagCollection``.

Inference-only collections whose tables are stored row-wise quantized (INT8 / INT4 / INT2, with an fp16 scale
and bias per row) or as FP16 / FP32 bytes, in FBGEMM's inference-TBE row layout (see ``_rows``). Built from a
float collection by ``from_float`` (its ``qconfig`` names the weight dtype, its activation dtype the output
dtype), or by ``recsys_lib.inference.modules.quantize_embeddings`` over a whole model.

Example::

    ebc = recsys_lib.EmbeddingBagCollection(tables=[EmbeddingBagConfig(num_embeddings=100, embedding_dim=8,
                                                                      name="t0", feature_names=["f0"])])
    ebc.qconfig = QuantConfig(activation=PlaceholderObserver.with_args(dtype=torch.float),
                              weight=PlaceholderObserver.with_args(dtype=torch.qint8))
    qebc = EmbeddingBagCollection.from_float(ebc)
    kt = qebc(kjt)               # KeyedTensor, values (B, 8), dequantised on the fly
    qebc.state_dict()            # {"embedding_bags.t0.weight": (100, 16) uint8}  (4 qparam + 8 data + 4 pad)

Deviations: ids outside a table's (post-pruning) rows raise ``ValueError`` (TorchRec's kernel warns and reads
row 0); ``from_float`` copies the float configs instead of editing them in place.
"""

from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from recsys_lib.modules.embedding_configs import (
    DATA_TYPE_NUM_BITS,  # noqa: F401  (public here, as in TorchRec)
    EmbeddingBagConfig,
    EmbeddingConfig,
    PoolingType,
    pooling_type_to_pooling_mode,
    validate_table_names,
)
from recsys_lib.modules.embedding_modules import EmbeddingBagCollectionInterface, EmbeddingCollectionInterface
from recsys_lib.modules.fp_embedding_modules import (
    FeatureProcessedEmbeddingBagCollection as _FloatFPEBC,
)
from recsys_lib.modules.embedding_modules import (
    EmbeddingBagCollection as _FloatEBC,
    EmbeddingCollection as _FloatEC,
)
from recsys_lib.quant._kernels import kernel_inputs, pooled_reference, sequence_reference
from recsys_lib.quant._layout import plan_layout
from recsys_lib.ops._host_buffers import RecycledBuffers
from recsys_lib.quant._parallel import LookupThreads, OneIntraOpThread, lookup_parts, threaded_lookup, threads_allowed
from recsys_lib.quant._tbe_call import tbe_lookup_functional
from recsys_lib.quant._prep import (  # noqa: F401  (TorchRec's names live in this module)
    DEFAULT_ROW_ALIGNMENT,
    MODULE_ATTR_CACHE_FEATURES_ORDER,
    MODULE_ATTR_EMB_CONFIG_NAME_TO_NUM_ROWS_POST_PRUNING_DICT,
    MODULE_ATTR_QUANT_STATE_DICT_SPLIT_SCALE_BIAS,
    MODULE_ATTR_REGISTER_TBES_BOOL,
    MODULE_ATTR_REMOVE_STBE_PADDING_BOOL,
    MODULE_ATTR_ROW_ALIGNMENT_INT,
    MODULE_ATTR_USE_BATCHING_HINTED_OUTPUT,
    MODULE_ATTR_USE_UNFLATTENED_LENGTHS_FOR_BATCHING,
    for_each_module_of_type_do,
    quant_prep_customize_row_alignment,
    quant_prep_enable_cache_features_order,
    quant_prep_enable_quant_state_dict_split_scale_bias,
    quant_prep_enable_quant_state_dict_split_scale_bias_for_types,
    quant_prep_enable_register_tbes,
    quantize_state_dict,
)
from recsys_lib.quant._prep import module_qconfig, post_pruning_rows, quant_options, update_embedding_configs
from recsys_lib.quant._sequence import sequence_outputs
from recsys_lib.quant._tables import (
    TableWeights,
    assign_quantized,
    check_output_dtype,
    hide_tbe_buffers,
    make_table_storage,
    table_rows,
)
from recsys_lib.pt2.checks import is_torchdynamo_compiling
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, KeyedTensor

# One fx node each (wrapped where they are called): their work depends on host-side per-key lengths.
torch.fx.wrap("kernel_inputs")
torch.fx.wrap("pooled_reference")
torch.fx.wrap("sequence_reference")
torch.fx.wrap("sequence_outputs")

QuantizedWeights = Dict[str, Tuple[torch.Tensor, Optional[torch.Tensor]]]


class _QuantTables:
    """The kernels, stored rows and state-dict views of a quantized collection, built once and assigned."""

    def __init__(
        self,
        tables: List[EmbeddingBagConfig],
        pooled: bool,
        device: torch.device,
        output_dtype: torch.dtype,
        quantized: Optional[QuantizedWeights],
        register_tbes: bool,
        split_scale_bias: bool,
        row_alignment: int,
        owner: str,
    ) -> None:
        check_output_dtype(output_dtype)
        layout = plan_layout(list(tables), pooled)
        modes = [pooling_type_to_pooling_mode(p) if pooled else pooling_type_to_pooling_mode(PoolingType.NONE)
                 for p in layout.poolings]
        tbes, rows = make_table_storage(
            layout.groups, modes, layout.feature_table_maps, output_dtype, row_alignment, device
        )
        for t in tables:
            if quantized is not None and t.name in quantized:
                data, scale_shift = quantized[t.name]
                assign_quantized(rows[t.name], t, data, scale_shift, row_alignment)
        if not register_tbes:
            for tbe in tbes:
                hide_tbe_buffers(tbe)
        self.layout = layout
        self.tbes = nn.ModuleList(tbes)
        self.rows = rows
        self.weights = {t.name: TableWeights(rows[t.name], t, split_scale_bias) for t in tables}
        self.owner = owner


class EmbeddingBagCollection(EmbeddingBagCollectionInterface):
    """Pooled lookups over quantized tables. ``forward(KJT) -> KeyedTensor`` with values ``(B, sum(D))`` in
    ``output_dtype``; features ordered by pooling group (tables of the first pooling type first).

    Args:
        tables: table configs; ``data_type`` ∈ {FP32, FP16, INT8, INT4, INT2}; ``embedding_dim`` a multiple of 4
            (8 for INT2); ``num_embeddings_post_pruning`` (if set) is the number of rows stored.
        is_weighted: pool with the KJT's per-id weights.
        device: CPU (the FBGEMM kernels); other devices use the plain-PyTorch kernels.
        output_dtype: float32, float16 or bfloat16.
        table_name_to_quantized_weights: ``{table: (data (R, D*bits/8) uint8, scale_shift (R, 4) or None)}``.
        register_tbes: register the kernels as ``tbes`` with their buffers in the state dict.
        quant_state_dict_split_scale_bias: state dict holds ``weight`` (data) + ``weight_qscale`` + ``weight_qbias``.
        row_alignment: bytes each stored row is padded to.
        cache_features_order: accepted; input keys are matched on every call.
    """

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
        cache_features_order: bool = False,
    ) -> None:
        super().__init__()
        validate_table_names(list(tables), self._get_name())
        for t in tables:
            if t.pooling == PoolingType.NONE:
                raise ValueError(self._get_name() + ": table '" + t.name + "' has pooling NONE; use EmbeddingCollection")
        store = _QuantTables(
            list(tables), True, torch.device(device), output_dtype, table_name_to_quantized_weights,  # type: ignore
            register_tbes, quant_state_dict_split_scale_bias, row_alignment, self._get_name(),
        )
        lay = store.layout
        self._is_weighted: bool = bool(is_weighted)
        self._embedding_bag_configs: List[EmbeddingBagConfig] = list(tables)
        self._output_dtype: torch.dtype = output_dtype
        self._device: torch.device = torch.device(device)
        self.row_alignment: int = row_alignment
        self.register_tbes: bool = register_tbes
        self._feature_order: List[str] = lay.feature_order
        self._all_features: Dict[str, int] = {f: 0 for f in lay.feature_order}
        self._group_bounds: List[int] = lay.group_bounds
        self._rows_per_feature: List[int] = lay.rows_per_feature
        self._table_per_feature: List[str] = lay.table_per_feature
        self._embedding_names: List[str] = lay.embedding_names
        self._length_per_key: List[int] = lay.dims
        self._use_tbe: bool = len(store.tbes) > 0
        self._group_rows: List[List[torch.Tensor]] = [[store.rows[t.name] for t in g] for g in lay.groups]
        self._group_dims: List[List[int]] = [[t.embedding_dim for t in g] for g in lay.groups]
        self._group_types: List[List[str]] = [[t.data_type.value for t in g] for g in lay.groups]
        self._group_maps: List[List[int]] = lay.feature_table_maps
        self._group_mean: List[bool] = [p == PoolingType.MEAN for p in lay.poolings]
        self._group_tables: List[List[str]] = [[t.name for t in g] for g in lay.groups]
        self._group_row_bytes: List[List[int]] = [
            [int(self._group_rows[g][t].size(1)) for t in m] for g, m in enumerate(lay.feature_table_maps)
        ]
        self._lookup_threads: LookupThreads = LookupThreads()
        self._output_buffers: RecycledBuffers = RecycledBuffers()
        # TorchRec's state-dict order: table weights, then (register_tbes) kernel buffers.
        self.embedding_bags: nn.ModuleDict = nn.ModuleDict(store.weights)
        self.tbes: nn.ModuleList = store.tbes

    @torch.jit.unused
    def _traced_tbe_lookup(
        self, inputs: List[Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]]
    ) -> torch.Tensor:
        """Under dynamo: the TBEs' lookup op on their tensors (see ``_tbe_call``)."""
        outs = [tbe_lookup_functional(tbe, *inputs[g]) for g, tbe in enumerate(self.tbes)]
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)

    @torch.jit.unused
    def _lookup_parts(self, features: KeyedJaggedTensor) -> int:
        """Threads for an eager FBGEMM lookup of ``features`` (1: one call per group; see ``_parallel``)."""
        if not self._use_tbe or not threads_allowed(list(self.tbes), self._device):
            return 1
        return lookup_parts(len(self._feature_order), features.values().numel())

    @torch.jit.unused
    def _threaded_lookup(self, features: KeyedJaggedTensor, parts: int) -> torch.Tensor:
        """Each group's features split into ``parts`` ranges looked up in parallel threads (ids checked there)."""
        with OneIntraOpThread():
            inputs = kernel_inputs(
                features, self._feature_order, self._all_features, self._group_bounds, self._rows_per_feature,
                self._table_per_feature, self._is_weighted, self._get_name(), check=False,
            )
            # the ranges write their blocks into a buffer of ours: a dead earlier output's, when there is one (a
            # fresh one this size costs a page fault per 4 KB page as it is written; see ops/_host_buffers.py)
            out = self._output_buffers.empty((features.stride(), sum(self._length_per_key)), self._output_dtype)
            col = 0
            for g, tbe in enumerate(self.tbes):
                a = self._group_bounds[g]
                b = self._group_bounds[g + 1]
                width = sum(self._length_per_key[a:b])
                threaded_lookup(
                    tbe, inputs[g][0], inputs[g][1], inputs[g][2], self._group_row_bytes[g],
                    self._rows_per_feature[a:b], self._table_per_feature[a:b], parts, out[:, col: col + width],
                    self._lookup_threads,
                )
                col += width
        return out

    def _lookup(self, features: KeyedJaggedTensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            parts = self._lookup_parts(features)
            if parts > 1:
                return self._threaded_lookup(features, parts)
        inputs = kernel_inputs(
            features, self._feature_order, self._all_features, self._group_bounds, self._rows_per_feature,
            self._table_per_feature, self._is_weighted, self._get_name(),
        )
        outs: List[torch.Tensor] = []
        if self._use_tbe and is_torchdynamo_compiling():
            return self._traced_tbe_lookup(inputs)
        if self._use_tbe:
            for g, tbe in enumerate(self.tbes):
                outs.append(tbe(inputs[g][0], inputs[g][1], inputs[g][2]))
        else:
            for g in range(len(self._group_rows)):
                outs.append(pooled_reference(
                    inputs[g][0], inputs[g][1], inputs[g][2], self._group_rows[g], self._group_dims[g],
                    self._group_types[g], self._group_maps[g], self._group_mean[g], self._output_dtype,
                ))
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)

    def forward(self, features: KeyedJaggedTensor) -> KeyedTensor:
        """Pooled embeddings: ``KeyedTensor`` with values ``(B, sum(D))`` in ``output_dtype``."""
        return KeyedTensor(keys=self._embedding_names, length_per_key=self._length_per_key,
                           values=self._lookup(features))

    def _get_name(self) -> str:
        return "QuantizedEmbeddingBagCollection"

    @classmethod
    def from_float(cls, module: _FloatEBC, use_precomputed_fake_quant: bool = False) -> "EmbeddingBagCollection":
        """Quantize a float ``EmbeddingBagCollection`` (its ``qconfig`` names the dtypes)."""
        return cls(**_from_float_kwargs(module, module.embedding_bag_configs(), cls.__name__), is_weighted=module.is_weighted())  # type: ignore  # noqa: E501

    def embedding_bag_configs(self) -> List[EmbeddingBagConfig]:
        return self._embedding_bag_configs

    def is_weighted(self) -> bool:
        return self._is_weighted

    def output_dtype(self) -> torch.dtype:
        return self._output_dtype

    @property
    def device(self) -> torch.device:
        return self._device

    __jit_unused_properties__ = ["device"]


def _from_float_kwargs(module: nn.Module, configs: List, owner: str) -> Dict[str, object]:
    """Constructor arguments of a quantized collection from a float one: configs, weights, options."""
    qconfig = module_qconfig(module, owner)
    pruning = {c.name: c.num_embeddings_post_pruning for c in configs if c.num_embeddings_post_pruning is not None}
    pruning.update(post_pruning_rows(module))
    tables = update_embedding_configs(configs, qconfig, pruning)
    quantized: QuantizedWeights = {}
    device = quantize_state_dict(module, quantized, {t.name: t.data_type for t in tables},
                                 {t.name: table_rows(t) for t in tables})
    kwargs: Dict[str, object] = dict(quant_options(module))
    kwargs.update(tables=tables, device=device, output_dtype=qconfig.activation().dtype,
                  table_name_to_quantized_weights=quantized)
    return kwargs


class FeatureProcessedEmbeddingBagCollection(EmbeddingBagCollection):
    """A weighted quantized ``EmbeddingBagCollection`` whose per-id weights come from ``feature_processor``
    (its state dict keys: ``feature_processor.*``)."""

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
        feature_processor: Optional[nn.Module] = None,
        cache_features_order: bool = False,
    ) -> None:
        super().__init__(tables, is_weighted, device, output_dtype, table_name_to_quantized_weights, register_tbes,
                         quant_state_dict_split_scale_bias, row_alignment, cache_features_order)
        if feature_processor is None:
            raise ValueError(self._get_name() + " needs a feature_processor")
        self.feature_processor: nn.Module = feature_processor

    def forward(self, features: KeyedJaggedTensor) -> KeyedTensor:
        """Process the features (per-id weights), then pool: values ``(B, sum(D))``."""
        return super().forward(self.feature_processor(features))

    def _get_name(self) -> str:
        return "QuantFeatureProcessedEmbeddingBagCollection"

    @classmethod
    def from_float(  # type: ignore[override]
        cls, module: _FloatFPEBC, use_precomputed_fake_quant: bool = False
    ) -> "FeatureProcessedEmbeddingBagCollection":
        """Quantize a float ``FeatureProcessedEmbeddingBagCollection``; its processors are kept as they are."""
        processors, ebc = module.split()
        if getattr(ebc, "qconfig", None) is None:
            ebc.qconfig = module_qconfig(module, cls.__name__)
        for name in (MODULE_ATTR_REGISTER_TBES_BOOL, MODULE_ATTR_QUANT_STATE_DICT_SPLIT_SCALE_BIAS,
                     MODULE_ATTR_ROW_ALIGNMENT_INT, MODULE_ATTR_EMB_CONFIG_NAME_TO_NUM_ROWS_POST_PRUNING_DICT):
            if hasattr(module, name) and not hasattr(ebc, name):
                setattr(ebc, name, getattr(module, name))
        kwargs = _from_float_kwargs(ebc, ebc.embedding_bag_configs(), cls.__name__)
        if isinstance(processors, nn.ModuleDict):
            processors = _PerFeatureProcessors(processors)
        return cls(**kwargs, is_weighted=True, feature_processor=processors)  # type: ignore[arg-type]


class EmbeddingCollection(EmbeddingCollectionInterface):
    """Sequence lookups over quantized tables sharing one ``embedding_dim``.

    ``forward(KJT) -> Dict[str, JaggedTensor]``: per embedding name, values ``(N_f, D)`` in ``output_dtype``
    and the feature's lengths (``weights`` = input ids when ``need_indices``). Arguments as the quantized
    ``EmbeddingBagCollection``'s.
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
        cache_features_order: bool = False,
    ) -> None:
        super().__init__()
        validate_table_names(list(tables), self._get_name())
        dims = sorted({t.embedding_dim for t in tables})
        if len(dims) != 1:
            raise ValueError(self._get_name() + ": all tables must share embedding_dim, got "
                             + str({t.name: t.embedding_dim for t in tables}))
        store = _QuantTables(
            list(tables), False, torch.device(device), output_dtype, table_name_to_quantized_weights,  # type: ignore
            register_tbes, quant_state_dict_split_scale_bias, row_alignment, self._get_name(),
        )
        lay = store.layout
        self._embedding_configs: List[EmbeddingConfig] = list(tables)
        self._embedding_dim: int = dims[0]
        self._need_indices: bool = bool(need_indices)
        self._output_dtype: torch.dtype = output_dtype
        self._device: torch.device = torch.device(device)
        self.row_alignment: int = row_alignment
        self.register_tbes: bool = register_tbes
        self._feature_order: List[str] = lay.feature_order
        self._all_features: Dict[str, int] = {f: 0 for f in lay.feature_order}
        self._group_bounds: List[int] = lay.group_bounds
        self._rows_per_feature: List[int] = lay.rows_per_feature
        self._table_per_feature: List[str] = lay.table_per_feature
        self._embedding_names: List[str] = lay.embedding_names
        self._embedding_names_by_table: List[List[str]] = _names_by_table(list(tables), lay.embedding_names,
                                                                          lay.table_per_feature)
        self._use_tbe: bool = len(store.tbes) > 0
        self._rows: List[torch.Tensor] = [store.rows[t.name] for t in lay.groups[0]]
        self._types: List[str] = [t.data_type.value for t in lay.groups[0]]
        self._feature_table_map: List[int] = lay.feature_table_maps[0]
        self.embeddings: nn.ModuleDict = nn.ModuleDict(store.weights)
        self.tbes: nn.ModuleList = store.tbes

    @torch.jit.unused
    def _traced_tbe_lookup(self, indices: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Under dynamo: the TBE's lookup op on its tensors (see ``_tbe_call``)."""
        return tbe_lookup_functional(self.tbes[0], indices, offsets, None)

    def forward(self, features: KeyedJaggedTensor) -> Dict[str, JaggedTensor]:
        """One row per id: ``{embedding name: JaggedTensor(values (N_f, D), lengths L_f)}``."""
        inputs = kernel_inputs(
            features, self._feature_order, self._all_features, self._group_bounds, self._rows_per_feature,
            self._table_per_feature, False, self._get_name(),
        )
        if self._use_tbe and is_torchdynamo_compiling():
            embeddings = self._traced_tbe_lookup(inputs[0][0], inputs[0][1])
        elif self._use_tbe:
            embeddings = self.tbes[0](inputs[0][0], inputs[0][1], None)
        else:
            embeddings = sequence_reference(inputs[0][0], inputs[0][1], self._rows, self._embedding_dim, self._types,
                                            self._feature_table_map, self._output_dtype)
        return sequence_outputs(features, embeddings, self._feature_order, self._embedding_names, self._need_indices)

    @classmethod
    def from_float(cls, module: _FloatEC, use_precomputed_fake_quant: bool = False) -> "EmbeddingCollection":
        """Quantize a float ``EmbeddingCollection`` (its ``qconfig`` names the dtypes)."""
        kwargs = _from_float_kwargs(module, module.embedding_configs(), cls.__name__)
        return cls(**kwargs, need_indices=module.need_indices())  # type: ignore[arg-type]

    def _get_name(self) -> str:
        return "QuantizedEmbeddingCollection"

    def need_indices(self) -> bool:
        return self._need_indices

    def embedding_dim(self) -> int:
        return self._embedding_dim

    def embedding_configs(self) -> List[EmbeddingConfig]:
        return self._embedding_configs

    def embedding_names_by_table(self) -> List[List[str]]:
        return self._embedding_names_by_table

    def output_dtype(self) -> torch.dtype:
        return self._output_dtype

    @property
    def device(self) -> torch.device:
        return self._device

    __jit_unused_properties__ = ["device"]


def _names_by_table(tables: List[EmbeddingConfig], names: List[str], owners: List[str]) -> List[List[str]]:
    return [[n for n, o in zip(names, owners) if o == t.name] for t in tables]


class _PerFeatureProcessors(nn.Module):
    """``{feature: FeatureProcessor}`` applied to a KJT (features without one get weight 1)."""

    def __init__(self, processors: nn.ModuleDict) -> None:
        super().__init__()
        self.processors = processors

    def forward(self, features: KeyedJaggedTensor) -> KeyedJaggedTensor:
        jts = features.to_dict()
        out: Dict[str, JaggedTensor] = {}
        for key in features.keys():
            jt = jts[key]
            done = False
            for name, fp in self.processors.items():
                if name == key:
                    jt = fp(jt)
                    done = True
            if not done and jt.weights_or_none() is None:
                jt = JaggedTensor(values=jt.values(), lengths=jt.lengths(),
                                  weights=torch.ones(jt.values().numel(), device=jt.values().device))
            out[key] = jt
        return KeyedJaggedTensor.from_jt_dict(out)

from recsys_lib.quant.mc_embedding_modules import (  # noqa: E402,F401  (TorchRec defines them in this module)
    QuantManagedCollisionEmbeddingBagCollection,
    QuantManagedCollisionEmbeddingCollection,
)
