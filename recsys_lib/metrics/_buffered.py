"""Computations that keep the raw examples of the window (AUC, AUPRC, RAUC): private base class.

States are torchmetrics list states of ``(n_tasks, B)`` float32 chunks, one per update (``grouping_keys``:
``(B,)`` int64), newest last -- the layout TorchRec keeps, each task's examples contiguous once the chunks
are joined along the last dimension. Appending costs no copy of older examples; after every update the
buffer is trimmed to the newest ``window_size`` examples of this rank (element-wise, not whole batches).

The chunks are joined into one tensor (``_collapse``) only when the whole window is needed: ``compute``,
the distributed sync (one all-gather per state; the reduction joins the ranks' windows along the last
dimension) and ``state_dict``.

An unfused metric (one computation per task) feeds all its computations from one call (``_row_targets``):
the three input matrices are copied once and each task keeps a row view of the copy.
"""

from typing import Any, Dict, List, Optional, Union

import torch

from recsys_lib.metrics._computation import RecMetricComputation

_BUFFERS = ("predictions", "labels", "weights")


def cat_last_dim(states: Union[torch.Tensor, List[torch.Tensor]]) -> torch.Tensor:
    """Reduction of the buffered states over ranks (and of a rank's chunks): join along the example axis."""
    if isinstance(states, torch.Tensor):
        return states
    return states[0] if len(states) == 1 else torch.cat(states, dim=-1)


class BufferedWindowComputation(RecMetricComputation):
    """Buffers ``predictions``, ``labels``, ``weights`` (and ``grouping_keys`` when ``use_grouping_keys``)."""

    _rows_independent = True

    def __init__(self, *args: Any, use_grouping_keys: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._use_grouping_keys = use_grouping_keys
        self._buffer_names: List[str] = list(_BUFFERS) + (["grouping_keys"] if use_grouping_keys else [])
        if use_grouping_keys:
            self._required_inputs.add("grouping_keys")
        for name in self._buffer_names:
            self._add_state(name, [], add_window_state=False, dist_reduce_fx=cat_last_dim, persistent=True)
        self._init_buffers()

    def _init_buffers(self) -> None:
        self._rows_upper_bound = 0  # >= examples held per buffer while every update goes through ``update``
        # An empty entry keeps the rank's contribution well-shaped in the distributed gather.
        for name in self._buffer_names:
            if name == "grouping_keys":
                empty = torch.empty(0, dtype=torch.long, device=self.device)
            else:
                empty = torch.empty(self._n_tasks, 0, dtype=torch.float, device=self.device)
            getattr(self, name).append(empty)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._rows_upper_bound = self._window_size  # loaded buffers: trimmed on the next update

    def _save_to_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._collapse()  # one contiguous tensor per state, not row views of shared update copies
        super()._save_to_state_dict(*args, **kwargs)

    def _sync_dist(self, *args: Any, **kwargs: Any) -> None:
        self._collapse()  # one all-gather per state instead of one per chunk
        super()._sync_dist(*args, **kwargs)

    def _collapse(self) -> None:
        """Replaces each buffer's chunks by one contiguous tensor (kept as a one-element list)."""
        for name in self._buffer_names:
            state = getattr(self, name)
            if isinstance(state, list) and (len(state) != 1 or not state[0].is_contiguous()):
                setattr(self, name, [cat_last_dim(state).contiguous()])

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
        # Own float32 copies: the caller may reuse its tensors; the window must not change with them.
        new: Dict[str, torch.Tensor] = {
            "predictions": predictions.detach().to(torch.float, copy=True),
            "labels": labels.detach().to(torch.float, copy=True),
            "weights": weights.detach().to(torch.float, copy=True),
        }
        if self._use_grouping_keys:
            required = kwargs.get("required_inputs")
            if not isinstance(required, dict) or "grouping_keys" not in required:
                raise ValueError(f"{type(self).__name__}: pass required_inputs={{'grouping_keys': Tensor (B,)}}")
            keys = required["grouping_keys"].reshape(-1).to(torch.long)
            if keys.shape[0] != predictions.shape[-1]:
                raise ValueError(f"grouping_keys has {keys.shape[0]} entries for a batch of {predictions.shape[-1]}")
            new["grouping_keys"] = keys.clone()
        targets = self._row_targets if self._row_targets is not None else [self]
        for i, target in enumerate(targets):
            rows = new if len(targets) == 1 else {
                n: v if n == "grouping_keys" else v[i:i + 1] for n, v in new.items()
            }
            target._append(rows)

    def _append(self, new: Dict[str, torch.Tensor]) -> None:
        """Appends one batch (``(n_tasks, B)`` per buffer) and drops the oldest examples beyond the window."""
        batch = new["predictions"].shape[-1]
        for name in self._buffer_names:
            state = getattr(self, name)
            if isinstance(state, torch.Tensor):  # states loaded by load_pre_compute_states / after a sync
                state = [state]
                setattr(self, name, state)
                self._rows_upper_bound = self._window_size  # unknown: check below
            state.append(new[name].to(state[0].device))
            # Drop the oldest examples beyond the window: whole chunks, then a view of the first one (no copy).
            # Sizes are summed only when the buffer may exceed the window (not on every update).
            if self._rows_upper_bound + batch <= self._window_size:
                continue
            excess = sum(t.shape[-1] for t in state) - self._window_size
            while excess > 0:
                if state[0].shape[-1] <= excess:
                    excess -= state.pop(0).shape[-1]
                else:
                    state[0] = state[0][..., excess:]
                    excess = 0
        self._rows_upper_bound = min(self._rows_upper_bound + batch, self._window_size)

    def buffered(self, name: str) -> torch.Tensor:
        """The buffered examples as one contiguous ``(n_tasks, N)`` tensor (``(N,)`` for ``grouping_keys``)."""
        self._collapse()
        state = getattr(self, name)
        t = cat_last_dim(state)
        return t.reshape(-1) if name == "grouping_keys" else t.reshape(self._n_tasks, -1)
