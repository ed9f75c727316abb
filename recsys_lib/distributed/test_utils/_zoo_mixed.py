"""Zoo pieces beyond plain EBCs: the managed-collision sparse arch (``TestSparseNN(zch_kwargs=...)``) and the
mixed pooled + sequence model (an EBC beside an EC whose sequences are padded to 20 positions).

``TestEBCSparseArchZCH`` reads one config per table from ``zch_kwargs[table.name]``: any object with ``mc_type``
(``"mp-zch"``: ``HashZchManagedCollisionModule``; ``"sort-zch"``: ``MCHManagedCollisionModule``),
``input_hash_size`` and, for ``"mp-zch"``, ``total_num_buckets``, ``max_probe``, ``eviction_policy_name``,
``eviction_config`` (a dict: ``features``, ``single_ttl``, ``per_feature_ttl``), ``opt_in_prob``,
``percent_reserved_slots``, ``disable_fallback``.
"""

from typing import Any, Callable, Dict, List, Optional, Tuple, Type, Union

import torch
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.distributed.memory_stashing import MemoryStashingManager
from recsys_lib.distributed.test_utils._model_input import ModelInput
from recsys_lib.distributed.test_utils._zoo_archs import (
    DENSE_LAYER_OUT_SIZE,
    OVER_ARCH_OUT_SIZE,
    TestDenseArch,
    TestSparseNNBase,
    _features,
    _post_sparsenn_forward,
    _prediction_head,
    _tables_dim_sum,
)
from recsys_lib.distributed.utils import CopyableMixin
from recsys_lib.modules.activation import SwishLayerNorm
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
from recsys_lib.modules.hash_mc_evictions import HashZchEvictionConfig, HashZchEvictionPolicyName
from recsys_lib.modules.hash_mc_modules import HashZchManagedCollisionModule
from recsys_lib.modules.mc_embedding_modules import ManagedCollisionEmbeddingBagCollection
from recsys_lib.modules._mc_base import ManagedCollisionModule
from recsys_lib.modules._mc_eviction import DistanceLFU_EvictionPolicy
from recsys_lib.modules._mch import MCHManagedCollisionModule
from recsys_lib.modules.mc_modules import ManagedCollisionCollection
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor, KeyedTensor

_FACE = "recsys_lib.distributed.test_utils.test_model"
_EC_PAD = 20  # sequence positions kept per EC feature by TestMixedEmbeddingSparseArch


@public_at(_FACE)
class TestEBCSparseArchZCH(nn.Module):
    """Sparse arch of managed-collision EBCs: ``ebc`` over ``tables`` and ``weighted_ebc`` over
    ``weighted_tables`` (if any), each a ``ManagedCollisionEmbeddingBagCollection``; outputs merged as
    [ebc, weighted_ebc] into one ``(B, sum D)`` ``KeyedTensor`` (remapped ids, if returned, dropped)."""

    __test__ = False

    def _get_mc_module_from_tables(
        self, tables: List[EmbeddingBagConfig], device: torch.device, zch_kwargs: Dict[str, Any]
    ) -> Dict[str, ManagedCollisionModule]:
        modules: Dict[str, ManagedCollisionModule] = {}
        for table in tables:
            if table.name not in zch_kwargs:
                raise ValueError(f"TestEBCSparseArchZCH: zch_kwargs has no config for table {table.name!r}")
            cfg = zch_kwargs[table.name]
            if cfg.mc_type == "mp-zch":
                policy, eviction = None, None
                if cfg.eviction_policy_name:
                    policy = HashZchEvictionPolicyName(cfg.eviction_policy_name)
                    if cfg.eviction_config is not None:
                        ev = cfg.eviction_config
                        eviction = HashZchEvictionConfig(features=ev.get("features", table.feature_names),
                                                         single_ttl=ev.get("single_ttl"),
                                                         per_feature_ttl=ev.get("per_feature_ttl"))
                modules[table.name] = HashZchManagedCollisionModule(
                    zch_size=table.num_embeddings, device=device, input_hash_size=cfg.input_hash_size,
                    total_num_buckets=cfg.total_num_buckets, max_probe=cfg.max_probe,
                    eviction_policy_name=policy, eviction_config=eviction, opt_in_prob=cfg.opt_in_prob,
                    percent_reserved_slots=cfg.percent_reserved_slots, disable_fallback=cfg.disable_fallback,
                )
            elif cfg.mc_type == "sort-zch":
                modules[table.name] = MCHManagedCollisionModule(
                    zch_size=table.num_embeddings, input_hash_size=cfg.input_hash_size, device=device,
                    eviction_interval=1000, eviction_policy=DistanceLFU_EvictionPolicy(),
                )
            else:
                raise ValueError(f"Unknown mc_type in zch_kwargs: {cfg.mc_type}")
        return modules

    def _mc_ebc(self, tables: List[EmbeddingBagConfig], device: torch.device, zch_kwargs: Dict[str, Any],
                weighted: bool) -> ManagedCollisionEmbeddingBagCollection:
        return ManagedCollisionEmbeddingBagCollection(
            EmbeddingBagCollection(tables=tables, device=device, is_weighted=weighted),
            ManagedCollisionCollection(managed_collision_modules=self._get_mc_module_from_tables(
                tables, device, zch_kwargs), embedding_configs=tables),
            return_remapped_features=self._return_remapped,
        )

    def __init__(
        self,
        tables: List[EmbeddingBagConfig],
        weighted_tables: List[EmbeddingBagConfig],
        device: torch.device,
        zch_kwargs: Dict[str, Any],
        return_remapped: bool = False,
    ) -> None:
        super().__init__()
        self._return_remapped = return_remapped
        self.ebc: ManagedCollisionEmbeddingBagCollection = self._mc_ebc(tables, device, zch_kwargs, False)
        self.weighted_ebc: Optional[ManagedCollisionEmbeddingBagCollection] = (
            self._mc_ebc(weighted_tables, device, zch_kwargs, True) if weighted_tables else None
        )

    def forward(
        self,
        features: KeyedJaggedTensor,
        weighted_features: Optional[KeyedJaggedTensor] = None,
        batch_size: Optional[int] = None,
    ) -> KeyedTensor:
        ebc, _ = self.ebc(features)
        w_ebc: Optional[KeyedTensor] = None
        if self.weighted_ebc is not None and weighted_features is not None:
            w_ebc, _ = self.weighted_ebc(weighted_features)
        return _post_sparsenn_forward(ebc, None, w_ebc, batch_size)


