"""The delta tracker's optimizer-state modes (cases in ``_tracker_optim_cases.py``, run in the shared world)."""


def test_optimizer_state_modes_match_the_optimizer_state_dict(world2_results):
    for res in world2_results:
        assert set(res["tracker_optim"]) == {(m, i) for m in ("rowwise_adagrad", "momentum_last") for i in (0, 1)}
        assert all(res["tracker_optim"].values())


def test_raw_id_tracker_records_every_remapped_raw_id_once(world2_results):
    assert all(res["raw_id"] is True for res in world2_results)
