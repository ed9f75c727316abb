"""The pieces of the test model zoo: dense, over and sparse archs, and the SparseNN base.

Shapes: ``B`` samples, ``sum D`` the concatenated per-feature embedding widths of the tables involved.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.modules.activation import SwishLayerNorm
from recsys_lib.modules.embedding_configs import BaseEmbeddingConfig, EmbeddingBagConfig, EmbeddingConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
from recsys_lib.modules.feature_processor_ import PositionWeightedModuleCollection
from recsys_lib.modules.fp_embedding_modules import FeatureProcessedEmbeddingBagCollection
from recsys_lib.modules.regroup import KTRegroupAsDict
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, KeyedTensor


DENSE_LAYER_OUT_SIZE = 8
OVER_ARCH_OUT_SIZE = 16


def _tables_dim_sum(tables: Sequence[BaseEmbeddingConfig], max_sequence_length: int = 1) -> int:
    """Width of the tables' concatenated per-feature embeddings: ``sum(D * features) * max_sequence_length``."""
    return sum(t.embedding_dim * len(t.feature_names) * max_sequence_length for t in tables)


def _features(tables: Sequence[BaseEmbeddingConfig]) -> List[str]:
    return [f for t in tables for f in t.feature_names]


@torch.fx.wrap
def _concat(dense: torch.Tensor, sparse_embeddings: List[torch.Tensor]) -> torch.Tensor:
    return torch.cat([dense] + sparse_embeddings, dim=1)


def _pad_kt_values(kt: KeyedTensor, batch_size: Optional[int] = None) -> torch.Tensor:
    """``kt.values()`` ``(b, D)`` with zero rows appended up to ``batch_size`` rows (ranks with fewer samples)."""
    values = kt.values()
    if batch_size is None or values.size(0) == batch_size:
        return values
    pad = values.new_zeros(batch_size - values.size(0), values.size(1))
    return torch.cat([values, pad], dim=0)


@torch.fx.wrap
def _post_sparsenn_forward(
    ebc: KeyedTensor, fp_ebc: Optional[KeyedTensor], w_ebc: Optional[KeyedTensor], batch_size: Optional[int] = None
) -> KeyedTensor:
    """One KeyedTensor of the EBC, feature-processed EBC and weighted EBC outputs (in that order), each padded
    to ``batch_size`` rows."""
    keys: List[str] = []
    widths: List[int] = []
    values: List[torch.Tensor] = []
    for kt in (ebc, fp_ebc, w_ebc):
        if kt is not None:
            keys += kt.keys()
            widths += kt.length_per_key()
            values.append(_pad_kt_values(kt, batch_size))
    return KeyedTensor(keys=keys, length_per_key=widths, values=torch.cat(values, dim=1))


@public_at("recsys_lib.distributed.test_utils.test_model")
class TestDenseArch(nn.Module):
    """Dense arch: optional hidden linears, then a linear to ``dense_arch_out_size`` (8 by default).

    Also holds ``dummy_param`` (2,) and buffer ``dummy_buffer`` (1,) so sharding tests see a dense parameter
    that is not used in forward.

    Args:
        num_float_features (int): input width.
        device (Optional[torch.device]): defaults to CPU.
        dense_arch_out_size (Optional[int]): output width.
        dense_arch_hidden_sizes (Optional[List[int]]): widths of hidden linears (none by default).

    Call Args:
        dense_input (Tensor): ``(B, num_float_features)``.

    Returns:
        Tensor: ``(B, dense_arch_out_size)``.
    """

    __test__ = False

    def __init__(
        self,
        num_float_features: int,
        device: Optional[torch.device] = None,
        dense_arch_out_size: Optional[int] = None,
        dense_arch_hidden_sizes: Optional[List[int]] = None,
        **_kwargs: Any,
    ) -> None:
        super().__init__()
        device = device if device is not None else torch.device("cpu")
        width = num_float_features
        hidden: List[nn.Module] = []
        for size in dense_arch_hidden_sizes or []:
            if size <= 0:
                raise ValueError(f"TestDenseArch: hidden layer size must be positive, got {size}")
            hidden.append(nn.Linear(width, size, device=device))
            width = size
        self.hidden_layers: Optional[nn.ModuleList] = nn.ModuleList(hidden) if hidden else None
        out = dense_arch_out_size if dense_arch_out_size is not None else DENSE_LAYER_OUT_SIZE
        self.linear: nn.Linear = nn.Linear(in_features=width, out_features=out, device=device)
        self.dummy_param = nn.Parameter(torch.zeros(2, device=device))
        self.register_buffer("dummy_buffer", torch.zeros(1, device=device))

    def forward(self, dense_input: torch.Tensor) -> torch.Tensor:
        out = dense_input
        if self.hidden_layers is not None:
            for layer in self.hidden_layers:
                out = layer(out)
        return self.linear(out)


