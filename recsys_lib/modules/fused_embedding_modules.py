"""Embedding collections whose optimizer runs inside backward, on FBGEMM's table-batched kernel (TBE).

``FusedEmbeddingBagCollection`` / ``FusedEmbeddingCollection`` compute what ``EmbeddingBagCollection`` /
``EmbeddingCollection`` compute, but ``loss.backward()`` also updates the tables (no dense ``(R, D)``
gradient is ever materialised). State-dict keys are the unfused ones (``embedding_bags.<table>.weight``,
``embeddings.<table>.weight``), so checkpoints move freely between fused and unfused modules.

Example::

    ebc = FusedEmbeddingBagCollection(tables, optimizer_type=torch.optim.SGD, optimizer_kwargs={"lr": 0.1})
    ebc(kjt).values().sum().backward()     # tables already updated here
    ebc.fused_optimizer().state_dict()     # {"state": {"t0.weight": {"t0.weight.momentum_1": ...}}} (Adagrad)

CPU optimizers: ``torch.optim.SGD`` / ``optimizers.SGD`` (EXACT_SGD), ``torch.optim.Adagrad`` /
``optimizers.Adagrad`` (EXACT_ADAGRAD), ``RowWiseAdagrad`` (EXACT_ROWWISE_ADAGRAD).
"""

from typing import Any, Dict, List, Optional, Tuple, Type

import torch
from fbgemm_gpu.split_table_batched_embeddings_ops_common import EmbeddingLocation, PoolingMode
from fbgemm_gpu.split_table_batched_embeddings_ops_training import SplitTableBatchedEmbeddingBagsCodegen
from torch import nn

from recsys_lib.modules._feature_layout import (
    all_ids_below,
    check_ids,
    check_keys,
    embedding_names_by_table,
    table_feature_names,
)
from recsys_lib.modules._lookup import process_pooled_embeddings, reorder_inverse_indices
from recsys_lib.modules._tbe import (
    TBEFusedOptimizer,
    build_tbe,
    check_cpu_optimizer,
    convert_optimizer_type_and_kwargs,
    weight_parameters,
)
from recsys_lib.modules.embedding_configs import (
    BaseEmbeddingConfig,
    EmbeddingBagConfig,
    EmbeddingConfig,
    PoolingType,
    pooling_type_to_pooling_mode,
    validate_table_names,
)
from recsys_lib.modules.embedding_modules import (
    EmbeddingBagCollection,
    EmbeddingBagCollectionInterface,
    EmbeddingCollection,
    EmbeddingCollectionInterface,
    _check_float_tables,
)
from recsys_lib.ops.pad_batch import pad_to_uniform_batch
from recsys_lib.optim.fused import FusedOptimizer
from recsys_lib.optim.keyed import KeyedOptimizer
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, KeyedTensor

__all__ = [
    "FusedEmbeddingBagCollection",
    "FusedEmbeddingCollection",
    "fuse_embedding_optimizer",
    "convert_optimizer_type_and_kwargs",
]


class EmbeddingFusedOptimizer(FusedOptimizer):
    """The optimizer fused into one FBGEMM TBE, keyed by ``"<table>.weight"`` (TorchRec's unfused layout).

    State per table: ``{"<table>.weight.momentum_1": ..., "<table>.weight.momentum_2": ...}`` as views of the TBE's
    own optimizer buffers. ``step()`` / ``zero_grad()`` push ``param_groups[0]["lr"]`` into the kernel (the update
    itself runs inside backward).

    Args:
        tables: configs of the TBE's tables, in the TBE's order (names give the keys).
        emb_module: the ``SplitTableBatchedEmbeddingBagsCodegen`` holding the tables.
    """

    def __init__(self, tables: List[BaseEmbeddingConfig], emb_module: SplitTableBatchedEmbeddingBagsCodegen) -> None:
        self._emb_module = emb_module
        weights = emb_module.split_embedding_weights()
        if len(weights) != len(tables):
            raise ValueError(f"EmbeddingFusedOptimizer: {len(tables)} table configs for a TBE with {len(weights)} "
                             "tables")
        params: Dict[str, torch.Tensor] = {}
        state: Dict[Any, Any] = {}
        all_states = list(emb_module.split_optimizer_states())  # empty for stateless optimizers (SGD)
        for i, (weight, table) in enumerate(zip(weights, tables)):
            opt_states = all_states[i] if i < len(all_states) else []
            key = table.name + ".weight"
            params[key] = weight
            state[weight] = {f"{key}.momentum_{i + 1}": t for i, t in enumerate(list(opt_states)[:2])}
        super().__init__(params, state, [{"params": list(params.values()), "lr": emb_module.get_learning_rate()}])

    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        self._emb_module.set_learning_rate(self.param_groups[0]["lr"])

    def zero_grad(self, set_to_none: bool = False) -> None:
        self._emb_module.set_learning_rate(self.param_groups[0]["lr"])


