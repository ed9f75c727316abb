"""Pruning event logging hooks (``PruningLogger``): a context manager per pruning event; the default logs nothing.

Example::

    with PruningLoggerDefault.pruning_logger(event="evict", trainer="t0") as log:
        log.num_rows = 12      # the default logger's record is a plain namespace
"""

import abc
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Generator, Optional

logger: logging.Logger = logging.getLogger(__name__)


@dataclass
class PruningLogBase(object):
    """Base of the records a pruning logger fills in (subclass it with the fields to log)."""


class PruningLogger(abc.ABC):
    """Interface: ``pruning_logger(event, trainer, publisher)`` yields a record for the duration of one event."""

    @classmethod
    @abc.abstractmethod
    @contextmanager
    def pruning_logger(
        cls,
        event: str,
        trainer: Optional[str] = None,
        publisher: Optional[str] = None,
    ) -> Generator[object, None, None]:
        pass


class PruningLoggerDefault(PruningLogger):
    """No-op logger: yields a fresh ``SimpleNamespace`` that callers may fill in and that is dropped."""

    @classmethod
    @contextmanager
    def pruning_logger(
        cls,
        event: str,
        trainer: Optional[str] = None,
        publisher: Optional[str] = None,
    ) -> Generator[object, None, None]:
        yield SimpleNamespace()
