"""Quantized comms (FP16 forward, BF16 backward ``QuantizedCommCodecs``) through every output dist:
pooled all-to-all (TW, CW, TWRW across hosts), reduce-scatter (RW, TWRW/GRID inside a host) and the sequence
all-to-all (TW and RW EmbeddingCollection), compared with the unsharded FP32 module.

Tolerance (``_row_split_cases._tolerance``): atol = rtol = 1e-2. FP16 rounds each value to 2^-11 relative
(a reduce-scatter sums up to W rounded partials); BF16 rounds gradients to 2^-8 relative, which after one
SGD step of LR 0.5 moves weights by < 1e-2 for these O(1) values.
"""

import pytest

from recsys_lib.distributed.fbgemm_qcomm_codec import CommType, QCommsConfig, get_qcomm_codecs_registry
from recsys_lib.distributed.types import CommOp
from tests.distributed._row_split_cases import Case, check, register


def test_registry_covers_every_output_dist():
    registry = get_qcomm_codecs_registry(QCommsConfig(forward_precision=CommType.FP16,
                                                      backward_precision=CommType.BF16))
    assert set(registry) == {op.value for op in CommOp}
    assert get_qcomm_codecs_registry(QCommsConfig()) is None


_W2 = ((2, 2),)
_W2L1 = ((2, 1),)
CASES = [
    Case("qcomm_tw_ebc", sharding="table_wise", qcomm=True, worlds=_W2),
    Case("qcomm_cw_ebc", sharding="column_wise", qcomm=True, worlds=_W2),
    Case("qcomm_rw_ebc_mean", sharding="row_wise", pooling="MEAN", qcomm=True, worlds=_W2),
    Case("qcomm_twrw_ebc", sharding="table_row_wise", qcomm=True, worlds=_W2L1),
    Case("qcomm_grid_ebc", sharding="grid_shard", qcomm=True, worlds=_W2),
    Case("qcomm_tw_ec", module="ec", sharding="table_wise", qcomm=True, worlds=_W2),
    Case("qcomm_rw_ec", module="ec", sharding="row_wise", qcomm=True, worlds=_W2),
]
register(*CASES)


@pytest.mark.dist
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_quantized_comms_within_tolerance(case):
    world, local = case.worlds[0]
    check(case, world, local)
