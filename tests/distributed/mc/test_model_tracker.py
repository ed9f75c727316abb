"""Model delta tracker: the store's compaction (pure) and, on spawned ranks, exactly the rows touched per read."""

import pytest
import torch

from recsys_lib.distributed.model_tracker.delta_store import _compute_unique_rows, DeltaStoreTrec
from recsys_lib.distributed.model_tracker.types import UpdateMode


@pytest.mark.parametrize("mode,want", [(UpdateMode.FIRST, {5: 10.0, 2: 20.0, 9: 40.0}),
                                       (UpdateMode.LAST, {5: 30.0, 2: 20.0, 9: 40.0})])
def test_store_keeps_first_or_last_state(mode, want):
    store = DeltaStoreTrec(mode)
    store.append(1, "t", torch.tensor([5, 2]), torch.tensor([[10.0], [20.0]]))
    store.append(2, "t", torch.tensor([5, 9]), torch.tensor([[30.0], [40.0]]))
    store.compact(1, 3)
    assert len(store.per_fqn_lookups["t"]) == 1
    rows = store.get_unique(from_idx=0)["t"]
    assert dict(zip(rows.ids.tolist(), rows.states.flatten().tolist())) == want


def test_store_delete_and_from_idx():
    store = DeltaStoreTrec(UpdateMode.NONE)
    store.append(1, "t", torch.tensor([3, 3, 1]))
    store.append(2, "t", torch.tensor([4]))
    assert store.get_unique(from_idx=1)["t"].ids.tolist() == [1, 3, 4]
    assert store.get_unique(from_idx=2)["t"].ids.tolist() == [4]
    store.delete(up_to_idx=2)
    assert store.get_unique()["t"].ids.tolist() == [4]


def test_states_without_a_state_mode_are_an_error():
    with pytest.raises(ValueError, match="keeps no states"):
        _compute_unique_rows([torch.tensor([1])], [torch.tensor([[1.0]])], UpdateMode.NONE)


def test_tracker_returns_exactly_the_rows_touched(world2_results):
    assert all(res["tracker"] is True for res in world2_results)
