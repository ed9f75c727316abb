"""Helpers for ``torch.compile`` / ``torch.export`` (``torchrec.pt2``)."""
