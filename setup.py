from setuptools import find_packages, setup

setup(
    name="recsys_lib",
    version="0.1.0",
    description="A PyTorch domain library for large-scale recommender systems (TorchRec-compatible API).",
    license="BSD-3-Clause",
    packages=find_packages(include=["recsys_lib", "recsys_lib.*"]),
    python_requires=">=3.10",
    # The torch / fbgemm pair is chosen by requirements.txt (CPU) or the GPU instructions in README.md.
    install_requires=["numpy", "pyre-extensions", "iopath", "torchmetrics", "tqdm"],
)
