"""Reference recommendation models (``torchrec.models``): DLRM and its variants, DeepFM."""

from recsys_lib.models import deepfm, dlrm  # noqa: F401
