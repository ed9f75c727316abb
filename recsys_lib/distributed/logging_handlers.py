"""Event logging of TorchRec components (``torchrec.distributed.logging_handlers``).

TorchRec's open-source build makes every handler and ``log_*`` function a no-op. Ours records each event as one
DEBUG record on the standard logger ``recsys_lib.distributed.events`` (message ``component:event_name:event_type``,
the fields in the record's ``event`` attribute), so the events cost nothing unless that logger is enabled and can
be collected with ordinary logging tools::

    logging.getLogger("recsys_lib.distributed.events").setLevel(logging.DEBUG)
"""

import contextlib
import functools
import logging
import traceback
from enum import Enum
from typing import Any, Callable, Dict, Generator, List, Optional, TypeVar

from recsys_lib.distributed.logging_utils import (
    EventLoggingHandlerBase,
    EventScope,
    EventType,
    OptimizationTechnique,
    StackLayer,
)

EVENT_LOGGER = "recsys_lib.distributed.events"

F = TypeVar("F", bound=Callable[..., Any])


class TorchrecComponent(Enum):
    """TorchRec component an event belongs to."""

    PLANNER = "planner"
    SHARDER = "sharder"
    TRAIN_PIPELINE = "train_pipeline"
    INPUT_DIST = "input_dist"
    OUTPUT_DIST = "output_dist"
    LOOKUP = "lookup"
    REC_METRICS = "rec_metrics"
    ITEP = "itep"
    DISTRIBUTED_MODEL_PARALLEL = "distributed_model_parallel"
    ALBT = "albt"


class EventLoggingHandler(EventLoggingHandlerBase):
    """Handler writing each event as a DEBUG record on ``recsys_lib.distributed.events``.

    Example::

        @EventLoggingHandler.event_logger(TorchrecComponent.PLANNER, prefix="my_")
        def plan(): ...
        plan()  # records my_plan START, then my_plan SUCCESS (or FAILURE with the error)
    """

    @classmethod
    def event_logger(
        cls,
        component: TorchrecComponent,
        prefix: str = "",
        n: Optional[int] = None,
        add_wait_counter: bool = False,
    ) -> Callable[[F], F]:
        """Decorator running a function inside ``log_event_context`` (or ``n_batch_log_event_context`` if ``n``).

        The event is named ``prefix + func.__qualname__``.
        """

        def decorator(func: F) -> F:
            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                name = prefix + func.__qualname__
                if n is None:
                    ctx = cls.log_event_context(component.value, name, add_wait_counter=add_wait_counter)
                else:
                    ctx = cls.n_batch_log_event_context(component.value, name, n=n, add_wait_counter=add_wait_counter)
                with ctx:
                    return func(*args, **kwargs)

            return wrapper  # type: ignore[return-value]

        return decorator

    @classmethod
    def log_event(
        cls,
        component: str,
        event_name: str,
        event_type: EventType,
        metadata: Optional[Dict[str, str]] = None,
        add_wait_counter: bool = False,
        error_message: Optional[str] = None,
        stack_trace: Optional[str] = None,
    ) -> None:
        """Writes one DEBUG record (``add_wait_counter`` is accepted; no wait counters are kept)."""
        log = logging.getLogger(EVENT_LOGGER)
        if not log.isEnabledFor(logging.DEBUG):
            return
        event: Dict[str, Any] = {
            "component": component,
            "event_name": event_name,
            "event_type": event_type.value,
            "metadata": dict(metadata or {}),
            "batches_processed": cls.batches_processed,
        }
        if error_message is not None:
            event["error_message"] = error_message
        if stack_trace is not None:
            event["stack_trace"] = stack_trace
        log.debug("%s:%s:%s", component, event_name, event_type.value, extra={"event": event})

    @classmethod
    @contextlib.contextmanager
    def log_event_context(
        cls,
        component: str,
        event_name: str,
        metadata: Optional[Dict[str, str]] = None,
        add_wait_counter: bool = False,
    ) -> Generator[None, None, None]:
        """START on entry; SUCCESS on exit, or FAILURE with the error and stack trace (then re-raised)."""
        cls.log_event(component, event_name, EventType.START, metadata)
        try:
            yield
        except BaseException as e:
            cls.log_event(
                component, event_name, EventType.FAILURE, metadata, False, str(e), traceback.format_exc()
            )
            raise
        cls.log_event(component, event_name, EventType.SUCCESS, metadata)

    @classmethod
    def _nth_batch(cls, n: int) -> bool:
        return n <= 1 or cls.batches_processed % n == 0

    @classmethod
    def n_batch_log_event(
        cls,
        component: str,
        event_name: str,
        event_type: EventType,
        n: int = 1,
        metadata: Optional[Dict[str, str]] = None,
        add_wait_counter: bool = False,
        error_message: Optional[str] = None,
        stack_trace: Optional[str] = None,
    ) -> None:
        """``log_event`` when ``batches_processed`` is a multiple of ``n``."""
        if cls._nth_batch(n):
            cls.log_event(component, event_name, event_type, metadata, add_wait_counter, error_message, stack_trace)

    @classmethod
    @contextlib.contextmanager
    def n_batch_log_event_context(
        cls,
        component: str,
        event_name: str,
        n: int = 1,
        metadata: Optional[Dict[str, str]] = None,
        add_wait_counter: bool = False,
    ) -> Generator[None, None, None]:
        """``log_event_context`` when ``batches_processed`` is a multiple of ``n``, else a plain block."""
        if cls._nth_batch(n):
            with cls.log_event_context(component, event_name, metadata, add_wait_counter):
                yield
        else:
            yield


