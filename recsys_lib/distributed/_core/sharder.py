"""The sharding plug-in contracts: ``ModuleSharder`` (turns a module into a sharded one) and
``ShardedModule`` (the three-stage ``input_dist`` → ``compute`` → ``output_dist`` protocol), plus the
``ShardingPlanner`` ABC and small helpers.

The three stages are separate methods so that a train pipeline can run the input distribution of
batch ``i+1`` while batch ``i`` computes; ``forward`` simply chains them::

    ctx = m.create_context()
    dist_input = m.input_dist(ctx, kjt).wait().wait()   # splits, then tensors
    out = m.compute_and_output_dist(ctx, dist_input)    # LazyAwaitable
"""

import abc
import functools
from typing import Any, Callable, Dict, Generic, Iterator, List, Mapping, Optional, Tuple, Type, TypeVar

import torch
from torch import nn
from torch.distributed._shard.sharded_tensor import ShardedTensor

from recsys_lib._public import public_at
from recsys_lib.distributed._core.awaitable import Awaitable, LazyAwaitable
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.enums import ComputeKernel, ParameterStorage
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._core.plan import (
    EmbeddingModuleShardingPlan,
    ModuleShardingPlan,
    ParameterSharding,
    ShardingPlan,
)
from recsys_lib.types import ModuleNoCopyMixin

M = TypeVar("M", bound=nn.Module)
CompIn = TypeVar("CompIn")
DistOut = TypeVar("DistOut")
Out = TypeVar("Out")
ShrdCtx = TypeVar("ShrdCtx")
_T = TypeVar("_T")


def get_tensor_size_bytes(t: torch.Tensor) -> int:
    """Bytes held by ``t`` on this rank (the local shards for a ``ShardedTensor``)."""
    if isinstance(t, ShardedTensor):
        return sum(get_tensor_size_bytes(s.tensor) for s in t.local_shards())
    return int(t.element_size() * t.numel())


def rank_device(device_type: str, rank: int) -> torch.device:
    """The device rank ``rank`` computes on: ``cpu``, or ``{device_type}:{rank}``."""
    if device_type == "cpu":
        return torch.device("cpu")
    return torch.device(f"{device_type}:{rank}")


