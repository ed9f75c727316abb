"""Command-line flags of ``dlrm_main.py``: facebookresearch/dlrm ``torchrec_dlrm``'s names and defaults, with
smaller defaults where the original sizes (100k rows x 26 tables, 64-d, batch 32) would not suit a CPU demo
marked ``# demo``, plus a few of our own (``--checkpoint_*``, ``--threads``)."""

import argparse
from typing import List, Optional


def _ints(text: str) -> List[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="torchrec_dlrm's DLRM trainer on recsys_lib (see dlrm_main.py)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch_size", type=int, default=256, help="per rank (torchrec_dlrm: 32)")  # demo
    p.add_argument("--test_batch_size", type=int, default=None, help="validation/test batch (default --batch_size)")
    p.add_argument("--drop_last_training_batch", action="store_true")
    p.add_argument("--limit_train_batches", type=int, default=100, help="batches per epoch (random data: the epoch)")
    p.add_argument("--limit_val_batches", type=int, default=20)
    p.add_argument("--limit_test_batches", type=int, default=20)
    p.add_argument("--dataset_name", choices=["criteo_1t", "criteo_kaggle"], default="criteo_1t")
    p.add_argument("--num_embeddings", type=int, default=10_000, help="rows per table (torchrec_dlrm: 100000)")  # demo
    p.add_argument("--num_embeddings_per_feature", type=_ints, default=None, help="26 comma-separated row counts")
    p.add_argument("--dense_arch_layer_sizes", type=_ints, default=[64, 16], help="torchrec_dlrm: 512,256,64")  # demo
    p.add_argument("--over_arch_layer_sizes", type=_ints, default=[64, 32, 1], help="torchrec_dlrm: 512,512,256,1")
    p.add_argument("--embedding_dim", type=int, default=16, help="torchrec_dlrm: 64")  # demo
    p.add_argument("--interaction_branch1_layer_sizes", type=_ints, default=[128, 128])
    p.add_argument("--interaction_branch2_layer_sizes", type=_ints, default=[128, 128])
    p.add_argument("--dcn_num_layers", type=int, default=3)
    p.add_argument("--dcn_low_rank_dim", type=int, default=32, help="torchrec_dlrm: 512")  # demo
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pin_memory", action="store_true", help="pin batches (needs an accelerator)")
    p.add_argument("--mmap_mode", action="store_true", help="memory-map the .npy files instead of reading them")
    p.add_argument("--in_memory_binary_criteo_path", type=str, default=None, help="folder of day_<i>_{dense,sparse,labels}.npy")
    p.add_argument("--synthetic_multi_hot_criteo_path", type=str, default=None,
                   help="folder of day_<i>_sparse_multi_hot.npz (dense and labels from --in_memory_binary_criteo_path)")
    p.add_argument("--learning_rate", type=float, default=0.05, help="torchrec_dlrm: 15.0 (SGD)")  # demo
    p.add_argument("--eps", type=float, default=1e-8)
    p.add_argument("--shuffle_batches", action="store_true")
    p.add_argument("--shuffle_training_set", action="store_true")
    p.add_argument("--validation_freq_within_epoch", type=int, default=None, help="validations per epoch (besides the end)")
    p.add_argument("--validation_auroc", type=float, default=None, help="stop once validation AUC reaches this")
    p.add_argument("--adagrad", action="store_true", help="RowWiseAdagrad tables + Adagrad dense (else SGD)")
    p.add_argument("--interaction_type", choices=["original", "dcn", "projection"], default="original")
    p.add_argument("--multi_hot_sizes", type=_ints, default=None, help="26 comma-separated ids per sample and feature")
    p.add_argument("--lr_warmup_steps", type=int, default=0)
    p.add_argument("--lr_decay_start", type=int, default=0)
    p.add_argument("--lr_decay_steps", type=int, default=0)
    p.add_argument("--print_lr", action="store_true")
    p.add_argument("--allow_tf32", action="store_true")
    p.add_argument("--print_sharding_plan", action="store_true")
    p.add_argument("--print_progress", action="store_true", default=True)
    p.add_argument("--no_print_progress", dest="print_progress", action="store_false")
    p.add_argument("--checkpoint_dir", type=str, default=None, help="atomic checkpoints; resume from the latest here")
    p.add_argument("--checkpoint_every_n_steps", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per process (0: torch's default)")
    args = p.parse_args(argv)
    for name, n in (("num_embeddings_per_feature", 26), ("multi_hot_sizes", 26)):
        value = getattr(args, name)
        if value is not None and len(value) != n:
            p.error(f"--{name} needs {n} values, got {len(value)}")
    if args.dense_arch_layer_sizes[-1] != args.embedding_dim:
        p.error(f"the last --dense_arch_layer_sizes ({args.dense_arch_layer_sizes[-1]}) must equal --embedding_dim "
                f"({args.embedding_dim})")
    if args.limit_train_batches < 1:
        p.error(f"--limit_train_batches must be >= 1, got {args.limit_train_batches}")
    if args.synthetic_multi_hot_criteo_path and not args.in_memory_binary_criteo_path:
        p.error("--synthetic_multi_hot_criteo_path needs --in_memory_binary_criteo_path (dense features and labels)")
    if args.allow_tf32:
        import torch

        torch.backends.cuda.matmul.allow_tf32 = True
    return args