class TrainingOptimizationLogger(EventLoggingHandler):
    """Events about one training optimisation: layer, technique and scope go into the metadata."""

    @classmethod
    def _tagged(
        cls,
        layer: StackLayer,
        technique: OptimizationTechnique,
        event_scope: EventScope,
        metadata: Optional[Dict[str, str]],
    ) -> Dict[str, str]:
        tagged = {"layer": layer.value, "technique": technique.value, "event_scope": event_scope.value}
        tagged.update(metadata or {})
        return tagged

    @classmethod
    def log(
        cls,
        layer: StackLayer,
        event_name: str,
        event_type: EventType,
        technique: OptimizationTechnique,
        component: TorchrecComponent,
        event_scope: EventScope,
        metadata: Optional[Dict[str, str]] = None,
        add_wait_counter: bool = False,
        error_message: Optional[str] = None,
        stack_trace: Optional[str] = None,
    ) -> None:
        """Records one event of ``technique`` at ``layer`` / ``event_scope``."""
        cls.log_event(
            component.value,
            event_name,
            event_type,
            cls._tagged(layer, technique, event_scope, metadata),
            add_wait_counter,
            error_message,
            stack_trace,
        )

    @classmethod
    @contextlib.contextmanager
    def log_context(
        cls,
        layer: StackLayer,
        event_name: str,
        technique: OptimizationTechnique,
        component: TorchrecComponent,
        event_scope: EventScope,
        metadata: Optional[Dict[str, str]] = None,
        add_wait_counter: bool = False,
    ) -> Generator[None, None, None]:
        """``log_event_context`` with the layer / technique / scope tags."""
        tagged = cls._tagged(layer, technique, event_scope, metadata)
        with cls.log_event_context(component.value, event_name, tagged, add_wait_counter):
            yield


def _emit(
    name: str,
    technique: OptimizationTechnique,
    component: TorchrecComponent,
    scope: EventScope,
    fields: Dict[str, Any],
) -> None:
    """One INFO event named ``name``; the call's arguments (other than ``technique``) become string metadata."""
    metadata: Dict[str, str] = {}
    for key, value in fields.items():
        if key == "technique":
            continue
        if isinstance(value, dict) and key in ("extra_metadata", "metadata", "kwargs"):
            metadata.update({str(k): str(v) for k, v in value.items()})
        elif value is not None:
            metadata[key] = str(value)
    TrainingOptimizationLogger.log(StackLayer.TORCHREC, name, EventType.INFO, technique, component, scope, metadata)


