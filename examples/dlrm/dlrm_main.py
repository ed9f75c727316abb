"""Train DLRM (TorchRec's torchrec_dlrm flow) with TrainPipelineSparseDist: random, Criteo or multi-hot data.

    python examples/dlrm/dlrm_main.py --limit_train_batches 50                         # 1 process, random data
    torchrun --nproc_per_node=2 examples/dlrm/dlrm_main.py --limit_train_batches 200   # 2 processes (gloo, CPU)
    torchrun --nproc_per_node=2 examples/dlrm/dlrm_main.py \\
        --in_memory_binary_criteo_path /data/criteo_npy --num_embeddings_per_feature 40000000,39060,...

The flags are facebookresearch/dlrm's ``torchrec_dlrm/dlrm_main.py`` flags. Flow: the tables are declared on
``meta``; their optimizer (RowWiseAdagrad with ``--adagrad``, else SGD) is fused into backward; the planner
picks a plan (``--print_sharding_plan``); ``DistributedModelParallel`` shards; ``TrainPipelineSparseDist``
overlaps each batch's sparse input dist with the previous batch's compute. Validation (``--validation_freq_
within_epoch`` and after each epoch) and test AUC come from ``recsys_lib.metrics.AUCMetric`` over all
ranks, with torchmetrics' AUROC on the gathered predictions as a cross-check. ``--checkpoint_dir`` with
``--checkpoint_every_n_steps`` writes atomic checkpoints; rerunning with the same ``--checkpoint_dir``
resumes from the latest one.

Without a data path, batches are random Criteo-shaped data (13 dense, 26 sparse features): the loss falls
as the model memorises the 10 cycled training batches, while validation AUC stays near 0.5 (labels are
random): a plumbing check, not a quality metric.
"""

import argparse
import itertools
import os
import sys
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
import torch.distributed as dist
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from dlrm_args import parse_args  # noqa: E402
from dlrm_data import get_dataloader  # noqa: E402
from train import describe_plan, init_process_group  # noqa: E402

from recsys_lib import EmbeddingBagCollection, EmbeddingBagConfig  # noqa: E402
from recsys_lib.datasets.criteo import DEFAULT_CAT_NAMES, DEFAULT_INT_NAMES  # noqa: E402
from recsys_lib.distributed.comm import get_local_size  # noqa: E402
from recsys_lib.distributed.model_parallel import DistributedModelParallel, get_default_sharders  # noqa: E402
from recsys_lib.distributed.planner import EmbeddingShardingPlanner, Topology  # noqa: E402
from recsys_lib.distributed.train_pipeline import EvalPipelineSparseDist, TrainPipelineSparseDist  # noqa: E402
from recsys_lib.metrics.auc import AUCMetric  # noqa: E402
from recsys_lib.metrics.metrics_config import RecTaskInfo  # noqa: E402
from recsys_lib.models.dlrm import DLRM, DLRM_DCN, DLRM_Projection, DLRMTrain  # noqa: E402
from recsys_lib.optim.apply_optimizer_in_backward import apply_optimizer_in_backward  # noqa: E402
from recsys_lib.optim.keyed import CombinedOptimizer, KeyedOptimizerWrapper  # noqa: E402
from recsys_lib.optim.optimizers import in_backward_optimizer_filter  # noqa: E402
from recsys_lib.optim.rowwise_adagrad import RowWiseAdagrad  # noqa: E402


class LRPolicyScheduler:
    """torchrec_dlrm's schedule: linear warmup over ``warmup_steps``, constant, then a quadratic decay to 0
    over ``decay_steps`` starting at ``decay_start`` (each 0 = off)."""

    def __init__(self, optimizer: Any, warmup_steps: int, decay_start: int, decay_steps: int) -> None:
        self.optimizer = optimizer
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.warmup_steps, self.decay_start, self.decay_steps = warmup_steps, decay_start, decay_steps
        if decay_steps > 0 and decay_start < warmup_steps:
            raise ValueError(f"--lr_decay_start ({decay_start}) must be >= --lr_warmup_steps ({warmup_steps})")
        self.step_count = 0

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return 1.0 - (self.warmup_steps - step) / self.warmup_steps * 0.99  # from 1% of the rate
        if self.decay_steps > 0 and self.decay_start <= step:
            return max(0.0, 1.0 - (step - self.decay_start) / self.decay_steps) ** 2
        return 1.0

    def step(self) -> None:
        self.step_count += 1
        self.set_step(self.step_count)

    def set_step(self, step: int) -> None:
        self.step_count = step
        for group, lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = lr * self.factor(step)


