"""Planner wall time in the harness (issue 6). The full table (estimated cost, 1000 tables, cpu/cuda,
TorchRec's plan rated by our model) is ``benchmarks/planner.py``.

    .venv/bin/python benchmarks/run.py --case planner --repeats 3
    .venv-compare/bin/python benchmarks/run.py --case planner --repeats 3 --compare torchrec

``small``: 10 tables, W=2 and W=64 (cuda topology). ``large``: 100 tables, W=2 (cuda), TorchRec 12.2 s here.
"""

from dataclasses import dataclass
from typing import Any, Callable

import torch

from benchmarks import planner as P

SIZES = {"small": [(10, 2), (10, 64)], "large": [(100, 2)]}


@dataclass
class Bench:
    name: str
    setup: Callable[[], Any]
    op: Callable[[Any], Any]


def _is_torchrec(lib) -> bool:
    return lib.KeyedJaggedTensor.__module__.startswith("torchrec")


def _setup(torchrec: bool, n: int, world: int):
    specs = P.table_specs(n)
    if torchrec:
        from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder as Sharder
        from torchrec.distributed.planner import EmbeddingShardingPlanner, Topology
        from torchrec.distributed.planner.types import ParameterConstraints
        from torchrec.modules.embedding_configs import EmbeddingBagConfig as Config
        from torchrec.modules.embedding_modules import EmbeddingBagCollection as EBC
        stats = {}
    else:
        from recsys_lib.distributed.planner import EmbeddingShardingPlanner, ParameterConstraints, Topology
        from recsys_lib.distributed.planner.stats import NoopEmbeddingStats

        Config, EBC, Sharder = P._recsys_lib_parts()
        stats = {"stats": NoopEmbeddingStats()}
    ebc = EBC(tables=[Config(name=t, embedding_dim=d, num_embeddings=r, feature_names=[f"f_{t}"])
                      for t, r, d, _ in specs], device=torch.device("meta"))
    constraints = {t: ParameterConstraints(pooling_factors=[pf]) for t, _, _, pf in specs}
    topo = Topology(world_size=world, compute_device="cuda", local_world_size=min(world, 8))

    def make():
        planner = EmbeddingShardingPlanner(topology=topo, batch_size=P.BATCH, constraints=constraints, debug=False,
                                           **stats)
        return planner, ebc, [Sharder()]

    return make


def build(lib, size: str):
    torchrec = _is_torchrec(lib)
    out = []
    for n, world in SIZES[size]:
        make = _setup(torchrec, n, world)
        out.append(Bench(f"plan T{n} W{world}", make, lambda args: args[0].plan(args[1], args[2])))
    return out
