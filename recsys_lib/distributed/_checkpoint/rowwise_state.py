"""Plan-independent row-wise optimizer state of tables split by columns (CW, TWCW, GRID).

FBGEMM keeps one row-wise state (e.g. row-wise Adagrad's ``momentum1``) per *column shard*: a table split into
``C`` column blocks has ``C`` values per row, a layout that depends on the plan. In ``state_dict()`` such a state
appears under two keys, both plan-independent:

* ``<table>.momentum1``, shape ``(R,)``: the **column-width-weighted mean** over the column shards::

      value[r] = sum_c  width_c / D * state_c[r]

  which is exactly what the same table holds when it is not split by columns (row-wise Adagrad adds the mean of
  ``g**2`` over a shard's columns; the weighted mean of the shard means is the mean over all ``D`` columns).
* ``<table>.momentum1_by_column``, shape ``(R, D)`` placed like the weight: every column holds the value of the
  column shard it belongs to (the shards' own values, kept exactly).

Loading: a table whose ``_by_column`` values reproduce the loaded ``(R,)`` mean bit for bit (the same plan, or
any plan with the same column blocks) gives every column shard its own value back, exactly; otherwise (the
checkpoint came from a plan without this column split, so its ``_by_column`` key was absent and left as it was)
every column shard takes the ``(R,)`` mean. A checkpoint saved without a column split lacks the ``_by_column``
key: ``checkpoint.load_checkpoint`` skips it, plain ``dcp.load`` needs ``DefaultLoadPlanner(allow_partial_load=True)``.

The ``(R,)`` ``ShardedTensor`` needs shards that do not overlap, while the column shards of a row block all
cover it. :func:`owner_pieces` splits each row interval among the column shards covering it (pure, below);
:class:`ColumnSplitRowwiseState` moves values between the kernels and those pieces with one ``all_reduce``
over the module's process group (so ``state_dict()`` / ``load_state_dict()`` of the fused optimizer are
collective for modules with such tables).

Rank → rows of the ``(R,)`` state, a table of 10 rows split into 2 column shards on ranks 0 and 1::

    rank 0 (columns [0, 4)):  rows [0, 5)
    rank 1 (columns [4, 8)):  rows [5, 10)
"""

from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharded_tensor import Shard, ShardedTensor, ShardedTensorMetadata, TensorProperties

from recsys_lib.optim.keyed import CombinedOptimizer


BY_COLUMN = "_by_column"  # suffix of the (R, D) per-column key


def _props(like: torch.Tensor) -> TensorProperties:
    return TensorProperties(dtype=like.dtype, layout=like.layout, requires_grad=False,
                            memory_format=torch.contiguous_format)


def owner_pieces(shards: List[ShardMetadata]) -> List[Tuple[int, int, int]]:
    """``(shard index, row start, row count)`` pieces covering ``[0, R)`` once (pure).

    Row boundaries of all shards cut ``[0, R)`` into intervals; each interval is split as evenly as possible
    among the shards covering it, in column order (empty pieces are dropped).

    Args:
        shards: the weight's shards, offsets/sizes ``[row, col]``.
    """
    bounds = sorted({b for md in shards for b in (md.shard_offsets[0], md.shard_offsets[0] + md.shard_sizes[0])})
    out: List[Tuple[int, int, int]] = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        cover = sorted(
            (i for i, md in enumerate(shards) if md.shard_offsets[0] <= a and b <= md.shard_offsets[0] + md.shard_sizes[0]),
            key=lambda i: shards[i].shard_offsets[1],
        )
        n = b - a
        start = a
        for k, i in enumerate(cover):
            size = n // len(cover) + (1 if k < n % len(cover) else 0)
            if size:
                out.append((i, start, size))
            start += size
    return out


def split_columns(shards: List[ShardMetadata]) -> bool:
    """Whether the table has more than one column block (its row-wise states are per column shard)."""
    return len({md.shard_offsets[1] for md in shards}) > 1