def detect_technique(items: List) -> OptimizationTechnique:  # type: ignore[type-arg]
    """The optimisation ``items`` (e.g. a plan's sharding options) use; ``NONE`` as in TorchRec's open build."""
    return OptimizationTechnique.NONE


def log_planning_result(
    planner_type: str,
    technique: OptimizationTechnique = OptimizationTechnique.NONE,
    error_message: Optional[str] = None,
    **extra_metadata: str,
) -> None:
    """Records the ``planning_result`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("planning_result", technique, TorchrecComponent.PLANNER, EventScope.JOB, locals())


def log_offloading_summary(
    best_plan: List,
    planner_type: str,
    technique: OptimizationTechnique = OptimizationTechnique.NONE,
) -> None:
    """Records the ``offloading_summary`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("offloading_summary", technique, TorchrecComponent.PLANNER, EventScope.JOB, locals())


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
    """Records the ``storage_reservation`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("storage_reservation", technique, TorchrecComponent.PLANNER, EventScope.JOB, locals())


def log_planner_config(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.NONE,
) -> None:
    """Records the ``planner_config`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("planner_config", technique, TorchrecComponent.PLANNER, EventScope.JOB, locals())


def log_stats_match(
    table_name: str = "",
    table_height: int = 0,
    match_level: str = "",
    min_working_set: int = 0,
    recommended_cache_rows: int = 0,
    global_batch_size: int = 0,
    matched_height: Optional[int] = None,
    technique: OptimizationTechnique = OptimizationTechnique.EMO,
) -> None:
    """Records the ``stats_match`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("stats_match", technique, TorchrecComponent.PLANNER, EventScope.TABLE, locals())


def log_cacheability_resolved(
    table_name: str = "",
    table_height: int = 0,
    cacheability: float = 0.0,
    expected_lookups: int = 0,
    technique: OptimizationTechnique = OptimizationTechnique.EMO,
) -> None:
    """Records the ``cacheability_resolved`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("cacheability_resolved", technique, TorchrecComponent.PLANNER, EventScope.TABLE, locals())


def log_clf_computed(
    table_name: str = "",
    table_height: int = 0,
    clf: float = 0.0,
    technique: OptimizationTechnique = OptimizationTechnique.EMO,
) -> None:
    """Records the ``clf_computed`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("clf_computed", technique, TorchrecComponent.PLANNER, EventScope.TABLE, locals())


def log_itep_config(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.ITEP,
) -> None:
    """Records the ``itep_config`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("itep_config", technique, TorchrecComponent.ITEP, EventScope.JOB, locals())


def log_itep_init_state(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.ITEP,
) -> None:
    """Records the ``itep_init_state`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("itep_init_state", technique, TorchrecComponent.ITEP, EventScope.JOB, locals())


def log_itep_eviction(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.ITEP,
) -> None:
    """Records the ``itep_eviction`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("itep_eviction", technique, TorchrecComponent.ITEP, EventScope.JOB, locals())


def log_itep_pruning_trigger(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.ITEP,
) -> None:
    """Records the ``itep_pruning_trigger`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("itep_pruning_trigger", technique, TorchrecComponent.ITEP, EventScope.JOB, locals())


def log_itep_checkpoint_save(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.ITEP,
) -> None:
    """Records the ``itep_checkpoint_save`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("itep_checkpoint_save", technique, TorchrecComponent.ITEP, EventScope.JOB, locals())


def log_itep_checkpoint_load(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.ITEP,
) -> None:
    """Records the ``itep_checkpoint_load`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("itep_checkpoint_load", technique, TorchrecComponent.ITEP, EventScope.JOB, locals())


def log_itep_table_config(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.ITEP,
) -> None:
    """Records the ``itep_table_config`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("itep_table_config", technique, TorchrecComponent.ITEP, EventScope.JOB, locals())


def log_itep_rowwise_shard(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.ITEP,
) -> None:
    """Records the ``itep_rowwise_shard`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("itep_rowwise_shard", technique, TorchrecComponent.ITEP, EventScope.JOB, locals())