class _TableWeight(nn.Module):
    """Holds one table's weight (a view of the TBE's storage) under the unfused state-dict key."""

    def __init__(self, weight: nn.Parameter) -> None:
        super().__init__()
        self.weight = weight


class _FusedTables(nn.Module):
    """Shared body: TBEs per table group, weight views in a ModuleDict, the fused optimizer."""

    def _setup(
        self,
        tables: List[Any],
        groups: List[List[int]],
        modes: List[PoolingMode],
        optimizer_type: Type[torch.optim.Optimizer],
        optimizer_kwargs: Dict[str, Any],
        device: Optional[torch.device],
        location: Optional[EmbeddingLocation],
        weights_attr: str,
    ) -> None:
        opt, kwargs = convert_optimizer_type_and_kwargs(optimizer_type, optimizer_kwargs)
        self._device = torch.device("cpu") if device is None else torch.device(device)
        check_cpu_optimizer(opt, self._device, optimizer_type)
        self._optimizer_type = optimizer_type
        self._optimizer_kwargs = dict(optimizer_kwargs)
        # TBEs are deliberately not submodules: their flat buffers must not appear in state_dict() or
        # parameters(); the per-table views below are the public weights.
        self._tbes: List[Any] = []
        self._group_features: List[List[str]] = []
        self._group_rows: List[List[Tuple[str, int]]] = []
        named: List[List[Tuple[str, str, nn.Parameter]]] = []
        views = nn.ModuleDict()
        for g, mode in zip(groups, modes):
            g_tables = [tables[i] for i in g]
            feature_map = [j for j, t in enumerate(g_tables) for _ in table_feature_names(t)]
            tbe = build_tbe(g_tables, feature_map, mode, opt, kwargs, self._device, location)
            self._tbes.append(tbe)
            self._group_features.append([f for t in g_tables for f in table_feature_names(t)])
            self._group_rows.append([(t.name, t.num_embeddings) for t in g_tables for _ in table_feature_names(t)])
            params = weight_parameters(tbe)
            # Optimizer keys follow TorchRec's unsharded fused modules: "<table>.weight".
            named.append([(f"{t.name}.weight", t.name, p) for t, p in zip(g_tables, params)])
            for t, p in zip(g_tables, params):
                views[t.name] = _TableWeight(p)
        # Table order in the ModuleDict (and so in state_dict) is the config order, as in the unfused module.
        setattr(self, weights_attr, nn.ModuleDict({t.name: views[t.name] for t in tables}))
        self._optim = TBEFusedOptimizer(self._tbes, named, float(kwargs.get("learning_rate", 0.01)))

    def _grouped_kjt(self, features: KeyedJaggedTensor, index: Dict[str, int], g: int) -> KeyedJaggedTensor:
        perm = [index[f] for f in self._group_features[g]]
        kjt = features if perm == list(range(len(features.keys()))) else features.permute(perm)
        # FBGEMM would only warn and read row 0 for an out-of-range id: refuse it instead.
        if not all_ids_below(kjt.values(), min(r for _, r in self._group_rows[g])):
            for (table, rows), ids in zip(self._group_rows[g], kjt.values().split(kjt.length_per_key())):
                check_ids(ids, rows, table)
        return kjt

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def, override]
        # The weights are views into the TBEs' buffers: moving or casting them would silently detach them.
        probe = fn(torch.empty(0, device=self._device))
        if probe.device != self._device or probe.dtype != torch.float32:
            raise ValueError(f"{type(self).__name__} cannot be moved or cast after construction (its tables live in "
                             f"FBGEMM buffers on {self._device}); build it with device={probe.device} instead")
        return self

    def fused_optimizer(self) -> KeyedOptimizer:
        """The in-backward optimizer, keyed ``<table>.weight`` (TorchRec's layout)."""
        return self._optim

    def optimizer_type(self) -> Type[torch.optim.Optimizer]:
        return self._optimizer_type

    def optimizer_kwargs(self) -> Dict[str, Any]:
        return dict(self._optimizer_kwargs)

    @property
    def device(self) -> torch.device:
        return self._device


