"""Criteo column layout and dataset sizes (shared by the TSV parser, the binary tools and the iterators).

A Criteo row (Kaggle Display Advertising and the 1TB Click Logs) is tab separated::

    label | int_0 ... int_12 (13 decimal ints) | cat_0 ... cat_25 (26 hex ids)    = 40 columns

Any field may be empty (a missing value). The Kaggle ``test.txt`` has no label column (39 columns).
"""

from typing import List

INT_FEATURE_COUNT: int = 13
CAT_FEATURE_COUNT: int = 26
DAYS: int = 24
DEFAULT_LABEL_NAME: str = "label"
DEFAULT_INT_NAMES: List[str] = [f"int_{idx}" for idx in range(INT_FEATURE_COUNT)]
DEFAULT_CAT_NAMES: List[str] = [f"cat_{idx}" for idx in range(CAT_FEATURE_COUNT)]
DEFAULT_COLUMN_NAMES: List[str] = [DEFAULT_LABEL_NAME, *DEFAULT_INT_NAMES, *DEFAULT_CAT_NAMES]
TOTAL_TRAINING_SAMPLES: int = 4195197692  # all 24 days of the 1TB Click Logs
FREQUENCY_THRESHOLD: int = 3
NUM_COLUMNS: int = 1 + INT_FEATURE_COUNT + CAT_FEATURE_COUNT
