"""Types shared by embedding kernels, lookups and sharders: compute kernels, shard configs, grouped configs.

A *sharded table* is the part of one table that lives on this rank (``local_rows`` x ``local_cols``,
placed at ``local_metadata.shard_offsets`` inside the global table). A *grouped config* is a list of
sharded tables that one table-batched-embedding (TBE) kernel serves: they share data type, pooling,
weighting, feature processing, compute kernel and fused params.

Shapes (see ``docs/glossary.md``): ``F`` features of a group, ``B`` batch, ``D`` local columns.

Example::

    t = ShardedEmbeddingTable(num_embeddings=100, embedding_dim=8, name="t0", feature_names=["f0", "f1"],
                              local_rows=100, local_cols=8, compute_kernel=EmbeddingComputeKernel.FUSED)
    g = GroupedEmbeddingConfig(DataType.FP32, PoolingType.SUM, False, False, EmbeddingComputeKernel.FUSED, [t])
    assert g.dim_sum() == 16 and g.feature_names() == ["f0", "f1"]
"""

import abc
from dataclasses import dataclass
from enum import Enum, unique
from typing import Any, Dict, Generic, List, Optional, Tuple, TypeVar

from torch import nn
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharded_tensor import ShardedTensorMetadata
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor.placement_types import Placement

from recsys_lib._public import public_at
from recsys_lib.modules.embedding_configs import EmbeddingTableConfig, PoolingType
from recsys_lib.streamable import Multistreamable
from recsys_lib.types import DataType

F = TypeVar("F", bound=Multistreamable)
T = TypeVar("T")


@unique
class EmbeddingComputeKernel(Enum):
    """How a sharded table is stored and updated (values are TorchRec's plan strings)."""

    DENSE = "dense"
    FUSED = "fused"
    FUSED_UVM = "fused_uvm"
    FUSED_UVM_CACHING = "fused_uvm_caching"
    QUANT = "quant"
    QUANT_UVM = "quant_uvm"
    QUANT_UVM_CACHING = "quant_uvm_caching"
    KEY_VALUE = "key_value"
    CUSTOMIZED_KERNEL = "customized_kernel"
    SSD_VIRTUAL_TABLE = "ssd_virtual_table"
    DRAM_VIRTUAL_TABLE = "dram_virtual_table"
    DRAM_SSD_VIRTUAL_TABLE = "dram_ssd_virtual_table"
    FUSED_TRITON = "fused_triton"


def compute_kernel_to_embedding_location(compute_kernel: EmbeddingComputeKernel) -> Any:
    """FBGEMM ``EmbeddingLocation`` of a GPU kernel: ``fused``/``quant`` → DEVICE, ``*_uvm`` → MANAGED,
    ``*_uvm_caching`` → MANAGED_CACHING. (CPU kernels always use HOST; the kernels decide that.)"""
    from fbgemm_gpu.split_table_batched_embeddings_ops_common import EmbeddingLocation

    k = EmbeddingComputeKernel(compute_kernel)
    locations = {
        EmbeddingComputeKernel.FUSED: EmbeddingLocation.DEVICE,
        EmbeddingComputeKernel.QUANT: EmbeddingLocation.DEVICE,
        EmbeddingComputeKernel.FUSED_UVM: EmbeddingLocation.MANAGED,
        EmbeddingComputeKernel.QUANT_UVM: EmbeddingLocation.MANAGED,
        EmbeddingComputeKernel.FUSED_UVM_CACHING: EmbeddingLocation.MANAGED_CACHING,
        EmbeddingComputeKernel.QUANT_UVM_CACHING: EmbeddingLocation.MANAGED_CACHING,
    }
    if k not in locations:
        raise ValueError(
            f"compute kernel {k.value!r} has no EmbeddingLocation; expected one of {[c.value for c in locations]}"
        )
    return locations[k]


@unique
class OptimType(Enum):
    """Optimizer names used to pick a fused (in-backward) optimizer."""

    SGD = "SGD"
    LARS_SGD = "LARS_SGD"
    LAMB = "LAMB"
    PARTIAL_ROWWISE_LAMB = "PARTIAL_ROWWISE_LAMB"
    ADAM = "ADAM"
    PARTIAL_ROWWISE_ADAM = "PARTIAL_ROWWISE_ADAM"
    ADAGRAD = "ADAGRAD"
    ROWWISE_ADAGRAD = "ROWWISE_ADAGRAD"
    SHAMPOO = "SHAMPOO"
    SHAMPOO_V2 = "SHAMPOO_V2"
    LION = "LION"
    ADAMW = "ADAMW"
    SHAMPOO_V2_MRS = "SHAMPOO_V2_MRS"
    SHAMPOO_MRS = "SHAMPOO_MRS"
    MUON = "MUON"
    SHAMPOO_V3_MRS = "SHAMPOO_V3_MRS"


