"""``plan_report(plan, topology)``: per-rank estimated compute, communication and memory of a plan.

Works for any ``ShardingPlan`` (the planner's, a hand-written one, one made by TorchRec): shards are
read from each table's sharding spec and estimated with the planner's own model. Give ``module``
for data-parallel tables (they have no spec, so their shape comes from the module) and for exact
feature counts; ``constraints`` for pooling factors.

Example::

    report = plan_report(plan, topology, module=model)
    print(report.to_text())
    report.save_png("plan.png")        # only with matplotlib installed

    rank | compute (ms) | comms (ms) | HBM (GB) | DDR (GB) | tables
    0    | 0.0123       | 0.0456     | 1.2      | 0        | t0 t3
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from recsys_lib.distributed.sharding.strategy import strategy_for
from recsys_lib.distributed.planner.constants import BATCH_SIZE, POOLING_FACTOR
from recsys_lib.distributed.planner.enumerators import _table_features
from recsys_lib.distributed.planner.shard_estimators import EmbeddingPerfEstimator, EmbeddingStorageEstimator
from recsys_lib.distributed.planner.types import ParameterConstraints, Shard, ShardingOption
from recsys_lib.distributed.planner._hardware import Topology
from recsys_lib.distributed.planner.utils import bytes_to_gb, sharder_name
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec
from recsys_lib.distributed._core.sharder import ModuleSharder
from recsys_lib.distributed._core.plan import ShardingPlan
from recsys_lib.distributed.planner.types import ParameterConstraints, Shard, ShardingOption
from recsys_lib.distributed.planner._hardware import Topology
from recsys_lib.distributed.planner.utils import build_sharder_data_map, bytes_to_gb, sharder_name
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec
from recsys_lib.distributed._core.sharder import ModuleSharder
from recsys_lib.distributed._core.plan import ShardingPlan


@dataclass
class PlanReport:
    """Per-rank totals (ms and bytes) and the tables each rank holds."""

    compute_ms: List[float]
    comms_ms: List[float]
    hbm_bytes: List[int]
    ddr_bytes: List[int]
    tables: List[List[str]] = field(default_factory=list)

    @property
    def total_ms(self) -> List[float]:
        return [a + b for a, b in zip(self.compute_ms, self.comms_ms)]

    @property
    def max_rank_ms(self) -> float:
        return max(self.total_ms, default=0.0)

    def to_text(self) -> str:
        header = ["rank", "compute (ms)", "comms (ms)", "HBM (GB)", "DDR (GB)", "tables"]
        rows = [
            [str(r), f"{self.compute_ms[r]:.4g}", f"{self.comms_ms[r]:.4g}", f"{bytes_to_gb(self.hbm_bytes[r]):.4g}",
             f"{bytes_to_gb(self.ddr_bytes[r]):.4g}", " ".join(self.tables[r])]
            for r in range(len(self.compute_ms))
        ]
        widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(header)]
        lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths))]
        lines += [" | ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
        lines.append(f"max rank: {self.max_rank_ms:.4g} ms")
        return "\n".join(lines)

    def save_png(self, path: str) -> str:
        """Stacked bars (compute, comms) per rank; needs matplotlib (an optional dependency)."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as e:
            raise ImportError("PlanReport.save_png needs matplotlib (pip install matplotlib)") from e
        ranks = list(range(len(self.compute_ms)))
        fig, ax = plt.subplots(figsize=(max(4.0, 0.4 * len(ranks)), 3.0))
        ax.bar(ranks, self.compute_ms, label="compute")
        ax.bar(ranks, self.comms_ms, bottom=self.compute_ms, label="comms")
        ax.set_xlabel("rank")
        ax.set_ylabel("estimated ms / step")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        return path


class _SpecOnlySharder(ModuleSharder[nn.Module]):
    """Storage of a table kind the caller gave no sharder for: plain weight bytes (HBM, or DDR on cpu)."""

    def __init__(self, module_type: type) -> None:
        super().__init__()
        self._type = module_type

    @property
    def module_type(self) -> Any:
        return self._type

    def shard(self, module: nn.Module, params: Any, env: Any, device: Any = None, module_fqn: Any = None) -> Any:
        raise NotImplementedError("report-only sharder")


def _rank_of(placement: Any) -> int:
    text = str(placement)
    if not text.startswith("rank:"):
        raise ValueError(f"shard placement {text!r} has no rank (expected 'rank:<r>/<device>')")
    return int(text.split("/")[0].split(":")[1])


