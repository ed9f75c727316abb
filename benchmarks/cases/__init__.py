"""Benchmark cases: each module exposes ``SIZES`` and ``build(lib, size) -> list[Bench]``."""

from benchmarks.cases import kjt

CASES = {"kjt": kjt}
