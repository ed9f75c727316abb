"""Datasets: Criteo (TSV and preprocessed binary), MovieLens, random batches; all yield ``utils.Batch``."""

import recsys_lib.datasets.criteo  # noqa: F401
import recsys_lib.datasets.movielens  # noqa: F401
import recsys_lib.datasets.random  # noqa: F401
import recsys_lib.datasets.utils  # noqa: F401