class _TableStates:
    """One table's column-shard row-wise states on this rank: kernel views and the ``(R,)`` pieces."""

    def __init__(self, weight: ShardedTensor, states: Dict[str, ShardedTensor]) -> None:
        gmd = weight.metadata()
        self.rows, self.dim = int(gmd.size[0]), int(gmd.size[1])
        self.shards = list(gmd.shards_metadata)
        self.local_md = [s.metadata for s in weight.local_shards()]
        # (state key, kernel views (one (nr,) tensor per local shard, in local_md order)).
        self.views: Dict[str, List[torch.Tensor]] = {}
        col_index = {c: i for i, c in enumerate(sorted({md.shard_offsets[1] for md in self.shards}))}
        for key, st in states.items():
            views = []
            for md in self.local_md:
                for s in st.local_shards():
                    if s.metadata.shard_offsets == [md.shard_offsets[0], col_index[md.shard_offsets[1]]]:
                        views.append(s.tensor.view(-1))
                        break
                else:
                    raise ValueError(f"row-wise state {key!r} has no local shard for weight shard {md}")
            self.views[key] = views
        pieces = owner_pieces(self.shards)
        local_offsets = [list(md.shard_offsets) for md in self.local_md]
        self.local_pieces = [(a, n) for i, a, n in pieces if list(self.shards[i].shard_offsets) in local_offsets]
        self.global_pieces = [
            ShardMetadata([a], [n], self.shards[i].placement) for i, a, n in pieces
        ]
        # The (R, D) per-column form: one (nr, width) block per local weight shard, placed like the weight.
        self.blocks: Dict[str, List[torch.Tensor]] = {}
        self.by_column: Dict[str, ShardedTensor] = {}
        for key, views in self.views.items():
            blocks = [torch.zeros(list(md.shard_sizes), dtype=v.dtype, device=v.device) for md, v in zip(self.local_md, views)]
            gmd_cols = ShardedTensorMetadata(self.shards, torch.Size([self.rows, self.dim]), _props(views[0]))
            local = [Shard(tensor=b, metadata=md) for b, md in zip(blocks, self.local_md)]
            self.blocks[key] = blocks
            self.by_column[key] = ShardedTensor._init_from_local_shards_and_global_metadata(
                local, gmd_cols, process_group=weight._process_group)

    def plan_independent(self, key: str, pg: Optional[dist.ProcessGroup]) -> ShardedTensor:
        """A fresh ``(R,)`` ``ShardedTensor`` holding this rank's pieces (values filled by ``gather``)."""
        like = self.views[key][0]
        local = [
            Shard(tensor=torch.zeros(n, dtype=like.dtype, device=like.device), metadata=ShardMetadata([a], [n], self._placement(a)))
            for a, n in self.local_pieces
        ]
        gmd = ShardedTensorMetadata(self.global_pieces, torch.Size([self.rows]), _props(like))
        return ShardedTensor._init_from_local_shards_and_global_metadata(local, gmd, process_group=pg)

    def _placement(self, start: int) -> Any:
        for md in self.global_pieces:
            if md.shard_offsets[0] == start:
                return md.placement
        raise AssertionError(start)