def _or(value: Optional[int], default: int) -> int:
    return default if value is None else value


def _mixed_in_features(ebc_tables: List[EmbeddingBagConfig], ec_tables: List[EmbeddingConfig],
                       weighted_tables: List[EmbeddingBagConfig], max_sequence_length: int, dense_out: int) -> int:
    return (dense_out + _tables_dim_sum(ebc_tables) + _tables_dim_sum(ec_tables, max_sequence_length)
            + _tables_dim_sum(weighted_tables))


@public_at(_FACE)
class TestMixedSequenceOverArch(nn.Module):
    """One linear over ``[dense, sparse]``; ``sparse`` holds the pooled EBC features and each EC feature's
    ``max_sequence_length`` (20) padded positions.

    Call Args:
        dense (Tensor): ``(B, dense_arch_out_size)``.
        sparse (Tensor): ``(B, sum D_ebc + sum D_ec * max_sequence_length)``.

    Returns:
        Tensor: ``(B, over_arch_out_size)``.
    """

    __test__ = False

    def __init__(
        self,
        ebc_tables: List[EmbeddingBagConfig],
        ec_tables: List[EmbeddingConfig],
        weighted_tables: List[EmbeddingBagConfig],
        device: Optional[torch.device] = None,
        max_sequence_length: Optional[int] = None,
        dense_arch_out_size: Optional[int] = None,
        over_arch_out_size: Optional[int] = None,
    ) -> None:
        super().__init__()
        width = _mixed_in_features(ebc_tables, ec_tables, weighted_tables, _or(max_sequence_length, _EC_PAD),
                                   _or(dense_arch_out_size, DENSE_LAYER_OUT_SIZE))
        self.linear = nn.Linear(width, _or(over_arch_out_size, OVER_ARCH_OUT_SIZE), device=device or torch.device("cpu"))

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.cat([dense, sparse], dim=1))


@public_at(_FACE)
class TestMixedSequenceOverArchLargeActivation(nn.Module):
    """``TestMixedSequenceOverArch`` with wide activations: ``Linear + SwishLayerNorm`` to
    ``large_activation_dim``, ``over_arch_hidden_layers`` (5) more such blocks, then a linear to
    ``over_arch_out_size``."""

    __test__ = False

    def __init__(
        self,
        ebc_tables: List[EmbeddingBagConfig],
        ec_tables: List[EmbeddingConfig],
        weighted_tables: List[EmbeddingBagConfig],
        device: Optional[torch.device] = None,
        max_sequence_length: Optional[int] = None,
        dense_arch_out_size: Optional[int] = None,
        over_arch_out_size: Optional[int] = None,
        over_arch_hidden_layers: Optional[int] = None,
        large_activation_dim: int = 4096,
    ) -> None:
        super().__init__()
        device = device or torch.device("cpu")
        width = _mixed_in_features(ebc_tables, ec_tables, weighted_tables, _or(max_sequence_length, _EC_PAD),
                                   _or(dense_arch_out_size, DENSE_LAYER_OUT_SIZE))
        hidden = large_activation_dim
        layers: List[nn.Module] = [nn.Linear(width, hidden, device=device), SwishLayerNorm(hidden, device=device)]
        for _ in range(_or(over_arch_hidden_layers, 5)):
            layers += [nn.Linear(hidden, hidden, device=device), SwishLayerNorm(hidden, device=device)]
        layers.append(nn.Linear(hidden, _or(over_arch_out_size, OVER_ARCH_OUT_SIZE), device=device))
        self.overarch = nn.Sequential(*layers)

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        return self.overarch(torch.cat([dense, sparse], dim=1))


