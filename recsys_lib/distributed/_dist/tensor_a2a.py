"""All-to-alls of plain tensors, split sizes and jagged tensors (used by the sharded object pools).

Row counts travel first when the receiver cannot know them (``TensorAllToAll``: splits, then values); with known
counts one all-to-all moves the rows (``TensorValuesAllToAll``, ``JaggedTensorAllToAll`` moves lengths then values).
Example with ``W = 2``, ``TensorValuesAllToAll``::

    rank 0: input rows [a b c], input_splits [1 2]   →  rank 0 gets [a d]      (output_splits [1 1])
    rank 1: input rows [d e],   input_splits [1 1]   →  rank 1 gets [b c e]    (output_splits [2 1])
"""

from typing import List, Optional, Tuple

import torch
import torch.distributed as dist
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.distributed._core.awaitable import Awaitable
from recsys_lib.distributed.global_settings import process_settings
from recsys_lib.sparse.jagged_tensor import JaggedTensor


def _ints(t: torch.Tensor) -> List[int]:
    return [int(v) for v in t.reshape(-1).tolist()]


def _check_splits(name: str, splits: torch.Tensor, world: int) -> None:
    if splits.numel() != world:
        raise ValueError(f"{name} has {splits.numel()} entries, expected one per rank ({world})")


@public_at("recsys_lib.distributed.dist_data")
class SplitsAllToAllAwaitable(Awaitable[List[List[int]]]):
    """Exchanges split sizes: each input tensor holds one count per rank; ``wait()[i][k]`` is what rank k sent in
    tensor ``i`` to this rank. One all-to-all for all tensors.

    With ``collective_tag`` and collective validation on (``collective_utils.init_collective_validation``), a tag
    travels with the splits and ``wait()`` raises if a peer sent a different tag (ranks issuing mismatched
    collectives).

    Args:
        input_tensors: ``n`` integer tensors of shape ``(W,)``.
        pg: the process group.
        collective_tag: optional integer naming this collective.
        collective_tag_parts: optional description of the tag, for the error message.
    """

    def __init__(
        self,
        input_tensors: List[torch.Tensor],
        pg: dist.ProcessGroup,
        collective_tag: Optional[int] = None,
        collective_tag_parts: Optional[Tuple[object, ...]] = None,
    ) -> None:
        super().__init__()
        self._world = dist.get_world_size(pg)
        for i, t in enumerate(input_tensors):
            _check_splits(f"input_tensors[{i}]", t, self._world)
        self._tag = collective_tag if process_settings().collective_validation else None
        self._tag_parts = collective_tag_parts
        tensors = list(input_tensors)
        if self._tag is not None and tensors:
            tensors.append(torch.full((self._world,), self._tag, dtype=tensors[0].dtype, device=tensors[0].device))
        self._n = len(tensors)
        send = torch.stack(tensors, dim=1).flatten() if tensors else torch.empty(0, dtype=torch.int64)
        self._output = torch.empty_like(send)
        self._work = dist.all_to_all_single(self._output, send, group=pg, async_op=True) if tensors else None

    def _wait_impl(self) -> List[List[int]]:
        if self._work is not None:
            self._work.wait()
        if self._n == 0:
            return []
        rows = [_ints(r) for r in self._output.view(self._world, self._n).T]
        if self._tag is not None:
            tags = rows.pop()
            if any(t != self._tag for t in tags):
                raise RuntimeError(
                    f"All2All collective mismatch on splits all-to-all {self._tag_parts}: expected tag {self._tag}, "
                    f"peers sent {tags}"
                )
        return rows


@public_at("recsys_lib.distributed.dist_data")
class TensorAllToAllValuesAwaitable(Awaitable[torch.Tensor]):
    """Moves ``input_splits[r]`` rows of ``input`` to rank r; receives ``output_splits[k]`` rows from rank k.

    Args:
        pg: the process group.
        input: ``(N,)`` or ``(N, D)``, rows grouped by destination rank.
        input_splits: ``(W,)`` rows to each rank (sums to ``N``).
        output_splits: ``(W,)`` rows from each rank.
        device: device of the result.
    """

    def __init__(
        self,
        pg: dist.ProcessGroup,
        input: torch.Tensor,
        input_splits: torch.Tensor,
        output_splits: torch.Tensor,
        device: torch.device,
    ) -> None:
        super().__init__()
        world = dist.get_world_size(pg)
        self._work: Optional[dist.Work] = None
        if world == 1:
            self._values = input
            return
        _check_splits("input_splits", input_splits, world)
        _check_splits("output_splits", output_splits, world)
        ins, outs = _ints(input_splits), _ints(output_splits)
        if sum(ins) != input.size(0):
            raise ValueError(f"input_splits sum to {sum(ins)} rows, input has {input.size(0)}")
        self._values = torch.empty((sum(outs),) + tuple(input.shape[1:]), dtype=input.dtype, device=device)
        self._work = dist.all_to_all_single(self._values, input, outs, ins, group=pg, async_op=True)

    def _wait_impl(self) -> torch.Tensor:
        if self._work is not None:
            self._work.wait()
        return self._values