class ColumnSplitRowwiseState:
    """The plan-independent ``(R,)`` form of the fused optimizers' row-wise states of column-split tables.

    The kernels keep their ``(R, C)`` views; :attr:`substitutes` holds, per parameter, the ``(R,)``
    ``ShardedTensor`` s that the module's fused optimizer shows instead. :meth:`gather` fills them from the
    kernels (before ``state_dict()``), :meth:`scatter` writes them back (after ``load_state_dict()``). Both are
    collective over ``pg`` and run on every rank, in the same order, for every sharded module.

    Args:
        kernel_optims: the module's fused kernel optimizers (``EmbeddingFusedOptimizer``).
        pg: the module's process group (``None``: no table of the module is split by columns, nothing to do and
            no collective).
    """

    def __init__(self, kernel_optims: List[Any], pg: Optional[dist.ProcessGroup]) -> None:
        self._pg = pg
        self._tables: Dict[str, _TableStates] = {}
        self._values: Dict[Tuple[str, str], ShardedTensor] = {}
        self.substitutes: Dict[Any, Dict[str, ShardedTensor]] = {}
        self._layout: Optional[List[Tuple[str, str, int]]] = None
        if pg is None:
            return
        for opt in kernel_optims:
            for pkey, param in opt.params.items():
                if not isinstance(param, ShardedTensor) or not split_columns(param.metadata().shards_metadata):
                    continue
                table = pkey[: -len(".weight")]
                rowwise = {k: v for k, v in opt.state[param].items()
                           if isinstance(v, ShardedTensor) and len(v.size()) == 2 and v.size()[1] != param.size()[1]}
                if not rowwise:
                    continue
                ts = _TableStates(param, rowwise)
                self._tables[table] = ts
                for key in rowwise:
                    value = ts.plan_independent(key, pg)
                    self.substitutes.setdefault(param, {})[key] = value
                    self.substitutes[param][key + BY_COLUMN] = ts.by_column[key]
                    self._values[(table, key)] = value

    def _global_layout(self) -> List[Tuple[str, str, int]]:
        """``(table, state key, rows)`` of every rank's column-split row-wise states (one object all-gather, cached)."""
        if self._layout is None:
            assert self._pg is not None
            mine = sorted((t, k, self._tables[t].rows) for t, k in self._values)
            everyone: List[Any] = [None] * dist.get_world_size(self._pg)
            dist.all_gather_object(everyone, mine, group=self._pg)
            self._layout = sorted({item for items in everyone for item in items})
        return self._layout

    def _segments(self) -> Tuple[Dict[Tuple[str, str], int], int]:
        offsets: Dict[Tuple[str, str], int] = {}
        total = 0
        for t, k, rows in self._global_layout():
            offsets[(t, k)] = total
            total += rows
        return offsets, total

    def _buffer(self, total: int) -> torch.Tensor:
        assert self._pg is not None
        on_gloo = dist.get_backend(self._pg) == "gloo"
        device = torch.device("cpu") if on_gloo else torch.device("cuda", torch.cuda.current_device())
        return torch.zeros(total, dtype=torch.float64, device=device)

    def gather(self) -> None:
        """Kernels → ``(R,)`` values: width-weighted sum of the column shards (one ``all_reduce``)."""
        if self._pg is None or not self._global_layout():
            return
        offsets, total = self._segments()
        buf = self._buffer(total)
        for (table, key), _ in self._values.items():
            ts, base = self._tables[table], offsets[(table, key)]
            for md, view, block in zip(ts.local_md, ts.views[key], ts.blocks[key]):
                r0, nr = md.shard_offsets[0], md.shard_sizes[0]
                buf[base + r0: base + r0 + nr] += view.detach().to(buf) * (md.shard_sizes[1] / ts.dim)
                block.copy_(view.detach().unsqueeze(1).expand_as(block))
        dist.all_reduce(buf, group=self._pg)
        for (table, key), value in self._values.items():
            base = offsets[(table, key)]
            for shard in value.local_shards():
                a, n = shard.metadata.shard_offsets[0], shard.metadata.shard_sizes[0]
                shard.tensor.copy_(buf[base + a: base + a + n])

    def scatter(self) -> None:
        """Loaded values → every column shard's kernel state (one ``all_reduce``).

        Per table: the shards' own ``_by_column`` values when they reproduce the loaded ``(R,)`` mean exactly
        (computed as in :meth:`gather`), else the mean (module docstring)."""
        if self._pg is None or not self._global_layout():
            return
        offsets, total = self._segments()
        buf = self._buffer(2 * total)  # [0, total): the loaded means; [total, 2 total): means of the by-column values
        for (table, key), value in self._values.items():
            ts, base = self._tables[table], offsets[(table, key)]
            for shard in value.local_shards():
                a, n = shard.metadata.shard_offsets[0], shard.metadata.shard_sizes[0]
                buf[base + a: base + a + n] = shard.tensor.to(buf)
            for md, block in zip(ts.local_md, ts.blocks[key]):
                r0, nr = md.shard_offsets[0], md.shard_sizes[0]
                buf[total + base + r0: total + base + r0 + nr] += _own(block) * (md.shard_sizes[1] / ts.dim)
        dist.all_reduce(buf, group=self._pg)
        with torch.no_grad():
            for (table, key), _ in self._values.items():
                ts, base = self._tables[table], offsets[(table, key)]
                dtype = ts.views[key][0].dtype
                loaded = buf[base: base + ts.rows]
                exact = torch.equal(loaded.to(dtype), buf[total + base: total + base + ts.rows].to(dtype))
                for md, view, block in zip(ts.local_md, ts.views[key], ts.blocks[key]):
                    r0, nr = md.shard_offsets[0], md.shard_sizes[0]
                    view.copy_(_own(block) if exact else loaded[r0: r0 + nr])


def _own(block: torch.Tensor) -> torch.Tensor:
    """A column shard's own value per row from its ``(nr, width)`` by-column block: the mean over its columns in
    float64 (exact when the columns agree, as :meth:`ColumnSplitRowwiseState.gather` writes them)."""
    return block.to(torch.float64).mean(dim=1)


class RowwiseStateOptimizer(CombinedOptimizer):
    """The fused optimizer of one sharded module: a ``CombinedOptimizer`` of its kernels' optimizers whose
    ``state_dict()`` / ``load_state_dict()`` keep column-split row-wise states plan-independent (collective).

    Args:
        optims: ``(prefix, kernel optimizer)`` pairs.
        row_state: the module's :class:`ColumnSplitRowwiseState`.
    """

    def __init__(self, optims: List[Any], row_state: ColumnSplitRowwiseState) -> None:
        super().__init__(optims)
        self._row_state = row_state

    @property
    def state(self) -> Dict[Any, Any]:  # type: ignore[override]
        subs = self._row_state.substitutes
        return {p: ({**s, **subs[p]} if p in subs else s) for p, s in super().state.items()}

    def pre_state_dict(self) -> None:
        super().pre_state_dict()
        self._row_state.gather()

    def post_load_state_dict(self) -> None:
        super().post_load_state_dict()
        self._row_state.scatter()
