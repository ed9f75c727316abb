"""Metrics of a hash-ZCH table (``torchrec.modules.hash_mc_metrics``): hit / insert / collision / eviction rates.

Per remapped batch ``update`` counts, for ``N`` ids: hits (the slot already held the id), inserts (the slot was
empty before and is not after), collisions (``N - hits - inserts``: the id shares a slot), evictions (distinct
evicted slots) and opt-ins (ids in a bucket's non-reserved range). Every ``frequency`` steps ``forward`` reports
the rates over ``N`` and the table usage to a backend, then resets the counters.
"""

import abc
import logging
import time
from typing import Dict, Optional

import torch

from recsys_lib.modules.hash_mc_evictions import HashZchEvictionConfig


class ScalarLoggerBackend(abc.ABC):
    """Where ``ScalarLogger`` sends its reports (console, file, TensorBoard...)."""

    @abc.abstractmethod
    def report(self, log_message: str, name: str, run_type: str, step: int, rate_metrics: Dict[str, float]) -> None:
        """Report one step.

        Args:
            log_message: formatted summary line.
            name: table name.
            run_type: ``"train"`` or ``"eval"``.
            step: logger step.
            rate_metrics: ``hit_rate, insert_rate, collision_rate, eviction_rate, opt_in_rate, avg_eviction_age,
                table_usage_ratio``.
        """


class ConsoleScalarLoggerBackend(ScalarLoggerBackend):
    """Logs the summary line with ``logging`` (and to ``log_file_path`` if given).

    Args:
        log_file_path: optional file that receives the lines too.
    """

    def __init__(self, log_file_path: str = "") -> None:
        self._logger: logging.Logger = logging.getLogger(__name__)
        if log_file_path != "":
            self._logger.addHandler(logging.FileHandler(log_file_path, mode="w"))

    def report(self, log_message: str, name: str, run_type: str, step: int, rate_metrics: Dict[str, float]) -> None:
        self._logger.info(log_message)


