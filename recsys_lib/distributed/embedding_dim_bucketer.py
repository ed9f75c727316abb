"""Buckets of embedding widths (TorchRec's ``torchrec.distributed.embedding_dim_bucketer``).

Tables batched into one FBGEMM kernel pay for its widest row (the UVM cache allocates by the largest row; GPU
register use follows it), so a rank may split its kernels by row width. The bucketer maps a row width in bytes to
a bucket id, by policy::

    widths (fp32) 16, 64, 96, 160 bytes... dims 4, 16, 24, 40
    SINGLE_BUCKET:      everything → 0
    ALL_BUCKETS:        one bucket per distinct width, in table order → 0, 1, 2, 3
    CACHELINE_BUCKETS:  one bucket per 128-byte cache line count (width // 128) → 0, 0, 0, 1
"""

from enum import Enum, unique
from typing import Any, Callable, Dict, List

from recsys_lib.modules.embedding_configs import DATA_TYPE_NUM_BITS
from recsys_lib.types import DataType


@unique
class EmbDimBucketerPolicy(Enum):
    """How ``EmbDimBucketer`` groups tables by row width."""

    SINGLE_BUCKET = "single_bucket"
    ALL_BUCKETS = "all_buckets"
    CACHELINE_BUCKETS = "cacheline_buckets"


class EmbDimBucketer:
    """Maps a table's row width (``local_cols`` × dtype bits / 8 bytes) to a bucket id (see the module docstring).

    Args:
        embedding_tables: this rank's ``ShardedEmbeddingTable`` s (``local_cols``, ``data_type``).
        cfg: the policy.

    Example::

        bucketer = EmbDimBucketer(tables, EmbDimBucketerPolicy.CACHELINE_BUCKETS)
        bucketer.get_bucket(tables[0].local_cols, tables[0].data_type)
    """

    def __init__(self, embedding_tables: List[Any], cfg: EmbDimBucketerPolicy) -> None:
        self.embedding_dim_buckets: Dict[int, int] = {}
        self.num_buckets = 1
        self.cacheline = 128
        by_policy: Dict[EmbDimBucketerPolicy, Callable[[List[Any]], Dict[int, int]]] = {
            EmbDimBucketerPolicy.SINGLE_BUCKET: self.single_emb_bucket,
            EmbDimBucketerPolicy.ALL_BUCKETS: self.all_emb_buckets,
            EmbDimBucketerPolicy.CACHELINE_BUCKETS: self.cacheline_emb_buckets,
        }
        if cfg not in by_policy:
            raise ValueError(f"EmbDimBucketer: unknown policy {cfg!r}; expected an EmbDimBucketerPolicy")
        self.emb_dim_buckets: Dict[int, int] = by_policy[cfg](embedding_tables)

    def bucket_count(self) -> int:
        """Number of buckets."""
        return self.num_buckets

    def get_bucket(self, embedding_dim: int, dtype: DataType) -> int:
        """Bucket of a row ``embedding_dim`` wide in ``dtype`` (0 when there is one bucket)."""
        return 0 if self.num_buckets == 1 else self.bucket(embedding_dim, dtype)

    def single_emb_bucket(self, embedding_tables: List[Any]) -> Dict[int, int]:
        """Every width → bucket 0."""
        self.num_buckets = 1
        return {self.dim_in_bytes(t.local_cols, t.data_type): 0 for t in embedding_tables}

    def all_emb_buckets(self, embedding_tables: List[Any]) -> Dict[int, int]:
        """One bucket per distinct width, numbered in order of first appearance."""
        buckets: Dict[int, int] = {}
        for t in embedding_tables:
            buckets.setdefault(self.dim_in_bytes(t.local_cols, t.data_type), len(buckets))
        self.num_buckets = max(1, len(buckets))
        return buckets

    def cacheline_emb_buckets(self, embedding_tables: List[Any]) -> Dict[int, int]:
        """One bucket per number of whole cache lines (``width // 128``), numbered in order of first appearance."""
        lines: Dict[int, int] = {}
        buckets: Dict[int, int] = {}
        for t in embedding_tables:
            width = self.dim_in_bytes(t.local_cols, t.data_type)
            bucket = lines.setdefault(width // self.cacheline, len(lines))
            buckets.setdefault(width, bucket)
        self.num_buckets = max(1, len(lines))
        return buckets

    def bucket(self, dim: int, dtype: DataType) -> int:
        """Bucket of a width seen at construction (``KeyError`` for an unseen width)."""
        return self.emb_dim_buckets[self.dim_in_bytes(dim, dtype)]

    def dim_in_bytes(self, dim: int, dtype: DataType) -> int:
        """Row width in bytes."""
        return dim * DATA_TYPE_NUM_BITS[dtype] // 8