@public_at(_FACE)
class TestMixedEmbeddingSparseArch(TestSparseNNBase, CopyableMixin):
    """A model over both table kinds: ``ebc`` (``EmbeddingBagConfig`` tables, pooled) and ``ec``
    (``EmbeddingConfig`` tables; each feature's sequence padded / cut to 20 positions and flattened), then
    ``over_arch_clazz(ebc_tables, ec_tables, [], device, **over_arch_kwargs)`` over ``[dense, sparse]``.
    ``enable_activation_stashing`` (CUDA only) stashes the EC activations to host memory between forward and
    backward through ``MemoryStashingManager``.

    Returns:
        ``(loss, pred)`` in training, else ``pred`` ``(B,)`` (``pred`` includes the ``dummy_ones`` buffer).
    """

    def __init__(
        self,
        tables: Union[List[EmbeddingBagConfig], List[EmbeddingConfig]],
        num_float_features: int = 10,
        weighted_tables: Optional[List[EmbeddingBagConfig]] = None,
        embedding_groups: Optional[Dict[str, List[str]]] = None,
        dense_device: Optional[torch.device] = None,
        sparse_device: Optional[torch.device] = None,
        feature_processor_modules: Optional[Dict[str, torch.nn.Module]] = None,
        over_arch_clazz: Type[nn.Module] = TestMixedSequenceOverArch,
        device: Optional[torch.device] = None,
        enable_activation_stashing: bool = False,
        dense_arch_hidden_sizes: Optional[List[int]] = None,
        over_arch_kwargs: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(tables=list(tables), weighted_tables=weighted_tables or [], embedding_groups=embedding_groups,
                         dense_device=dense_device, sparse_device=sparse_device)
        self._enable_activation_stashing = enable_activation_stashing
        self._restore_callback: Callable[[Optional[torch.Tensor]], None] = lambda _: None
        if enable_activation_stashing:
            if not torch.cuda.is_available():
                raise RuntimeError("TestMixedEmbeddingSparseArch: enable_activation_stashing needs CUDA streams")
            MemoryStashingManager.set_streams(torch.cuda.Stream(device=device))
        device = device or torch.device("cpu")
        ebc_tables = [t for t in tables if isinstance(t, EmbeddingBagConfig)]
        ec_tables = [t for t in tables if isinstance(t, EmbeddingConfig)]
        for t in tables:
            if not isinstance(t, (EmbeddingBagConfig, EmbeddingConfig)):
                raise ValueError(f"Unsupported table type: {type(t)}")
        self.ebc: Optional[EmbeddingBagCollection] = (
            EmbeddingBagCollection(tables=ebc_tables, device=device) if ebc_tables else None)
        self.ec: Optional[EmbeddingCollection] = None
        if ec_tables:
            self.ec = EmbeddingCollection(tables=ec_tables, device=device)
            self.ec_embedding_dim = self.ec.embedding_dim()
        self._ebc_features: List[str] = _features(ebc_tables)
        self._ec_features: List[str] = _features(ec_tables)
        names = list(embedding_groups.values())[0] if embedding_groups else None
        self._embedding_names: List[str] = names if names else _features(tables)
        self.dense = TestDenseArch(num_float_features, device=dense_device,
                                   dense_arch_hidden_sizes=dense_arch_hidden_sizes)
        self.over: nn.Module = over_arch_clazz(ebc_tables, ec_tables, [], device, **(over_arch_kwargs or {}))
        self.register_buffer("dummy_ones", torch.ones(1, device=dense_device))

    def _stashing(self) -> bool:
        return self._enable_activation_stashing and not torch.fx._symbolic_trace.is_fx_symbolic_tracing()

    def sparse_forward(self, input: ModelInput) -> torch.Tensor:
        """``(B, sum D_ebc + 20 * D_ec * F_ec)``: pooled EBC features, then each EC feature's padded sequence."""
        features = input.idlist_features
        parts: List[torch.Tensor] = []
        if self.ebc is not None and self._ebc_features:
            parts.append(self.ebc(features).values())
        if self.ec is not None and self._ec_features:
            seqs = self.ec(features)
            padded = [seqs[f].to_padded_dense(desired_length=_EC_PAD).reshape(-1, _EC_PAD * self.ec_embedding_dim)
                      for f in self._ec_features]
            ec_out = torch.cat(padded, dim=1)
            if self._stashing():
                await_restore, restore, _ = MemoryStashingManager._stash_tensors(
                    [seqs[f].values() for f in self._ec_features])
                ec_out.register_hook(await_restore)
                self._restore_callback = restore
            parts.append(ec_out)
        return torch.cat(parts, dim=1)

    def dense_forward(
        self, input: ModelInput, sparse_output: torch.Tensor
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        dense = self.dense(input.float_features)
        if self._stashing():
            dense.register_hook(self._restore_callback)
        return _prediction_head(self.training, self.over(dense, sparse_output), input.label, self.dummy_ones)

    def forward(self, input: ModelInput) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        return self.dense_forward(input, self.sparse_forward(input))
