from functools import partial

from recsys_lib.metrics.accuracy import AccuracyMetric
from tests.metrics import reference as ref


def test_lifetime_and_window_against_numpy():
    batches = ref.make_batches(5, 2, 8, seed=16, ties=True)  # ties put predictions exactly on the threshold
    ref.check_values(AccuracyMetric, "accuracy", ["accuracy"], [ref.accuracy], window_batches=2, window_size=20,
                     batches=batches)


def test_threshold_argument():
    batches = ref.make_batches(4, 2, 8, seed=17)
    ref.check_values(AccuracyMetric, "accuracy", ["accuracy"], [partial(ref.accuracy, threshold=0.3)],
                     window_batches=2, window_size=16, batches=batches, threshold=0.3)
