"""``EmbeddingOffloadScaleupProposer``: grow UVM caches into the HBM a plan leaves free.

Re-exported by ``planner.proposers`` (TorchRec's path). Works on tables whose ``fused_uvm_caching``
option has cache statistics (``cache_params.stats``) and a cache load factor (clf):

1. ``load``: one option per table (its caching option if any, else its best by perf); caching tables
   whose HBM need would shrink as plain ``fused`` tables are promoted to ``fused``.
2. First ``feedback``: the extra HBM budget is ``min(free HBM, HBM if every cache table were fused -
   HBM used)``; a 1-D search (``LuusJaakolaSearch``) over ``[0, budget]`` starts.
3. Each budget is shared by ``allocate_budget``: in rounds, caches grow in proportion to
   ``cacheability x expected lookups`` until full; a cache whose table would outgrow its fused size is
   promoted (clf 1 → ``fused``) and its surplus returned to the pot.

A table's HBM is modelled as affine in its clf (``build_affine_storage_model``: estimates at clf 0.1
and 0.9), ``bytes = a * clf + b``.
"""

from recsys_lib._public import public_at
import copy
import logging
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch

from recsys_lib.distributed.planner.types import Enumerator, Proposer, ShardingOption
from recsys_lib.distributed.planner._hardware import Topology
from recsys_lib.distributed.planner.utils import LuusJaakolaSearch, bytes_to_gb

logger = logging.getLogger(__name__)

_CACHING = "fused_uvm_caching"
_FUSED = "fused"


def _zero_if_none(x: Optional[float]) -> float:
    return 0.0 if x is None else float(x)


def _make_fused(option: ShardingOption) -> None:
    if option.cache_params is not None:
        option.cache_params.load_factor = None
    option.compute_kernel = _FUSED


def _hbm(options: List[ShardingOption]) -> int:
    return sum(o.total_storage.hbm for o in options)


