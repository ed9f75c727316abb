"""One spawned gloo world of 2 ranks runs every phase-2 case (MC, pools, delta tracker) once per session: the
process start-up dominates, so the cases share it. Tests read their part of the per-rank results."""

import pytest

from recsys_lib.distributed.test_utils import run_multiprocess


def _all_cases(rank, world):
    from tests.distributed.mc._pool_cases import all_pool_cases
    from tests.distributed.mc._raw_id_cases import raw_id_case
    from tests.distributed.mc._sync_cases import sync_case
    from tests.distributed.mc._tracker_cases import tracker_case
    from tests.distributed.mc._tracker_optim_cases import tracker_optim_case
    from tests.distributed.mc.test_mc_optimizer_reset import optimizer_reset_case
    from tests.distributed.mc.test_mc_sharding import all_mc_cases

    return {"mc": all_mc_cases(rank, world), "pools": all_pool_cases(rank, world),
            "tracker": tracker_case(rank, world), "optim": optimizer_reset_case(rank, world),
            "tracker_optim": tracker_optim_case(rank, world), "raw_id": raw_id_case(rank, world),
            "sync": sync_case(rank, world)}


@pytest.fixture(scope="session")
def world2_results():
    return run_multiprocess(_all_cases, 2)
