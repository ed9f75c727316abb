from recsys_lib.metrics.mse import MSEMetric
from tests.metrics import reference as ref


def test_mse_and_rmse_against_numpy():
    batches = ref.make_batches(5, 2, 8, seed=13)
    ref.check_values(MSEMetric, "mse", ["mse", "rmse"], [ref.mse, ref.rmse], window_batches=2, window_size=20,
                     batches=batches)