class FusedEmbeddingBagCollection(_FusedTables, EmbeddingBagCollectionInterface):
    """``EmbeddingBagCollection`` with the optimizer fused into backward (FBGEMM TBE).

    Args:
        tables: pooled table configs (SUM or MEAN); names unique.
        optimizer_type: optimizer class that selects the fused FBGEMM optimizer.
        optimizer_kwargs: its kwargs (``lr`` etc.).
        is_weighted: use the KJT's per-id weights (SUM tables).
        device: ``cpu`` or ``cuda``.
        location: TBE ``EmbeddingLocation`` on CUDA (default ``DEVICE``; CPU always ``HOST``).
    """

    def __init__(
        self,
        tables: List[EmbeddingBagConfig],
        optimizer_type: Type[torch.optim.Optimizer],
        optimizer_kwargs: Dict[str, Any],
        is_weighted: bool = False,
        device: Optional[torch.device] = None,
        location: Optional[EmbeddingLocation] = None,
    ) -> None:
        super().__init__()
        validate_table_names(list(tables), "FusedEmbeddingBagCollection")
        _check_float_tables(list(tables), "FusedEmbeddingBagCollection")
        for t in tables:
            if not isinstance(t, EmbeddingBagConfig) or t.pooling == PoolingType.NONE:
                raise ValueError(f"FusedEmbeddingBagCollection: table {t.name!r} must be an EmbeddingBagConfig "
                                 "with SUM or MEAN pooling")
            if len(t.feature_names) == 0:
                t.feature_names = [t.name]
        self._embedding_bag_configs = list(tables)
        self._is_weighted = bool(is_weighted)
        keyed: Dict[Tuple[PoolingType, Any], List[int]] = {}
        for i, t in enumerate(tables):
            keyed.setdefault((t.pooling, t.data_type), []).append(i)
        groups = list(keyed.values())
        modes = [pooling_type_to_pooling_mode(k[0]) for k in keyed]
        self._setup(list(tables), groups, modes, optimizer_type, optimizer_kwargs, device, location, "embedding_bags")
        self._embedding_names = [n for names in embedding_names_by_table(list(tables)) for n in names]
        self._lengths_per_embedding = [t.embedding_dim for t in tables for _ in table_feature_names(t)]
        self._all_features = {f: 0 for t in tables for f in table_feature_names(t)}
        # Output columns: groups are concatenated, then put back into table order.
        col_of: Dict[int, List[int]] = {}
        pos = 0
        for g in groups:
            for i in g:
                width = tables[i].embedding_dim * len(table_feature_names(tables[i]))
                col_of[i] = list(range(pos, pos + width))
                pos += width
        order = [c for i in range(len(tables)) for c in col_of[i]]
        self._col_perm: Optional[torch.Tensor] = (
            None if order == list(range(pos)) else torch.tensor(order, device=self._device)
        )

    def forward(self, features: KeyedJaggedTensor) -> KeyedTensor:
        """Pool every table's features. Returns a ``KeyedTensor`` with values ``(B, sum(D))``."""
        index = check_keys(features.keys(), self._all_features, "FusedEmbeddingBagCollection")
        if self._is_weighted and features.weights_or_none() is None:
            raise ValueError("FusedEmbeddingBagCollection(is_weighted=True) needs a KJT with weights")
        vbe = features.variable_stride_per_key()
        outs: List[torch.Tensor] = []
        for g, tbe in enumerate(self._tbes):
            kjt = self._grouped_kjt(features, index, g)
            w = kjt.weights().float() if self._is_weighted else None
            if not vbe:
                outs.append(tbe(kjt.values().long(), kjt.offsets().long(), per_sample_weights=w))
                continue
            spk = kjt.stride_per_key()
            dims = [self._dim_of(f) for f in self._group_features[g]]
            if self._device.type == "cuda":
                flat = tbe(kjt.values().long(), kjt.offsets().long(), per_sample_weights=w,
                           batch_size_per_feature_per_rank=[[b] for b in spk])
                pooled = [p.view(b, d) for p, b, d in zip(flat.split([b * d for b, d in zip(spk, dims)]), spk, dims)]
            else:  # FBGEMM's CPU VBE metadata is built by host loops: pad every feature to one batch instead
                padded = tbe(kjt.values().long(), pad_to_uniform_batch(kjt.lengths(), [[b] for b in spk]),
                             per_sample_weights=w)
                pooled = list(padded.split(dims, dim=1))  # [B_max, D_f]; inverse_indices only reach rows < b_f
            inverse = reorder_inverse_indices(features.inverse_indices_or_none(), self._group_features[g])
            if inverse.numel() == 0:
                raise ValueError("FusedEmbeddingBagCollection: a variable-batch KJT needs inverse_indices")
            outs.append(process_pooled_embeddings(pooled, inverse))
        values = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
        if self._col_perm is not None:
            values = values.index_select(1, self._col_perm)
        return KeyedTensor(keys=self._embedding_names, length_per_key=self._lengths_per_embedding, values=values)

    def _dim_of(self, feature: str) -> int:
        for t in self._embedding_bag_configs:
            if feature in t.feature_names:
                return t.embedding_dim
        raise ValueError(f"unknown feature {feature!r}")

    def embedding_bag_configs(self) -> List[EmbeddingBagConfig]:
        return self._embedding_bag_configs

    def is_weighted(self) -> bool:
        return self._is_weighted


