"""Moving table shards and optimizer state from one layout to another with point-to-point sends.

A value (a table's weight or one of its optimizer states) is laid out as *boxes*: ``(offsets, sizes, rank)``,
``rank = -1`` meaning every rank holds it (a data-parallel table, a plain tensor). :func:`plan_moves` (pure)
lists, for every box of the new layout and every old box it overlaps, who sends the overlap to whom; every
rank computes the same list, so sends and receives pair up (each gets its own tag)::

    t0 (10 x 8): old TW on rank 0, new RW over [0, 1]
      rows [0, 5)  0 -> 0 (a local copy)      rows [5, 10)  0 -> 1 (send / receive)

:func:`prepare_comm_ops` turns this rank's part into ``CommP2PMetadata`` (the ``P2POp`` and where a received
piece goes), grouped by ``CommStrategy`` (intra- or inter-node, table or optimizer state);
:func:`transfer_data` starts them; :func:`update_state_dictionaries` waits and writes received pieces (and,
with ``update_local``, this rank's own overlaps) into the new state.
"""

from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from torch.distributed._shard.sharded_tensor import ShardedTensor

from recsys_lib._public import public_at
from recsys_lib.distributed._core.env import ShardingEnv

Box = Tuple[Tuple[int, ...], Tuple[int, ...], int]  # (offsets, sizes, rank; -1: on every rank)
Layout = Tuple[Tuple[int, ...], List[Box]]  # (global size, boxes)


@public_at("recsys_lib.distributed.sharding.dynamic_sharding")
class CommStrategy(Enum):
    """Which transfer a move belongs to: table state or optimizer state, within a node or across nodes."""

    STATE_INTER_NODE_COMM = "state_inter_node_comm"
    STATE_INTRA_NODE_COMM = "state_intra_node_comm"
    OPT_INTER_NODE_COMM = "opt_inter_node_comm"
    OPT_INTRA_NODE_COMM = "opt_intra_node_comm"


@public_at("recsys_lib.distributed.sharding.dynamic_sharding")
@dataclass
class CommP2PMetadata:
    """One send or receive of a reshard.

    Attributes:
        shard_name: the state key the piece belongs to.
        offsets: the piece's global offsets (its sizes are ``comm_op.tensor.shape``).
        comm_op: the ``P2POp`` (``isend`` of the piece, or ``irecv`` into a buffer).
        requires_copy: a receive: copy ``comm_op.tensor`` into the new state once done.
        is_optimizer_state: the piece is optimizer state (else a table weight).
    """

    shard_name: str
    offsets: List[int]
    comm_op: dist.P2POp
    requires_copy: bool
    is_optimizer_state: bool


@dataclass(frozen=True)
class Move:
    """``src`` sends the box ``offsets``/``sizes`` of a value to ``dst`` (``src == dst``: a local copy)."""

    src: int
    dst: int
    offsets: Tuple[int, ...]
    sizes: Tuple[int, ...]


def layout_of(value: Any) -> Layout:
    """The boxes of a state value: a ``ShardedTensor``'s shards (global ranks), or one box everywhere."""
    if isinstance(value, ShardedTensor):
        boxes = [(tuple(md.shard_offsets), tuple(md.shard_sizes), int(md.placement.rank()))
                 for md in value.metadata().shards_metadata]
        return tuple(value.size()), boxes
    size = tuple(value.shape)
    return size, [((0,) * len(size), size, -1)]


def _overlap(a: Box, b: Box) -> Optional[Tuple[Tuple[int, ...], Tuple[int, ...]]]:
    starts = [max(x, y) for x, y in zip(a[0], b[0])]
    ends = [min(x + n, y + m) for x, n, y, m in zip(a[0], a[1], b[0], b[1])]
    if any(e <= s for s, e in zip(starts, ends)) and len(starts) > 0:
        return None
    return tuple(starts), tuple(e - s for s, e in zip(starts, ends))


def plan_moves(old: Layout, new: Layout, world_size: int) -> List[Move]:
    """Every move taking the ``old`` layout to the ``new`` one (pure; the same list on every rank)."""
    if tuple(old[0]) != tuple(new[0]):
        raise ValueError(f"reshard: a value of shape {list(old[0])} cannot become shape {list(new[0])}")
    moves: List[Move] = []
    for nb in new[1]:
        dsts = range(world_size) if nb[2] == -1 else [nb[2]]
        for ob in old[1]:
            region = _overlap(nb, ob)
            if region is None:
                continue
            for dst in dsts:
                src = dst if ob[2] in (-1, dst) else ob[2]
                moves.append(Move(src, dst, region[0], region[1]))
    return moves


