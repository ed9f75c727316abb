"""Planner statistics: the boxed "Planner Statistics" report logged after planning.

Layout (columns as TorchRec's)::

    #####################################################################
    #                        --- Planner Statistics ---                 #
    # --- Evaluated 9 proposal(s), found 9 possible plan(s), ran for 0.03s ---
    # Rank | HBM (GB) | DDR (GB) | Perf (ms) | Input (MB) | Output (MB) | Shards
    #    0 | 0.01 (0%)| 0.0 (0%) | 0.004     | 0.01       | 0.26        | TW: 2
    ...
    # Parameter Info: FQN | Sharding | Compute Kernel | Perf (ms) | Storage (HBM, DDR) | ...
"""

import logging
import math
from typing import Any, Callable, Dict, List, Optional, Tuple

from torch import nn

from recsys_lib.distributed.sharding.strategy import strategy_for
from recsys_lib.distributed.planner.shard_estimators import shard_costs
from recsys_lib.distributed.planner.types import (
    Enumerator,
    ParameterConstraints,
    ShardingOption,
    Stats,
    StorageReservation,
)
from recsys_lib.distributed.planner._plan_context import PlanDebugStats
from recsys_lib.distributed.planner._hardware import Storage, Topology
from recsys_lib.distributed.planner.utils import bytes_to_gb, bytes_to_mb
from recsys_lib.distributed._core.sharder import ModuleSharder
from recsys_lib.distributed._core.plan import ShardingPlan
from recsys_lib.distributed._core.sharder import ModuleSharder
from recsys_lib.distributed._core.plan import ShardingPlan
from recsys_lib.distributed.planner.constants import BIGINT_DTYPE  # noqa: F401,E402
from recsys_lib.distributed.planner._hardware import CriticalPathEstimate, Perf  # noqa: F401
from recsys_lib.distributed.planner._sharder_data import SharderData  # noqa: F401
from recsys_lib.distributed.planner.types import SharderDataMap  # noqa: F401
from recsys_lib.distributed.planner.utils import build_sharder_data_map, get_num_poolings  # noqa: F401,E402
from recsys_lib.distributed.planner.storage_reservations import (  # noqa: F401,E402
    FixedAbsoluteStorageReservation,
    FixedPercentageStorageReservation,
    HeuristicalStorageReservation,
    InferenceStorageReservation,
)

logger = logging.getLogger(__name__)



def _short(sharding_type: str) -> str:
    return strategy_for(sharding_type).short_name


MIN_WIDTH = 90  # narrowest statistics box (characters)


def round_to_one_sigfig(x: float) -> str:
    """``0.01234`` → ``"0.01"``, ``1860.0`` → ``"2000"``."""
    return f"{float(f'{x:.1g}'):g}"


