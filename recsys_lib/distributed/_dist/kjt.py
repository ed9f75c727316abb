"""Input distribution of sparse features: ``KJTAllToAll`` (training) and ``KJTOneToAll`` (inference).

``KJTAllToAll(pg, splits)`` sends ``splits[r]`` consecutive keys of every rank's KJT to rank r, in
two phases (both async):

1. splits: each rank tells each destination how many elements of every label (``lengths``,
   ``values``, [``strides``], [``weights``]) it will send, plus its batch size;
2. tensors: one ``all_to_all_single`` per label; the receiver rebuilds a key-major KJT with
   ``KeyedJaggedTensor.dist_init`` and the recat below.

What arrives is rank-major (``[w0: f0 f1 | w1: f0 f1]``); ``kjt_recat`` lists, for each output
(key, rank) segment in key-major order, the input segment it takes::

    F=2 local keys, W=2:  recat = [0, 2, 1, 3]   → [f0 w0 | f0 w1 | f1 w0 | f1 w1]
"""

from typing import List, Optional

import torch
import torch.distributed as dist
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.distributed._collectives.waits import wait_work
from recsys_lib.distributed._core.awaitable import Awaitable, NoWait
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def kjt_recat(local_split: int, num_splits: int, stagger: int = 1) -> List[int]:
    """Segment order turning the received rank-major layout key-major (pure).

    With ``stagger > 1`` (two-level sharding) source ranks are visited in the staggered order
    ``x + (W // stagger) * y`` for ``x < W // stagger``, ``y < stagger``.
    """
    if stagger < 1 or num_splits % stagger != 0:
        raise ValueError(f"kjt_recat: stagger={stagger} must be >= 1 and divide the world size {num_splits}")
    per = num_splits // stagger
    rank_order = [x + per * y for x in range(per) for y in range(stagger)]
    return [f + w * local_split for f in range(local_split) for w in rank_order]


@public_at("recsys_lib.distributed.dist_data")
class KJTAllToAllTensorsAwaitable(Awaitable[KeyedJaggedTensor]):
    """Phase 2: the per-label all-to-alls in flight; ``wait()`` returns this rank's KJT."""

    def __init__(
        self,
        pg: dist.ProcessGroup,
        input: KeyedJaggedTensor,
        splits: List[int],
        input_splits: List[List[int]],
        output_splits: List[List[int]],
        input_tensors: List[torch.Tensor],
        labels: List[str],
        keys: List[str],
        device: torch.device,
        stagger: int,
        stride_per_rank: Optional[List[int]],
    ) -> None:
        super().__init__()
        self._workers = dist.get_world_size(pg)
        self._input = input
        self._keys = keys
        self._labels = labels
        self._stagger = stagger
        self._stride_per_rank = stride_per_rank
        self._variable = input.variable_stride_per_key()
        rank = dist.get_rank(pg)
        local = splits[rank]
        recat = kjt_recat(local, self._workers, stagger)
        self._recat: Optional[torch.Tensor] = torch.tensor(recat, dtype=torch.int64, device=device) if recat else None
        self._outputs: List[torch.Tensor] = []
        self._works: List[dist.Work] = []
        self._pg = pg
        self._input_tensors: List[torch.Tensor] = list(input_tensors)
        for tensor, ins, outs in zip(input_tensors, input_splits, output_splits):
            out = torch.empty(sum(outs), dtype=tensor.dtype, device=tensor.device)
            work = dist.all_to_all_single(out, tensor.contiguous(), outs, ins, group=pg, async_op=True)
            self._outputs.append(out)
            self._works.append(work)

    def clear_inputs(self) -> int:
        """Frees the input KJT's tensors once the exchanges are done (it must not be used afterwards).

        Returns:
            bytes freed (0 in a world of one, where nothing was sent).
        """
        if self._workers == 1:
            return 0
        self._wait_works()
        freed = 0
        for tensor in self._input_tensors:
            freed += tensor.element_size() * tensor.numel()
            tensor.untyped_storage().resize_(0)
        self._input_tensors.clear()
        return freed

    def _wait_works(self) -> None:
        for work, label in zip(self._works, self._labels):
            wait_work(work, f"KJTAllToAll {label} (all_to_all_single)", self._pg)
        self._works = []

    def _wait_impl(self) -> KeyedJaggedTensor:
        self._wait_works()
        return KeyedJaggedTensor.dist_init(
            keys=self._keys,
            tensors=self._outputs,
            variable_stride_per_key=self._variable,
            num_workers=self._workers,
            recat=self._recat,
            stride_per_rank=None if self._variable else self._stride_per_rank,
            stagger=self._stagger,
        )


