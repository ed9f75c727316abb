import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from recsys_lib.distributed.sharding.strategy import as_sharding_type, registered_sharding_types, strategy_for
from recsys_lib.distributed.types import ShardingType
from tests.distributed.sharding._tiling import coverage

ROOT = Path(__file__).resolve().parents[3]


def test_every_sharding_type_has_a_strategy():
    assert set(registered_sharding_types()) == set(ShardingType)
    for st in ShardingType:
        assert strategy_for(st) is strategy_for(st.value)
        assert strategy_for(st).sharding_type is st


@pytest.mark.parametrize("st", list(ShardingType), ids=lambda s: s.value)
def test_layouts_cover_the_table(st):
    rows, cols, world, local = 11, 256, 4, 2
    sizes, offsets = strategy_for(st).shard_sizes_and_offsets(rows, cols, world, local, col_wise_shard_dim=64)
    grid = coverage(rows, cols, sizes, offsets)
    expected = world if strategy_for(st).replicated else 1
    assert bool((grid == expected).all()), st


def test_sequence_support_and_unknown_types():
    assert {st for st in ShardingType if strategy_for(st).supports_sequence} == {
        ShardingType.DATA_PARALLEL, ShardingType.TABLE_WISE, ShardingType.COLUMN_WISE, ShardingType.ROW_WISE}
    assert {st for st in ShardingType if strategy_for(st).uses_host_groups} == {
        ShardingType.TABLE_ROW_WISE, ShardingType.GRID_SHARD}
    with pytest.raises(ValueError, match="Sharding not supported table_column_wise"):
        strategy_for("table_column_wise").create_sequence()
    with pytest.raises(ValueError, match="unknown sharding type 'diagonal'"):
        as_sharding_type("diagonal")


def test_strategy_classes_resolve_or_say_they_are_missing():
    for st in ShardingType:
        try:
            cls = strategy_for(st).pooled_sharding_class()
        except NotImplementedError as e:
            assert st.value in str(e)
        else:
            assert cls.__name__.endswith("PooledEmbeddingSharding")


def test_importing_the_registry_loads_layouts_only():
    """``strategy.py`` and the strategy folders' ``__init__`` s import the layouts, not the seven strategies'
    pooled / sequence modules. The parent packages' ``__init__`` s import the whole library (as TorchRec's do),
    so the subprocess stands in bare package objects for them and measures the registry's own imports."""
    code = textwrap.dedent(
        f"""
        import sys, types
        for name in ("recsys_lib", "recsys_lib.distributed", "recsys_lib.distributed.planner"):
            pkg = types.ModuleType(name)
            pkg.__path__ = [{str(ROOT)!r} + "/" + name.replace(".", "/")]
            sys.modules[name] = pkg
        from recsys_lib.distributed.sharding.strategy import registered_sharding_types, strategy_for
        assert strategy_for("row_wise").shard_sizes_and_offsets(10, 4, 4, 4)[0] == [[3, 4]] * 3 + [[1, 4]]
        loaded = sorted(m for m in sys.modules if m.startswith("recsys_lib."))
        print("\\n".join(loaded))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, text=True).stdout
    loaded = out.split()
    folders = ["dp", "tw", "cw", "twcw", "rw", "twrw", "grid"]
    for f in folders:
        assert f"recsys_lib.distributed.sharding.{f}_sharding.layout" in loaded, loaded
    heavy = [m for m in loaded if m.rsplit(".", 1)[-1] in ("pooled", "sequence", "cost", "bucketize", "placement")]
    assert not heavy, f"importing the registry pulled in strategy classes: {heavy}"
    # The enum, and ``comm.host_ranks`` (pure rank arithmetic) for the two-level layouts.
    allowed = {"recsys_lib", "recsys_lib.distributed", "recsys_lib.distributed.planner", "recsys_lib.distributed.sharding",
               "recsys_lib.distributed._core", "recsys_lib.distributed._core.enums", "recsys_lib.distributed.comm",
                   "recsys_lib._public"}
    beyond = [m for m in loaded if not m.startswith("recsys_lib.distributed.sharding.") and m not in allowed]
    assert not beyond, f"the registry imports only the enum and the layouts: {beyond}"