def _render(header: List[str], rows: List[List[str]]) -> List[str]:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths))]
    out.append("-+-".join("-" * w for w in widths))
    out.extend(" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)
    return out


# Distances of a normalised per-rank distribution ``p`` (sums to 1) from uniform ``u = 1/k``.
def _total_variation(p: List[float]) -> float:
    """``max_i |p_i - u|``."""
    return max(abs(x - 1.0 / len(p)) for x in p)


def _total_distance(p: List[float]) -> float:
    """``sum_i |p_i - u|``."""
    return sum(abs(x - 1.0 / len(p)) for x in p)


def _chi_divergence(p: List[float]) -> float:
    """``sum_i (p_i - u)^2 / u``, divided by its largest value (all mass on one rank); 0 when ``k == 1``."""
    k = len(p)
    worst = ((k - 1) / k) ** 2 * k + (k - 1) / k
    return sum((x - 1.0 / k) ** 2 * k for x in p) / worst if worst > 0 else 0.0


def _kl_divergence(p: List[float]) -> float:
    """``sum_i p_i log(p_i / u)``, divided by its largest value ``log k``; 0 when ``k == 1``."""
    k = len(p)
    worst = math.log(k)
    return sum(x * math.log(k * x) for x in p if x > 0) / worst if worst > 0 else 0.0


IMBALANCE_STAT_MEASURE: Dict[str, Tuple[Callable[..., float], Dict[str, Any]]] = {
    "Total Variation": (_total_variation, {}),
    "Total Distance": (_total_distance, {}),
    "Chi Divergence": (_chi_divergence, {}),
    "KL Divergence": (_kl_divergence, {}),
}


def _divergences(values: List[float]) -> Dict[str, float]:
    """``IMBALANCE_STAT_MEASURE`` of ``values`` normalised to sum 1 (all 0 for an empty or zero list)."""
    total = sum(values)
    if not values or total <= 0:
        return {name: 0.0 for name in IMBALANCE_STAT_MEASURE}
    p = [v / total for v in values]
    return {name: fn(p, **kw) for name, (fn, kw) in IMBALANCE_STAT_MEASURE.items()}


class EmbeddingStats(Stats):
    """Logs the planner statistics (``logging.INFO``) and keeps the lines in ``last_report``."""

    def __init__(self) -> None:
        self._stats_table: List[str] = []

    @property
    def last_report(self) -> List[str]:
        return list(self._stats_table)

    def log(
        self,
        sharding_plan: ShardingPlan,
        topology: Topology,
        batch_size: int,
        storage_reservation: StorageReservation,
        num_proposals: int,
        num_plans: int,
        run_time: float,
        best_plan: List[ShardingOption],
        constraints: Optional[Dict[str, ParameterConstraints]] = None,
        sharders: Optional[List[ModuleSharder[nn.Module]]] = None,
        enumerator: Optional[Enumerator] = None,
        debug: bool = True,
        debug_stats: Optional[PlanDebugStats] = None,
    ) -> None:
        world = topology.world_size
        used = [Storage(0, 0) for _ in range(world)]
        perf = [0.0] * world
        inputs = [0.0] * world
        outputs = [0.0] * world
        counts: List[Dict[str, int]] = [{} for _ in range(world)]
        for o in best_plan:
            costs = shard_costs(o, topology, constraints)
            for s, c in zip(o.shards, costs):
                if s.rank is None:
                    continue
                used[s.rank] = used[s.rank] + (s.storage or Storage(0, 0))
                perf[s.rank] += s.perf.total if s.perf is not None else 0.0
                inputs[s.rank] += c.input_bytes
                outputs[s.rank] += c.output_bytes
                short = _short(o.sharding_type)
                counts[s.rank][short] = counts[s.rank].get(short, 0) + 1
        caps = topology.devices
        lines = ["--- Planner Statistics ---",
                 f"--- Evaluated {num_proposals} proposal(s), found {num_plans} possible plan(s), ran for {run_time:.2f}s ---"]
        rows = []
        for r in range(world):
            hbm_cap = max(caps[r].storage.hbm, 1)
            ddr_cap = max(caps[r].storage.ddr, 1)
            rows.append([
                str(r),
                f"{bytes_to_gb(used[r].hbm):.3g} ({used[r].hbm / hbm_cap:.0%})",
                f"{bytes_to_gb(used[r].ddr):.3g} ({used[r].ddr / ddr_cap:.0%})",
                f"{perf[r]:.4g}",
                f"{bytes_to_mb(int(inputs[r])):.3g}",
                f"{bytes_to_mb(int(outputs[r])):.3g}",
                ", ".join(f"{k}: {v}" for k, v in sorted(counts[r].items())),
            ])
        lines += _render(["Rank", "HBM (GB)", "DDR (GB)", "Perf (ms)", "Input (MB)", "Output (MB)", "Shards"], rows)
        lines.append("")
        lines.append("Parameter Info:")
        prow = []
        for o in best_plan:
            st = o.total_storage
            cw = [s.size[1] for s in o.shards]
            dim = str(o.tensor.shape[1]) + (f" ({cw[0]})" if len(set(cw)) == 1 and cw[0] != o.tensor.shape[1] else "")
            ranks = sorted({s.rank for s in o.shards if s.rank is not None})
            prow.append([
                o.fqn, _short(o.sharding_type), o.compute_kernel, f"{o.total_perf:.4g}",
                f"({bytes_to_gb(st.hbm):.3g} GB, {bytes_to_gb(st.ddr):.3g} GB)",
                "None" if o.cache_load_factor is None else f"{o.cache_load_factor:.2g}",
                f"{sum(o.input_lengths):.3g}", f"{sum(o.num_poolings or [1.0] * o.num_inputs):.3g}",
                str(o.num_inputs), "pooled" if o.is_pooled else "sequence", str(o.is_weighted),
                type(o.module[1]).__name__, str(len(o.feature_names or [o.name])), dim, str(o.tensor.shape[0]),
                str(ranks) if len(ranks) <= 8 else f"{ranks[0]}..{ranks[-1]} ({len(ranks)})",
            ])
        lines += _render(["FQN", "Sharding", "Compute Kernel", "Perf (ms)", "Storage (HBM, DDR)", "Cache Load Factor",
                          "Sum Pooling Factor", "Sum Num Poolings", "Num Indices", "Output", "Weighted", "Sharder",
                          "Features", "Emb Dim (CW Dim)", "Hash Size", "Ranks"], prow)
        lines.append("")
        lines.append(f"Batch Size: {batch_size}")
        kernels: Dict[str, int] = {}
        for o in best_plan:
            kernels[o.compute_kernel] = kernels.get(o.compute_kernel, 0) + 1
        lines.append("Compute Kernels Count: " + ", ".join(f"{k}: {v}" for k, v in sorted(kernels.items())))
        kind = "ddr" if topology.compute_device == "cpu" else "hbm"
        for label, values in (("Perf", perf), (kind.upper(), [float(getattr(u, kind)) for u in used])):
            div = _divergences(values)
            lines.append(f"{label} imbalance: " + ", ".join(f"{k} {v:.3f}" for k, v in div.items()))
        mean = sum(perf) / max(world, 1)
        lines.append(f"Longest Critical Path (max perf): {max(perf):.4g} ms, mean perf {mean:.4g} ms")
        reserved = getattr(storage_reservation, "last_reserved_topology", None)
        if reserved is not None:
            lost = getattr(caps[0].storage, kind) - getattr(reserved.devices[0].storage, kind)
            lines.append(f"Reserved memory per rank: {bytes_to_gb(lost):.3g} GB {kind.upper()}")
        top = sorted(best_plan, key=lambda o: -o.total_perf)[:3]
        lines.append("Top tables by perf: " + ", ".join(f"{o.fqn} ({o.total_perf:.3g} ms)" for o in top))
        width = max(len(line) for line in lines) + 4
        boxed = ["#" * width] + [f"# {line.ljust(width - 4)} #" for line in lines] + ["#" * width]
        self._stats_table = boxed
        if debug:
            for line in boxed:
                logger.info(line)


class NoopEmbeddingStats(Stats):
    """Logs nothing."""

    def log(
        self,
        sharding_plan: ShardingPlan,
        topology: Topology,
        batch_size: int,
        storage_reservation: StorageReservation,
        num_proposals: int,
        num_plans: int,
        run_time: float,
        best_plan: List[ShardingOption],
        constraints: Optional[Dict[str, ParameterConstraints]] = None,
        sharders: Optional[List[ModuleSharder[nn.Module]]] = None,
        enumerator: Optional[Enumerator] = None,
        debug: bool = True,
        debug_stats: Optional[PlanDebugStats] = None,
    ) -> None:
        return None
