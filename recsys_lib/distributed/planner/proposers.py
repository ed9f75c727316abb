"""Proposers: choose one sharding option per table; the planner partitions and rates each proposal
and feeds the result back.

* ``GreedyProposer``: each table's options sorted by perf (``use_depth``: the slowest shard, else the
  sum over shards); the first proposal takes every table's best option. While proposals do not fit,
  each feedback moves the table whose option uses the most storage to its next option (skipping
  proposals whose total storage exceeds what all devices hold together). After the
  first proposal that fits it stops, or goes on until ``threshold`` proposals in a row did not improve
  the rating.
* ``UniformProposer``: one proposal per sharding type, every table on its best option of that type.
* ``GridSearchProposer``: all combinations of each table's best option per sharding type (options
  that another option beats on both perf and storage dropped first), if there are at most
  ``max_proposals``.
* ``DynamicProgrammingProposer``: lowest total perf subject to total storage fitting, by a knapsack
  over ``hbm_bins_per_device x W`` storage bins.
"""

import itertools
import logging
from typing import Dict, Iterator, List, Optional, Tuple

from recsys_lib.distributed.planner._hardware import Topology
from recsys_lib.distributed.planner.types import Enumerator, Proposer, ShardingOption
from recsys_lib.distributed.planner._offload_scaleup import EmbeddingOffloadScaleupProposer  # noqa: F401
from recsys_lib.distributed.planner.types import Enumerator, Proposer, ShardingOption
from recsys_lib.distributed.planner._hardware import Topology
from recsys_lib.distributed.planner._hardware import Perf  # noqa: F401
from recsys_lib.distributed.planner.utils import LuusJaakolaSearch, bytes_to_gb, prod  # noqa: F401,E402

logger = logging.getLogger(__name__)


MAX_PROPOSALS: int = 10000  # GridSearchProposer's default cap


def _by_table(search_space: List[ShardingOption]) -> Dict[str, List[ShardingOption]]:
    out: Dict[str, List[ShardingOption]] = {}
    for o in search_space:
        out.setdefault(o.fqn, []).append(o)
    return out


def _perf_score(option: ShardingOption, use_depth: bool) -> float:
    sm = option.summary()
    return sm.max_shard_perf if use_depth else sm.total_perf


def _storage_key(option: ShardingOption) -> Tuple[int, int, int, int]:
    """(max shard HBM, total HBM, max shard DDR, total DDR): what the greedy proposer shrinks first."""
    sm = option.summary()
    return sm.max_shard_hbm, sm.hbm, sm.max_shard_ddr, sm.ddr


def _sorted_options(options: List[ShardingOption], use_depth: bool) -> List[ShardingOption]:
    keyed = [(_perf_score(o, use_depth), sum(_storage_key(o)), i, o) for i, o in enumerate(options)]
    keyed.sort(key=lambda t: (t[0], t[1], t[2]))
    return [t[3] for t in keyed]


def _best_per_sharding_type(options: List[ShardingOption], use_depth: bool) -> Dict[str, ShardingOption]:
    best: Dict[str, ShardingOption] = {}
    for o in _sorted_options(options, use_depth):
        best.setdefault(o.sharding_type, o)
    return best


