from recsys_lib.metrics.mae import MAEMetric
from tests.metrics import reference as ref


def test_lifetime_and_window_against_numpy():
    batches = ref.make_batches(5, 2, 8, seed=14)
    ref.check_values(MAEMetric, "mae", ["mae"], [ref.mae], window_batches=1, window_size=8, batches=batches)