class ScalarLogger(torch.nn.Module):
    """Collects and periodically reports hash-ZCH metrics.

    Args:
        name: table name.
        zch_size: rows of the (local) table.
        frequency: report every this many steps.
        start_bucket: first bucket of this rank (only rank 0, bucket 0, reports).
        num_buckets_per_rank: buckets of the local table (``zch_size`` must divide evenly).
        num_reserved_slots_per_bucket: reserved (opt-out) slots at the end of each bucket, ``<= 0`` for none.
        device: device of the counters.
        disable_fallback: whether the module drops misses (hits are then counted by membership).
        log_file_path: passed to the default console backend.
        backend: report destination (default: ``ConsoleScalarLoggerBackend``).
    """

    STEPS_BUFFER: str = "_scalar_logger_steps"
    SECONDS_IN_HOUR: int = 3600
    MAX_HOURS: int = 2**31 - 1

    def __init__(
        self,
        name: str,
        zch_size: int,
        frequency: int,
        start_bucket: int,
        num_buckets_per_rank: int,
        num_reserved_slots_per_bucket: int,
        device: torch.device,
        disable_fallback: bool,
        log_file_path: str = "",
        backend: Optional[ScalarLoggerBackend] = None,
    ) -> None:
        super().__init__()
        if frequency < 1:
            raise ValueError(f"ScalarLogger({name!r}): frequency must be >= 1, got {frequency}")
        if zch_size % num_buckets_per_rank != 0:
            raise ValueError(f"ScalarLogger({name!r}): zch_size {zch_size} must divide into {num_buckets_per_rank} "
                             "buckets evenly")
        self.register_buffer(ScalarLogger.STEPS_BUFFER, torch.tensor(1, dtype=torch.int64), persistent=False)
        self._name, self._zch_size, self._frequency = name, zch_size, frequency
        self._start_bucket, self._num_buckets_per_rank = start_bucket, num_buckets_per_rank
        self._num_reserved_slots_per_bucket = num_reserved_slots_per_bucket
        self._device, self._disable_fallback = device, disable_fallback
        per_bucket = zch_size // num_buckets_per_rank
        bucket_ends = torch.arange(1, num_buckets_per_rank + 1, dtype=torch.int64, device=device) * per_bucket
        self._opt_in_ranges: torch.Tensor = bucket_ends - max(num_reserved_slots_per_bucket, 0)
        self._backend: ScalarLoggerBackend = backend if backend is not None else ConsoleScalarLoggerBackend(log_file_path)
        self._reset_counts()

    def _reset_counts(self) -> None:
        self._total_cnt, self._hit_cnt, self._insert_cnt = 0, 0, 0
        self._collision_cnt, self._eviction_cnt, self._opt_in_cnt = 0, 0, 0
        self._sum_eviction_age: float = 0.0

    def should_report(self) -> bool:
        steps = int(getattr(self, ScalarLogger.STEPS_BUFFER))
        return self._start_bucket == 0 and self._total_cnt > 0 and steps % self._frequency == 0

    def update(
        self,
        identities_0: torch.Tensor,
        identities_1: torch.Tensor,
        values: torch.Tensor,
        remapped_ids: torch.Tensor,
        hit_indices: torch.Tensor,
        evicted_emb_indices: Optional[torch.Tensor],
        metadata: Optional[torch.Tensor],
        eviction_config: Optional[HashZchEvictionConfig] = None,
    ) -> None:
        """Count one batch.

        Args:
            identities_0: ``(Z, 1)`` identities before the batch.
            identities_1: ``(Z, 1)`` identities after it.
            values: ``(N,)`` ids.
            remapped_ids: ``(N,)`` (or ``(#hits,)`` with ``disable_fallback``) local slots.
            hit_indices: ``(N,)`` bool, id got a slot.
            evicted_emb_indices: ``(E,)`` evicted slots, or None.
            metadata: ``(Z, 1)`` slot metadata before the batch (eviction age), or None.
            eviction_config: TTL config (eviction age needs ``single_ttl``).
        """
        before = identities_0.index_select(0, remapped_ids)[:, 0]
        after = identities_1.index_select(0, remapped_ids)[:, 0]
        inserts = int((before == -1).sum()) - int((after == -1).sum())
        hits = torch.isin(before, values) if self._disable_fallback else before == values
        n_hits = int(hits.sum())
        self._total_cnt += values.numel()
        self._insert_cnt += inserts
        self._hit_cnt += n_hits
        self._collision_cnt += values.numel() - n_hits - inserts
        ids = values[hit_indices] if self._disable_fallback else values
        buckets = torch.remainder(ids, self._num_buckets_per_rank)
        self._opt_in_cnt += int((remapped_ids < self._opt_in_ranges.index_select(0, buckets)).sum())
        if evicted_emb_indices is not None and evicted_emb_indices.numel() > 0:
            evicted = torch.unique(evicted_emb_indices)
            self._eviction_cnt += evicted.numel()
            if metadata is not None and eviction_config is not None and eviction_config.single_ttl is not None:
                hour = time.time() / ScalarLogger.SECONDS_IN_HOUR % ScalarLogger.MAX_HOURS
                age = hour + eviction_config.single_ttl - metadata[evicted, 0].to(torch.float64)
                self._sum_eviction_age += float(age.sum())

    def forward(self, run_type: str, identities: torch.Tensor) -> None:
        """Report (every ``frequency`` steps) and advance the step.

        Args:
            run_type: ``"train"`` or ``"eval"``.
            identities: ``(Z, 1)`` current identities (for the table usage).
        """
        steps = getattr(self, ScalarLogger.STEPS_BUFFER)
        if self.should_report():
            total = self._total_cnt
            unused = int((identities[:, 0] == -1).sum())
            rates = {
                "hit_rate": round(self._hit_cnt / total, 3),
                "insert_rate": round(self._insert_cnt / total, 3),
                "collision_rate": round(self._collision_cnt / total, 3),
                "eviction_rate": round(self._eviction_cnt / total, 3),
                "opt_in_rate": round(self._opt_in_cnt / total, 3),
                "avg_eviction_age": round(self._sum_eviction_age / self._eviction_cnt, 3) if self._eviction_cnt else 0,
                "table_usage_ratio": round((self._zch_size - unused) / self._zch_size, 3),
            }
            message = f"name={self._name!r}, run_type={run_type!r}, total_cnt={total}, unused_slots={unused}, " + ", ".join(
                f"{k}={v}" for k, v in rates.items()
            )
            self._backend.report(log_message=message, name=self._name, run_type=run_type, step=int(steps),
                                 rate_metrics=rates)
            self._reset_counts()
        steps += 1