@public_at("recsys_lib.distributed.test_utils.test_model")
class TestDHNArch(nn.Module):
    """Two stacked linears ``in_features -> out -> out`` (``out`` = ``over_arch_out_size``, 16 by default).

    Call Args:
        input (Tensor): ``(B, in_features)``.

    Returns:
        Tensor: ``(B, over_arch_out_size)``.
    """

    __test__ = False

    def __init__(
        self, in_features: int, device: Optional[torch.device] = None, over_arch_out_size: Optional[int] = None
    ) -> None:
        super().__init__()
        device = device if device is not None else torch.device("cpu")
        out = over_arch_out_size if over_arch_out_size is not None else OVER_ARCH_OUT_SIZE
        self.linear0 = nn.Linear(in_features=in_features, out_features=out, device=device)
        self.linear1 = nn.Linear(in_features=out, out_features=out, device=device)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.linear1(self.linear0(input))


@public_at("recsys_lib.distributed.test_utils.test_model")
class TestOverArch(nn.Module):
    """Over arch: the sparse KeyedTensor regrouped as [unweighted features, weighted features], concatenated
    after the dense output, through a ``TestDHNArch``.

    Args:
        tables (List[EmbeddingBagConfig]): unweighted tables (their features set the regroup order unless
            ``embedding_names`` is given).
        weighted_tables (List[EmbeddingBagConfig]): weighted tables.
        embedding_names (Optional[List[str]]): unweighted feature order.
        device (Optional[torch.device]): defaults to CPU.
        dense_arch_out_size (Optional[int]): dense width (8).
        over_arch_out_size (Optional[int]): output width (16).

    Call Args:
        dense (Tensor): ``(B, dense_arch_out_size)``.
        sparse (KeyedTensor): ``(B, sum D)`` per feature.

    Returns:
        Tensor: ``(B, over_arch_out_size)``.
    """

    __test__ = False

    def __init__(
        self,
        tables: List[EmbeddingBagConfig],
        weighted_tables: List[EmbeddingBagConfig],
        embedding_names: Optional[List[str]] = None,
        device: Optional[torch.device] = None,
        dense_arch_out_size: Optional[int] = None,
        over_arch_out_size: Optional[int] = None,
        **_kwargs: Any,
    ) -> None:
        super().__init__()
        self.device: torch.device = device or torch.device("cpu")
        self._embedding_names: List[str] = embedding_names or _features(tables)
        self._weighted_features: List[str] = _features(weighted_tables)
        dense_out = dense_arch_out_size if dense_arch_out_size is not None else DENSE_LAYER_OUT_SIZE
        width = dense_out + _tables_dim_sum(list(tables) + list(weighted_tables))
        self.dhn_arch: nn.Module = TestDHNArch(width, over_arch_out_size=over_arch_out_size, device=self.device)

    def sparse_grouped(self, sparse: KeyedTensor) -> List[torch.Tensor]:
        return KeyedTensor.regroup([sparse], [self._embedding_names, self._weighted_features])

    def forward(self, dense: torch.Tensor, sparse: KeyedTensor) -> torch.Tensor:
        return self.dhn_arch(_concat(dense, self.sparse_grouped(sparse)))


@public_at("recsys_lib.distributed.test_utils.test_model")
class TestOverArchRegroupModule(TestOverArch):
    """``TestOverArch`` regrouping through a ``KTRegroupAsDict`` module (groups "unweighted", "weighted")."""

    def __init__(
        self,
        tables: List[EmbeddingBagConfig],
        weighted_tables: List[EmbeddingBagConfig],
        embedding_names: Optional[List[str]] = None,
        device: Optional[torch.device] = None,
        dense_arch_out_size: Optional[int] = None,
        over_arch_out_size: Optional[int] = None,
        **_kwargs: Any,
    ) -> None:
        super().__init__(tables=tables, weighted_tables=weighted_tables, embedding_names=embedding_names,
                         device=device, dense_arch_out_size=dense_arch_out_size,
                         over_arch_out_size=over_arch_out_size)
        self.regroup_module = KTRegroupAsDict(
            [self._embedding_names, self._weighted_features], ["unweighted", "weighted"]
        )

    def sparse_grouped(self, sparse: KeyedTensor) -> List[torch.Tensor]:
        return list(self.regroup_module([sparse]).values())


