"""The JSON-serializable descriptions the IR serializer stores (one dataclass per module kind)."""

from dataclasses import dataclass
from typing import List, Optional, Tuple

from recsys_lib.modules.embedding_configs import PoolingType
from recsys_lib.types import DataType


@dataclass
class EmbeddingBagConfigMetadata:
    """An ``EmbeddingBagConfig`` as JSON (``data_type`` / ``pooling`` stored as their enum values)."""

    num_embeddings: int
    embedding_dim: int
    name: str
    data_type: DataType
    feature_names: List[str]
    weight_init_max: Optional[float]
    weight_init_min: Optional[float]
    need_pos: bool
    pooling: PoolingType


@dataclass
class EBCMetadata:
    tables: List[EmbeddingBagConfigMetadata]
    is_weighted: bool
    device: Optional[str]


@dataclass
class FPEBCMetadata:
    is_fp_collection: bool
    features: List[str]


@dataclass
class PositionWeightedModuleMetadata:
    max_feature_length: int


@dataclass
class PositionWeightedModuleCollectionMetadata:
    max_feature_lengths: List[Tuple[str, int]]


@dataclass
class KTRegroupAsDictMetadata:
    groups: List[List[str]]
    keys: List[str]
    emb_dtype: Optional[str]
