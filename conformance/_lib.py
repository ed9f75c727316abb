"""One library seen through TorchRec's import paths (``torchrec.x`` or ``recsys_lib.x``)."""

import importlib
from typing import Any, Dict

import torch


class Lib:
    """``lib.m("sparse.jagged_tensor")`` imports ``<root>.sparse.jagged_tensor``.

    ``share(module, key)``: TorchRec (run first) records the module's state dict under ``key``; recsys_lib loads it
    with ``strict=True``, so both compute with identical weights and the state-dict keys must match.
    """

    def __init__(self, root: str, store: Dict[str, Dict[str, torch.Tensor]]) -> None:
        self.root = root
        self._store = store

    @property
    def is_ref(self) -> bool:
        return self.root == "torchrec"

    def m(self, path: str) -> Any:
        return importlib.import_module(f"{self.root}.{path}" if path else self.root)

    def share(self, module: torch.nn.Module, key: str) -> torch.nn.Module:
        if self.is_ref:
            self._store[key] = {k: v.detach().clone() for k, v in module.state_dict().items()}
        else:
            module.load_state_dict(self._store[key], strict=True)
        return module
