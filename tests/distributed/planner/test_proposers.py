import itertools

from recsys_lib.distributed.planner.enumerators import EmbeddingEnumerator
from recsys_lib.distributed.planner.proposers import (
    DynamicProgrammingProposer,
    GreedyProposer,
    GridSearchProposer,
    UniformProposer,
    proposers_to_proposals_list,
)
from recsys_lib.distributed.planner.types import Topology
from tests.distributed.planner._helpers import EbcTestSharder, make_ebc


def _space(rows=(100, 100_000), dims=(64, 128), world=2, device="cuda"):
    topo = Topology(world_size=world, compute_device=device)
    enum = EmbeddingEnumerator(topo, 16)
    return enum.enumerate(make_ebc(list(rows), list(dims)), [EbcTestSharder()]), enum


def _depth(o):
    return max(s.perf.total for s in o.shards)


def test_greedy_first_proposal_is_every_tables_fastest_option():
    space, _ = _space()
    p = GreedyProposer()
    p.load(space)
    first = p.propose()
    for o in first:
        assert _depth(o) == min(_depth(x) for x in space if x.fqn == o.fqn)
    by_sum = GreedyProposer(use_depth=False)
    by_sum.load(space)
    for o in by_sum.propose():
        assert o.total_perf == min(x.total_perf for x in space if x.fqn == o.fqn)


def test_greedy_advances_the_largest_storage_table_until_something_fits():
    space, _ = _space()
    p = GreedyProposer()
    p.load(space)
    first = p.propose()
    biggest = max(range(2), key=lambda i: max(s.storage.hbm for s in first[i].shards))
    p.feedback(partitionable=False)
    second = p.propose()
    assert second[1 - biggest] is first[1 - biggest]
    assert second[biggest] is not first[biggest] and second[biggest].fqn == first[biggest].fqn
    p.feedback(partitionable=True, plan=second, perf_rating=1.0)
    assert p.propose() is None  # stops at the first proposal that fits (threshold None)


def test_greedy_threshold_keeps_going_until_no_improvement():
    space, _ = _space()
    p = GreedyProposer(threshold=1)
    p.load(space)
    ratings = iter([5.0, 4.0, 6.0, 7.0, 8.0])
    seen = 0
    while p.propose() is not None:
        seen += 1
        p.feedback(partitionable=True, perf_rating=next(ratings))
    assert seen == 4  # improved once, then two ratings without improvement (> threshold 1)


def test_uniform_proposes_one_sharding_type_at_a_time():
    space, _ = _space()
    p = UniformProposer()
    p.load(space)
    seen = []
    while (prop := p.propose()) is not None:
        assert len({o.sharding_type for o in prop}) == 1 and [o.name for o in prop] == ["t0", "t1"]
        seen.append(prop[0].sharding_type)
        p.feedback(partitionable=True)
    assert sorted(seen) == sorted({o.sharding_type for o in space})


def test_grid_search_enumerates_all_combinations_or_skips():
    space, _ = _space()
    p = GridSearchProposer()
    p.load(space)
    props = []
    while (prop := p.propose()) is not None:
        props.append(tuple(o.sharding_type + "/" + o.compute_kernel for o in prop))
        p.feedback(partitionable=True)
    assert len(props) == len(set(props)) > 1
    per_table = [{pr[i] for pr in props} for i in range(2)]
    assert set(props) == set(itertools.product(*per_table))
    tiny = GridSearchProposer(max_proposals=1)
    tiny.load(space)
    assert tiny.propose() is None


def test_dynamic_programming_picks_the_fastest_options_that_fit():
    space, enum = _space()
    p = DynamicProgrammingProposer()
    p.load(space, enum)
    prop = p.propose()
    assert [o.fqn for o in prop] == ["t0", "t1"]
    best_total = min(a.total_perf + b.total_perf for a in space if a.fqn == "t0" for b in space if b.fqn == "t1")
    assert sum(o.total_perf for o in prop) == best_total
    p.feedback(partitionable=True)
    assert p.propose() is None


def test_proposers_to_proposals_list_deduplicates():
    space, _ = _space()
    props = proposers_to_proposals_list([GreedyProposer(), GreedyProposer(), UniformProposer()], space)
    keys = [tuple(id(o) for o in p) for p in props]
    assert len(keys) == len(set(keys)) and len(props) >= 2
