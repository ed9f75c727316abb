"""Shared pieces of the checkpoint tests: a sparse + dense model under any plan, its optimizers, one
deterministic training step, and unsharded values for comparison."""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from torch import nn
from fbgemm_gpu.split_embedding_configs import EmbOptimType

from recsys_lib.distributed.embedding import EmbeddingCollectionSharder
from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder
from recsys_lib.distributed.model_parallel import DistributedModelParallel
from recsys_lib.distributed.sharding_plan import (
    column_wise,
    construct_module_sharding_plan,
    data_parallel,
    grid_shard,
    row_wise,
    table_row_wise,
    table_wise,
)
from recsys_lib.distributed.types import ShardingEnv, ShardingPlan
from recsys_lib.modules.embedding_configs import PoolingType
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
from recsys_lib.optim.keyed import KeyedOptimizerWrapper
from tests.distributed._sharding_helpers import concat_batches, ebc_tables, ec_tables, global_batch, with_compute_kernel

B = 3
LR = 0.1
DIMS = (8, 16, 8, 16)  # column-wise halves stay multiples of 4 (fused kernels need it)
OPTIMIZERS = {
    "rowwise": EmbOptimType.EXACT_ROWWISE_ADAGRAD,
    "adagrad": EmbOptimType.EXACT_ADAGRAD,
    "sgd": EmbOptimType.EXACT_SGD,
}


class SparseDense(nn.Module):
    """An EBC (or EC) followed by a linear layer; ``loss`` is the mean over the batch (so W ranks on their
    slices and one rank on the whole batch take the same step)."""

    def __init__(self, sequence: bool, device: torch.device) -> None:
        super().__init__()
        self.sequence = sequence
        if sequence:
            self.sparse = EmbeddingCollection(ec_tables(8), device=device)
            self.fc = nn.Linear(8, 1, device=device)
        else:
            tables = ebc_tables(PoolingType.SUM, dims=DIMS)
            self.sparse = EmbeddingBagCollection(tables, device=device)
            self.fc = nn.Linear(sum(t.embedding_dim * len(t.feature_names) for t in tables), 1, device=device)

    def forward(self, kjt: Any) -> torch.Tensor:
        out = self.sparse(kjt)
        if self.sequence:
            values = torch.cat([out[k].values() for k in sorted(out)])
            return self.fc(values).sum() / (kjt.stride())
        return self.fc(out.values()).mean()


GENERATORS = {
    "dp": lambda ws: data_parallel(),
    "tw0": lambda ws: table_wise(0, compute_kernel="fused"),
    "tw1": lambda ws: table_wise(ws - 1, compute_kernel="fused"),
    "rw": lambda ws: row_wise(compute_kernel="fused"),
    "cw": lambda ws: column_wise(ranks=list(range(ws)), compute_kernel="fused"),
    "cw0": lambda ws: column_wise(ranks=[0, 0], compute_kernel="fused"),
    "twrw": lambda ws: with_compute_kernel(table_row_wise(0), "fused"),
    "grid": lambda ws: with_compute_kernel(grid_shard([0]), "fused"),
}


def build(
    plan: Sequence[str], world_size: int, optimizer: str, seed: int, sequence: bool = False,
) -> Tuple[DistributedModelParallel, KeyedOptimizerWrapper]:
    """The model (weights from ``seed``) sharded by ``plan`` (one generator name per table t0..t3) and its dense
    optimizer (Adam over everything outside the fused optimizer, state materialised)."""
    torch.manual_seed(seed)
    model = SparseDense(sequence, torch.device("cpu"))
    fused_params = {"optimizer": OPTIMIZERS[optimizer], "learning_rate": LR, "eps": 1e-8}
    sharder = (EmbeddingCollectionSharder if sequence else EmbeddingBagCollectionSharder)(fused_params=fused_params)
    gens = {f"t{i}": GENERATORS[name](world_size) for i, name in enumerate(plan)}
    mplan = construct_module_sharding_plan(model.sparse, gens, sharder=sharder, world_size=world_size,
                                           local_size=world_size, device_type="cpu")
    dmp = DistributedModelParallel(model, env=ShardingEnv.from_process_group(dist.group.WORLD),
                                   plan=ShardingPlan({"sparse": mplan}), sharders=[sharder], device=torch.device("cpu"))
    fused = set(dmp.fused_optimizer.params)
    dense = {k: p for k, p in dmp.named_parameters() if k not in fused}
    if optimizer == "sgd":
        opt = KeyedOptimizerWrapper(dense, lambda ps: torch.optim.SGD(ps, lr=LR))
    else:
        opt = KeyedOptimizerWrapper(dense, lambda ps: torch.optim.Adam(ps, lr=0.01))
    opt.init_state()
    return dmp, opt


def batch(step: int, rank: int, world_size: int, data_world: int = 2, sequence: bool = False) -> Any:
    """Step ``step``'s batch for ``rank``: ``data_world`` slices of ``B`` samples, split over ``world_size``."""
    tables = ec_tables(8) if sequence else ebc_tables(PoolingType.SUM)
    slices = global_batch(tables, data_world, B, weighted=False, seed=100 + step)
    per = data_world // world_size
    return concat_batches(slices[rank * per:(rank + 1) * per])


def train_step(dmp: DistributedModelParallel, opt: KeyedOptimizerWrapper, step: int, sequence: bool = False) -> None:
    ws, rank = dist.get_world_size(), dist.get_rank()
    opt.zero_grad()
    dmp.fused_optimizer.zero_grad()
    loss = dmp(batch(step, rank, ws, sequence=sequence))
    loss.backward()
    opt.step()
    dmp.fused_optimizer.step()


def state(dmp: DistributedModelParallel, opt: KeyedOptimizerWrapper) -> Dict[str, Any]:
    """What a checkpoint holds: the model, the fused optimizer, the dense optimizer (stateless optimizers (SGD)
    have empty dicts, which DCP does not store: they are left out)."""
    from recsys_lib.distributed._checkpoint.committed import drop_empty

    return drop_empty({"model": dmp.state_dict(), "optim": dmp.fused_optimizer.state_dict(), "dense_optim": opt.state_dict()})


def load(dmp: DistributedModelParallel, opt: KeyedOptimizerWrapper, sd: Dict[str, Any]) -> None:
    dmp.load_state_dict(sd["model"])
    if "optim" in sd:
        dmp.fused_optimizer.load_state_dict(sd["optim"])
    if "dense_optim" in sd:
        opt.load_state_dict(sd["dense_optim"])


def check_model(dmp: DistributedModelParallel, full: Dict[str, torch.Tensor], what: str, **tol: Any) -> None:
    """Every local piece of ``dmp``'s state equals the matching slice of the unsharded ``full`` values."""
    from tests.distributed._sharding_helpers import check_local_shards

    sd = dmp.state_dict()
    assert sorted(sd) == sorted(full), (what, sorted(sd), sorted(full))
    for k, v in sd.items():
        check_local_shards(v, full[k], f"{what}: {k}", **tol)


