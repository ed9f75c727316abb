"""Computations that keep the raw examples of the window (AUC, AUPRC): private base class.

States are torchmetrics list states of ``(N, n_tasks)`` tensors -- examples on the first dimension so
torchmetrics' distributed ``cat`` reduction concatenates the ranks' windows. After every update the buffer
is trimmed to the newest ``window_size`` examples of this rank (element-wise, not whole batches).
"""

from typing import Any, Dict, List, Optional, Union

import torch

from recsys_lib.metrics._computation import RecMetricComputation

_BUFFERS = ("predictions", "labels", "weights")


def _as_tensor(state: Union[torch.Tensor, List[torch.Tensor]]) -> torch.Tensor:
    # Local states are lists; after torchmetrics' sync they are one concatenated tensor.
    return state if isinstance(state, torch.Tensor) else torch.cat(state)


class BufferedWindowComputation(RecMetricComputation):
    """Buffers ``predictions``, ``labels``, ``weights`` (and ``grouping_keys`` when ``use_grouping_keys``)."""

    def __init__(self, *args: Any, use_grouping_keys: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._use_grouping_keys = use_grouping_keys
        self._buffer_names: List[str] = list(_BUFFERS) + (["grouping_keys"] if use_grouping_keys else [])
        if use_grouping_keys:
            self._required_inputs.add("grouping_keys")
        for name in self._buffer_names:
            self._add_state(name, [], add_window_state=False, dist_reduce_fx="cat", persistent=True)
        self._init_buffers()

    def _init_buffers(self) -> None:
        self._rows_upper_bound = 0  # >= rows held per buffer while every update goes through ``update``
        # An empty (0, n_tasks) entry keeps the rank's contribution well-shaped in the distributed gather.
        for name in self._buffer_names:
            dtype = torch.long if name == "grouping_keys" else torch.float
            cols = 1 if name == "grouping_keys" else self._n_tasks
            getattr(self, name).append(torch.empty(0, cols, dtype=dtype, device=self.device))

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._rows_upper_bound = self._window_size  # loaded buffers: trimmed on the next update

    def reset(self) -> None:
        super().reset()
        self._init_buffers()

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        if predictions is None or weights is None:
            raise ValueError(f"{type(self).__name__} needs predictions and weights")
        new = {"predictions": predictions, "labels": labels, "weights": weights}
        if self._use_grouping_keys:
            required = kwargs.get("required_inputs")
            if not isinstance(required, dict) or "grouping_keys" not in required:
                raise ValueError(f"{type(self).__name__}: pass required_inputs={{'grouping_keys': Tensor (B,)}}")
            keys = required["grouping_keys"].reshape(-1, 1).to(torch.long)
            if keys.shape[0] != predictions.shape[-1]:
                raise ValueError(f"grouping_keys has {keys.shape[0]} entries for a batch of {predictions.shape[-1]}")
            new["grouping_keys"] = keys
        for name in self._buffer_names:
            value = new[name]
            value = value if name == "grouping_keys" else value.detach().to(torch.float).t()
            state = getattr(self, name)
            if isinstance(state, torch.Tensor):  # states loaded by load_pre_compute_states
                state = [state]
                setattr(self, name, state)
                self._rows_upper_bound = self._window_size  # unknown: check below
            state.append(value.to(state[0].device))
            # Drop the oldest rows beyond the window: whole chunks, then a view of the first one (no copy).
            # Row counts are summed only when the buffer may exceed the window (not on every update).
            if self._rows_upper_bound + value.shape[0] <= self._window_size:
                continue
            excess = sum(t.shape[0] for t in state) - self._window_size
            while excess > 0:
                if state[0].shape[0] <= excess:
                    excess -= state.pop(0).shape[0]
                else:
                    state[0] = state[0][excess:]
                    excess = 0
        self._rows_upper_bound = min(self._rows_upper_bound + predictions.shape[-1], self._window_size)

    def buffered(self, name: str) -> torch.Tensor:
        """The buffered examples as ``(n_tasks, N)`` (``(N,)`` for ``grouping_keys``)."""
        t = _as_tensor(getattr(self, name))
        return t.reshape(-1) if name == "grouping_keys" else t.reshape(-1, self._n_tasks).t()