@public_at("recsys_lib.distributed.test_utils.test_model")
class TestOverArchLarge(nn.Module):
    """A deeper over arch: ``Linear + SwishLayerNorm`` to ``over_arch_out_size``, then
    ``over_arch_hidden_layers`` (5) more ``Linear + SwishLayerNorm`` blocks; ``over_arch_hidden_repeat`` times
    the layer list after the first linear is appended again (shared modules). The sparse input is regrouped
    [unweighted, weighted] by a ``KTRegroupAsDict`` unless ``skip_regroup`` (then ``sparse.values()`` as is).

    Call Args:
        dense (Tensor): ``(B, dense_arch_out_size)``.
        sparse (KeyedTensor): ``(B, sum D)``.

    Returns:
        Tensor: ``(B, over_arch_out_size)``.
    """

    __test__ = False

    def __init__(
        self,
        tables: List[EmbeddingBagConfig],
        weighted_tables: List[EmbeddingBagConfig],
        embedding_names: Optional[List[str]] = None,
        device: Optional[torch.device] = None,
        dense_arch_out_size: Optional[int] = None,
        over_arch_out_size: Optional[int] = None,
        over_arch_hidden_layers: Optional[int] = None,
        over_arch_hidden_repeat: Optional[int] = None,
        skip_regroup: bool = False,
        **_kwargs: Any,
    ) -> None:
        super().__init__()
        self.device: torch.device = device or torch.device("cpu")
        names = embedding_names if embedding_names is not None else _features(tables)
        dense_out = dense_arch_out_size if dense_arch_out_size is not None else DENSE_LAYER_OUT_SIZE
        out = over_arch_out_size if over_arch_out_size is not None else OVER_ARCH_OUT_SIZE
        n_hidden = over_arch_hidden_layers if over_arch_hidden_layers is not None else 5
        width = dense_out + _tables_dim_sum(list(tables) + list(weighted_tables))
        layers: List[nn.Module] = [nn.Linear(width, out), SwishLayerNorm([out])]
        for _ in range(n_hidden):
            layers += [nn.Linear(out, out), SwishLayerNorm([out])]
        for _ in range(over_arch_hidden_repeat or 0):
            layers += layers[1:]
        self.overarch = nn.Sequential(*layers)
        self.regroup_module: Optional[nn.Module] = (
            None if skip_regroup else KTRegroupAsDict([names, _features(weighted_tables)], ["unweighted", "weighted"])
        )

    def forward(self, dense: torch.Tensor, sparse: KeyedTensor) -> torch.Tensor:
        if self.regroup_module is not None:
            groups: Dict[str, torch.Tensor] = self.regroup_module([sparse])
            parts = list(groups.values())
        else:
            parts = [sparse.values()]
        return self.overarch(_concat(dense, parts))


def _sum_pool(sequences: Dict[str, JaggedTensor], dims: List[int]) -> KeyedTensor:
    """Each feature's sequence embeddings summed per sample: ``{f: JT (n_f, D)}`` -> KeyedTensor ``(B, sum D)``."""
    keys = list(sequences.keys())
    pooled: List[torch.Tensor] = []
    for key, dim in zip(keys, dims):
        jt = sequences[key]
        lengths = jt.lengths()
        sample = torch.repeat_interleave(torch.arange(lengths.numel(), device=lengths.device), lengths.long())
        out = jt.values().new_zeros(lengths.numel(), dim)
        pooled.append(out.index_add(0, sample, jt.values()))
    return KeyedTensor(keys=keys, length_per_key=dims, values=torch.cat(pooled, dim=1))


@public_at("recsys_lib.distributed.test_utils.test_model")
class TestECSparseArch(nn.Module):
    """Sparse arch over an ``EmbeddingCollection``: each feature's sequence embeddings are sum-pooled per
    sample (TorchRec 1.8.0 crashes here handing the EC's dict to a KeyedTensor merge; see docs/deviations.md).

    Call Args:
        features (KeyedJaggedTensor): ``B`` samples per key.
        weighted_features (Optional[KeyedJaggedTensor]): ignored.
        batch_size (Optional[int]): pad the output to this many rows.

    Returns:
        KeyedTensor: ``(B, sum D)`` per feature.
    """

    __test__ = False

    def __init__(self, tables: List[EmbeddingConfig], device: Optional[torch.device] = None) -> None:
        super().__init__()
        self.ec: EmbeddingCollection = EmbeddingCollection(tables=tables, device=device or torch.device("cpu"))
        self._dims: Dict[str, int] = {f: t.embedding_dim for t in tables for f in t.feature_names}

    def forward(
        self,
        features: KeyedJaggedTensor,
        weighted_features: Optional[KeyedJaggedTensor] = None,
        batch_size: Optional[int] = None,
    ) -> KeyedTensor:
        sequences = self.ec(features)
        pooled = _sum_pool(sequences, [self._dims[k] for k in sequences.keys()])
        return _post_sparsenn_forward(pooled, None, None, batch_size)