# Fixed header per destination, so ranks agree on its size whatever their KJT looks like:
# element counts of each possible label (-1: label absent), the sender's batch size, its status.
_HEADER_LABELS = ("lengths", "values", "strides", "weights")
_HEADER = len(_HEADER_LABELS) + 2


@public_at("recsys_lib.distributed.dist_data")
class KJTAllToAllSplitsAwaitable(Awaitable[KJTAllToAllTensorsAwaitable]):
    """Phase 1: the split sizes (and batch sizes) in flight; ``wait()`` checks every rank's header and issues phase 2.

    A rank whose input is invalid still takes part (with an error status), so every rank raises the
    same ``ValueError`` on ``wait()`` instead of its peers hanging in the next collective.
    """

    def __init__(
        self,
        pg: dist.ProcessGroup,
        input: KeyedJaggedTensor,
        splits: List[int],
        labels: List[str],
        tensor_splits: List[List[int]],
        input_tensors: List[torch.Tensor],
        keys: List[str],
        device: torch.device,
        stagger: int,
    ) -> None:
        super().__init__()
        self._start(pg, input, splits, labels, tensor_splits, input_tensors, keys, device, stagger, None)

    @classmethod
    def _failed(
        cls, pg: dist.ProcessGroup, input: KeyedJaggedTensor, splits: List[int], device: torch.device, stagger: int,
        error: str,
    ) -> "KJTAllToAllSplitsAwaitable":
        """Takes part in the split exchange with an error status: every rank raises on ``wait()``."""
        out = cls.__new__(cls)
        Awaitable.__init__(out)
        out._start(pg, input, splits, [], [], [], [], device, stagger, error)
        return out

    def _start(
        self, pg: dist.ProcessGroup, input: KeyedJaggedTensor, splits: List[int], labels: List[str],
        tensor_splits: List[List[int]], input_tensors: List[torch.Tensor], keys: List[str], device: torch.device,
        stagger: int, error: Optional[str],
    ) -> None:
        self._pg = pg
        self._input = input
        self._splits = splits
        self._labels = labels
        self._tensor_splits = tensor_splits
        self._input_tensors = input_tensors
        self._keys = keys
        self._device = device
        self._stagger = stagger
        self._error = error
        world = dist.get_world_size(pg)
        table = []
        for r in range(world):
            row = [-1] * len(_HEADER_LABELS)
            if error is None:
                for i, label in enumerate(labels):
                    row[_HEADER_LABELS.index(label)] = tensor_splits[i][r]
            row += [input.stride() if error is None else 0, 0 if error is None else 1]
            table.append(row)
        send = torch.tensor(table, dtype=torch.int64).view(-1)
        self._recv = torch.empty(world * _HEADER, dtype=torch.int64)
        self._work = dist.all_to_all_single(self._recv, send, [_HEADER] * world, [_HEADER] * world, group=pg,
                                            async_op=True)

    def _wait_impl(self) -> KJTAllToAllTensorsAwaitable:
        wait_work(self._work, "KJTAllToAll splits (all_to_all_single)", self._pg)
        recv = self._recv.view(-1, _HEADER)
        if self._error is not None:
            raise ValueError(self._error)
        bad = [k for k, status in enumerate(recv[:, -1].tolist()) if status != 0]
        if bad:
            raise ValueError(f"KJTAllToAll: rank(s) {bad} passed an invalid KJT (see the error on those ranks)")
        mine = [label in self._labels for label in _HEADER_LABELS]
        for k, row in enumerate(recv.tolist()):
            theirs = [c >= 0 for c in row[: len(_HEADER_LABELS)]]
            if theirs != mine:
                names = lambda mask: [n for n, m in zip(_HEADER_LABELS, mask) if m]  # noqa: E731
                raise ValueError(
                    f"KJTAllToAll: rank {k} sends {names(theirs)} but this rank sends {names(mine)}; every rank's KJT "
                    f"must agree on weights and variable batch per key"
                )
        columns = [_HEADER_LABELS.index(label) for label in self._labels]
        output_splits = [recv[:, c].tolist() for c in columns]
        stride_per_rank: List[int] = recv[:, -2].tolist()
        return KJTAllToAllTensorsAwaitable(
            self._pg, self._input, self._splits, self._tensor_splits, output_splits, self._input_tensors,
            self._labels, self._keys, self._device, self._stagger, stride_per_rank,
        )