def _region(value: Any, offsets: Sequence[int], sizes: Sequence[int]) -> torch.Tensor:
    """This rank's view of the box ``offsets``/``sizes`` of ``value`` (inside one local shard)."""
    if isinstance(value, ShardedTensor):
        for shard in value.local_shards():
            o, n = shard.metadata.shard_offsets, shard.metadata.shard_sizes
            if all(a <= x and x + m <= a + b for a, b, x, m in zip(o, n, offsets, sizes)):
                return shard.tensor[tuple(slice(x - a, x - a + m) for a, x, m in zip(o, offsets, sizes))]
        raise ValueError(f"reshard: no local shard holds offsets {list(offsets)} sizes {list(sizes)}")
    return value[tuple(slice(x, x + m) for x, m in zip(offsets, sizes))]


def flatten_optimizer_state(opt_state: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """``{"<param>/<state>": value}`` from ``{"state": {param: {state: value}}}`` (or the inner dict)."""
    if not opt_state:
        return {}
    inner = opt_state["state"] if "state" in opt_state and isinstance(opt_state["state"], dict) else opt_state
    return {f"{p}/{k}": v for p, states in inner.items() for k, v in states.items() if isinstance(v, (torch.Tensor, ShardedTensor))}


def global_layouts(values: Dict[str, Any], keys: List[str], pg: Optional[dist.ProcessGroup]) -> Dict[str, Layout]:
    """Layouts of ``keys`` known on any rank (one object all-gather): optimizer states live only where a table
    has shards, yet every rank must list the same moves."""
    mine = {k: layout_of(values[k]) for k in keys if k in values}
    if pg is None or not dist.is_initialized():
        return mine
    everyone: List[Any] = [None] * dist.get_world_size(pg)
    dist.all_gather_object(everyone, mine, group=pg)
    out: Dict[str, Layout] = {}
    for layouts in everyone:
        for k, v in layouts.items():
            out.setdefault(k, v)
    return out


def _strategy(src: int, dst: int, local_size: int, optimizer: bool) -> CommStrategy:
    intra = src // local_size == dst // local_size
    if optimizer:
        return CommStrategy.OPT_INTRA_NODE_COMM if intra else CommStrategy.OPT_INTER_NODE_COMM
    return CommStrategy.STATE_INTRA_NODE_COMM if intra else CommStrategy.STATE_INTER_NODE_COMM


def _comm_ops_for(
    old: Dict[str, Any], new: Dict[str, Any], keys: List[str], env: ShardingEnv, optimizer: bool, tag_base: int,
    out: Dict[CommStrategy, List[CommP2PMetadata]],
) -> int:
    """Adds this rank's sends and receives for ``keys`` to ``out``; returns the next free tag."""
    me = dist.get_rank()
    world = dist.get_world_size()
    old_layouts = global_layouts(old, keys, env.process_group)
    new_layouts = global_layouts(new, keys, env.process_group)
    tag = tag_base
    for key in keys:
        if key not in old_layouts or key not in new_layouts:
            continue  # a state that exists only under one of the plans (e.g. ``*_by_column``)
        for m in plan_moves(old_layouts[key], new_layouts[key], world):
            tag += 1
            if m.src == m.dst or me not in (m.src, m.dst):
                continue
            if me == m.src:
                piece = _region(old[key], m.offsets, m.sizes).contiguous()
                op = dist.P2POp(dist.isend, piece, m.dst, tag=tag)
                meta = CommP2PMetadata(key, list(m.offsets), op, False, optimizer)
            else:
                like = new[key]
                dtype = like.dtype if isinstance(like, torch.Tensor) else like.local_shards()[0].tensor.dtype
                buf = torch.empty(list(m.sizes), dtype=dtype)
                op = dist.P2POp(dist.irecv, buf, m.src, tag=tag)
                meta = CommP2PMetadata(key, list(m.offsets), op, True, optimizer)
            out.setdefault(_strategy(m.src, m.dst, env.local_world_size, optimizer), []).append(meta)
    return tag


def prepare_comm_ops(
    module_sharding_plan: Any,
    current_state_dict: Dict[str, ShardedTensor],
    new_state_dict: Dict[str, ShardedTensor],
    changed_sharding_params: Dict[str, Any],
    shard_name: str,
    env: ShardingEnv,
    extend_shard_name: Callable[[str], str] = lambda x: x,
    current_opt_state: Optional[Dict[str, Dict[str, Dict[str, ShardedTensor]]]] = None,
    new_opt_state: Optional[Dict[str, Dict[str, Dict[str, ShardedTensor]]]] = None,
    has_optimizer: bool = False,
) -> Dict[CommStrategy, List[CommP2PMetadata]]:
    """This rank's sends and receives taking table ``shard_name`` (and, with ``has_optimizer``, its optimizer
    states) from the current layout to the new one (collective: one object all-gather per kind of state).

    Args:
        module_sharding_plan: the module's current plan (for reference; layouts come from the state values).
        current_state_dict / new_state_dict: the module's state dicts under the old and the new plan.
        changed_sharding_params: the plan delta (names the tables that move).
        shard_name: the table. env: the module's environment. extend_shard_name: table → state-dict key.
        current_opt_state / new_opt_state: the fused optimizers' state dicts (``{"state": {param: {state: v}}}``).
        has_optimizer: move optimizer states too.
    """
    out: Dict[CommStrategy, List[CommP2PMetadata]] = {}
    key = extend_shard_name(shard_name)
    tag = _comm_ops_for(current_state_dict, new_state_dict, [key], env, False, 0, out)
    if has_optimizer:
        old_flat, new_flat = flatten_optimizer_state(current_opt_state), flatten_optimizer_state(new_opt_state)
        names = sorted({k for k in list(old_flat) + list(new_flat) if k.startswith(key + "/")})
        everyone = [names]
        if env.process_group is not None and dist.is_initialized():
            everyone = [[] for _ in range(dist.get_world_size(env.process_group))]
            dist.all_gather_object(everyone, names, group=env.process_group)
        names = sorted({n for ns in everyone for n in ns})
        _comm_ops_for(old_flat, new_flat, names, env, True, tag, out)
    return out


def transfer_data(
    comms_op: Dict[CommStrategy, List[CommP2PMetadata]]
) -> List[Tuple[dist.Work, CommP2PMetadata]]:
    """Starts every send and receive (non-blocking); ``(work, metadata)`` pairs to wait on."""
    reqs: List[Tuple[dist.Work, CommP2PMetadata]] = []
    for metas in comms_op.values():
        for meta in metas:
            op = meta.comm_op
            work = op.op(op.tensor, op.peer, op.group, op.tag)
            reqs.append((work, meta))
    return reqs


def _write(value: Any, offsets: Sequence[int], piece: torch.Tensor) -> None:
    with torch.no_grad():
        _region(value, offsets, list(piece.shape)).copy_(piece)


def copy_local_overlaps(old: Dict[str, Any], new: Dict[str, Any]) -> None:
    """For every key in both: the parts of ``new``'s local pieces that this rank also holds in ``old``."""
    me = dist.get_rank() if dist.is_initialized() else 0
    for key, value in new.items():
        if key not in old:
            continue
        src_size, src_boxes = layout_of(old[key])
        dst_size, dst_boxes = layout_of(value)
        if tuple(src_size) != tuple(dst_size):
            raise ValueError(f"reshard: {key!r} is {list(src_size)} before and {list(dst_size)} after")
        local_src = [b for b in src_boxes if b[2] in (-1, me)] if isinstance(old[key], ShardedTensor) else src_boxes
        local_src = [b for b in local_src if _held(old[key], b)]
        for nb in dst_boxes:
            if not (nb[2] in (-1, me) and _held(value, nb)):
                continue
            for ob in local_src:
                region = _overlap(nb, ob)
                if region is not None:
                    _write(value, region[0], _region(old[key], region[0], region[1]))


def _held(value: Any, box: Box) -> bool:
    if not isinstance(value, ShardedTensor):
        return True
    return any(tuple(s.metadata.shard_offsets) == tuple(box[0]) for s in value.local_shards())


def update_state_dictionaries(
    reqs: List[Tuple[dist.Work, CommP2PMetadata]],
    old_optimizer_state: Optional[Dict[str, Dict[str, Dict[str, Any]]]],
    new_optimizer_state: Optional[Dict[str, Dict[str, Dict[str, Any]]]],
    old_state: Dict[str, Any],
    new_state: Dict[str, Any],
    changed_sharding_params: Dict[str, Any],
    extend_shard_name: Callable[[str], str] = lambda x: x,
    update_local: bool = False,
) -> None:
    """Waits for ``reqs`` and writes every received piece into ``new_state`` / ``new_optimizer_state`` (in place:
    their tensors are the new module's); with ``update_local``, also copies what this rank already holds."""
    new_opt = flatten_optimizer_state(new_optimizer_state)
    for work, meta in reqs:
        work.wait()
        if meta.requires_copy:
            target = new_opt if meta.is_optimizer_state else new_state
            _write(target[meta.shard_name], meta.offsets, meta.comm_op.tensor)
    if update_local:
        tables = [extend_shard_name(t) for t in changed_sharding_params]
        copy_local_overlaps({k: v for k, v in old_state.items() if k in tables}, {k: v for k, v in new_state.items() if k in tables})
        old_opt = flatten_optimizer_state(old_optimizer_state)
        keep = [k for k in new_opt if any(k.startswith(t + "/") for t in tables)]
        copy_local_overlaps(old_opt, {k: new_opt[k] for k in keep})


def move_sharded_tensors_to_cpu(state_dict: Dict[str, Any]) -> Dict[str, Any]:
    """``state_dict`` (nested dicts / lists / tuples) with every ``ShardedTensor``'s local shards moved to CPU."""
    def move(item: Any) -> Any:
        if isinstance(item, ShardedTensor):
            for shard in item.local_shards():
                if shard.tensor.device.type != "cpu":
                    shard.tensor = shard.tensor.cpu()
            return item
        if isinstance(item, dict):
            return {k: move(v) for k, v in item.items()}
        if isinstance(item, list):
            return [move(v) for v in item]
        if isinstance(item, tuple):
            return tuple(move(v) for v in item)
        return item

    return move(state_dict)