def build_model(args: argparse.Namespace, world_size: int) -> Tuple[DistributedModelParallel, CombinedOptimizer, Any]:
    """DLRM (original / DCN / projection interaction) with 26 tables on meta, sharded by the planner."""
    sizes = args.num_embeddings_per_feature or [args.num_embeddings] * len(DEFAULT_CAT_NAMES)
    tables = [
        EmbeddingBagConfig(name=f"t_{name}", embedding_dim=args.embedding_dim, num_embeddings=rows, feature_names=[name])
        for name, rows in zip(DEFAULT_CAT_NAMES, sizes)
    ]
    ebc = EmbeddingBagCollection(tables=tables, device=torch.device("meta"))
    common = dict(embedding_bag_collection=ebc, dense_in_features=len(DEFAULT_INT_NAMES),
                  dense_arch_layer_sizes=args.dense_arch_layer_sizes, over_arch_layer_sizes=args.over_arch_layer_sizes)
    if args.interaction_type == "dcn":
        dlrm = DLRM_DCN(**common, dcn_num_layers=args.dcn_num_layers, dcn_low_rank_dim=args.dcn_low_rank_dim)
    elif args.interaction_type == "projection":
        dlrm = DLRM_Projection(**common, interaction_branch1_layer_sizes=args.interaction_branch1_layer_sizes,
                               interaction_branch2_layer_sizes=args.interaction_branch2_layer_sizes)
    else:
        dlrm = DLRM(**common)
    train_model = DLRMTrain(dlrm)
    sparse_opt = (RowWiseAdagrad, {"lr": args.learning_rate, "eps": args.eps}) if args.adagrad else \
        (torch.optim.SGD, {"lr": args.learning_rate})
    apply_optimizer_in_backward(sparse_opt[0], train_model.model.sparse_arch.parameters(), sparse_opt[1])
    planner = EmbeddingShardingPlanner(
        topology=Topology(world_size=world_size, compute_device="cpu", local_world_size=get_local_size()),
        batch_size=args.batch_size,
    )
    plan = planner.collective_plan(train_model, get_default_sharders(), dist.GroupMember.WORLD)
    model = DistributedModelParallel(module=train_model, device=torch.device("cpu"), plan=plan)
    dense_cls = torch.optim.Adagrad if args.adagrad else torch.optim.SGD
    dense_kwargs = {"lr": args.learning_rate, "eps": args.eps} if args.adagrad else {"lr": args.learning_rate}
    dense = KeyedOptimizerWrapper(dict(in_backward_optimizer_filter(model.named_parameters())),
                                  lambda params: dense_cls(params, **dense_kwargs))
    return model, CombinedOptimizer([model.fused_optimizer, dense]), plan