@public_at("recsys_lib.distributed.dist_data")
class KJTAllToAll(nn.Module):
    """Redistributes a KJT by keys: ``splits[r]`` consecutive keys go to rank r; batches concatenate.

    Args:
        pg: process group.
        splits: number of keys for each rank (sums to the KJT's key count).
        stagger: source-rank stagger of two-level (TWRW) layouts.

    Example::

        a2a = KJTAllToAll(pg, splits=[2, 1])       # rank 0 gets keys 0-1, rank 1 gets key 2
        local_kjt = a2a(kjt).wait().wait()         # batch = Σ of every rank's batch
    """

    def __init__(self, pg: dist.ProcessGroup, splits: List[int], stagger: int = 1) -> None:
        super().__init__()
        world = dist.get_world_size(pg)
        if len(splits) != world:
            raise ValueError(f"KJTAllToAll: splits {splits} needs one entry per rank ({world})")
        if any(s < 0 for s in splits):
            raise ValueError(f"KJTAllToAll: splits {splits} must be non-negative")
        self._pg = pg
        self._splits = list(splits)
        self._stagger = stagger
        rank = dist.get_rank(pg)
        self._splits_cumsum = [sum(splits[:i]) for i in range(world + 1)]
        self._rank = rank

    def forward(self, input: KeyedJaggedTensor) -> Awaitable[Awaitable[KeyedJaggedTensor]]:
        keys = input.keys()
        error: Optional[str] = None
        if len(keys) != self._splits_cumsum[-1]:
            error = f"KJTAllToAll: input has {len(keys)} keys {keys}, splits {self._splits} expect {self._splits_cumsum[-1]}"
        if len(self._splits) == 1:
            if error is not None:
                raise ValueError(error)
            # World of one: every key stays here and the batch is unchanged; no collective.
            return NoWait(NoWait(input))
        if error is not None:
            # Take part in the split exchange anyway so that every rank fails on wait() instead of hanging.
            return KJTAllToAllSplitsAwaitable._failed(self._pg, input, self._splits, input.device(), self._stagger,
                                                      error)
        with torch.no_grad():
            labels = input.dist_labels()
            tensor_splits = input.dist_splits(self._splits)
            tensors = input.dist_tensors()
        local_keys = keys[self._splits_cumsum[self._rank]:self._splits_cumsum[self._rank + 1]]
        return KJTAllToAllSplitsAwaitable(
            self._pg, input, self._splits, labels, tensor_splits, tensors, local_keys, input.device(), self._stagger
        )


@public_at("recsys_lib.distributed.dist_data")
class KJEAllToAll(KJTAllToAll):
    """``KJTAllToAll`` for writes: a KJT whose weights carry rows (embeddings) to write, sent by keys the same way.

    ``splits[r]`` consecutive keys go to rank r; ``wait()`` gives the splits, the second ``wait()`` the KJT of this
    rank's keys with every rank's batch (the rows to write into its tables).

    Args:
        pg: process group.
        splits: number of keys for each rank.
        stagger: source-rank stagger of two-level layouts.
    """

    def __init__(self, pg: dist.ProcessGroup, splits: List[int], stagger: int = 1) -> None:
        super().__init__(pg, splits, stagger)

    def forward(self, input: KeyedJaggedTensor) -> Awaitable[KJTAllToAllTensorsAwaitable]:  # type: ignore[override]
        """Sends each rank its keys' ids and rows; see the class docstring."""
        return super().forward(input)  # type: ignore[return-value]


@public_at("recsys_lib.distributed.dist_data")
class KJTOneToAll(nn.Module):
    """Inference: splits a KJT by keys into one KJT per device (``splits[i]`` keys to device i)."""

    def __init__(self, splits: List[int], world_size: int, device: Optional[torch.device] = None) -> None:
        super().__init__()
        if len(splits) != world_size:
            raise ValueError(f"KJTOneToAll: splits {splits} needs one entry per device ({world_size})")
        self._splits = list(splits)
        self._world_size = world_size
        self._device_type = "cpu" if device is None else device.type

    def forward(self, kjt: KeyedJaggedTensor) -> "KJTList":  # noqa: F821
        from recsys_lib.distributed.embedding_sharding import KJTList

        parts = kjt.split(self._splits)
        out = []
        for i, part in enumerate(parts):
            dev = torch.device("cpu") if self._device_type == "cpu" else torch.device(self._device_type, i)
            out.append(part.to(dev))
        return KJTList(out)