@public_at("recsys_lib.distributed.planner.proposers")
class EmbeddingOffloadScaleupProposer(Proposer):
    """See the module docstring. ``use_depth``: rank a table's options by their slowest shard (else by
    their total perf) when choosing the starting option."""

    def __init__(self, use_depth: bool = True) -> None:
        self.use_depth = use_depth
        self.enumerator: Optional[Enumerator] = None
        self.starting_proposal: List[ShardingOption] = []
        self.proposal: Optional[List[ShardingOption]] = None
        self.search: Optional[LuusJaakolaSearch] = None
        self.best_perf_rating: float = 1e99

    def load(self, search_space: List[ShardingOption], enumerator: Optional[Enumerator] = None) -> None:
        self.enumerator = enumerator
        self.search = None
        self.best_perf_rating = 1e99
        by_table: Dict[str, List[ShardingOption]] = {}
        for o in search_space:
            by_table.setdefault(o.fqn, []).append(o)
        proposal: List[ShardingOption] = []
        for options in by_table.values():
            options.sort(key=lambda o: o.summary().max_shard_perf if self.use_depth else o.total_perf)
            caching = [o for o in options if o.compute_kernel == _CACHING]
            proposal.append(caching[0] if caching else options[0])
        self.starting_proposal = copy.deepcopy(proposal)
        self.promote_high_prefetch_overheaad_table_to_hbm(self.enumerator, self.starting_proposal)
        self.proposal = copy.deepcopy(self.starting_proposal)

    @staticmethod
    def get_hbm_ceiling(starting_proposal: List[ShardingOption], enumerator: Enumerator) -> int:
        """HBM of the proposal if every scalable cache table were a plain ``fused`` table."""
        proposal = copy.deepcopy(starting_proposal)
        tables = EmbeddingOffloadScaleupProposer.get_scalable_sharding_options(proposal)
        for o in tables:
            _make_fused(o)
        enumerator.populate_estimates(tables)
        return _hbm(proposal)

    @staticmethod
    def promote_high_prefetch_overheaad_table_to_hbm(enumerator: Optional[Enumerator], proposal: List[ShardingOption]) -> None:
        """Turns caching tables into ``fused`` ones (in place) where that needs less HBM (their I/O
        buffers outweigh the table itself)."""
        if enumerator is None:
            return
        cached = [o for o in proposal if o.compute_kernel == _CACHING]
        if not cached:
            return
        as_fused = copy.deepcopy(cached)
        for o in as_fused:
            _make_fused(o)
        enumerator.populate_estimates(as_fused)
        promoted = 0
        for fused, original in zip(as_fused, cached):
            if fused.total_storage.hbm < original.total_storage.hbm:
                _make_fused(original)
                promoted += 1
        enumerator.populate_estimates(cached)
        if promoted:
            logger.info("EmbeddingOffloadScaleupProposer: %d caching table(s) need less HBM as fused; promoted", promoted)

    def propose(self) -> Optional[List[ShardingOption]]:
        return self.proposal

    def feedback(
        self,
        partitionable: bool,
        plan: Optional[List[ShardingOption]] = None,
        perf_rating: Optional[float] = None,
        storage_constraint: Optional[Topology] = None,
    ) -> None:
        if self.enumerator is None or plan is None:
            self.proposal = None
            return
        used = _hbm(plan)
        if self.search is None:
            if not partitionable or storage_constraint is None:
                self.proposal = None
                return
            free = EmbeddingOffloadScaleupProposer.get_budget(plan, storage_constraint)
            need = EmbeddingOffloadScaleupProposer.get_hbm_ceiling(plan, self.enumerator) - used
            budget = min(free, need)
            logger.info(
                "EmbeddingOffloadScaleupProposer: plan uses %.2f GB HBM, searching cache growth in [0, %.2f] GB",
                bytes_to_gb(used), bytes_to_gb(max(budget, 0)),
            )
            self.search = LuusJaakolaSearch(0, max(budget, 0), max_iterations=16, left_cost=perf_rating)
        if perf_rating is not None and perf_rating < self.best_perf_rating:
            self.best_perf_rating = perf_rating
        if not partitionable:
            # this much growth did not fit: never try more
            self.search.shrink_right(used - _hbm(self.starting_proposal))
        nxt = self.search.next(perf_rating if perf_rating is not None else 1e99)
        self.proposal = EmbeddingOffloadScaleupProposer.next_plan(
            self.starting_proposal, None if nxt is None else int(nxt), self.enumerator
        )

    @staticmethod
    def get_budget(proposal: List[ShardingOption], storage_constraint: Topology) -> int:
        """HBM left on all devices together after ``proposal``."""
        return sum(d.storage.hbm for d in storage_constraint.devices) - _hbm(proposal)

    @staticmethod
    def get_scalable_sharding_options(proposal: List[ShardingOption]) -> List[ShardingOption]:
        """The caching options with statistics and a positive load factor."""
        get = EmbeddingOffloadScaleupProposer
        return [
            o for o in proposal
            if o.compute_kernel == _CACHING
            and _zero_if_none(get.get_cacheability(o)) * _zero_if_none(get.get_expected_lookups(o))
            * _zero_if_none(o.cache_load_factor) > 0
        ]

    @staticmethod
    def next_plan(
        starting_proposal: List[ShardingOption], budget: Optional[int], enumerator: Optional[Enumerator]
    ) -> Optional[List[ShardingOption]]:
        """The starting proposal with ``budget`` extra HBM shared among its caches (``None``: stop)."""
        if budget is None or enumerator is None:
            return None
        get = EmbeddingOffloadScaleupProposer
        proposal = copy.deepcopy(starting_proposal)
        tables = get.get_scalable_sharding_options(proposal)
        if not tables:
            return None
        model, ceiling = get.build_affine_storage_model(tables, enumerator)
        clfs = torch.tensor([o.cache_load_factor for o in tables])
        priority = torch.tensor(
            [_zero_if_none(get.get_cacheability(o)) * _zero_if_none(get.get_expected_lookups(o)) for o in tables]
        )
        new_clfs = get.allocate_budget(model, ceiling, clfs, budget, priority)
        for o, clf in zip(tables, new_clfs.tolist()):
            if clf > 0.9999:  # a full cache is the whole table: use the fused kernel
                _make_fused(o)
            elif o.cache_params is not None:
                o.cache_params.load_factor = clf
        enumerator.populate_estimates(tables)
        return proposal

    @staticmethod
    def get_cacheability(sharding_option: ShardingOption) -> Optional[float]:
        cp = sharding_option.cache_params
        return None if cp is None or cp.stats is None else cp.stats.cacheability

    @staticmethod
    def get_expected_lookups(sharding_option: ShardingOption) -> Optional[float]:
        cp = sharding_option.cache_params
        return None if cp is None or cp.stats is None else cp.stats.expected_lookups

    @staticmethod
    def build_affine_storage_model(
        uvm_caching_sharding_options: List[ShardingOption], enumerator: Enumerator
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(model, fused)``: ``model[i] = (a, b)`` with table ``i``'s HBM ``= a * clf + b``, and each
        table's HBM as a fused table, both ``(T,)``-shaped per table."""
        plan = copy.deepcopy(uvm_caching_sharding_options)

        def hbm_with(setup: Callable[[ShardingOption], None]) -> torch.Tensor:
            for o in plan:
                setup(o)
            enumerator.populate_estimates(plan)
            return torch.tensor([float(o.total_storage.hbm) for o in plan], dtype=torch.float64)

        def clf_setter(clf: float) -> Callable[[ShardingOption], None]:
            def setup(o: ShardingOption) -> None:
                if o.cache_params is not None:
                    o.cache_params.load_factor = clf

            return setup

        lo, hi = 0.1, 0.9
        at_lo = hbm_with(clf_setter(lo))
        at_hi = hbm_with(clf_setter(hi))
        fused = hbm_with(_make_fused)
        slope = (at_hi - at_lo) / (hi - lo)
        return torch.stack((slope, at_lo - slope * lo), dim=1), fused

    @staticmethod
    def clf_to_bytes(model: torch.Tensor, clfs: Union[float, torch.Tensor]) -> torch.Tensor:
        """HBM bytes of each table at load factor(s) ``clfs`` under the affine ``model``."""
        return (model[:, 0] * clfs + model[:, 1]).to(torch.float64)

    @staticmethod
    def allocate_budget(
        model: torch.Tensor, fused_hbm_ceiling: torch.Tensor, clfs: torch.Tensor, budget: int,
        allocation_priority: torch.Tensor,
    ) -> torch.Tensor:
        """New load factors after sharing ``budget`` bytes (see the module docstring, step 3)."""
        to_bytes = EmbeddingOffloadScaleupProposer.clf_to_bytes
        base = to_bytes(model, 0.0)
        full = to_bytes(model, 1.0) - base
        cache = to_bytes(model, clfs) - base
        left = float(budget)
        for _ in range(128):
            if left <= 1:
                break
            growing = (base + cache) < (base + full)
            if not bool(growing.any()):
                break
            weight = growing.to(torch.float64) * allocation_priority.to(torch.float64)
            if float(weight.sum()) <= 0:
                break
            grown = torch.minimum(cache + left * weight / weight.sum(), full)
            left -= float((grown - cache).sum())
            cache = grown
            over = growing & (base + cache > fused_hbm_ceiling)
            if bool(over.any()):
                left += float(((base + cache) - fused_hbm_ceiling)[over].sum())
                cache = torch.where(over, full, cache)
        return (cache / full).to(clfs.dtype)
