"""Row split across ranks, checked against np.array_split of the global row list."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_lib.datasets._row_ranges import batch_row_spans
from recsys_lib.datasets.criteo import BinaryCriteoUtils

split = BinaryCriteoUtils.get_file_row_ranges_and_remainder


def _reference(lengths, rank, world, start, last):
    file_of = np.concatenate([np.full(n, i) for i, n in enumerate(lengths)] + [np.zeros(0, int)])
    local = np.concatenate([np.arange(n) for n in lengths] + [np.zeros(0, int)])
    rows = np.arange(start, last + 1)
    mine = np.array_split(rows, world)[rank]
    out = {}
    for g in mine:
        f, l = int(file_of[g]), int(local[g])
        lo, _ = out.get(f, (l, l))
        out[f] = (lo, l)
    return out, len(rows) % world


def test_hand_computed():
    # 10 rows in files of 3, 3, 4 on 4 ranks: rank rows 0-2, 3-5, 6-7, 8-9
    assert split([3, 3, 4], 0, 4) == ({0: (0, 2)}, 2)
    assert split([3, 3, 4], 2, 4) == ({2: (0, 1)}, 2)
    assert split([3, 3, 4], 0, 2) == ({0: (0, 2), 1: (0, 1)}, 0)
    assert split([3, 3, 4], 1, 2, start_row=4, last_row=8) == ({2: (1, 2)}, 1)  # rows 7, 8


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 9), min_size=1, max_size=5),
    world=st.integers(1, 6),
    data=st.data(),
)
def test_matches_reference_and_partitions(lengths, world, data):
    total = sum(lengths)
    start = data.draw(st.integers(0, total))
    last = data.draw(st.integers(start - 1, total - 1))
    seen = []
    for rank in range(world):
        got = split(lengths, rank, world, start_row=start, last_row=last)
        assert got == _reference(lengths, rank, world, start, last)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        for f, (lo, hi) in sorted(got[0].items()):
            seen.extend(range(offsets[f] + lo, offsets[f] + hi + 1))
    assert seen == list(range(start, last + 1))  # every row exactly once, in order


@pytest.mark.parametrize("kw,match", [
    (dict(rank=2, world_size=2), "rank must be in"),
    (dict(rank=0, world_size=0), "world_size must be positive"),
    (dict(rank=0, world_size=1, last_row=10), "not inside"),
])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        split([3, 3, 4], **kw)


def test_batch_spans_hand_computed():
    # 33 rows, batch 4: 2 ranks → 3 whole rounds, then 9 rows split 5 + 4 (1 leftover row < 2 ranks borrows a round)
    assert [batch_row_spans(33, 4, r, 2, False) for r in range(2)] == [
        [(0, 4), (8, 12), (16, 20), (24, 29)], [(4, 8), (12, 16), (20, 24), (29, 33)]]
    assert [batch_row_spans(33, 4, r, 2, True) for r in range(2)] == [
        [(0, 4), (8, 12), (16, 20), (24, 28)], [(4, 8), (12, 16), (20, 24), (28, 32)]]
    assert [batch_row_spans(33, 5, r, 2, False)[-1] for r in range(2)] == [(30, 32), (32, 33)]
    assert [batch_row_spans(4, 1, r, 5, False) for r in range(5)] == [[]] * 5  # fewer rows than ranks


@settings(derandomize=True, max_examples=200, deadline=None)
@given(total=st.integers(0, 60), batch=st.integers(1, 9), world=st.integers(1, 5), drop=st.booleans())
def test_batch_spans_partition_evenly(total, batch, world, drop):
    spans = [batch_row_spans(total, batch, r, world, drop) for r in range(world)]
    rows = sorted(i for s in spans for lo, hi in s for i in range(lo, hi))
    assert len(rows) == len(set(rows))  # no row twice
    assert len({len(s) for s in spans}) == 1 or total < world  # same step count on every rank
    if drop:
        assert all(hi - lo == batch for s in spans for lo, hi in s)
        assert len(rows) == total // (batch * world) * batch * world
    elif total >= world:
        assert rows == list(range(total))  # every row exactly once
