"""A PredictFactory saved by test_model_packager (interned in the package)."""

from recsys_lib.inference.modules import PredictFactory


class TinyFactory(PredictFactory):
    def create_predict_module(self):
        raise RuntimeError("not used")

    def batching_metadata(self):
        return {}

    def result_metadata(self):
        return "dict_of_tensor"

    def run_weights_independent_tranformations(self, m):
        return m

    def run_weights_dependent_transformations(self, m):
        return m