class FusedEmbeddingCollection(_FusedTables, EmbeddingCollectionInterface):
    """``EmbeddingCollection`` with the optimizer fused into backward (FBGEMM TBE, ``PoolingMode.NONE``).

    All ids of the batch go through one TBE call with one "bag" per feature, so feature batches of any size
    (including variable-batch inputs) are looked up row by row. Args as ``FusedEmbeddingBagCollection``, plus
    ``need_indices`` (input ids in each output ``JaggedTensor``'s weights).
    """

    def __init__(
        self,
        tables: List[EmbeddingConfig],
        optimizer_type: Type[torch.optim.Optimizer],
        optimizer_kwargs: Dict[str, Any],
        device: Optional[torch.device] = None,
        need_indices: bool = False,
        location: Optional[EmbeddingLocation] = None,
    ) -> None:
        super().__init__()
        validate_table_names(list(tables), "FusedEmbeddingCollection")
        _check_float_tables(list(tables), "FusedEmbeddingCollection")
        dims = {t.embedding_dim for t in tables}
        if len(dims) != 1:
            raise ValueError("FusedEmbeddingCollection: all tables must share embedding_dim, got "
                             + str({t.name: t.embedding_dim for t in tables}))
        for t in tables:
            if not isinstance(t, EmbeddingConfig):
                raise TypeError(f"FusedEmbeddingCollection: table {t.name!r} must be an EmbeddingConfig")
            if len(t.feature_names) == 0:
                t.feature_names = [t.name]
        self._embedding_configs = list(tables)
        self._embedding_dim = dims.pop()
        self._need_indices = bool(need_indices)
        keyed: Dict[Any, List[int]] = {}
        for i, t in enumerate(tables):
            keyed.setdefault(t.data_type, []).append(i)
        groups = list(keyed.values())
        self._setup(list(tables), groups, [PoolingMode.NONE] * len(groups), optimizer_type, optimizer_kwargs,
                    device, location, "embeddings")
        self._embedding_names_by_table = embedding_names_by_table(list(tables))
        self._all_features = {f: 0 for t in tables for f in table_feature_names(t)}
        names_of_feature: List[Dict[str, str]] = [
            dict(zip(table_feature_names(t), names)) for t, names in zip(tables, self._embedding_names_by_table)
        ]
        self._group_names: List[List[str]] = [
            [names_of_feature[i][f] for i in g for f in table_feature_names(tables[i])] for g in groups
        ]

    def forward(self, features: KeyedJaggedTensor) -> Dict[str, JaggedTensor]:
        """Look up every id. Returns ``{embedding_name: JaggedTensor(values (N_f, D), lengths L_f)}``."""
        index = check_keys(features.keys(), self._all_features, "FusedEmbeddingCollection")
        out: Dict[str, JaggedTensor] = {}
        for g, tbe in enumerate(self._tbes):
            kjt = self._grouped_kjt(features, index, g)
            ids = kjt.values().long()
            lpk = kjt.length_per_key()
            # One bag per feature (B = 1): with PoolingMode.NONE the bag boundaries only select the table.
            offsets = torch.tensor([0] + lpk, dtype=torch.long, device=ids.device).cumsum(0)
            rows = tbe(ids, offsets)
            spk = kjt.stride_per_key()
            lengths = kjt.lengths().split(spk)
            for name, r, i, lens in zip(self._group_names[g], rows.split(lpk), kjt.values().split(lpk), lengths):
                out[name] = JaggedTensor(values=r, lengths=lens, weights=i if self._need_indices else None)
        return out

    def embedding_configs(self) -> List[EmbeddingConfig]:
        return self._embedding_configs

    def need_indices(self) -> bool:
        return self._need_indices

    def embedding_dim(self) -> int:
        return self._embedding_dim

    def embedding_names_by_table(self) -> List[List[str]]:
        return self._embedding_names_by_table


