"""``EmbeddingBagCollection`` (pooled lookups) and ``EmbeddingCollection`` (sequence lookups), single device.

One table = one ``nn.EmbeddingBag`` / ``nn.Embedding``, so state-dict keys are TorchRec's
(``embedding_bags.<table>.weight``, ``embeddings.<table>.weight``) and checkpoints load with ``strict=True``.

Example::

    ebc = EmbeddingBagCollection(tables=[
        EmbeddingBagConfig(num_embeddings=100, embedding_dim=8, name="t0", feature_names=["f0", "f1"]),
        EmbeddingBagConfig(num_embeddings=50, embedding_dim=4, name="t1", feature_names=["f2"]),
    ])
    #        b0      b1
    # f0   [1, 2]   []        lengths (F*B,) = [2, 0, 1, 1, 3, 1]
    # f1   [3]      [4]       values (sum(L),) = [1, 2, 3, 4, 5, 6, 7, 8]
    # f2   [5,6,7]  [8]
    kjt = KeyedJaggedTensor.from_lengths_sync(["f0", "f1", "f2"], torch.tensor([1, 2, 3, 4, 5, 6, 7, 8]),
                                              torch.tensor([2, 0, 1, 1, 3, 1]))
    kt = ebc(kjt)            # KeyedTensor: keys ["f0", "f1", "f2"], values (B=2, 8 + 8 + 4)
"""

import abc
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import nn

from recsys_lib.modules._feature_layout import embedding_names_by_table, table_feature_names
from recsys_lib.modules._lookup import (  # noqa: F401  (the helpers are public here, as in TorchRec)
    lookup_sequences,
    pool_tables,
    process_pooled_embeddings,
    reorder_inverse_indices,
)
from recsys_lib.modules.embedding_configs import (
    BaseEmbeddingConfig,
    EmbeddingBagConfig,
    EmbeddingConfig,
    PoolingType,
    data_type_to_dtype,
    pooling_type_to_str,
    validate_table_names,
)
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, KeyedTensor
from recsys_lib.types import DataType

_FLOAT_TYPES = (DataType.FP32, DataType.FP16, DataType.BF16)

# The lookups depend on the batch (host-side per-key lengths): fx keeps each as one call node.
torch.fx.wrap("pool_tables")
torch.fx.wrap("lookup_sequences")


def get_embedding_names_by_table(
    tables: Union[List[EmbeddingBagConfig], List[EmbeddingConfig]],
) -> List[List[str]]:
    """Output names per table, in table order: a feature's name, or ``feature@table`` when shared by tables.

    Reads ``feature_names`` as given (the collections first default an empty list to ``[table.name]``).
    """
    count: Dict[str, int] = {}
    for t in tables:
        for f in t.feature_names:
            count[f] = count.get(f, 0) + 1
    return [[f if count[f] == 1 else f + "@" + t.name for f in t.feature_names] for t in tables]


def _check_float_tables(tables: List[BaseEmbeddingConfig], owner: str) -> None:
    for t in tables:
        if t.data_type not in _FLOAT_TYPES:
            raise ValueError(
                owner + ": table '" + t.name + "' has data_type " + str(t.data_type)
                + "; float tables (FP32/FP16/BF16) only. Quantized tables live in recsys_lib.quant."
            )


def _to_device(device: Optional[Union[str, torch.device]]) -> torch.device:
    return torch.device("cpu") if device is None else torch.device(device)


class EmbeddingBagCollectionInterface(abc.ABC, nn.Module):
    """A module mapping a ``KeyedJaggedTensor`` to pooled embeddings (a ``KeyedTensor``)."""

    @abc.abstractmethod
    def forward(self, features: KeyedJaggedTensor) -> KeyedTensor:
        pass

    @abc.abstractmethod
    def embedding_bag_configs(self) -> List[EmbeddingBagConfig]:
        pass

    @abc.abstractmethod
    def is_weighted(self) -> bool:
        pass


class EmbeddingCollectionInterface(abc.ABC, nn.Module):
    """A module mapping a ``KeyedJaggedTensor`` to one sequence ``JaggedTensor`` of embeddings per feature."""

    @abc.abstractmethod
    def forward(self, features: KeyedJaggedTensor) -> Dict[str, JaggedTensor]:
        pass

    @abc.abstractmethod
    def embedding_configs(self) -> List[EmbeddingConfig]:
        pass

    @abc.abstractmethod
    def need_indices(self) -> bool:
        pass

    @abc.abstractmethod
    def embedding_dim(self) -> int:
        pass

    @abc.abstractmethod
    def embedding_names_by_table(self) -> List[List[str]]:
        pass


def _empty_weight(table: BaseEmbeddingConfig, device: torch.device) -> torch.Tensor:
    """``(R, D)`` storage for one table in its data type, not initialised."""
    return torch.empty(
        (table.num_embeddings, table.embedding_dim), device=device, dtype=data_type_to_dtype(table.data_type)
    )


