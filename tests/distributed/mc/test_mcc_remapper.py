"""ShardedMCCRemapper: each table's ids through that rank's MC module, minus the rank's first row (reference: the
same rebuilt modules called directly on each feature's ids)."""

import copy

import pytest
import torch

from recsys_lib.distributed.mc_modules import ShardedMCCRemapper
from recsys_lib.modules.mc_modules import LFU_EvictionPolicy, MCHManagedCollisionModule
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor

CPU = torch.device("cpu")


def _rank_module(name, rows, lo, hi):
    full = MCHManagedCollisionModule(zch_size=rows, device=CPU, eviction_policy=LFU_EvictionPolicy(),
                                     eviction_interval=1, name=name)
    mc = full.rebuild_with_output_id_range((lo, hi), [0, lo, hi, rows] if 0 < lo else [0, hi, rows], CPU)
    mc.train()
    mc.profile({name: JaggedTensor(values=torch.arange(20) * 3, lengths=torch.tensor([20]))})  # fill the table
    mc.eval()
    return mc


def test_remapper_gives_local_rows_per_table():
    mcs = torch.nn.ModuleDict({"t0": _rank_module("t0", 16, 8, 16), "t1": _rank_module("t1", 10, 5, 10)})
    ref = copy.deepcopy(mcs)
    remapper = ShardedMCCRemapper([2, 1], ["a", "b", "c"], mcs, {"t0": [8, 8], "t1": [5, 5]})
    kjt = KeyedJaggedTensor(keys=["a", "b", "c"], values=torch.tensor([3, 9, 100, 6, 0, 57, 33]),
                            lengths=torch.tensor([1, 1, 2, 0, 2, 1]), weights=torch.arange(7).float())
    out = remapper(kjt)
    assert out.keys() == ["a", "b", "c"] and torch.equal(out.lengths(), kjt.lengths())
    assert torch.equal(out.weights(), kjt.weights())
    t0_ids, t1_ids = kjt.values()[:4], kjt.values()[4:]
    want0 = ref["t0"]({"t0": JaggedTensor(values=t0_ids, lengths=torch.tensor([4]))})["t0"].values() - 8
    want1 = ref["t1"]({"t1": JaggedTensor(values=t1_ids, lengths=torch.tensor([3]))})["t1"].values() - 5
    assert torch.equal(out.values(), torch.cat([want0, want1]))
    assert bool(((out.values()[:4] >= 0) & (out.values()[:4] < 8)).all())


def test_remapper_rejects_mismatched_splits():
    mcs = torch.nn.ModuleDict({"t0": _rank_module("t0", 16, 8, 16)})
    with pytest.raises(ValueError, match="feature splits"):
        ShardedMCCRemapper([2, 1], ["a", "b", "c"], mcs, {"t0": [8, 8]})