def _fused_copy(
    module: nn.Module,
    optimizer_type: Type[torch.optim.Optimizer],
    optimizer_kwargs: Dict[str, Any],
    device: torch.device,
    location: Optional[EmbeddingLocation],
) -> Optional[nn.Module]:
    fused: Optional[nn.Module] = None
    if type(module) is EmbeddingBagCollection:
        fused = FusedEmbeddingBagCollection(module.embedding_bag_configs(), optimizer_type, optimizer_kwargs,
                                            is_weighted=module.is_weighted(), device=device, location=location)
    elif type(module) is EmbeddingCollection:
        fused = FusedEmbeddingCollection(module.embedding_configs(), optimizer_type, optimizer_kwargs,
                                         device=device, need_indices=module.need_indices(), location=location)
    if fused is not None and all(p.device.type != "meta" for p in module.parameters()):
        fused.load_state_dict(module.state_dict())
    return fused


def fuse_embedding_optimizer(
    model: nn.Module,
    optimizer_type: Type[torch.optim.Optimizer],
    optimizer_kwargs: Dict[str, Any],
    device: torch.device,
    location: Optional[EmbeddingLocation] = None,
) -> nn.Module:
    """Replace every ``EmbeddingBagCollection`` / ``EmbeddingCollection`` in ``model`` by its fused version.

    Weights are copied; returns ``model`` (or the fused module if ``model`` itself is a collection).
    """
    device = torch.device(device)
    top = _fused_copy(model, optimizer_type, optimizer_kwargs, device, location)
    if top is not None:
        return top
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            fused = _fused_copy(child, optimizer_type, optimizer_kwargs, device, location)
            if fused is not None:
                setattr(parent, name, fused)
    return model