class EmbeddingBagCollection(EmbeddingBagCollectionInterface):
    """Pooled embedding lookups over a collection of tables.

    Args:
        tables: table configs; names unique. A feature read by several tables is output once per table
            as ``feature@table``.
        is_weighted: multiply each looked-up row by the KJT's per-id weight (SUM pooling only).
        device: where the tables live; ``"meta"`` allocates nothing (materialise later, then
            ``reset_parameters()``).

    ``forward(features: KJT) -> KeyedTensor`` with values ``(B, sum(D))``, keys = embedding names in table
    order. Every KJT key must be read by some table and every table feature must be present. Variable-batch
    (VBE) inputs are pooled per feature, then expanded to the full batch with ``features.inverse_indices()``.
    """

    __jit_unused_properties__ = ["device"]

    def __init__(
        self,
        tables: List[EmbeddingBagConfig],
        is_weighted: bool = False,
        device: Optional[torch.device] = None,
    ) -> None:
        super().__init__()
        torch._C._log_api_usage_once("recsys_lib.modules.EmbeddingBagCollection")
        if len(tables) > 0:  # TorchRec accepts an empty collection (forward then gives (B, 0))
            validate_table_names(list(tables), "EmbeddingBagCollection")
        _check_float_tables(list(tables), "EmbeddingBagCollection")
        for t in tables:
            if not isinstance(t, EmbeddingBagConfig):
                raise TypeError("EmbeddingBagCollection: table '" + t.name + "' must be an EmbeddingBagConfig, got "
                                + type(t).__name__)
            if t.pooling == PoolingType.NONE:
                raise ValueError("EmbeddingBagCollection: table '" + t.name + "' has pooling NONE; "
                                 "use EmbeddingCollection for sequence lookups")
            if len(t.feature_names) == 0:
                t.feature_names = [t.name]
        self._is_weighted: bool = bool(is_weighted)
        self._device: torch.device = _to_device(device)
        self._embedding_bag_configs: List[EmbeddingBagConfig] = list(tables)
        self._num_embeddings: List[int] = [t.num_embeddings for t in tables]
        self._table_names: List[str] = [t.name for t in tables]
        self._modes: List[int] = [1 if t.pooling == PoolingType.MEAN else 0 for t in tables]  # aten: 0 sum, 1 mean
        self.embedding_bags: nn.ModuleDict = nn.ModuleDict()
        for t in tables:
            self.embedding_bags[t.name] = nn.EmbeddingBag(
                num_embeddings=t.num_embeddings,
                embedding_dim=t.embedding_dim,
                mode=pooling_type_to_str(t.pooling),
                include_last_offset=True,
                # Uninitialised storage: reset_parameters() below applies the config's init_fn once, and a
                # meta table stays untouched (torch's own init would run normal_ twice / import dynamo on meta).
                _weight=_empty_weight(t, self._device),
            )
        self._feature_names: List[List[str]] = [table_feature_names(t) for t in tables]
        self._flat_feature_names: List[str] = [f for names in self._feature_names for f in names]
        self._embedding_names: List[str] = [n for names in embedding_names_by_table(list(tables)) for n in names]
        self._lengths_per_embedding: List[int] = [t.embedding_dim for t in tables for _ in table_feature_names(t)]
        self._all_features: Dict[str, int] = {f: 0 for names in self._feature_names for f in names}
        self.reset_parameters()

    @torch.jit.unused
    def reset_parameters(self) -> None:
        """Re-initialise every table with its config's ``init_fn`` (no-op on ``meta``)."""
        if self._device.type == "meta" or len(list(self.parameters())) == 0:
            return
        with torch.no_grad():
            for t in self._embedding_bag_configs:
                w = self.embedding_bags[t.name].weight
                if w.device.type == "meta":
                    continue
                assert t.init_fn is not None
                t.init_fn(w)

    def forward(self, features: KeyedJaggedTensor) -> KeyedTensor:
        """Pool every table's features. Returns a ``KeyedTensor`` with values ``(B, sum(D))``."""
        tables: List[torch.Tensor] = []
        for bag in self.embedding_bags.values():
            tables.append(bag.weight)
        if len(tables) == 0:
            # no tables: (B, 0) on the input's device (TorchRec's own forward fails on torch.cat([]) here)
            empty = torch.empty((features.stride(), 0), device=features.device())
            return KeyedTensor(keys=[], length_per_key=[], values=empty)
        result = pool_tables(
            features, tables, self._table_names, self._feature_names, self._flat_feature_names, self._all_features,
            self._num_embeddings, self._modes, self._is_weighted,
        )
        return KeyedTensor(keys=self._embedding_names, length_per_key=self._lengths_per_embedding, values=result)

    def is_weighted(self) -> bool:
        return self._is_weighted

    def embedding_bag_configs(self) -> List[EmbeddingBagConfig]:
        return self._embedding_bag_configs

    @property
    def device(self) -> torch.device:
        """Where the tables live now (follows ``.to()``; the constructor's device for an empty collection)."""
        for p in self.parameters():
            return p.device
        return self._device


