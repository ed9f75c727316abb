"""State-dict hooks that carry a metric's batch counter (private helper of throughput / tower_qps).

A metric with ``batch_size_stages`` must know how many batches it has seen to pick the current batch size
after a restore. The counter is a plain int (reading a device tensor every step would sync), so it travels
as an extra ``{prefix}num_batch`` long scalar written by ``state_dict_hook`` and taken out again, before the
module's own keys are loaded, by ``load_state_dict_hook``.
"""

from collections import OrderedDict
from typing import Any, Dict, List

import torch
from torch import nn


class NumBatchStateHooks:
    """Mixin for an ``nn.Module`` with ``_batch_size_stages`` and an int counter named by ``_num_batch_attr``."""

    _num_batch_attr: str = "_num_batch"

    def _register_num_batch_hooks(self) -> None:
        module: Any = self
        module._register_load_state_dict_pre_hook(module.load_state_dict_hook)
        module.register_state_dict_post_hook(type(self).state_dict_hook)

    @staticmethod
    def state_dict_hook(
        module: nn.Module,
        state_dict: "OrderedDict[str, torch.Tensor]",
        prefix: str,
        local_metadata: Dict[str, Any],
    ) -> None:
        if getattr(module, "_batch_size_stages", None) is not None:
            count = int(getattr(module, getattr(module, "_num_batch_attr")))
            state_dict[f"{prefix}num_batch"] = torch.tensor(count, dtype=torch.long)

    def load_state_dict_hook(
        self,
        state_dict: "OrderedDict[str, torch.Tensor]",
        prefix: str,
        local_metadata: Dict[str, Any],
        strict: bool,
        missing_keys: List[str],
        unexpected_keys: List[str],
        error_msgs: List[str],
    ) -> None:
        key = f"{prefix}num_batch"
        if key in state_dict:
            value = state_dict.pop(key)
            if getattr(self, "_batch_size_stages", None) is not None:
                setattr(self, self._num_batch_attr, int(value.item()))
