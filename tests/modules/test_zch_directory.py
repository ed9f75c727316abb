"""The read-only hash-ZCH fast path (a Bloom filter splitting the batch) equals FBGEMM's kernel on the whole batch."""

import pytest
import torch

from recsys_lib.modules import _zch_probe
from recsys_lib.modules._zch_directory import ReadonlyZchDirectory
from recsys_lib.modules.hash_mc_modules import HashZchManagedCollisionModule
from recsys_lib.sparse.jagged_tensor import JaggedTensor


def _table(rows: int, fill: float, max_probe: int, seed: int) -> tuple:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 2**62, (rows,), generator=g).unique()
    identities = torch.full((rows, 1), -1, dtype=torch.int64)
    _zch_probe.insert(ids[: int(fill * rows)], identities, max_probe)
    known = ids[torch.randint(0, int(fill * rows), (rows,), generator=g)]
    unknown = torch.randint(-(2**63), 2**63 - 1, (rows,), generator=g)
    q = torch.cat([known, unknown, torch.tensor([-1, -1, 0])])
    return identities, q[torch.randperm(q.numel(), generator=g)]


@pytest.mark.parametrize("rows,fill,max_probe,buckets", [(8192, 0.8, 128, 1), (6000, 0.95, 16, 4), (8192, 0.5, 3, 2)])
@pytest.mark.parametrize("disable_fallback", [False, True])
@pytest.mark.parametrize("opt_in", [(-1, -1), (50, 10)])
def test_directory_equals_kernel(rows, fill, max_probe, buckets, disable_fallback, opt_in) -> None:
    identities, q = _table(rows, fill, max_probe, seed=rows)
    # some ids moved out of their probe window (a reshard or an edit): the window check must still apply
    occupied = (identities.view(-1) != -1).nonzero().squeeze(1)[:64]
    identities.view(-1)[occupied.flip(0)] = identities.view(-1)[occupied].clone()
    bucket_rows = rows // buckets
    sizes = torch.full_like(q, bucket_rows)
    offsets = torch.remainder(q, buckets) * bucket_rows
    d = ReadonlyZchDirectory()
    for s, o in [(None, None), (sizes, offsets)]:
        want = _zch_probe.lookup(q, identities, max_probe, s, o, disable_fallback, *opt_in)
        got = d.lookup(q, identities, max_probe, s, o, disable_fallback, *opt_in)
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_directory_sees_table_changes_and_twins() -> None:
    identities, q = _table(8192, 0.7, 32, seed=3)
    d = ReadonlyZchDirectory()
    torch.testing.assert_close(d.lookup(q, identities, 32), _zch_probe.lookup(q, identities, 32))
    # write new ids where absent ones would land, an id twice, then clear rows: every change must be seen
    fresh = q[:500]
    _zch_probe.insert(torch.randint(0, 2**62, (500,)), identities, 32)
    identities.view(-1)[10] = identities.view(-1)[20]
    identities.view(-1)[100:200] = -1
    q2 = torch.cat([q, fresh, identities.view(-1)[:300]])
    torch.testing.assert_close(d.lookup(q2, identities, 32), _zch_probe.lookup(q2, identities, 32))


def test_module_eval_remap_uses_same_rows_as_kernel() -> None:
    mc = HashZchManagedCollisionModule(zch_size=8192, device=torch.device("cpu"), total_num_buckets=2, max_probe=64,
                                       name="t")
    train = torch.randint(0, 2**40, (6000,))
    mc.train()
    mc.remap({"t": JaggedTensor(values=train, lengths=torch.ones(6000, dtype=torch.int32))})
    mc.eval()
    q = torch.cat([train[:3000], torch.randint(0, 2**40, (3000,))])
    got = mc.remap({"t": JaggedTensor(values=q, lengths=torch.ones(6000, dtype=torch.int32))})["t"].values()
    values, sizes, offsets = mc.input_mapper(values=q, output_offset=None)
    want = _zch_probe.lookup(values, mc._hash_zch_identities, 64, sizes, offsets)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