class EmbeddingCollection(EmbeddingCollectionInterface):
    """Sequence (un-pooled) embedding lookups; all tables share one ``embedding_dim``.

    Args:
        tables: table configs with equal ``embedding_dim``; names unique.
        device: where the tables live (``"meta"`` allowed).
        need_indices: put each feature's input ids into its output ``JaggedTensor``'s weights.

    ``forward(features: KJT) -> Dict[str, JaggedTensor]``: one entry per embedding name, values ``(N_f, D)``
    (one row per input id), lengths = the feature's input lengths.
    """

    __jit_unused_properties__ = ["device"]

    def __init__(
        self,
        tables: List[EmbeddingConfig],
        device: Optional[torch.device] = None,
        need_indices: bool = False,
        use_gather_select: bool = False,
        use_gather_select_per_sharding: Optional[Dict[str, bool]] = None,
    ) -> None:
        super().__init__()
        torch._C._log_api_usage_once("recsys_lib.modules.EmbeddingCollection")
        if len(tables) > 0:  # TorchRec accepts an empty collection (forward then gives {})
            validate_table_names(list(tables), "EmbeddingCollection")
        _check_float_tables(list(tables), "EmbeddingCollection")
        dims = sorted({t.embedding_dim for t in tables}) if len(tables) > 0 else [-1]  # -1: TorchRec's "no dim"
        if len(dims) != 1:
            raise ValueError("EmbeddingCollection: all tables must share embedding_dim, got "
                             + str({t.name: t.embedding_dim for t in tables}))
        for t in tables:
            if not isinstance(t, EmbeddingConfig):
                raise TypeError("EmbeddingCollection: table '" + t.name + "' must be an EmbeddingConfig, got "
                                + type(t).__name__)
            if len(t.feature_names) == 0:
                t.feature_names = [t.name]
        self._embedding_configs: List[EmbeddingConfig] = list(tables)
        self._embedding_dim: int = dims[0]
        self._num_embeddings: List[int] = [t.num_embeddings for t in tables]
        self._table_names: List[str] = [t.name for t in tables]
        self._need_indices: bool = bool(need_indices)
        # Accepted for TorchRec's signature: a gather-based row selection is a kernel choice with the same result
        # here (both paths index the table), so the flags are only reported back.
        self._use_gather_select: bool = bool(use_gather_select)
        self._use_gather_select_per_sharding: Optional[Dict[str, bool]] = use_gather_select_per_sharding
        self._device: torch.device = _to_device(device)
        self.embeddings: nn.ModuleDict = nn.ModuleDict()
        for t in tables:
            self.embeddings[t.name] = nn.Embedding(
                num_embeddings=t.num_embeddings,
                embedding_dim=t.embedding_dim,
                _weight=_empty_weight(t, self._device),
            )
        self._feature_names: List[List[str]] = [table_feature_names(t) for t in tables]
        self._embedding_names_by_table: List[List[str]] = embedding_names_by_table(list(tables))
        self._all_features: Dict[str, int] = {f: 0 for names in self._feature_names for f in names}
        self.reset_parameters()

    @torch.jit.unused
    def reset_parameters(self) -> None:
        """Re-initialise every table with its config's ``init_fn`` (no-op on ``meta``)."""
        if self._device.type == "meta" or len(list(self.parameters())) == 0:
            return
        with torch.no_grad():
            for t in self._embedding_configs:
                w = self.embeddings[t.name].weight
                if w.device.type == "meta":
                    continue
                assert t.init_fn is not None
                t.init_fn(w)

    def forward(self, features: KeyedJaggedTensor) -> Dict[str, JaggedTensor]:
        """Look up every id. Returns ``{embedding_name: JaggedTensor(values (N_f, D), lengths L_f)}``."""
        tables: List[torch.Tensor] = []
        for emb in self.embeddings.values():
            tables.append(emb.weight)
        if len(tables) == 0:
            return {}
        return lookup_sequences(
            features, tables, self._table_names, self._feature_names, self._embedding_names_by_table,
            self._all_features, self._num_embeddings, self._need_indices,
        )

    def need_indices(self) -> bool:
        return self._need_indices

    def use_gather_select(self) -> bool:
        return self._use_gather_select

    def use_gather_select_per_sharding(self) -> Optional[Dict[str, bool]]:
        return self._use_gather_select_per_sharding

    def embedding_dim(self) -> int:
        return self._embedding_dim

    def embedding_configs(self) -> List[EmbeddingConfig]:
        return self._embedding_configs

    def embedding_names_by_table(self) -> List[List[str]]:
        return self._embedding_names_by_table

    @property
    def device(self) -> torch.device:
        """Where the tables live now (follows ``.to()``; the constructor's device for an empty collection)."""
        for p in self.parameters():
            return p.device
        return self._device
