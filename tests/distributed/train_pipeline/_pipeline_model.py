"""A small DLRM-like model for the pipeline tests: two EBCs fed from one KJT, an EC, a feature-processed EBC.

Every rank builds the same model from one seed, shards it with a fixed plan (table-, row- and column-wise)
and gets its own batches. ``plain_loop`` is the reference: ``zero_grad; loss.backward(); step`` per batch.
"""

from typing import Dict, List

import torch
from torch import nn

from recsys_lib.datasets.utils import Batch
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

KEYS = ["f0", "f1", "f2", "f3", "f4"]
ROWS = {"f0": 13, "f1": 11, "f2": 9, "f3": 7, "f4": 10}
NUM_DENSE = 3
MAX_LEN = 4


class TinyDLRM(nn.Module):
    def __init__(self, unpipelineable: bool = False) -> None:
        from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig
        from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
        from recsys_lib.modules.feature_processor_ import PositionWeightedModule
        from recsys_lib.modules.fp_embedding_modules import FeatureProcessedEmbeddingBagCollection

        super().__init__()
        bag = lambda name, f, d: EmbeddingBagConfig(num_embeddings=ROWS[f], embedding_dim=d, name=name, feature_names=[f])
        self.ebc_a = EmbeddingBagCollection(tables=[bag("t0", "f0", 4), bag("t1", "f1", 8)])
        self.ebc_b = EmbeddingBagCollection(tables=[bag("t2", "f2", 8)])
        self.ec = EmbeddingCollection(tables=[EmbeddingConfig(num_embeddings=ROWS["f3"], embedding_dim=4, name="e3", feature_names=["f3"])])
        self.fp = FeatureProcessedEmbeddingBagCollection(
            EmbeddingBagCollection(tables=[bag("t4", "f4", 4)], is_weighted=True), {"f4": PositionWeightedModule(MAX_LEN)}
        )
        self.dense = nn.Linear(NUM_DENSE, 4)
        self.over = nn.Linear(4 + 4 + 8 + 8 + 4 + 4, 1)
        self._unpipelineable = unpipelineable

    def forward(self, batch: Batch):
        kjt = batch.sparse_features
        a = self.ebc_a(kjt)
        b = self.ebc_b(kjt.permute([0, 1, 2, 3, 4]) if self._unpipelineable else kjt)
        seq = self.ec(kjt)["f3"]  # JaggedTensor: one (len, 4) block per sample
        pooled_seq = seq.to_padded_dense(desired_length=MAX_LEN).sum(1)
        fp = self.fp(kjt)
        x = torch.cat([torch.relu(self.dense(batch.dense_features)), a.values(), b.values(), fp.values(), pooled_seq], 1)
        logits = self.over(x).squeeze(1)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, batch.labels)
        return loss, logits.detach()


def make_batches(rank: int, n: int, batch: int = 4, seed: int = 0) -> List[Batch]:
    g = torch.Generator().manual_seed(1000 * seed + 17 * rank + 1)
    out = []
    for _ in range(n):
        lengths = torch.randint(0, MAX_LEN + 1, (len(KEYS) * batch,), generator=g)
        values = torch.cat([torch.randint(0, ROWS[k], (int(lengths[i * batch:(i + 1) * batch].sum()),), generator=g)
                            for i, k in enumerate(KEYS)])
        out.append(Batch(
            dense_features=torch.randn(batch, NUM_DENSE, generator=g),
            sparse_features=KeyedJaggedTensor(keys=KEYS, values=values, lengths=lengths),
            labels=torch.randint(0, 2, (batch,), generator=g).float(),
        ))
    return out


def make_dmp(unpipelineable: bool = False, lr: float = 0.1):
    """``(DMP, CombinedOptimizer)``: fused SGD tables (in backward) + Adagrad dense, same init on every rank."""
    from recsys_lib.distributed.embedding import EmbeddingCollectionSharder
    from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from recsys_lib.distributed.fp_embeddingbag import FeatureProcessedEmbeddingBagCollectionSharder
    from recsys_lib.distributed.model_parallel import DistributedModelParallel
    from recsys_lib.distributed.sharding_plan import (
        column_wise, construct_module_sharding_plan, row_wise, table_wise,
    )
    from recsys_lib.distributed.types import ShardingPlan
    from recsys_lib.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
    from recsys_lib.optim.keyed import CombinedOptimizer, KeyedOptimizerWrapper
    from recsys_lib.optim.optimizers import in_backward_optimizer_filter

    torch.manual_seed(0)
    model = TinyDLRM(unpipelineable)
    for m in (model.ebc_a, model.ebc_b, model.ec, model.fp._embedding_bag_collection):
        apply_optimizer_in_backward(torch.optim.SGD, m.parameters(), {"lr": lr})
    kw = dict(world_size=2, device_type="cpu")
    plan = ShardingPlan({
        "ebc_a": construct_module_sharding_plan(model.ebc_a, {"t0": table_wise(rank=1), "t1": row_wise()}, **kw),
        "ebc_b": construct_module_sharding_plan(model.ebc_b, {"t2": column_wise(ranks=[0, 1])}, **kw),
        "ec": construct_module_sharding_plan(model.ec, {"e3": row_wise()}, sharder=EmbeddingCollectionSharder(), **kw),
        "fp": construct_module_sharding_plan(model.fp, {"t4": table_wise(rank=0)},
                                             sharder=FeatureProcessedEmbeddingBagCollectionSharder(), **kw),
    })
    sharders = [EmbeddingBagCollectionSharder(), EmbeddingCollectionSharder(), FeatureProcessedEmbeddingBagCollectionSharder()]
    dmp = DistributedModelParallel(model, device=torch.device("cpu"), plan=plan, sharders=sharders)
    dense = KeyedOptimizerWrapper(dict(in_backward_optimizer_filter(dmp.named_parameters())),
                                  lambda ps: torch.optim.Adagrad(ps, lr=lr))
    return dmp, CombinedOptimizer([dmp.fused_optimizer, dense])


def weights(dmp) -> Dict[str, torch.Tensor]:
    """Every local tensor of the state dict (sharded tensors: this rank's shards), cloned."""
    out = {}
    for key, value in dmp.state_dict().items():
        if hasattr(value, "local_shards"):
            for i, shard in enumerate(value.local_shards()):
                out[f"{key}#{i}"] = shard.tensor.detach().clone()
        else:
            out[key] = value.detach().clone()
    return out


def plain_loop(dmp, optimizer, batches: List[Batch]) -> List[float]:
    losses = []
    for batch in batches:
        optimizer.zero_grad()
        loss, _ = dmp(batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach().clone())
    return losses
