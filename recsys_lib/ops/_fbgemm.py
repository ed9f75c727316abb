"""Loads FBGEMM's operators (``torch.ops.fbgemm.*``) once, if the package is installed."""

import importlib.util

import torch


def _load() -> bool:
    if importlib.util.find_spec("fbgemm_gpu") is None:
        return False
    try:
        import fbgemm_gpu  # noqa: F401  (registers torch.ops.fbgemm.*)
    except Exception:  # a broken install must not break `import recsys_lib`; the torch paths still work
        return False
    return hasattr(torch.ops.fbgemm, "asynchronous_complete_cumsum")


# Read-only after import: whether torch.ops.fbgemm is usable in this process.
FBGEMM_AVAILABLE: bool = _load()


def fbgemm_available() -> bool:
    """True when ``fbgemm_gpu`` is installed and its operators are registered."""
    return FBGEMM_AVAILABLE
