"""A training job run by ``torchrun`` for the fault-recovery test: resumes from the newest committed
checkpoint, checkpoints every ``EVERY`` steps (the data position is the step, kept in the marker), and on
request SIGKILLs one rank between writing a checkpoint and committing it (the first time only).

Usage: torchrun --nproc-per-node=2 --max-restarts=3 _resume_worker.py ROOT OUT [KILL_AT_STEP]
"""

import os
import signal
import sys
from datetime import timedelta  # noqa: I001

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

from recsys_lib.distributed._checkpoint.committed import drop_empty  # noqa: E402
from recsys_lib.distributed._checkpoint.gather import full_tensors  # noqa: E402
from recsys_lib.distributed.checkpoint import (  # noqa: E402
    checkpoint_dir, commit, keep_last, latest_committed, load_checkpoint,
)
from tests.distributed.checkpoint._ckpt_models import build, load, state, train_step  # noqa: E402

STEPS, EVERY = 6, 2
PLAN = ["tw0", "rw", "cw", "tw1"]


def main() -> None:
    root, out = sys.argv[1], sys.argv[2]
    kill_at = int(sys.argv[3]) if len(sys.argv) > 3 else -1
    # Each attempt meets through its own file store (torchrun's agent store can leave a restarted group waiting
    # on keys of the attempt that died).
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    os.makedirs(root, exist_ok=True)
    store = dist.FileStore(os.path.join(root, f"store_{attempt}"), int(os.environ["WORLD_SIZE"]))
    dist.init_process_group("gloo", store=store, rank=int(os.environ["RANK"]),
                            world_size=int(os.environ["WORLD_SIZE"]), timeout=timedelta(seconds=60))
    rank, ws = dist.get_rank(), dist.get_world_size()
    dmp, opt = build(PLAN, ws, "adagrad", seed=1)
    start = 0
    path = latest_committed(root)
    if path is not None:
        sd = state(dmp, opt)
        facts = load_checkpoint(path, sd)
        load(dmp, opt, sd)
        start = int(facts["next_step"])
    for step in range(start, STEPS):
        train_step(dmp, opt, step)
        if (step + 1) % EVERY == 0:
            ckpt = checkpoint_dir(root, step + 1)
            dcp.save(drop_empty(state(dmp, opt)), checkpoint_id=ckpt)
            marker = os.path.join(root, "killed_once")
            if rank == 1 and step + 1 == kill_at and not os.path.exists(marker):
                open(marker, "w").close()
                os.kill(os.getpid(), signal.SIGKILL)  # the checkpoint is written but never committed
            commit(ckpt, extra={"next_step": step + 1})
            if rank == 0:
                keep_last(root, 2)
    full = full_tensors(dmp.state_dict())
    if rank == 0:
        torch.save({"weights": full, "started_at": start}, out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
