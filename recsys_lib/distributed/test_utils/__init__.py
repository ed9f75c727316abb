"""Helpers for testing sharded modules on CPU with gloo (spawned process groups)."""

from recsys_lib.distributed.test_utils.multi_process import get_free_port, run_multiprocess  # noqa: F401
from recsys_lib.distributed._collectives.counter import CollectiveCounter, count_collectives  # noqa: F401
