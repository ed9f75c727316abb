"""Small planner helpers: unit conversions, names, placements, and two 1-D searches."""

import math
from functools import reduce
from typing import Any, Dict, Iterable, List, Optional, Tuple, Type, Union

import torch
from torch import nn

from recsys_lib.distributed._core.enums import CommOp
from recsys_lib.distributed.planner._sharder_data import SharderData, StorageUsageType
from recsys_lib.distributed.planner.constants import NUM_POOLINGS
from recsys_lib.distributed.planner.types import ParameterConstraints, ShardingOption
from recsys_lib.distributed.sharding_plan import placement  # noqa: F401  (TorchRec lists it here too)
from recsys_lib.distributed._core.sharder import ModuleSharder
from recsys_lib.distributed.planner._hardware import Perf, Storage  # noqa: F401
from recsys_lib.distributed.planner.types import SharderDataMap  # noqa: F401


_QCOMM_OPS = (
    CommOp.POOLED_EMBEDDINGS_ALL_TO_ALL.name,
    CommOp.SEQUENCE_EMBEDDINGS_ALL_TO_ALL.name,
    CommOp.POOLED_EMBEDDINGS_REDUCE_SCATTER.name,
)


def build_sharder_data(sharder: ModuleSharder[nn.Module]) -> SharderData:
    """The planner-relevant values of ``sharder`` (see ``SharderData``)."""
    from recsys_lib.distributed._sharded.module_bases import BaseEmbeddingSharder, BaseQuantEmbeddingSharder

    fused = getattr(sharder, "fused_params", None)
    qcomm_sizes: Dict[str, Tuple[float, float]] = {}
    registry = sharder.qcomm_codecs_registry
    if registry is not None:
        for op in _QCOMM_OPS:
            if op in registry:
                codecs = registry[op]
                qcomm_sizes[op] = (
                    float(torch.empty(0, dtype=codecs.forward.quantized_dtype).element_size()),
                    float(torch.empty(0, dtype=codecs.backward.quantized_dtype).element_size()),
                )
    if isinstance(sharder, BaseQuantEmbeddingSharder):
        usage = StorageUsageType.BASE_QUANT
    elif isinstance(sharder, BaseEmbeddingSharder):
        usage = StorageUsageType.BASE
    else:
        usage = StorageUsageType.DEFAULT
    return SharderData(fused_params=dict(fused) if fused else {}, qcomm_dtype_sizes=qcomm_sizes, storage_usage_type=usage)


def build_sharder_data_map(sharder_map: Dict[str, ModuleSharder[nn.Module]]) -> Dict[str, SharderData]:
    """``{key: build_sharder_data(sharder)}``."""
    return {key: build_sharder_data(sharder) for key, sharder in sharder_map.items()}


def is_prefetch_pipelined(sharding_option: ShardingOption, sharder_data: SharderData) -> bool:
    """Whether the option's cache is filled by a prefetch pipeline: its ``cache_params.prefetch_pipeline``,
    else the sharder's ``fused_params["prefetch_pipeline"]``."""
    cp = sharding_option.cache_params
    if cp is not None and cp.prefetch_pipeline:
        return True
    return bool(sharder_data.fused_params.get("prefetch_pipeline", False))


def extract_comm_data_type_size(
    sharding_option: ShardingOption, sharder_data: SharderData
) -> Tuple[float, float, float, float]:
    """Bytes per element of the output collectives: ``(fwd all-to-all, bwd all-to-all, fwd
    reduce-scatter, bwd reduce-scatter)``; the table's element size unless the sharder quantizes them."""
    elem = float(sharding_option.tensor.element_size())
    q = sharder_data.qcomm_dtype_sizes
    a2a_op = CommOp.POOLED_EMBEDDINGS_ALL_TO_ALL.name if sharding_option.is_pooled else CommOp.SEQUENCE_EMBEDDINGS_ALL_TO_ALL.name
    a2a = q.get(a2a_op, (elem, elem))
    rs = q.get(CommOp.POOLED_EMBEDDINGS_REDUCE_SCATTER.name, (elem, elem)) if sharding_option.is_pooled else (elem, elem)
    return (a2a[0], a2a[1], rs[0], rs[1])


def get_num_poolings(constraints: Optional[Dict[str, ParameterConstraints]], so: ShardingOption) -> List[float]:
    """Poolings per sample of each input of ``so``: the option's own (if one per input), else the
    constraints', else ``NUM_POOLINGS`` per input."""
    if so.num_poolings is not None and len(so.num_poolings) == len(so.input_lengths):
        return so.num_poolings
    pc = constraints.get(so.name) if constraints else None
    if pc is not None and pc.num_poolings:
        return pc.num_poolings
    return [NUM_POOLINGS] * len(so.input_lengths)


def bytes_to_gb(num_bytes: int) -> float:
    return float(num_bytes / (1024 * 1024 * 1024))


def bytes_to_mb(num_bytes: Union[float, int]) -> float:
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
            self.candidate = self.clamp(self.x + self.uniform(-self.d, self.d))
        return self.candidate

    def clamp(self, x: float) -> float:
        """``x`` limited to the current interval ``[A, B]``."""
        return min(self.b, max(self.a, x))

    def shrink_right(self, B: float) -> None:
        """Moves the right end to ``B`` (e.g. after learning that larger values are infeasible)."""
        self.b = float(B)
        self.d = min(self.d, (self.b - self.a) / 2)
        self.x = self.clamp(self.x)
        if self.best_x is not None and self.best_x > self.b:
            self.best_x, self.best_y = None, math.inf

    def uniform(self, A: float, B: float) -> float:
        """A random point in ``[A, B]`` from the search's seeded generator."""
        return A + (B - A) * self.rng.random()

    def best(self) -> Tuple[Optional[float], float]:
        return self.best_x, self.best_y