class GreedyProposer(Proposer):
    """See the module docstring."""

    def __init__(self, use_depth: bool = True, threshold: Optional[int] = None) -> None:
        self._use_depth = use_depth
        self._threshold = threshold
        self._options: Dict[str, List[ShardingOption]] = {}
        self._index: Dict[str, int] = {}
        self._done = True
        self._best_rating: Optional[float] = None
        self._no_improvement = 0
        self._fitted = False

    def load(self, search_space: List[ShardingOption], enumerator: Optional[Enumerator] = None) -> None:
        self._options = {fqn: _sorted_options(opts, self._use_depth) for fqn, opts in _by_table(search_space).items()}
        self._index = {fqn: 0 for fqn in self._options}
        self._done = not self._options
        self._best_rating = None
        self._no_improvement = 0
        self._fitted = False

    def propose(self) -> Optional[List[ShardingOption]]:
        if self._done:
            return None
        return [opts[self._index[fqn]] for fqn, opts in self._options.items()]

    def feedback(
        self,
        partitionable: bool,
        plan: Optional[List[ShardingOption]] = None,
        perf_rating: Optional[float] = None,
        storage_constraint: Optional[Topology] = None,
    ) -> None:
        if partitionable:
            self._fitted = True
            if perf_rating is not None and (self._best_rating is None or perf_rating < self._best_rating):
                self._best_rating = perf_rating
                self._no_improvement = 0
            else:
                self._no_improvement += 1
        elif self._fitted:
            self._no_improvement += 1
        if self._fitted and (self._threshold is None or self._no_improvement > self._threshold):
            self._done = True
            return
        if not self._advance():
            self._done = True
            return
        if storage_constraint is not None and not partitionable:
            # skip proposals that cannot fit whatever the placement (more bytes than all devices hold)
            cap_hbm = sum(d.storage.hbm for d in storage_constraint.devices)
            cap_ddr = sum(d.storage.ddr for d in storage_constraint.devices)
            while True:
                hbm = ddr = 0
                for fqn, opts in self._options.items():
                    st = opts[self._index[fqn]].total_storage
                    hbm += st.hbm
                    ddr += st.ddr
                if (hbm <= cap_hbm and ddr <= cap_ddr) or not self._advance():
                    return

    def _advance(self) -> bool:
        """Moves the table whose option uses the most storage to its next option; False if none can move."""
        movable = [f for f, i in self._index.items() if i + 1 < len(self._options[f])]
        if not movable:
            return False
        fqn = max(movable, key=lambda f: _storage_key(self._options[f][self._index[f]]))
        self._index[fqn] += 1
        return True


class UniformProposer(Proposer):
    """See the module docstring."""

    def __init__(self, use_depth: bool = True) -> None:
        self._use_depth = use_depth
        self._proposals: List[List[ShardingOption]] = []
        self._next = 0

    def load(self, search_space: List[ShardingOption], enumerator: Optional[Enumerator] = None) -> None:
        tables = _by_table(search_space)
        best = {fqn: _best_per_sharding_type(opts, self._use_depth) for fqn, opts in tables.items()}
        types: List[str] = []
        for o in search_space:
            if o.sharding_type not in types:
                types.append(o.sharding_type)
        self._proposals = [
            [best[fqn][st] for fqn in tables] for st in types if all(st in best[fqn] for fqn in tables)
        ]
        self._next = 0

    def propose(self) -> Optional[List[ShardingOption]]:
        if self._next >= len(self._proposals):
            return None
        return self._proposals[self._next]

    def feedback(
        self,
        partitionable: bool,
        plan: Optional[List[ShardingOption]] = None,
        perf_rating: Optional[float] = None,
        storage_constraint: Optional[Topology] = None,
    ) -> None:
        self._next += 1


def _pareto(options: List[ShardingOption], use_depth: bool) -> List[ShardingOption]:
    """Drops options beaten by another on both perf and total storage (and exact duplicates)."""
    scored = sorted(
        ((_perf_score(o, use_depth), sum(_storage_key(o)[1::2]), o) for o in options), key=lambda t: (t[0], t[1])
    )
    kept: List[ShardingOption] = []
    best_storage: Optional[int] = None
    for perf, storage, o in scored:
        if best_storage is None or storage < best_storage:
            kept.append(o)
            best_storage = storage
    return kept