@public_at("recsys_lib.distributed.dist_data")
class TensorAllToAllSplitsAwaitable(Awaitable[TensorAllToAllValuesAwaitable]):
    """First step of ``TensorAllToAll``: sends ``splits`` (rows per rank) so receivers can size their buffers."""

    def __init__(self, pg: dist.ProcessGroup, input: torch.Tensor, splits: torch.Tensor, device: torch.device) -> None:
        super().__init__()
        self._pg, self._input, self._splits, self._device = pg, input, splits, device
        world = dist.get_world_size(pg)
        self._work: Optional[dist.Work] = None
        if world == 1:
            self._output_splits = splits
            return
        _check_splits("splits", splits, world)
        self._output_splits = torch.empty(world, dtype=splits.dtype, device=splits.device)
        self._work = dist.all_to_all_single(self._output_splits, splits, group=pg, async_op=True)

    def _wait_impl(self) -> TensorAllToAllValuesAwaitable:
        if self._work is not None:
            self._work.wait()
        return TensorAllToAllValuesAwaitable(self._pg, self._input, self._splits, self._output_splits, self._device)


@public_at("recsys_lib.distributed.dist_data")
class TensorValuesAllToAll(nn.Module):
    """Rows to ranks with split sizes known on both sides (no gradient); see the module docstring's example.

    Args:
        pg: the process group.
    """

    def __init__(self, pg: dist.ProcessGroup) -> None:
        super().__init__()
        self._pg = pg

    def forward(
        self, input: torch.Tensor, input_splits: torch.Tensor, output_splits: torch.Tensor
    ) -> TensorAllToAllValuesAwaitable:
        """``input``: ``(N, ...)`` grouped by destination; returns the awaitable of the received rows."""
        with torch.no_grad():
            return TensorAllToAllValuesAwaitable(self._pg, input, input_splits, output_splits, input.device)


@public_at("recsys_lib.distributed.dist_data")
class TensorAllToAll(nn.Module):
    """Rows to ranks, receivers learning their counts first: ``forward(input, splits).wait().wait()``.

    Args:
        pg: the process group.
    """

    def __init__(self, pg: dist.ProcessGroup) -> None:
        super().__init__()
        self._pg = pg

    def forward(self, input: torch.Tensor, splits: torch.Tensor) -> TensorAllToAllSplitsAwaitable:
        """``input``: ``(N, ...)`` grouped by destination; ``splits``: ``(W,)`` rows to each rank."""
        with torch.no_grad():
            return TensorAllToAllSplitsAwaitable(self._pg, input, splits, input.device)


@public_at("recsys_lib.distributed.dist_data")
class JaggedTensorAllToAll(Awaitable[JaggedTensor]):
    """Sends ``num_items_to_send[r]`` consecutive jagged rows (items) of ``jt`` to rank r.

    Lengths move first (synchronously: they size the values), then values and weights asynchronously.

    Args:
        jt: rows grouped by destination rank.
        num_items_to_send: ``(W,)`` items to each rank (sums to ``len(jt.lengths())``).
        num_items_to_receive: ``(W,)`` items from each rank (known in advance, e.g. from another all-to-all).
        pg: the process group.
    """

    def __init__(
        self,
        jt: JaggedTensor,
        num_items_to_send: torch.Tensor,
        num_items_to_receive: torch.Tensor,
        pg: dist.ProcessGroup,
    ) -> None:
        super().__init__()
        world = dist.get_world_size(pg)
        _check_splits("num_items_to_send", num_items_to_send, world)
        _check_splits("num_items_to_receive", num_items_to_receive, world)
        send_items, recv_items = _ints(num_items_to_send), _ints(num_items_to_receive)
        lengths = jt.lengths()
        self._lengths = torch.empty(sum(recv_items), dtype=lengths.dtype, device=lengths.device)
        dist.all_to_all_single(self._lengths, lengths, recv_items, send_items, group=pg)
        value_ins = [int(s.sum()) for s in torch.split(lengths, send_items)]
        value_outs = [int(s.sum()) for s in torch.split(self._lengths, recv_items)]
        values = jt.values()
        self._values = torch.empty(sum(value_outs), dtype=values.dtype, device=values.device)
        self._works = [dist.all_to_all_single(self._values, values, value_outs, value_ins, group=pg, async_op=True)]
        self._weights: Optional[torch.Tensor] = None
        weights = jt.weights_or_none()
        if weights is not None:
            self._weights = torch.empty(sum(value_outs), dtype=weights.dtype, device=weights.device)
            self._works.append(
                dist.all_to_all_single(self._weights, weights, value_outs, value_ins, group=pg, async_op=True)
            )

    def _wait_impl(self) -> JaggedTensor:
        for work in self._works:
            work.wait()
        return JaggedTensor(values=self._values, lengths=self._lengths, weights=self._weights)
