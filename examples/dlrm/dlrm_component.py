"""torchx component for ``dlrm_main.py``: one node, ``num_trainers`` processes (torchx's ``dist.ddp``).

    torchx run -s local_cwd examples/dlrm/dlrm_component.py:run_dlrm_main --num_trainers 2 \\
        -- --limit_train_batches 50 --interaction_type dcn

Run from the repository root (``local_cwd`` starts the trainers there, with the current environment's
``python``); everything after ``--`` goes to ``dlrm_main.py``.
"""

import os

import torchx.specs as specs
from torchx.components.dist import ddp

# torchx loads this file through its own loader (``__file__`` is not this path), and ``local_cwd`` starts the
# trainers in the directory torchx was run from: paths are relative to the repository root.
_SCRIPT = os.path.join("examples", "dlrm", "dlrm_main.py")


def run_dlrm_main(*script_args: str, num_trainers: int = 2, cpu: int = 2, memMB: int = 4096) -> specs.AppDef:
    """DLRM trainer on one node with ``num_trainers`` gloo processes.

    Args:
        script_args: flags for dlrm_main.py (after ``--``).
        num_trainers: processes on the node.
        cpu: CPUs per process (schedulers that reserve resources).
        memMB: memory per process in MB.
    """
    root = os.getcwd()
    if not os.path.isfile(os.path.join(root, _SCRIPT)):
        raise ValueError(f"run torchx from the repository root: {os.path.join(root, _SCRIPT)} does not exist")
    env = {"PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    return ddp(*script_args, script=_SCRIPT, name="dlrm_main", j=f"1x{num_trainers}", cpu=cpu, memMB=memMB, env=env)
