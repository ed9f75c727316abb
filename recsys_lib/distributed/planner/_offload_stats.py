"""``EmbeddingOffloadStats``: a table's UVM-cache statistics from an LRU miss-ratio histogram.

Re-exported by ``planner.shard_estimators`` (TorchRec's path). The histogram has ``n`` bins over cache
sizes ``0 .. height`` rows; bin ``i`` counts the lookups an LRU cache of at least ``(i+1)/n`` of the
table would serve. The miss rate of a cache of ``c`` rows is one minus the share of lookups in the
bins below ``c``::

    hist = [10, 5, 3, 2, 0], height = 1000       bins: 0 | 200 | 400 | 600 | 800 | 1000
    cache rows     0    100    300    1000
    miss rate      1.0  0.5    0.25   0.0
"""

from recsys_lib._public import public_at
import torch

from recsys_lib.distributed._core.plan import CacheStatistics


@public_at("recsys_lib.distributed.planner.shard_estimators")
class EmbeddingOffloadStats(CacheStatistics):
    """Cache statistics of one table.

    Args:
        cacheability: area under the miss-ratio curve (0: nothing to gain from a cache).
        expected_lookups: expected unique ids per global batch.
        mrc_hist_counts: ``(n,)`` LRU miss-ratio-curve histogram (see the module docstring).
        height: rows of the table.
    """

    def __init__(self, cacheability: float, expected_lookups: int, mrc_hist_counts: torch.Tensor, height: int) -> None:
        if mrc_hist_counts.dim() != 1:
            raise ValueError(f"EmbeddingOffloadStats: mrc_hist_counts must be 1-D, got {mrc_hist_counts.dim()}-D")
        if mrc_hist_counts.numel() == 0:
            raise ValueError("EmbeddingOffloadStats: mrc_hist_counts is empty")
        self._cacheability = cacheability
        self._expected_lookups = expected_lookups
        self.height = height
        self.hist: torch.Tensor = mrc_hist_counts
        self.bins: torch.Tensor = torch.linspace(0, height, mrc_hist_counts.numel() + 1)

    @property
    def expected_lookups(self) -> int:
        return self._expected_lookups

    @property
    def cacheability(self) -> float:
        return self._cacheability

    def expected_miss_rate(self, clf: float) -> float:
        """Miss rate of a cache holding ``clf`` (load factor, 0..1) of the table."""
        rate = EmbeddingOffloadStats.estimate_cache_miss_rate(torch.tensor(clf * self.height), self.hist, self.bins)
        return float(rate.item())

    @staticmethod
    def estimate_cache_miss_rate(cache_sizes: torch.Tensor, hist: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
        """Miss rate for each cache size (rows), same shape as ``cache_sizes``; 0 everywhere when the
        histogram is all zeros. ``bins``: ``(n+1,)`` bin edges in rows."""
        served = hist.cumsum(dim=0)
        total = served[-1]
        if total == 0:
            return torch.zeros_like(cache_sizes, dtype=torch.float32)
        miss = 1.0 - served / total
        # index 0 = empty cache (all miss); past the last edge = whole table (no miss)
        steps = torch.cat((torch.ones(1, dtype=miss.dtype), miss, torch.zeros(1, dtype=miss.dtype)))
        idx = torch.bucketize(cache_sizes - 1, bins, right=True)
        return steps[idx]
