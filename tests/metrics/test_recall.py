from functools import partial

from recsys_lib.metrics.recall import RecallMetric
from tests.metrics import reference as ref


def test_lifetime_and_window_against_numpy():
    batches = ref.make_batches(5, 2, 8, seed=20, ties=True)
    ref.check_values(RecallMetric, "recall", ["recall"], [ref.recall], window_batches=2, window_size=20,
                     batches=batches)


def test_threshold_argument():
    batches = ref.make_batches(4, 2, 8, seed=21)
    ref.check_values(RecallMetric, "recall", ["recall"], [partial(ref.recall, threshold=0.7)],
                     window_batches=2, window_size=16, batches=batches, threshold=0.7)