def log_itep_ien_pruning_stats(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.ITEP,
) -> None:
    """Records the ``itep_ien_pruning_stats`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("itep_ien_pruning_stats", technique, TorchrecComponent.ITEP, EventScope.JOB, locals())


def log_itep_ien_pruning_decision(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.ITEP,
) -> None:
    """Records the ``itep_ien_pruning_decision`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("itep_ien_pruning_decision", technique, TorchrecComponent.ITEP, EventScope.JOB, locals())


def log_itep_itp_info(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.ITEP,
) -> None:
    """Records the ``itep_itp_info`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("itep_itp_info", technique, TorchrecComponent.ITEP, EventScope.JOB, locals())


def log_two_dim_sharding_config(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.TWO_DIM_SHARDING,
) -> None:
    """Records the ``two_dim_sharding_config`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("two_dim_sharding_config", technique, TorchrecComponent.PLANNER, EventScope.JOB, locals())


def log_ssd_offloading_config(
    best_plan: Optional[List] = None,
    technique: OptimizationTechnique = OptimizationTechnique.SSD_OFFLOADING,
) -> None:
    """Records the ``ssd_offloading_config`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("ssd_offloading_config", technique, TorchrecComponent.PLANNER, EventScope.JOB, locals())


def log_ems_config(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.EMS,
) -> None:
    """Records the ``ems_config`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("ems_config", technique, TorchrecComponent.PLANNER, EventScope.JOB, locals())


def log_inplace_copy_batch(
    size_bytes: int = 0,
    technique: OptimizationTechnique = OptimizationTechnique.INPLACE_COPY_BATCH,
) -> None:
    """Records the ``inplace_copy_batch`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("inplace_copy_batch", technique, TorchrecComponent.TRAIN_PIPELINE, EventScope.JOB, locals())


def log_clear_input_dist_tensors(
    size_bytes: int = 0,
    technique: OptimizationTechnique = OptimizationTechnique.CLEAR_INPUT_DIST,
) -> None:
    """Records the ``clear_input_dist_tensors`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("clear_input_dist_tensors", technique, TorchrecComponent.INPUT_DIST, EventScope.JOB, locals())


def log_free_features_storage_early(
    size_bytes: int = 0,
    technique: OptimizationTechnique = OptimizationTechnique.FREE_FEATURES_STORAGE_EARLY,
) -> None:
    """Records the ``free_features_storage_early`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("free_features_storage_early", technique, TorchrecComponent.TRAIN_PIPELINE, EventScope.JOB, locals())


def log_ems_event(
    event_name: str = "",
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.EMS,
) -> None:
    """Records the ``ems_event`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("ems_event", technique, TorchrecComponent.PLANNER, EventScope.JOB, locals())


def log_emo_event(
    event_name: str = "",
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.EMO,
) -> None:
    """Records the ``emo_event`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("emo_event", technique, TorchrecComponent.PLANNER, EventScope.JOB, locals())


def log_mpzch_summary(
    best_plan: Optional[List] = None,
    technique: OptimizationTechnique = OptimizationTechnique.MPZCH,
) -> None:
    """Records the ``mpzch_summary`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("mpzch_summary", technique, TorchrecComponent.PLANNER, EventScope.JOB, locals())


def log_kvzch_summary(
    best_plan: Optional[List] = None,
    technique: OptimizationTechnique = OptimizationTechnique.KVZCH,
) -> None:
    """Records the ``kvzch_summary`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("kvzch_summary", technique, TorchrecComponent.PLANNER, EventScope.JOB, locals())


def log_zorm_config(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.ZORM,
) -> None:
    """Records the ``zorm_config`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("zorm_config", technique, TorchrecComponent.PLANNER, EventScope.JOB, locals())


def log_kernel_changed(
    table_name: str = "",
    action: str = "",
    reason: str = "",
    new_kernels: Optional[list] = None,
    table_height: Optional[int] = None,
    cache_ratio: Optional[float] = None,
    technique: OptimizationTechnique = OptimizationTechnique.EMO,
) -> None:
    """Records the ``kernel_changed`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("kernel_changed", technique, TorchrecComponent.PLANNER, EventScope.TABLE, locals())


