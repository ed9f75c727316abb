"""logging_handlers / logging_utils: events reach the standard logger with their fields; nothing when disabled."""

import inspect
import logging

import pytest

from recsys_lib.distributed import logging_handlers as lh
from recsys_lib.distributed.logging_utils import EventType, OptimizationTechnique


@pytest.fixture
def events(caplog):
    caplog.set_level(logging.DEBUG, logger=lh.EVENT_LOGGER)
    return lambda: [r.event for r in caplog.records if r.name == lh.EVENT_LOGGER]


def test_log_function_records_its_arguments(events):
    lh.log_stats_match(table_name="t0", table_height=100, match_level="exact")
    (ev,) = events()
    assert ev["event_name"] == "stats_match" and ev["event_type"] == "INFO"
    assert ev["metadata"]["table_name"] == "t0" and ev["metadata"]["table_height"] == "100"
    assert ev["metadata"]["technique"] == OptimizationTechnique.EMO.value  # the function's default technique
    assert ev["metadata"]["event_scope"] == "table"


def test_extra_metadata_is_flattened(events):
    lh.log_planning_result("heuristic", error_message="none fit", budget="3")
    (ev,) = events()
    assert ev["metadata"]["budget"] == "3" and ev["metadata"]["error_message"] == "none fit"
    assert ev["component"] == lh.TorchrecComponent.PLANNER.value


def test_event_logger_decorator_success_and_failure(events):
    @lh.EventLoggingHandler.event_logger(lh.TorchrecComponent.SHARDER, prefix="p.")
    def ok(x):
        return x + 1

    @lh.EventLoggingHandler.event_logger(lh.TorchrecComponent.SHARDER)
    def bad():
        raise KeyError("missing table")

    assert ok(1) == 2
    with pytest.raises(KeyError):
        bad()
    kinds = [(e["event_name"], e["event_type"]) for e in events()]
    name = ok.__qualname__
    assert kinds[:2] == [("p." + name, "START"), ("p." + name, "SUCCESS")]
    assert kinds[2][1] == "START" and kinds[3][1] == "FAILURE"
    assert "missing table" in events()[3]["error_message"]


def test_n_batch_logging_every_nth_batch(events):
    for b in range(6):
        lh.EventLoggingHandler.update_batches_processed(b)
        lh.EventLoggingHandler.n_batch_log_event("c", "step", EventType.INFO, n=3)
    lh.EventLoggingHandler.update_batches_processed(0)
    assert [e["batches_processed"] for e in events()] == [0, 3]


def test_silent_when_logger_disabled(caplog):
    caplog.set_level(logging.WARNING, logger=lh.EVENT_LOGGER)
    lh.log_kvzch_summary(best_plan=[1])
    assert not [r for r in caplog.records if r.name == lh.EVENT_LOGGER]


def test_every_log_function_accepts_its_defaults(events):
    funcs = [f for n, f in vars(lh).items() if n.startswith("log_") and inspect.isfunction(f)]
    assert len(funcs) == 44
    for f in funcs:
        required = [
            p for p in inspect.signature(f).parameters.values()
            if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        f(*[[] if "plan" in p.name or "configs" in p.name or "space" in p.name or "fqns" in p.name else "x"
            for p in required])
    assert len(events()) == len(funcs)
    assert lh.detect_technique([]) is OptimizationTechnique.NONE