def evaluate(
    args: argparse.Namespace, model: DistributedModelParallel, optimizer: Any, stage: str, limit: Optional[int]
) -> Dict[str, float]:
    """AUC over every rank's ``stage`` batches: recsys_lib's AUCMetric, and torchmetrics' AUROC as a check."""
    import torchmetrics.functional as tmf

    rank, world = dist.get_rank(), dist.get_world_size()
    model.eval()
    pipeline = EvalPipelineSparseDist(model, optimizer, torch.device("cpu"))
    data = itertools.islice(iter(get_dataloader(args, stage, rank, world)), limit)
    preds: List[torch.Tensor] = []
    labels: List[torch.Tensor] = []
    with torch.no_grad():
        for _ in tqdm(itertools.count(), disable=rank != 0 or not args.print_progress, desc=stage, leave=False):
            try:
                _, logits, batch_labels = pipeline.progress(data)  # logits, labels: (B,)
            except StopIteration:
                break
            preds.append(torch.sigmoid(logits))
            labels.append(batch_labels)
    pipeline.detach()
    model.train()
    p, y = torch.cat(preds), torch.cat(labels)
    metric = AUCMetric(world_size=world, my_rank=rank, batch_size=args.batch_size, tasks=[RecTaskInfo(name="ctr")],
                       window_size=max(1, p.numel()) * world, compute_on_all_ranks=True)
    metric.update(predictions={"ctr": p}, labels={"ctr": y}, weights=None)
    auc = next(float(v) for k, v in metric.compute().items() if "window_auc" in k)
    gathered_p = [torch.empty_like(p) for _ in range(world)]
    gathered_y = [torch.empty_like(y) for _ in range(world)]
    dist.all_gather(gathered_p, p)  # every rank has the same number of rows (the pipeline agrees on the end)
    dist.all_gather(gathered_y, y)
    check = float(tmf.auroc(torch.cat(gathered_p), torch.cat(gathered_y).long(), task="binary"))
    return {"auc": auc, "auc_torchmetrics": check, "samples": p.numel() * world}


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    setup_start = time.perf_counter()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    init_process_group()
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(args.seed)
    model, optimizer, plan = build_model(args, world)
    if args.print_sharding_plan and rank == 0:
        print("\n".join(["sharding plan:"] + [f"  {line}" for line in describe_plan(plan.plan)]), flush=True)
    scheduler = LRPolicyScheduler(optimizer, args.lr_warmup_steps, args.lr_decay_start, args.lr_decay_steps)
    start_step, start_epoch = 0, 0
    if args.checkpoint_dir:
        resumed = load_checkpoint(args.checkpoint_dir, model, optimizer)
        if resumed is not None:
            start_step, start_epoch = resumed["step"], resumed["epoch"]
            if rank == 0:
                print(f"resumed from {args.checkpoint_dir} at step {start_step} (epoch {start_epoch})", flush=True)
    scheduler.set_step(start_step)
    pipeline = TrainPipelineSparseDist(model, optimizer, torch.device("cpu"))
    setup = time.perf_counter() - setup_start

    step, losses, train_time, train_samples, val_results = start_step, [], 0.0, 0, []
    for epoch in range(start_epoch, args.epochs):
        # Steps of this epoch already done before a resume are skipped (the data is deterministic).
        done_in_epoch = max(0, step - epoch * args.limit_train_batches)
        limit = args.limit_train_batches - done_in_epoch
        data = get_dataloader(args, "train", rank, world)
        it: Iterator[Any] = itertools.islice(iter(data), done_in_epoch, done_in_epoch + limit)
        val_every = args.limit_train_batches // args.validation_freq_within_epoch if args.validation_freq_within_epoch else 0
        bar = tqdm(total=limit, disable=rank != 0 or not args.print_progress, desc=f"epoch {epoch}", unit="batch")
        epoch_start, val_time = time.perf_counter(), 0.0
        while True:
            try:
                loss, _, labels = pipeline.progress(it)  # DLRMTrain's output: (loss, logits, labels)
            except StopIteration:
                break
            scheduler.step()
            step += 1
            losses.append(float(loss))
            train_samples += labels.numel() * world
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if args.print_lr and rank == 0:
                print(f"step {step} lr {optimizer.param_groups[0]['lr']:.6f}", flush=True)
            if val_every and step % val_every == 0 and (step - epoch * args.limit_train_batches) < limit:
                val_start = time.perf_counter()
                pipeline.detach()  # the eval pipeline rewrites the model while training batches stay in flight
                val_results.append(("val", step, evaluate(args, model, optimizer, "val", args.limit_val_batches)))
                pipeline.attach()
                val_time += time.perf_counter() - val_start
                if args.validation_auroc is not None and val_results[-1][2]["auc"] >= args.validation_auroc:
                    break  # every rank computed the same AUC, so every rank stops here
            if args.checkpoint_dir and args.checkpoint_every_n_steps and step % args.checkpoint_every_n_steps == 0:
                save_checkpoint(args.checkpoint_dir, step, epoch, model, optimizer)
        bar.close()
        train_time += time.perf_counter() - epoch_start - val_time
        val_time = 0.0
        pipeline.detach()
        val_results.append(("val", step, evaluate(args, model, optimizer, "val", args.limit_val_batches)))
        pipeline.attach()
    pipeline.detach()
    test = evaluate(args, model, optimizer, "test", args.limit_test_batches)
    if rank == 0:
        lines = [f"\nDLRM ({args.interaction_type}) with TrainPipelineSparseDist: {world} process(es), "
                 f"{step - start_step} steps x {args.batch_size} per rank, {args.epochs} epoch(s)"]
        if losses:
            lines.append(f"  loss        first {losses[0]:.4f}  last {losses[-1]:.4f}  (mean over rank 0's batch)")
            lines.append(f"  throughput  {train_samples / max(train_time, 1e-9):,.0f} samples/s "
                         f"(training {train_time:.1f} s; setup: model, plan, sharding {setup:.1f} s)")
        for stage, at, r in val_results + [("test", step, test)]:
            lines.append(f"  {stage:<5} AUC  {r['auc']:.4f} (torchmetrics {r['auc_torchmetrics']:.4f}) "
                         f"at step {at}, {r['samples']} samples")
        if args.checkpoint_dir:
            lines.append(f"  checkpoints {args.checkpoint_dir} (every {args.checkpoint_every_n_steps} steps)")
        print("\n".join(lines), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