@public_at("recsys_lib.distributed.test_utils.test_model")
class TestEBCSparseArch(nn.Module):
    """Sparse arch: ``ebc`` over ``tables``, optional ``weighted_ebc`` over ``weighted_tables``; with
    ``max_feature_lengths`` (table name -> max length) those tables go to ``fp_ebc``, a feature-processed
    weighted EBC with position weights. Outputs merged as [ebc, fp_ebc, weighted_ebc].

    Call Args:
        features (KeyedJaggedTensor): unweighted features.
        weighted_features (Optional[KeyedJaggedTensor]): weighted features.
        batch_size (Optional[int]): pad outputs to this many rows.

    Returns:
        KeyedTensor: ``(B, sum D)``.
    """

    __test__ = False

    def __init__(
        self,
        tables: List[EmbeddingBagConfig],
        weighted_tables: List[EmbeddingBagConfig],
        device: Optional[torch.device] = None,
        max_feature_lengths: Optional[Dict[str, int]] = None,
        **_kwargs: Any,
    ) -> None:
        super().__init__()
        device = device if device is not None else torch.device("cpu")
        self.fps: Optional[nn.ModuleList] = None
        self.fp_ebc: Optional[FeatureProcessedEmbeddingBagCollection] = None
        if max_feature_lengths is not None:
            fp_names = set(max_feature_lengths)
            self.ebc: EmbeddingBagCollection = EmbeddingBagCollection(
                tables=[t for t in tables if t.name not in fp_names], device=device
            )
            processors = PositionWeightedModuleCollection(
                max_feature_lengths=max_feature_lengths,
                device=torch.device("cpu") if device == torch.device("meta") else device,
            )
            self.fp_ebc = FeatureProcessedEmbeddingBagCollection(
                embedding_bag_collection=EmbeddingBagCollection(
                    tables=[t for t in tables if t.name in fp_names], device=device, is_weighted=True
                ),
                feature_processors=processors,
            )
        else:
            self.ebc = EmbeddingBagCollection(tables=tables, device=device)
        self.weighted_ebc: Optional[EmbeddingBagCollection] = (
            EmbeddingBagCollection(tables=weighted_tables, is_weighted=True, device=device) if weighted_tables else None
        )

    def forward(
        self,
        features: KeyedJaggedTensor,
        weighted_features: Optional[KeyedJaggedTensor] = None,
        batch_size: Optional[int] = None,
    ) -> KeyedTensor:
        fp_features = features
        if self.fps:
            for fp in self.fps:
                fp_features = fp(fp_features)
        ebc = self.ebc(features)
        fp_ebc = self.fp_ebc(fp_features) if self.fp_ebc is not None else None
        w_ebc = (
            self.weighted_ebc(weighted_features)
            if self.weighted_ebc is not None and weighted_features is not None else None
        )
        return _post_sparsenn_forward(ebc, fp_ebc, w_ebc, batch_size)


@public_at("recsys_lib.distributed.test_utils.test_model")
class TestSparseNNBase(nn.Module):
    """Base of the zoo's SparseNN models: records ``dense_device`` and ``sparse_device`` (CPU by default)."""

    __test__ = False

    def __init__(
        self,
        tables: List[BaseEmbeddingConfig],
        weighted_tables: Optional[List[BaseEmbeddingConfig]] = None,
        embedding_groups: Optional[Dict[str, List[str]]] = None,
        dense_device: Optional[torch.device] = None,
        sparse_device: Optional[torch.device] = None,
    ) -> None:
        super().__init__()
        self.dense_device: torch.device = dense_device or torch.device("cpu")
        self.sparse_device: torch.device = sparse_device or torch.device("cpu")


def _prediction_head(
    training: bool, over: torch.Tensor, label: torch.Tensor, offset: Optional[torch.Tensor] = None
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """``pred = sigmoid(mean(over, 1)) (+ offset)``, ``(B,)``; training returns ``(BCE-with-logits(pred, label),
    pred)``."""
    pred = torch.sigmoid(torch.mean(over, dim=1))
    if offset is not None:
        pred = pred + offset
    if training:
        return nn.functional.binary_cross_entropy_with_logits(pred, label), pred
    return pred