def log_pipeline_module_info(
    pipelined_module_fqns: List[str],
    non_pipelined_module_fqns: List[str],
    pipeline_forward_type: str = "",
) -> None:
    """Records the ``pipeline_module_info`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("pipeline_module_info", OptimizationTechnique.NONE, TorchrecComponent.TRAIN_PIPELINE, EventScope.PIPELINE_MODULE, locals())


def log_table_assignment(
    best_plan: List,
    planner_type: str = "",
    technique: OptimizationTechnique = OptimizationTechnique.NONE,
) -> None:
    """Records the ``table_assignment`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("table_assignment", technique, TorchrecComponent.PLANNER, EventScope.JOB, locals())


def log_table_constraints(
    constraints: Optional[Dict] = None,
    planner_type: str = "",
    technique: OptimizationTechnique = OptimizationTechnique.NONE,
) -> None:
    """Records the ``table_constraints`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("table_constraints", technique, TorchrecComponent.PLANNER, EventScope.JOB, locals())


def log_tbe_composition(
    grouped_configs: List,
    rank: int = 0,
    technique: OptimizationTechnique = OptimizationTechnique.NONE,
) -> None:
    """Records the ``tbe_composition`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("tbe_composition", technique, TorchrecComponent.LOOKUP, EventScope.TBE, locals())


def log_search_space_summary(
    search_space: List,
    planner_type: str = "",
    technique: OptimizationTechnique = OptimizationTechnique.NONE,
) -> None:
    """Records the ``search_space_summary`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("search_space_summary", technique, TorchrecComponent.PLANNER, EventScope.JOB, locals())


def log_search_space_augmented(*args, **kwargs) -> None:
    """Records the ``search_space_augmented`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("search_space_augmented", OptimizationTechnique.NONE, TorchrecComponent.PLANNER, EventScope.JOB, locals())


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
    """Records the ``proposer_result`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("proposer_result", technique, TorchrecComponent.PLANNER, EventScope.JOB, locals())


def log_albt_enablement(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.ALBT,
) -> None:
    """Records the ``albt_enablement`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("albt_enablement", technique, TorchrecComponent.ALBT, EventScope.JOB, locals())


def log_albt_schedule_conversion(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.ALBT,
) -> None:
    """Records the ``albt_schedule_conversion`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("albt_schedule_conversion", technique, TorchrecComponent.ALBT, EventScope.JOB, locals())


def log_albt_warning(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.ALBT,
) -> None:
    """Records the ``albt_warning`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("albt_warning", technique, TorchrecComponent.ALBT, EventScope.JOB, locals())


def log_albt_error(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.ALBT,
    error_message: Optional[str] = None,
    stack_trace: Optional[str] = None,
) -> None:
    """Records the ``albt_error`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("albt_error", technique, TorchrecComponent.ALBT, EventScope.JOB, locals())


def log_albt_stage_transition(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.ALBT,
) -> None:
    """Records the ``albt_stage_transition`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("albt_stage_transition", technique, TorchrecComponent.ALBT, EventScope.JOB, locals())


def log_albt_validation_success(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.ALBT,
) -> None:
    """Records the ``albt_validation_success`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("albt_validation_success", technique, TorchrecComponent.ALBT, EventScope.JOB, locals())


def log_albt_schedule_stage(
    metadata: Optional[Dict[str, str]] = None,
    technique: OptimizationTechnique = OptimizationTechnique.ALBT,
) -> None:
    """Records the ``albt_schedule_stage`` event (a DEBUG record on ``recsys_lib.distributed.events``)."""
    _emit("albt_schedule_stage", technique, TorchrecComponent.ALBT, EventScope.JOB, locals())
