"""Reference recommendation models (``torchrec.models``): DLRM and its variants, DeepFM."""
