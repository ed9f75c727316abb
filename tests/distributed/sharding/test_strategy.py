import pytest

from recsys_lib.distributed.sharding.strategy import as_sharding_type, registered_sharding_types, strategy_for
from recsys_lib.distributed.types import ShardingType
from tests.distributed.sharding._tiling import coverage


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