def scope(method: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: runs a method inside a profiler range named ``## ClassName method ##``."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with torch.profiler.record_function(f"## {type(self).__name__} {method.__name__} ##"):
            return method(self, *args, **kwargs)

    return wrapper


@public_at("recsys_lib.distributed.types")
class ShardedModule(abc.ABC, nn.Module, Generic[CompIn, DistOut, Out, ShrdCtx], ModuleNoCopyMixin):
    """A module whose state is spread over ranks; forward = ``input_dist`` → ``compute`` → ``output_dist``.

    Subclasses implement ``create_context``, ``input_dist`` (returns an awaitable of an awaitable:
    the first wait finishes the split-size exchange, the second the tensors), ``compute`` (local
    lookups) and ``output_dist`` (returns a ``LazyAwaitable`` of the user-facing result).
    """

    def __init__(self, qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None) -> None:
        super().__init__()
        self._qcomm_codecs_registry = qcomm_codecs_registry

    @property
    def qcomm_codecs_registry(self) -> Optional[Dict[str, QuantizedCommCodecs]]:
        return self._qcomm_codecs_registry

    @abc.abstractmethod
    def create_context(self) -> ShrdCtx:
        """A fresh per-batch context shared by the three stages."""

    @abc.abstractmethod
    def input_dist(self, ctx: ShrdCtx, *input: Any, **kwargs: Any) -> Awaitable[Awaitable[CompIn]]:
        """Starts sending this rank's input to the ranks that own the features."""

    @abc.abstractmethod
    def compute(self, ctx: ShrdCtx, dist_input: CompIn) -> DistOut:
        """Local lookups on the distributed input."""

    @abc.abstractmethod
    def output_dist(self, ctx: ShrdCtx, output: DistOut) -> LazyAwaitable[Out]:
        """Starts sending the local results back to the ranks that own the batch rows."""

    def compute_and_output_dist(self, ctx: ShrdCtx, input: CompIn) -> LazyAwaitable[Out]:
        """``output_dist(compute(input))``; subclasses may fuse the two."""
        return self.output_dist(ctx, self.compute(ctx, input))

    def forward(self, *input: Any, **kwargs: Any) -> LazyAwaitable[Out]:
        ctx = self.create_context()
        dist_input = self.input_dist(ctx, *input, **kwargs).wait().wait()
        return self.compute_and_output_dist(ctx, dist_input)

    def prefetch(
        self, dist_input: Any, forward_stream: Optional[torch.Stream] = None, ctx: Optional[ShrdCtx] = None
    ) -> None:
        """Prefetches rows into a cache ahead of ``compute``; a no-op for kernels without a cache."""

    def update(self, ctx: ShrdCtx, dist_input: CompIn) -> None:
        """Writes the distributed input (ids and rows from ``write_dist``) into this rank's shards.

        Only modules with a writable kernel (key-value tables) support writes; the base class has none.
        """
        raise NotImplementedError(
            f"{type(self).__name__}.update: this module has no write path (it needs a writable compute kernel "
            "and sharding type)"
        )

    def write_dist(self, ctx: ShrdCtx, *input: Any, **kwargs: Any) -> Awaitable[Awaitable[CompIn]]:
        """Starts sending rows to write to the ranks that own them (like ``input_dist``, for ``update``)."""
        raise NotImplementedError(
            f"{type(self).__name__}.write_dist: this module has no write path (it needs a writable compute "
            "kernel and sharding type)"
        )

    def write(self, *input: Any, **kwargs: Any) -> None:
        """``write_dist`` then ``update``: writes rows into the sharded tables."""
        ctx = self.create_context()
        dist_input = self.write_dist(ctx, *input, **kwargs).wait().wait()
        self.update(ctx, dist_input)

    def preprocess_input(
        self, args: List[_T], kwargs: Mapping[str, _T]
    ) -> Tuple[List[_T], Mapping[str, _T]]:
        """Hook run on the forward arguments before the call (e.g. by a train pipeline); identity here."""
        return args, kwargs

    def sharded_parameter_names(self, prefix: str = "") -> Iterator[str]:
        """Names of this module's parameters (as ``named_parameters`` reports them, with ``prefix``)."""
        for name, _ in self.named_parameters(prefix=prefix):
            yield name

    @property
    def unsharded_module_type(self) -> Type[nn.Module]:
        """The type of the module this one replaces (e.g. ``EmbeddingBagCollection``)."""
        raise NotImplementedError(f"{type(self).__name__} does not declare unsharded_module_type")


@public_at("recsys_lib.distributed.types")
class ModuleSharder(abc.ABC, Generic[M]):
    """Knows how to shard modules of one type (``module_type``) according to a plan."""

    def __init__(self, qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None) -> None:
        self._qcomm_codecs_registry = qcomm_codecs_registry

    # a class-level abstract method, as TorchRec declares it (subclasses define an ordinary method)
    @classmethod
    @abc.abstractmethod
    def shard(
        self,
        module: M,
        params: EmbeddingModuleShardingPlan,
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        module_fqn: Optional[str] = None,
    ) -> ShardedModule[Any, Any, Any, Any]:
        """Returns the sharded replacement of ``module`` for plan ``params`` (table name → ParameterSharding)."""

    @property
    @abc.abstractmethod
    def module_type(self) -> Type[M]:
        """The module type this sharder handles."""

    @property
    def qcomm_codecs_registry(self) -> Optional[Dict[str, QuantizedCommCodecs]]:
        return self._qcomm_codecs_registry

    def shardable_parameters(self, module: M) -> Dict[str, nn.Parameter]:
        """Parameters a plan may name (default: all of ``module.named_parameters()``)."""
        return dict(module.named_parameters())

    def sharding_types(self, compute_device_type: str) -> List[str]:
        """Sharding types this sharder supports on ``compute_device_type``."""
        from recsys_lib.distributed.sharding.strategy import sharding_types_where

        return sharding_types_where(lambda s: s.replicated)

    def compute_kernels(self, sharding_type: str, compute_device_type: str) -> List[str]:
        """Compute kernels this sharder supports for ``sharding_type`` on ``compute_device_type``."""
        return [ComputeKernel.DEFAULT.value]

    def storage_usage(self, tensor: torch.Tensor, compute_device_type: str, compute_kernel: str) -> Dict[str, int]:
        """Bytes ``tensor`` occupies per storage kind (``"hbm"`` on accelerators, ``"ddr"`` on cpu)."""
        storage = {"cuda": ParameterStorage.HBM, "mtia": ParameterStorage.HBM, "cpu": ParameterStorage.DDR}
        if compute_device_type not in storage:
            raise ValueError(
                f"storage_usage: unknown compute_device_type {compute_device_type!r}; expected one of {sorted(storage)}"
            )
        return {storage[compute_device_type].value: get_tensor_size_bytes(tensor)}


# (param, local_size, world_size, device_type, sharder) -> ParameterSharding; built by ``sharding_plan`` helpers.
ParameterShardingGenerator = Callable[[nn.Parameter, int, int, str, ModuleSharder[nn.Module]], ParameterSharding]


@public_at("recsys_lib.distributed.types")
class ShardingPlanner(abc.ABC):
    """Produces a ``ShardingPlan`` for a model given the sharders that can shard its modules."""

    @abc.abstractmethod
    def plan(self, module: nn.Module, sharders: List[ModuleSharder[nn.Module]]) -> ShardingPlan:
        """Plans locally (identical inputs on every rank give the identical plan)."""

    @abc.abstractmethod
    def collective_plan(self, module: nn.Module, sharders: List[ModuleSharder[nn.Module]]) -> ShardingPlan:
        """Plans on one rank and broadcasts the plan to every rank."""


__all__ = [
    "ModuleSharder",
    "ModuleShardingPlan",
    "ParameterShardingGenerator",
    "ShardedModule",
    "ShardingPlanner",
    "get_tensor_size_bytes",
    "rank_device",
    "scope",
]
