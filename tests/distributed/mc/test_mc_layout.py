"""T0: the pure layout of sharded managed-collision tables (no process group)."""

import pytest
import torch

from recsys_lib.distributed._mc.layout import (
    bucket_owners,
    back_to_sources,
    mc_table_layout,
    per_table_received,
    plan_send,
    raw_id_owner,
    restore_order,
)


def test_owner_is_the_raw_id_block():
    one_bucket_per_rank = torch.arange(2)
    ids = torch.tensor([0, 2**62 - 1, 2**62, 2**63 - 2, -5])
    # block = ceil(H / W) = 2**62; negative ids go to rank 0
    assert raw_id_owner(ids, 2**63 - 1, one_bucket_per_rank).tolist() == [0, 0, 1, 1, 0]
    ids = torch.arange(0, 10)
    assert raw_id_owner(ids, 10, torch.arange(4)).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]


def test_hash_buckets_route_to_the_rank_holding_them():
    # 4 buckets over 2 ranks: buckets 0, 1 -> rank 0; 2, 3 -> rank 1
    owners = bucket_owners("t", 4, 2)
    assert owners == [0, 0, 1, 1]
    ids = torch.tensor([0, 1, 2, 3, 6, 7])  # input_size 0: bucket = id mod 4
    assert raw_id_owner(ids, 0, torch.tensor(owners)).tolist() == [0, 0, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="multiple of the world size"):
        bucket_owners("t", 6, 4)


def test_send_plan_documented_example():
    plan = plan_send(torch.tensor([1, 0, 1]), torch.tensor([0, 0, 1]), 2, 2)
    assert plan.order.tolist() == [1, 0, 2]
    assert plan.counts.tolist() == [[1, 0], [1, 1]]


def test_receive_and_reply_round_trip():
    # two sources, two tables: received layout is (source, table) major
    recv_counts = torch.tensor([[2, 1], [0, 3]])
    received = torch.tensor([10, 11, 20, 21, 22, 23])
    per_table = per_table_received(received, recv_counts)
    assert [t.tolist() for t in per_table] == [[10, 11], [20, 21, 22, 23]]
    assert back_to_sources(per_table, recv_counts).tolist() == received.tolist()
    order = torch.tensor([2, 0, 1])
    assert restore_order(order, torch.tensor([7, 8, 9])).tolist() == [8, 9, 7]


def test_layout_rows_and_segments():
    lay = mc_table_layout("t", 10, [(1, 3, 3), (0, 0, 3), (2, 6, 4)], 2**63 - 1, 3)
    assert lay.row_ranges == ((0, 3), (3, 3), (6, 4))
    assert lay.output_segments == [0, 3, 6, 10]


def test_zch_smaller_than_world_is_a_clear_error():
    with pytest.raises(ValueError, match=r"'t'.*3 rows.*4 ranks.*zch_size must be >= world size"):
        mc_table_layout("t", 3, [(0, 0, 1), (1, 1, 1), (2, 2, 1), (3, 3, 0)], 100, 4)


def test_gaps_and_missing_ranks_are_errors():
    with pytest.raises(ValueError, match="every rank"):
        mc_table_layout("t", 4, [(0, 0, 4)], 100, 2)
    with pytest.raises(ValueError, match="consecutive"):
        mc_table_layout("t", 4, [(0, 0, 1), (1, 2, 2)], 100, 2)
    with pytest.raises(ValueError, match="gives rank 3 no rows"):  # R=6, W=4: blocks of 2 leave rank 3 empty
        mc_table_layout("t", 6, [(0, 0, 2), (1, 2, 2), (2, 4, 2), (3, 6, 0)], 100, 4)
