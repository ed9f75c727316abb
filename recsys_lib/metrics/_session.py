"""Ranking examples within sessions (private helpers of the session-level precision/recall and NDCG)."""

from typing import Tuple

import torch


def _sorted_by_session(values: torch.Tensor, session: torch.Tensor, descending: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """Permutation grouping each session's examples together, sorted by value inside a session (stable), and the
    start position of each example's session run in that order."""
    n = values.numel()
    by_value = torch.argsort(values.reshape(-1), descending=descending, stable=True)
    order = by_value[torch.argsort(session.reshape(-1)[by_value], stable=True)]
    s = session.reshape(-1)[order]
    new_run = torch.ones(n, dtype=torch.bool, device=values.device)
    new_run[1:] = s[1:] != s[:-1]
    positions = torch.arange(n, device=values.device)
    run_start = torch.cummax(torch.where(new_run, positions, torch.zeros_like(positions)), 0).values
    return order, run_start


def ranking_within_session(predictions: torch.Tensor, session: torch.Tensor) -> torch.Tensor:
    """For each example, how many examples of its session have a strictly smaller prediction (ascending rank;
    equal predictions share a rank). ``(B,)``, ``(B,)`` -> ``(B,)`` int64."""
    v = predictions.reshape(-1)
    order, run_start = _sorted_by_session(v, session, descending=False)
    n = v.numel()
    sv, ss = v[order], session.reshape(-1)[order]
    new_group = torch.ones(n, dtype=torch.bool, device=v.device)
    new_group[1:] = (sv[1:] != sv[:-1]) | (ss[1:] != ss[:-1])
    positions = torch.arange(n, device=v.device)
    group_start = torch.cummax(torch.where(new_group, positions, torch.zeros_like(positions)), 0).values
    ranks = torch.empty(n, dtype=torch.long, device=v.device)
    ranks[order] = group_start - run_start
    return ranks


def position_within_session(values: torch.Tensor, session: torch.Tensor) -> torch.Tensor:
    """0-based position of each example in its session ordered by ``values`` descending (ties: earlier example
    first), as a ranked list is read. ``(B,)`` -> ``(B,)`` int64."""
    order, run_start = _sorted_by_session(values, session, descending=True)
    n = values.numel()
    ranks = torch.empty(n, dtype=torch.long, device=values.device)
    ranks[order] = torch.arange(n, device=values.device) - run_start
    return ranks
