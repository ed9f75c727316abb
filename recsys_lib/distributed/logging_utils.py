"""Vocabulary of TorchRec's event logging (``torchrec.distributed.logging_utils``).

The enums name what an event is (``EventType``), where it comes from (``StackLayer``), which training optimisation
it concerns (``OptimizationTechnique``) and what it describes (``EventScope``). ``EventLoggingHandlerBase`` is the
interface a handler implements; ``logging_handlers.EventLoggingHandler`` is ours.
"""

import abc
import contextlib
from enum import Enum, unique
from typing import Dict, Generator, Optional


@unique
class EventType(Enum):
    """Lifecycle stage of a logged event."""

    START = "START"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    INFO = "INFO"


@unique
class StackLayer(Enum):
    """Layer of the training stack an event originates from."""

    TORCHREC = "torchrec"
    FBGEMM = "fbgemm"
    FRAMEWORK = "framework"
    DPP = "dpp"


@unique
class OptimizationTechnique(Enum):
    """Training optimisation an event concerns (``NONE`` for plain events)."""

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


@unique
class EventScope(Enum):
    """What a logged event describes: the whole job, one table, one TBE or one pipelined module."""

    JOB = "job"
    TABLE = "table"
    TBE = "tbe"
    PIPELINE_MODULE = "pipeline_module"


class EventLoggingHandlerBase(abc.ABC):
    """Interface of an event logging handler (all methods are class methods: handlers are used without instances).

    ``batches_processed`` is a class-level counter a training loop may update, read by ``n_batch_*`` methods.
    """

    batches_processed: int = 0

    @classmethod
    def update_batches_processed(cls, batches_processed: int) -> None:
        """Sets the class-level count of processed batches."""
        cls.batches_processed = batches_processed

    @classmethod
    @abc.abstractmethod
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
        """Records one event."""

    @classmethod
    @abc.abstractmethod
    @contextlib.contextmanager
    def log_event_context(
        cls,
        component: str,
        event_name: str,
        metadata: Optional[Dict[str, str]] = None,
        add_wait_counter: bool = False,
    ) -> Generator[None, None, None]:
        """Records START on entry, then SUCCESS, or FAILURE (with the error) if the block raises."""

    @classmethod
    @abc.abstractmethod
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
        """Like ``log_event`` but only every ``n``-th batch (by ``batches_processed``)."""

    @classmethod
    @abc.abstractmethod
    @contextlib.contextmanager
    def n_batch_log_event_context(
        cls,
        component: str,
        event_name: str,
        n: int = 1,
        metadata: Optional[Dict[str, str]] = None,
        add_wait_counter: bool = False,
    ) -> Generator[None, None, None]:
        """Like ``log_event_context`` but only every ``n``-th batch."""
