from recsys_lib.metrics.weighted_avg import WeightedAvgMetric
from tests.metrics import reference as ref


def test_lifetime_and_window_against_numpy():
    batches = ref.make_batches(5, 2, 8, seed=15)
    ref.check_values(WeightedAvgMetric, "weighted_avg", ["weighted_avg"], [ref.weighted_avg], window_batches=2,
                     window_size=20, batches=batches)
