"""The vectorised TSV parser agrees with the pure-Python reference parser, and defers on anything unusual."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_lib.datasets._criteo_tsv import parse_tsv_bytes, parse_tsv_chunk
from recsys_lib.datasets._tsv_fast import parse_chunk_fast
from tests.datasets.criteo_files import make_rows

plain_dec = st.one_of(st.just(""), st.integers(-(2**31), 2**31 - 1).map(str))
plain_hex = st.one_of(st.just(""), st.integers(0, 2**40).map(lambda v: f"{v:x}"), st.integers(0, 2**32).map(lambda v: f"{v:08X}"))
odd_dec = st.sampled_from([" 3", "+4", "007", "-0", "12 "])
odd_hex = st.sampled_from(["0x1f", " ab", "AbC", "0"])


def _row(dec, hexes):
    return st.tuples(st.lists(dec, min_size=14, max_size=14), st.lists(hexes, min_size=26, max_size=26)).map(
        lambda t: t[0] + t[1]
    )


def _lines(rows, end="\n"):
    return ["\t".join(r) + end for r in rows]


def _check_same(lines):
    ref = parse_tsv_chunk(lines, "f", 1)
    got = parse_tsv_bytes([l.encode() for l in lines], "f", 1)
    for a, b in zip(got, ref):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


@settings(derandomize=True, max_examples=40, deadline=None)
@given(st.lists(_row(plain_dec, plain_hex), min_size=1, max_size=20))
def test_plain_rows_take_the_fast_path_and_agree(rows):
    rows = [["1" if r[0] else ""] + r[1:] for r in rows]  # labels: 1 or missing
    lines = _lines(rows)
    assert parse_chunk_fast("".join(lines).encode(), 40, 14) is not None
    _check_same(lines)


@settings(derandomize=True, max_examples=25, deadline=None)
@given(st.lists(_row(st.one_of(plain_dec, odd_dec), st.one_of(plain_hex, odd_hex)), min_size=1, max_size=10),
       st.sampled_from(["\n", "\r\n"]))
def test_odd_but_valid_rows_agree(rows, end):
    rows = [["1"] + r[1:] for r in rows]
    _check_same(_lines(rows, end))


def test_fast_parser_defers():
    good = _lines(make_rows(3, seed=1))
    assert parse_chunk_fast("".join(good).encode(), 40, 14) is not None
    assert parse_chunk_fast("".join(good).encode()[:-1], 40, 14) is None  # no final newline
    assert parse_chunk_fast("".join(good[:2] + [good[2].replace("\t", "", 1)]).encode(), 40, 14) is None
    assert parse_chunk_fast("".join(good).replace("\n", "\r\n").encode(), 40, 14) is None
    assert parse_chunk_fast(("-\t" * 39 + "-\n").encode(), 40, 14) is None
    assert parse_chunk_fast(("1\t" * 39 + "g\n").encode(), 40, 14) is None


def test_last_line_without_newline_and_kaggle_test_rows():
    rows = make_rows(4, seed=2, with_label=False)
    lines = _lines(rows)
    lines[-1] = lines[-1].rstrip("\n")
    d, s, l = parse_tsv_bytes([x.encode() for x in lines], "test.txt", 1, has_label=False)
    rd, rs, rl = parse_tsv_chunk(lines, "test.txt", 1, has_label=False)
    np.testing.assert_array_equal(d, rd)
    np.testing.assert_array_equal(s, rs)
    assert (l == -1).all() and l.shape == (4, 1)
