"""Small planner helpers: unit conversions, names, placements, and two 1-D searches."""

import math
from functools import reduce
from typing import Any, Iterable, List, Optional, Tuple, Type

from recsys_lib.distributed.sharding_plan import placement  # noqa: F401  (TorchRec lists it here too)


def bytes_to_gb(num_bytes: int) -> float:
    return float(num_bytes / (1024 * 1024 * 1024))


def bytes_to_mb(num_bytes: int) -> float:
    return float(num_bytes / (1024 * 1024))


def gb_to_bytes(gb: float) -> int:
    return int(gb * 1024 * 1024 * 1024)


def mb_to_bytes(mb: float) -> int:
    return int(mb * 1024 * 1024)


def prod(iterable: Iterable[int]) -> int:
    return reduce(lambda a, b: a * b, iterable, 1)


def sharder_name(t: Type[Any]) -> str:
    """Key of a sharder in ``sharder_map``: the full dotted name of the module type it shards."""
    return t.__module__ + "." + t.__name__


def storage_repr_in_gb(storage: Optional[Any]) -> str:
    if storage is None:
        return ""
    return f"Storage(hbm = {round(bytes_to_gb(storage.hbm), 3)} GB, ddr = {round(bytes_to_gb(storage.ddr), 3)} GB)"


def reset_shard_rank(proposal: List[Any]) -> None:
    """Clears ``shard.rank`` of every shard of every option (before re-partitioning)."""
    for option in proposal:
        for shard in option.shards:
            shard.rank = None


class BinarySearchPredicate:
    """Finds the largest integer in ``[A, B]`` for which a monotone predicate holds.

    Call ``next(prior_result)`` with the predicate's value at the previous probe (ignored on the first
    call); it returns the next probe, or ``None`` when done (the answer is ``.best``).
    """

    def __init__(self, A: int, B: int, tolerance: int) -> None:
        if A > B:
            raise ValueError(f"BinarySearchPredicate: empty range [{A}, {B}]")
        self.left = A
        self.right = B
        self.tolerance = max(tolerance, 0)
        self.first = True
        self.probe: Optional[int] = None
        self.best: Optional[int] = None

    def next(self, prior_result: bool) -> Optional[int]:
        if not self.first and self.probe is not None:
            if prior_result:
                self.best = self.probe
                self.left = self.probe + 1
            else:
                self.right = self.probe - 1
        self.first = False
        if self.right - self.left < self.tolerance or self.left > self.right:
            self.probe = None
            return None
        self.probe = (self.left + self.right) // 2
        return self.probe


class LuusJaakolaSearch:
    """Derivative-free minimisation of a 1-D function on ``[A, B]`` by shrinking random steps.

    ``next(fy)`` takes the value at the previous point and returns the next point (``None`` when the
    iteration budget is spent); ``best()`` is the best ``(x, f(x))`` seen.
    """

    def __init__(self, A: float, B: float, max_iterations: int, seed: int = 42, left_cost: Optional[float] = None) -> None:
        import random

        self.a, self.b = float(A), float(B)
        self.max_iterations = max_iterations
        self.rng = random.Random(seed)
        self.x = (self.a + self.b) / 2
        self.d = (self.b - self.a) / 2
        self.iteration = -1
        self.candidate: float = self.x
        self.best_x: Optional[float] = None
        self.best_y: float = math.inf if left_cost is None else left_cost
        if left_cost is not None:
            self.best_x = self.a

    def next(self, fy: float) -> Optional[float]:
        if self.iteration >= 0:
            if fy < self.best_y:
                self.best_x, self.best_y = self.candidate, fy
                self.x = self.candidate
            else:
                self.d *= 0.95
        self.iteration += 1
        if self.iteration >= self.max_iterations or self.d <= 1e-9:
            return None
        if self.iteration == 0:
            self.candidate = self.x
        else:
            self.candidate = min(self.b, max(self.a, self.x + self.rng.uniform(-self.d, self.d)))
        return self.candidate

    def best(self) -> Tuple[Optional[float], float]:
        return self.best_x, self.best_y