class GridSearchProposer(Proposer):
    """See the module docstring."""

    def __init__(self, max_proposals: int = MAX_PROPOSALS) -> None:
        self._max_proposals = max_proposals
        self._iter: Optional[Iterator[Tuple[ShardingOption, ...]]] = None
        self._current: Optional[List[ShardingOption]] = None

    def load(self, search_space: List[ShardingOption], enumerator: Optional[Enumerator] = None) -> None:
        tables = _by_table(search_space)
        choices = [_pareto(list(_best_per_sharding_type(opts, True).values()), True) for opts in tables.values()]
        total = 1
        for c in choices:
            total *= len(c)
            if total > self._max_proposals:
                break
        if total > self._max_proposals or not choices:
            if choices:
                logger.info("GridSearchProposer: more than %d combinations, skipped", self._max_proposals)
            self._iter = None
            self._current = None
            return
        self._iter = itertools.product(*choices)
        self._advance()

    def _advance(self) -> None:
        nxt = next(self._iter, None) if self._iter is not None else None
        self._current = None if nxt is None else list(nxt)

    def propose(self) -> Optional[List[ShardingOption]]:
        return self._current

    def feedback(
        self,
        partitionable: bool,
        plan: Optional[List[ShardingOption]] = None,
        perf_rating: Optional[float] = None,
        storage_constraint: Optional[Topology] = None,
    ) -> None:
        self._advance()


class DynamicProgrammingProposer(Proposer):
    """See the module docstring. Storage is the accelerator's (HBM), or DDR on a cpu topology."""

    def __init__(self, hbm_bins_per_device: int = 100) -> None:
        self._bins_per_device = hbm_bins_per_device
        self._tables: Dict[str, List[ShardingOption]] = {}
        self._proposal: Optional[List[ShardingOption]] = None
        self._proposed = False

    def load(self, search_space: List[ShardingOption], enumerator: Optional[Enumerator] = None) -> None:
        self._tables = {f: _pareto(opts, False) for f, opts in _by_table(search_space).items()}
        self._proposal = None
        self._proposed = False
        topology = getattr(enumerator, "_topology", None)
        if topology is not None:
            self._solve(topology)

    def propose(self) -> Optional[List[ShardingOption]]:
        return None if self._proposed else self._proposal

    def feedback(
        self,
        partitionable: bool,
        plan: Optional[List[ShardingOption]] = None,
        perf_rating: Optional[float] = None,
        storage_constraint: Optional[Topology] = None,
    ) -> None:
        self._proposed = True

    def _solve(self, topology: Topology) -> None:
        kind = "ddr" if topology.compute_device == "cpu" else "hbm"
        capacity = sum(getattr(d.storage, kind) for d in topology.devices)
        bins = max(1, self._bins_per_device * topology.world_size)
        unit = max(1, capacity // bins)
        inf = float("inf")
        # cost[b] = lowest total perf of the tables so far using b storage bins
        cost = [0.0] + [inf] * bins
        choice: List[List[Tuple[int, int]]] = []
        for opts in self._tables.values():
            new = [inf] * (bins + 1)
            back: List[Tuple[int, int]] = [(-1, -1)] * (bins + 1)
            for k, o in enumerate(opts):
                w = -(-getattr(o.total_storage, kind) // unit)
                p = o.total_perf
                for b in range(bins - w, -1, -1):
                    if cost[b] + p < new[b + w]:
                        new[b + w] = cost[b] + p
                        back[b + w] = (k, b)
            cost = new
            choice.append(back)
        end = min(range(bins + 1), key=lambda b: cost[b])
        if cost[end] == inf:
            return
        picks: List[ShardingOption] = []
        b = end
        for opts, back in zip(reversed(list(self._tables.values())), reversed(choice)):
            k, b = back[b]
            picks.append(opts[k])
        self._proposal = list(reversed(picks))


def proposers_to_proposals_list(
    proposers_list: List[Proposer], search_space: List[ShardingOption]
) -> List[List[ShardingOption]]:
    """Every proposal the proposers make on ``search_space`` (each fed back as partitionable)."""
    out: List[List[ShardingOption]] = []
    seen = set()
    for proposer in proposers_list:
        proposer.load(search_space)
        proposal = proposer.propose()
        while proposal is not None:
            key = tuple(id(o) for o in proposal)
            if key not in seen:
                seen.add(key)
                out.append(proposal)
            proposer.feedback(partitionable=True)
            proposal = proposer.propose()
    return out
