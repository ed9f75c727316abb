"""Sharders restricted to one sharding type (and kernel): what TorchRec users hand the planner in tests so that
every table gets exactly the layout under test.

Example::

    sharder = TestEBCSharder(ShardingType.ROW_WISE.value, "fused", fused_params={"learning_rate": 0.1})
    plan = EmbeddingShardingPlanner(topology).plan(model, [sharder])   # every table row-wise, fused
"""

from typing import Any, Dict, List, Optional

from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._sharded.single_bag import EmbeddingBagSharder
from recsys_lib.distributed._tower.sharders import EmbeddingTowerCollectionSharder, EmbeddingTowerSharder
from recsys_lib.distributed.embedding import EmbeddingCollectionSharder
from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder
from recsys_lib.distributed.fused_embedding import FusedEmbeddingCollectionSharder
from recsys_lib.distributed.fused_embeddingbag import FusedEmbeddingBagCollectionSharder


class _OneTypeOneKernel:
    """Offers exactly ``self._sharding_type`` and ``self._kernel_type`` (flat mix-in before the sharder)."""

    _sharding_type: str
    _kernel_type: str

    def sharding_types(self, compute_device_type: str) -> List[str]:
        return [self._sharding_type]

    def compute_kernels(self, sharding_type: str, compute_device_type: str) -> List[str]:
        return [self._kernel_type]


class _OneTypeFusedParams(_OneTypeOneKernel):
    """``_OneTypeOneKernel`` taking ``(sharding_type, kernel_type, fused_params, qcomm_codecs_registry)`` and
    exposing the fused parameters as given (the tower sharders' test variants)."""

    def __init__(
        self,
        sharding_type: str,
        kernel_type: str,
        fused_params: Dict[str, Any],
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        super().__init__(fused_params, qcomm_codecs_registry=qcomm_codecs_registry)  # type: ignore[call-arg]
        self._sharding_type = sharding_type
        self._kernel_type = kernel_type

    @property
    def fused_params(self) -> Optional[Dict[str, Any]]:
        return self._fused_params  # type: ignore[attr-defined]


class TestECSharder(_OneTypeOneKernel, EmbeddingCollectionSharder):
    """``EmbeddingCollectionSharder`` offering only ``sharding_type`` and ``kernel_type``."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        sharding_type: str,
        kernel_type: str,
        fused_params: Optional[Dict[str, Any]] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        self._sharding_type = sharding_type
        self._kernel_type = kernel_type
        super().__init__(fused_params if fused_params is not None else {}, qcomm_codecs_registry)


class TestEBCSharder(_OneTypeOneKernel, EmbeddingBagCollectionSharder):
    """``EmbeddingBagCollectionSharder`` offering only ``sharding_type`` and ``kernel_type``."""

    __test__ = False

    def __init__(
        self,
        sharding_type: str,
        kernel_type: str,
        fused_params: Optional[Dict[str, Any]] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        self._sharding_type = sharding_type
        self._kernel_type = kernel_type
        super().__init__(fused_params if fused_params is not None else {}, qcomm_codecs_registry)


class TestFusedEBCSharder(FusedEmbeddingBagCollectionSharder):
    """``FusedEmbeddingBagCollectionSharder`` offering only ``sharding_type``."""

    __test__ = False

    def __init__(
        self, sharding_type: str, qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None
    ) -> None:
        super().__init__(fused_params={}, qcomm_codecs_registry=qcomm_codecs_registry)
        self._sharding_type = sharding_type

    def sharding_types(self, compute_device_type: str) -> List[str]:
        return [self._sharding_type]


class TestFusedECSharder(FusedEmbeddingCollectionSharder):
    """``FusedEmbeddingCollectionSharder`` offering only ``sharding_type``."""

    __test__ = False

    def __init__(self, sharding_type: str) -> None:
        super().__init__()
        self._sharding_type = sharding_type

    def sharding_types(self, compute_device_type: str) -> List[str]:
        return [self._sharding_type]


class TestEBSharder(_OneTypeOneKernel, EmbeddingBagSharder):
    """``EmbeddingBagSharder`` (one ``nn.EmbeddingBag``) offering only ``sharding_type`` and ``kernel_type``."""

    __test__ = False

    def __init__(
        self,
        sharding_type: str,
        kernel_type: str,
        fused_params: Dict[str, Any],
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        super().__init__(fused_params, qcomm_codecs_registry)
        self._sharding_type = sharding_type
        self._kernel_type = kernel_type

    @property
    def fused_params(self) -> Optional[Dict[str, Any]]:
        return self._fused_params


class TestETSharder(_OneTypeFusedParams, EmbeddingTowerSharder):
    """``EmbeddingTowerSharder`` offering only ``sharding_type`` and ``kernel_type``."""

    __test__ = False


class TestETCSharder(_OneTypeFusedParams, EmbeddingTowerCollectionSharder):
    """``EmbeddingTowerCollectionSharder`` offering only ``sharding_type`` and ``kernel_type``."""

    __test__ = False