@dataclass
class ShardedConfig:
    """Size of this rank's shard of a table."""

    local_rows: int = 0
    local_cols: int = 0


@dataclass
class ShardedMetaConfig(ShardedConfig):
    """Shard size plus where it sits: ``local_metadata`` (this shard) and ``global_metadata`` (all shards)."""

    local_metadata: Optional[ShardMetadata] = None
    global_metadata: Optional[ShardedTensorMetadata] = None
    dtensor_metadata: Optional[Any] = None


@dataclass
class EmbeddingAttributes:
    """Which compute kernel serves a table."""

    compute_kernel: EmbeddingComputeKernel = EmbeddingComputeKernel.DENSE


@dataclass
class ShardedEmbeddingTable(ShardedMetaConfig, EmbeddingAttributes, EmbeddingTableConfig):
    """One table's shard on this rank: the table config, its kernel, its shard placement and fused params."""

    fused_params: Optional[Dict[str, Any]] = None


@dataclass
class GroupedEmbeddingConfig:
    """Tables served by one TBE kernel; every per-feature list is in table order, then feature order.

    Args:
        data_type / pooling / is_weighted / has_feature_processor / compute_kernel: shared by all tables.
        embedding_tables: the sharded tables, in kernel order.
        fused_params: FBGEMM arguments (optimizer, learning rate, ...) plus private switches.
    """

    data_type: DataType
    pooling: PoolingType
    is_weighted: bool
    has_feature_processor: bool
    compute_kernel: EmbeddingComputeKernel
    embedding_tables: List[ShardedEmbeddingTable]
    fused_params: Optional[Dict[str, Any]] = None
    enable_embedding_update: bool = False

    def feature_hash_sizes(self) -> List[int]:
        """Global row count of the table behind each feature."""
        return [t.num_embeddings for t in self.embedding_tables for _ in t.feature_names]

    def num_features(self) -> int:
        return sum(t.num_features() for t in self.embedding_tables)

    def dim_sum(self) -> int:
        """Width of the pooled output: ``sum over features of local_cols``."""
        return sum(t.num_features() * t.local_cols for t in self.embedding_tables)

    def table_names(self) -> List[str]:
        return [t.name for t in self.embedding_tables]

    def feature_names(self) -> List[str]:
        return [f for t in self.embedding_tables for f in t.feature_names]

    def embedding_dims(self) -> List[int]:
        """Local columns of the table behind each feature."""
        return [t.local_cols for t in self.embedding_tables for _ in t.feature_names]

    def embedding_names(self) -> List[str]:
        return [n for t in self.embedding_tables for n in t.embedding_names]

    def is_using_virtual_table(self) -> bool:
        """Whether any table of the group is a virtual (key-value, zero-collision) table."""
        return any(t.use_virtual_table for t in self.embedding_tables)

    def embedding_shard_metadata(self) -> List[Optional[ShardMetadata]]:
        """Shard metadata of the table behind each feature."""
        return [t.local_metadata for t in self.embedding_tables for _ in t.feature_names]


class BaseEmbeddingLookup(abc.ABC, nn.Module, Generic[F, T]):
    """Runs the grouped kernels of one sharding on this rank: ``forward(features) -> embeddings``."""

    @abc.abstractmethod
    def forward(self, sparse_features: F) -> T:
        ...


class BaseGroupedFeatureProcessor(nn.Module):
    """Feature processors of one group of tables: ``forward(features) -> features`` (weights set)."""

    @abc.abstractmethod
    def forward(self, features: Any) -> Any:
        ...


@public_at("recsys_lib.distributed.embedding_types")
@dataclass
class DTensorMetadata:
    """How a table's shards form a ``DTensor`` (the state-dict form of 2D / DMPCollection-sharded tables).

    Args:
        mesh: the device mesh the shards live on.
        placements: one ``Placement`` per mesh dimension.
        size / stride: the global tensor's shape and stride.
    """

    mesh: Optional[DeviceMesh] = None
    placements: Optional[Tuple[Placement, ...]] = None
    size: Optional[Tuple[int, ...]] = None
    stride: Optional[Tuple[int, ...]] = None


@public_at("recsys_lib.distributed.embedding_types")
class BaseEmbeddingUpdate(abc.ABC, nn.Module, Generic[F]):
    """Writes embeddings into a sharded module's tables (the ``write`` path of key-value tables):
    ``forward(embeddings)`` applies an update and returns nothing."""

    @abc.abstractmethod
    def forward(self, embeddings: F) -> None:
        pass
