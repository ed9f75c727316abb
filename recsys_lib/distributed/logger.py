"""Logging helpers of the distributed package (TorchRec's ``torchrec.distributed.logger``)."""

from typing import Callable, Optional


class LazyStr:
    """A string computed only when formatted, then memoised: costs nothing when the log level is off.

    Args:
        fn: returns the string.

    Example::

        logger.debug("%s", LazyStr(lambda: f"{expensive_summary()}"))
    """

    __slots__ = ("_fn", "_str")

    def __init__(self, fn: Callable[[], str]) -> None:
        self._fn = fn
        self._str: Optional[str] = None

    def __str__(self) -> str:
        if self._str is None:
            self._str = self._fn()
        return self._str
