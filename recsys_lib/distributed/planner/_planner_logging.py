"""Structured planner events, written to the ``recsys_lib.distributed.planner`` logger at DEBUG level.

TorchRec's planner calls these hooks at each stage (re-exported by ``planner.planners``); here each
one writes a one-line summary, so ``logging.getLogger("recsys_lib.distributed.planner").setLevel(DEBUG)``
shows the whole planning run. ``technique`` tags the event with an :class:`OptimizationTechnique`.
"""

import logging
from collections import Counter
from enum import Enum, unique
from typing import Any, Dict, List, Optional

logger = logging.getLogger("recsys_lib.distributed.planner")

_SSD_KERNELS = ("key_value", "ssd_virtual_table", "dram_ssd_virtual_table")


@unique
class OptimizationTechnique(Enum):
    """Training optimization a planning run uses (tags the planner's log events)."""

    NONE = "none"
    EMO = "emo"
    ITEP = "itep"
    ALBT = "albt"
    SSD_OFFLOADING = "ssd_offloading"
    TWO_DIM_SHARDING = "two_dim_sharding"
    EMS = "ems"
    MPZCH = "mpzch"
    KVZCH = "kvzch"
    ZORM = "zorm"
    INPLACE_COPY_BATCH = "inplace_copy_batch"
    CLEAR_INPUT_DIST = "clear_input_dist"
    FREE_FEATURES_STORAGE_EARLY = "free_features_storage_early"


def _event(name: str, technique: OptimizationTechnique, **fields: Any) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        body = " ".join(f"{k}={v!r}" for k, v in fields.items())
        logger.debug("planner.%s technique=%s %s", name, technique.value, body)


def _kernels(options: Optional[List]) -> Dict[str, int]:  # type: ignore[type-arg]
    return dict(Counter(getattr(o, "compute_kernel", "?") for o in options or []))


def detect_technique(items: List) -> OptimizationTechnique:  # type: ignore[type-arg]
    """``SSD_OFFLOADING`` when any sharding option in ``items`` keeps its table on SSD, else ``NONE``."""
    if any(getattr(o, "compute_kernel", None) in _SSD_KERNELS for o in items or []):
        return OptimizationTechnique.SSD_OFFLOADING
    return OptimizationTechnique.NONE


def log_planning_result(
    planner_type: str,
    technique: OptimizationTechnique = OptimizationTechnique.NONE,
    error_message: Optional[str] = None,
    **extra_metadata: str,
) -> None:
    _event("planning_result", technique, planner_type=planner_type, ok=error_message is None,
           error=error_message, **extra_metadata)


def log_offloading_summary(
    best_plan: List,  # type: ignore[type-arg]
    planner_type: str,
    technique: OptimizationTechnique = OptimizationTechnique.NONE,
) -> None:
    offloaded = [o.fqn for o in best_plan if o.compute_kernel != "fused" and o.compute_kernel != "dense"]
    _event("offloading_summary", technique, planner_type=planner_type, offloaded_tables=offloaded)


def log_storage_reservation(
    reservation_type: str,
    percentage: Optional[float] = None,
    dense_hbm_bytes: Optional[int] = None,
    kjt_hbm_bytes: Optional[int] = None,
    original_hbm_per_rank: int = 0,
    available_hbm_per_rank: int = 0,
    planner_type: str = "",
    technique: OptimizationTechnique = OptimizationTechnique.NONE,
    hbm_reserved_bytes: Optional[int] = None,
) -> None:
    _event("storage_reservation", technique, reservation_type=reservation_type, percentage=percentage,
           dense_hbm_bytes=dense_hbm_bytes, kjt_hbm_bytes=kjt_hbm_bytes, original_hbm_per_rank=original_hbm_per_rank,
           available_hbm_per_rank=available_hbm_per_rank, planner_type=planner_type,
           hbm_reserved_bytes=hbm_reserved_bytes)


def log_planner_config(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.NONE,
) -> None:
    _event("planner_config", technique, **(metadata or {}))


def log_proposer_result(
    planner_type: str = "",
    proposer_name: str = "",
    proposer_index: int = 0,
    num_proposals: int = 0,
    num_plans: int = 0,
    best_perf_rating: Optional[float] = None,
    is_winning_proposer: bool = False,
    technique: OptimizationTechnique = OptimizationTechnique.NONE,
) -> None:
    _event("proposer_result", technique, planner_type=planner_type, proposer_name=proposer_name,
           proposer_index=proposer_index, num_proposals=num_proposals, num_plans=num_plans,
           best_perf_rating=best_perf_rating, is_winning_proposer=is_winning_proposer)


def log_search_space_summary(
    search_space: List,  # type: ignore[type-arg]
    planner_type: str = "",
    technique: OptimizationTechnique = OptimizationTechnique.NONE,
) -> None:
    tables = {o.fqn for o in search_space}
    _event("search_space", technique, planner_type=planner_type, options=len(search_space), tables=len(tables),
           kernels=_kernels(search_space))


def log_table_assignment(
    best_plan: List,  # type: ignore[type-arg]
    planner_type: str = "",
    technique: OptimizationTechnique = OptimizationTechnique.NONE,
) -> None:
    assignment = {o.fqn: (o.sharding_type, o.compute_kernel, [s.rank for s in o.shards]) for o in best_plan}
    _event("table_assignment", technique, planner_type=planner_type, assignment=assignment)


def log_ssd_offloading_config(
    best_plan: Optional[List] = None,  # type: ignore[type-arg]
    technique: OptimizationTechnique = OptimizationTechnique.SSD_OFFLOADING,
) -> None:
    ssd = [o.fqn for o in best_plan or [] if o.compute_kernel in _SSD_KERNELS]
    _event("ssd_offloading_config", technique, ssd_tables=ssd)


def log_mpzch_summary(
    best_plan: Optional[List] = None,  # type: ignore[type-arg]
    technique: OptimizationTechnique = OptimizationTechnique.MPZCH,
) -> None:
    _event("mpzch_summary", technique, tables=len(best_plan or []), kernels=_kernels(best_plan))


def log_kvzch_summary(
    best_plan: Optional[List] = None,  # type: ignore[type-arg]
    technique: OptimizationTechnique = OptimizationTechnique.KVZCH,
) -> None:
    kv = [o.fqn for o in best_plan or [] if o.compute_kernel in _SSD_KERNELS or o.key_value_params is not None]
    _event("kvzch_summary", technique, key_value_tables=kv)


def log_table_constraints(
    constraints: Optional[Dict] = None,  # type: ignore[type-arg]
    planner_type: str = "",
    technique: OptimizationTechnique = OptimizationTechnique.NONE,
) -> None:
    _event("table_constraints", technique, planner_type=planner_type, constraints=sorted((constraints or {}).keys()))
