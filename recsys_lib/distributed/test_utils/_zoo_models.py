"""The zoo's whole models: ``TestSparseNN`` (the model of the sharding tests) and the embedding-tower models.

``forward(ModelInput)`` returns ``(loss, pred)`` in training (BCE-with-logits of ``pred`` against ``label``;
scalar and ``(B,)``), else ``pred``.
"""

from typing import Any, Dict, List, Optional, Tuple, Type, Union

import torch
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.distributed.test_utils._model_input import ModelInput
from recsys_lib.distributed.test_utils._zoo_archs import (
    DENSE_LAYER_OUT_SIZE,
    TestDenseArch,
    TestEBCSparseArch,
    TestECSparseArch,
    TestOverArch,
    TestSparseNNBase,
    _features,
    _prediction_head,
    _tables_dim_sum,
)
from recsys_lib.distributed.test_utils._zoo_mixed import TestEBCSparseArchZCH
from recsys_lib.distributed.utils import CopyableMixin
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.modules.embedding_tower import EmbeddingTower, EmbeddingTowerCollection
from recsys_lib.sparse.jagged_tensor import KeyedTensor


@public_at("recsys_lib.distributed.test_utils.test_model")
class TestSparseNN(TestSparseNNBase, CopyableMixin):
    """The model of the sharding tests: ``dense`` (``TestDenseArch``), ``sparse`` (``TestEBCSparseArch``, or
    ``TestECSparseArch`` for ``EmbeddingConfig`` tables), ``over`` (``over_arch_clazz``, ``TestOverArch`` by
    default) and buffer ``dummy_ones`` (1,) added to the prediction.

    Args:
        tables: unweighted tables (EBC or EC configs).
        num_float_features (int): dense input width.
        weighted_tables (Optional[List[EmbeddingBagConfig]]): weighted tables.
        embedding_groups (Optional[Dict[str, List[str]]]): the first group's features order the over arch input.
        dense_device, sparse_device (Optional[torch.device]): where the parts live.
        max_feature_lengths (Optional[Dict[str, int]]): tables routed through position-weighted processing.
        feature_processor_modules: accepted and unused, as in TorchRec.
        over_arch_clazz (Optional[Type[nn.Module]]): over arch class, built as
            ``clazz(tables, weighted_tables, embedding_names, dense_device, **submodule_kwargs)``.
        postproc_module (Optional[nn.Module]): applied to the ``ModelInput`` before anything else.
        zch_kwargs (Optional[Dict[str, Any]]): per-table managed-collision configs: the sparse arch is then a
            ``TestEBCSparseArchZCH`` on the meta device (remapped ids returned).
        submodule_kwargs (Optional[Dict[str, Any]]): extra keyword arguments for the dense, sparse and over archs.

    Call Args:
        input (ModelInput): a batch of ``B`` samples.

    Returns:
        ``(loss, pred)`` in training (scalar, ``(B,)``), else ``pred`` ``(B,)``.
    """

    def __init__(
        self,
        tables: Union[List[EmbeddingBagConfig], List[EmbeddingConfig]],
        num_float_features: int = 10,
        weighted_tables: Optional[List[EmbeddingBagConfig]] = None,
        embedding_groups: Optional[Dict[str, List[str]]] = None,
        dense_device: Optional[torch.device] = None,
        sparse_device: Optional[torch.device] = None,
        max_feature_lengths: Optional[Dict[str, int]] = None,
        feature_processor_modules: Optional[Dict[str, torch.nn.Module]] = None,
        over_arch_clazz: Optional[Type[nn.Module]] = None,
        postproc_module: Optional[nn.Module] = None,
        zch_kwargs: Optional[Dict[str, Any]] = None,
        submodule_kwargs: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(tables=list(tables), weighted_tables=weighted_tables, embedding_groups=embedding_groups,
                         dense_device=dense_device, sparse_device=sparse_device)
        over_cls = over_arch_clazz if over_arch_clazz is not None else TestOverArch
        weighted = list(weighted_tables) if weighted_tables is not None else []
        extra = submodule_kwargs or {}
        self.dense = TestDenseArch(num_float_features, device=dense_device, **extra)
        self.sparse: nn.Module
        if zch_kwargs is not None:  # built on meta, as TorchRec: sharding materializes it
            self.sparse = TestEBCSparseArchZCH(list(tables), weighted, torch.device("meta"), zch_kwargs=zch_kwargs,
                                               return_remapped=True)
        elif len(tables) > 0 and isinstance(tables[0], EmbeddingConfig):
            self.sparse = TestECSparseArch(list(tables), sparse_device, **extra)
        else:
            self.sparse = TestEBCSparseArch(list(tables), weighted, sparse_device, max_feature_lengths, **extra)
        names = list(embedding_groups.values())[0] if embedding_groups else None
        self._embedding_names: List[str] = names if names else _features(tables)
        self._weighted_features: List[str] = _features(weighted)
        self.over: nn.Module = over_cls(tables, weighted, names, dense_device, **extra)
        self.register_buffer("dummy_ones", torch.ones(1, device=dense_device))
        self.postproc_module = postproc_module

    def sparse_forward(self, input: ModelInput) -> KeyedTensor:
        return self.sparse(features=input.idlist_features, weighted_features=input.idscore_features,
                           batch_size=input.float_features.size(0))

    def dense_forward(
        self, input: ModelInput, sparse_output: KeyedTensor
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        over = self.over(self.dense(input.float_features), sparse_output)
        return _prediction_head(self.training, over, input.label, self.dummy_ones)

    def forward(self, input: ModelInput) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        if self.postproc_module:
            input = self.postproc_module(input)
        return self.dense_forward(input, self.sparse_forward(input))


@public_at("recsys_lib.distributed.test_utils.test_model")
class TestTowerInteraction(nn.Module):
    """Tower interaction: the tables' features (in table order) concatenated, through a square linear.

    Call Args:
        sparse (KeyedTensor): holds every feature of ``tables``.

    Returns:
        Tensor: ``(B, sum D)``.
    """

    __test__ = False

    def __init__(self, tables: List[EmbeddingBagConfig], device: Optional[torch.device] = None) -> None:
        super().__init__()
        self._features: List[str] = _features(tables)
        width = _tables_dim_sum(tables)
        self.linear: nn.Linear = nn.Linear(width, width, device=device or torch.device("cpu"))

    def forward(self, sparse: KeyedTensor) -> torch.Tensor:
        return self.linear(torch.cat([sparse[f] for f in self._features], dim=1))


@public_at("recsys_lib.distributed.test_utils.test_model")
class TestTowerSparseNN(TestSparseNNBase):
    """SparseNN with two embedding towers (tables 2+3, table 0), a sparse arch over table 1 and weighted table
    0, and a linear over arch (16 outputs). Needs at least 4 tables and 1 weighted table.

    Returns:
        ``(loss, pred)`` in training, else ``pred`` ``(B,)``.
    """

    def __init__(
        self,
        tables: List[EmbeddingBagConfig],
        num_float_features: int = 10,
        weighted_tables: Optional[List[EmbeddingBagConfig]] = None,
        embedding_groups: Optional[Dict[str, List[str]]] = None,
        dense_device: Optional[torch.device] = None,
        sparse_device: Optional[torch.device] = None,
        feature_processor_modules: Optional[Dict[str, torch.nn.Module]] = None,
    ) -> None:
        super().__init__(tables=list(tables), weighted_tables=weighted_tables, embedding_groups=embedding_groups,
                         dense_device=dense_device, sparse_device=sparse_device)
        if len(tables) < 4 or not weighted_tables:
            raise ValueError("TestTowerSparseNN needs at least 4 tables and 1 weighted table, got "
                             f"{len(tables)} and {len(weighted_tables or [])}")
        self.dense = TestDenseArch(num_float_features, device=dense_device)
        self.tower_0 = EmbeddingTower(embedding_module=EmbeddingBagCollection(tables=[tables[2], tables[3]]),
                                      interaction_module=TestTowerInteraction(tables=[tables[2], tables[3]]))
        self.tower_1 = EmbeddingTower(embedding_module=EmbeddingBagCollection(tables=[tables[0]]),
                                      interaction_module=TestTowerInteraction(tables=[tables[0]]))
        self.sparse_arch = TestEBCSparseArch([tables[1]], [weighted_tables[0]], sparse_device)
        self.sparse_arch_feature_names: List[str] = list(tables[1].feature_names) + list(
            weighted_tables[0].feature_names)
        width = (DENSE_LAYER_OUT_SIZE + self.tower_0.interaction.linear.out_features
                 + self.tower_1.interaction.linear.out_features + _tables_dim_sum([tables[1], weighted_tables[0]]))
        self.over = nn.Linear(in_features=width, out_features=16, device=dense_device)

    def forward(self, input: ModelInput) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        dense = self.dense(input.float_features)
        towers = [self.tower_0(input.idlist_features), self.tower_1(input.idlist_features)]
        kt = self.sparse_arch(input.idlist_features, input.idscore_features)
        arch = torch.cat([kt[f] for f in self.sparse_arch_feature_names], dim=1)
        over = self.over(torch.cat([dense] + towers + [arch], dim=1))
        return _prediction_head(self.training, over, input.label)


@public_at("recsys_lib.distributed.test_utils.test_model")
class TestTowerCollectionSparseNN(TestSparseNNBase):
    """SparseNN over an ``EmbeddingTowerCollection`` of three towers (tables 0+2, table 1, weighted table 0)
    and a linear over arch (16 outputs). Needs at least 3 tables and 1 weighted table.

    Returns:
        ``(loss, pred)`` in training, else ``pred`` ``(B,)``.
    """

    def __init__(
        self,
        tables: List[EmbeddingBagConfig],
        num_float_features: int = 10,
        weighted_tables: Optional[List[EmbeddingBagConfig]] = None,
        embedding_groups: Optional[Dict[str, List[str]]] = None,
        dense_device: Optional[torch.device] = None,
        sparse_device: Optional[torch.device] = None,
        feature_processor_modules: Optional[Dict[str, torch.nn.Module]] = None,
    ) -> None:
        super().__init__(tables=list(tables), weighted_tables=weighted_tables, embedding_groups=embedding_groups,
                         dense_device=dense_device, sparse_device=sparse_device)
        if len(tables) < 3 or not weighted_tables:
            raise ValueError("TestTowerCollectionSparseNN needs at least 3 tables and 1 weighted table, got "
                             f"{len(tables)} and {len(weighted_tables or [])}")
        self.dense = TestDenseArch(num_float_features, device=dense_device)
        towers = [
            EmbeddingTower(embedding_module=EmbeddingBagCollection(tables=[tables[0], tables[2]]),
                           interaction_module=TestTowerInteraction(tables=[tables[0], tables[2]])),
            EmbeddingTower(embedding_module=EmbeddingBagCollection(tables=[tables[1]]),
                           interaction_module=TestTowerInteraction(tables=[tables[1]])),
            EmbeddingTower(embedding_module=EmbeddingBagCollection(tables=[weighted_tables[0]], is_weighted=True),
                           interaction_module=TestTowerInteraction(tables=[weighted_tables[0]])),
        ]
        self.tower_arch = EmbeddingTowerCollection(towers=towers)
        width = DENSE_LAYER_OUT_SIZE + sum(t.interaction.linear.out_features for t in towers)
        self.over = nn.Linear(in_features=width, out_features=16, device=dense_device)

    def forward(self, input: ModelInput) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        dense = self.dense(input.float_features)
        sparse = self.tower_arch(input.idlist_features, input.idscore_features)
        over = self.over(torch.cat([dense, sparse], dim=1))
        return _prediction_head(self.training, over, input.label)
