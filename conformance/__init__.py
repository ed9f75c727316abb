"""Side-by-side conformance of recsys_lib with TorchRec 1.8.0 (may import torchrec; not part of the package)."""
