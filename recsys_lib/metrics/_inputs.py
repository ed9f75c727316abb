"""Normalising per-task metric inputs (private helpers of ``rec_metric``)."""

from typing import Any, Dict, List, Optional, Union

import torch

from recsys_lib.metrics.metrics_config import RecTaskInfo

RecModelOutput = Union[torch.Tensor, Dict[str, torch.Tensor]]


def to_task_matrix(what: str, value: Any, tasks: List[RecTaskInfo]) -> torch.Tensor:
    """``Tensor (B,) | (B, 1) | (T, B) | Dict[task, (B,)]`` -> ``Tensor (T, B)``."""
    names = [t.name for t in tasks]
    if isinstance(value, dict):
        unknown = [k for k in value if k not in names]
        missing = [n for n in names if n not in value]
        if unknown or missing:
            raise ValueError(
                f"{what}: unknown task name(s) {unknown} / missing task(s) {missing}; this metric's tasks are {names}"
            )
        rows = []
        for n in names:
            t = value[n]
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{what}[{n!r}] must be a torch.Tensor, got {type(t).__name__}")
            if t.dim() == 2 and t.shape[1] == 1:
                t = t.reshape(-1)
            if t.dim() != 1:
                raise ValueError(f"{what}[{n!r}] must have shape (B,) or (B, 1), got {tuple(t.shape)}")
            rows.append(t)
        sizes = {r.numel() for r in rows}
        if len(sizes) > 1:
            raise ValueError(f"{what}: tasks have different batch sizes {[r.numel() for r in rows]}")
        return torch.stack(rows)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor or a dict of task name -> tensor, got {type(value).__name__}")
    if len(tasks) == 1 and value.dim() == 1:
        return value.reshape(1, -1)
    if len(tasks) == 1 and value.dim() == 2 and value.shape[1] == 1:
        return value.reshape(1, -1)
    if value.dim() == 2 and value.shape[0] == len(tasks):
        return value
    raise ValueError(
        f"{what} has shape {tuple(value.shape)}; expected (n_tasks={len(tasks)}, batch) "
        + ("or (batch,)" if len(tasks) == 1 else "or a dict keyed by task name")
    )


def select_tasks(value: Optional[RecModelOutput], tasks: List[RecTaskInfo]) -> Optional[RecModelOutput]:
    if isinstance(value, dict):
        return {t.name: value[t.name] for t in tasks if t.name in value}
    return value
