"""Train-free end-to-end check of C++ serving: quantized DLRM → TorchScript → C++ program → same outputs.

    python examples/inference/run_cpp_inference.py --workdir /tmp/recsys_cpp

1. builds a small DLRM predict module (random weights), quantizes its tables (INT8 by default), fx-traces and
   scripts it (``DLRMPredictFactory``), saves ``model.pt``, the batch as ``inputs.pt`` and Python's outputs;
2. configures and builds ``predict.cpp`` with CMake against the libtorch inside the torch wheel;
3. runs the program with FBGEMM's operator libraries loaded, and compares its outputs with Python's (exact).
"""

import argparse
import os
import pathlib
import subprocess
import sys
import time
from dataclasses import dataclass

import torch

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from a checkout without installing

from recsys_lib.datasets.random import RandomRecDataset  # noqa: E402
from recsys_lib.inference.dlrm_predict import DLRMModelConfig, DLRMPredictFactory  # noqa: E402

# The order fbgemm_gpu/__init__.py loads them in (inference needs config, utils, inference and py).
FBGEMM_LIBRARIES = ["fbgemm_gpu_config", "fbgemm_gpu_tbe_utils", "fbgemm_gpu_tbe_index_select", "fbgemm_gpu_tbe_cache",
                    "fbgemm_gpu_tbe_optimizers", "fbgemm_gpu_tbe_inference", "fbgemm_gpu_tbe_training_forward",
                    "fbgemm_gpu_py"]


@dataclass
class Config:
    num_features: int = 4
    num_embeddings: int = 1000
    embedding_dim: int = 16
    dense_in_features: int = 13
    batch_size: int = 7
    seed: int = 0


def fbgemm_library_paths() -> list:
    import fbgemm_gpu

    root = pathlib.Path(fbgemm_gpu.__file__).parent
    return [str(root / (name + ".so")) for name in FBGEMM_LIBRARIES if (root / (name + ".so")).exists()]


def write_model_and_batch(cfg: Config, workdir: pathlib.Path) -> dict:
    """Save model.pt and inputs.pt; return Python's outputs of the saved-and-reloaded scripted model."""
    torch.manual_seed(cfg.seed)
    keys = ["cat_" + str(i) for i in range(cfg.num_features)]
    sample = next(iter(RandomRecDataset(keys=keys, batch_size=cfg.batch_size, hash_size=cfg.num_embeddings,
                                        ids_per_feature=3, num_dense=cfg.dense_in_features)))
    model_config = DLRMModelConfig(
        dense_arch_layer_sizes=[32, cfg.embedding_dim], dense_in_features=cfg.dense_in_features,
        embedding_dim=cfg.embedding_dim, id_list_features_keys=keys, num_embeddings_per_feature=[],
        num_embeddings=cfg.num_embeddings, over_arch_layer_sizes=[32, 1], sample_input=sample,
    )
    scripted = DLRMPredictFactory(model_config).create_predict_module(world_size=1, device="cpu")
    scripted.save(str(workdir / "model.pt"))
    batch = {
        "float_features": sample.dense_features,
        "id_list_features.lengths": sample.sparse_features.lengths(),
        "id_list_features.values": sample.sparse_features.values(),
    }

    class Inputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for name, t in batch.items():
                self.register_buffer(name.replace(".", "__"), t)

    torch.jit.script(Inputs()).save(str(workdir / "inputs.pt"))
    return torch.jit.load(str(workdir / "model.pt"))(batch)


def build(workdir: pathlib.Path) -> pathlib.Path:
    """Configure (once) and build the C++ program; returns its path."""
    build_dir = workdir / "build"
    if not (build_dir / "CMakeCache.txt").exists():
        subprocess.run(["cmake", "-S", str(HERE), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                        "-DCMAKE_PREFIX_PATH=" + torch.utils.cmake_prefix_path], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build_dir), "-j", str(max(1, min(2, os.cpu_count() or 1)))],
                   check=True, capture_output=True)
    return build_dir / "recsys_predict"


def run_cpp(binary: pathlib.Path, workdir: pathlib.Path) -> dict:
    out_path = workdir / "outputs_cpp.pt"
    proc = subprocess.run([str(binary), str(workdir / "model.pt"), str(workdir / "inputs.pt"), str(out_path)]
                          + fbgemm_library_paths(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("C++ program failed (" + str(proc.returncode) + "): " + proc.stdout + proc.stderr)
    print(proc.stdout.strip())
    # pickle_save tags the dict's types with this (harmless) helper; allow just it.
    import torch.jit._pickle as jit_pickle

    with torch.serialization.safe_globals([jit_pickle.restore_type_tag]):
        return torch.load(str(out_path))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("/tmp/recsys_cpp_inference"))
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    want = write_model_and_batch(Config(), args.workdir)
    t1 = time.time()
    got = run_cpp(build(args.workdir), args.workdir)
    t2 = time.time()
    same = sorted(got) == sorted(want) and all(torch.equal(got[k], want[k]) for k in want)
    print("model + batch written in %.1fs, C++ built and run in %.1fs; outputs %s (B=%d): %s"
          % (t1 - t0, t2 - t1, "identical" if same else "DIFFERENT", want["default"].numel(), args.workdir))
    if not same:
        raise SystemExit("C++ outputs differ from Python's")
    return {"python": want, "cpp": got}


if __name__ == "__main__":
    main()