def _table_tensor(module: Optional[nn.Module], path: str, name: str, shards: List[Tuple[List[int], List[int]]]) -> torch.Tensor:
    if module is not None:
        sub = module.get_submodule(path) if path else module
        for pname, p in sub.named_parameters():
            parts = pname.split(".")
            if len(parts) >= 2 and parts[-2] == name:
                return p
    if not shards:
        raise ValueError(f"plan_report: table {name!r} of {path or '<root>'!r} has no sharding spec; pass module=")
    rows = max(o[0] + s[0] for s, o in shards)
    cols = max(o[1] + s[1] for s, o in shards)
    return torch.empty((rows, cols), device="meta")


def plan_options(
    plan: ShardingPlan,
    topology: Topology,
    module: Optional[nn.Module] = None,
    sharders: Optional[List[ModuleSharder[nn.Module]]] = None,
    batch_size: int = BATCH_SIZE,
    constraints: Optional[Dict[str, ParameterConstraints]] = None,
) -> List[ShardingOption]:
    """The plan as placed, estimated ``ShardingOption``\\ s (one per table)."""
    options: List[ShardingOption] = []
    smap: Dict[str, ModuleSharder[nn.Module]] = {sharder_name(s.module_type): s for s in (sharders or [])}
    for path, module_plan in plan.plan.items():
        owner = (module.get_submodule(path) if path else module) if module is not None else nn.Module()
        smap.setdefault(sharder_name(type(owner)), _SpecOnlySharder(type(owner)))
        features = _table_features(owner)
        for name, ps in module_plan.items():  # type: ignore[attr-defined]
            spec = ps.sharding_spec
            geometry: List[Tuple[List[int], List[int]]] = []
            ranks: List[int] = []
            if isinstance(spec, EnumerableShardingSpec):
                for md in spec.shards:
                    geometry.append((list(md.shard_sizes), list(md.shard_offsets)))
                    ranks.append(_rank_of(md.placement))
            tensor = _table_tensor(module, path, name, geometry)
            if not geometry:
                ranks = list(ps.ranks) if ps.ranks else list(range(topology.world_size))
                geometry = [([int(tensor.shape[0]), int(tensor.shape[1])], [0, 0]) for _ in ranks]
            pc = (constraints or {}).get(name)
            n = len(features.get(name, [])) or 1
            options.append(ShardingOption(
                name=name, tensor=tensor, module=(path, owner),
                input_lengths=list(pc.pooling_factors) if pc else [POOLING_FACTOR] * n,
                batch_size=batch_size, sharding_type=ps.sharding_type,
                partition_by=strategy_for(ps.sharding_type).partition_by.value, compute_kernel=ps.compute_kernel,
                shards=[Shard(size=s, offset=o, rank=r) for (s, o), r in zip(geometry, ranks)],
                cache_params=ps.cache_params, is_pooled=None if module is not None else True,
            ))
    data_map = build_sharder_data_map(smap)
    EmbeddingPerfEstimator(topology, constraints).estimate(options, data_map)
    EmbeddingStorageEstimator(topology, constraints).estimate(options, data_map)
    return options


def report_from_options(options: List[ShardingOption], world_size: int) -> PlanReport:
    """Per-rank totals of placed, estimated options."""
    rep = PlanReport([0.0] * world_size, [0.0] * world_size, [0] * world_size, [0] * world_size,
                     [[] for _ in range(world_size)])
    for o in options:
        for s in o.shards:
            if s.rank is None:
                continue
            if s.perf is not None:
                rep.compute_ms[s.rank] += s.perf.fwd_compute + s.perf.bwd_compute + s.perf.prefetch_compute
                rep.comms_ms[s.rank] += s.perf.fwd_comms + s.perf.bwd_comms
            if s.storage is not None:
                rep.hbm_bytes[s.rank] += s.storage.hbm
                rep.ddr_bytes[s.rank] += s.storage.ddr
            if o.fqn not in rep.tables[s.rank]:
                rep.tables[s.rank].append(o.fqn)
    return rep


def plan_report(
    plan: ShardingPlan,
    topology: Topology,
    module: Optional[nn.Module] = None,
    sharders: Optional[List[ModuleSharder[nn.Module]]] = None,
    batch_size: int = BATCH_SIZE,
    constraints: Optional[Dict[str, ParameterConstraints]] = None,
) -> PlanReport:
    """Per-rank estimated compute, comms (ms per step) and memory of ``plan`` (see the module docstring)."""
    options = plan_options(plan, topology, module, sharders, batch_size, constraints)
    return report_from_options(options, topology.world_size)
