"""Optimizers (steps, state-dict layout, schedules) and datasets (seeded random batches, Criteo npy reader)."""

import tempfile
from typing import Any, Callable, List, Tuple

import numpy as np
import torch

Calls = List[Tuple[str, Callable[[], Any]]]


def _params() -> dict:
    g = torch.Generator().manual_seed(0)
    return {"w": torch.nn.Parameter(torch.randn(3, 2, generator=g)), "b": torch.nn.Parameter(torch.randn(2, generator=g))}


def _steps(opt: Any, params: dict, n: int = 3) -> List[Any]:
    out = []
    for i in range(n):
        for j, p in enumerate(params.values()):
            p.grad = torch.full_like(p, 0.5 * (i + 1) - j)
        opt.step()
        out.append([p.detach().clone() for p in params.values()])
    return out


def optimizers(lib: Any) -> Calls:
    keyed = lib.m("optim.keyed")
    warm = lib.m("optim.warmup")
    clip = lib.m("optim.clipping")
    rw = lib.m("optim.rowwise_adagrad")

    def wrapper(params: dict, factory: Any) -> Any:
        return keyed.KeyedOptimizerWrapper(params, factory)

    def sgd() -> Any:
        p = _params()
        return _steps(wrapper(p, lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)), p)

    def adam_state() -> Any:
        p = _params()
        opt = wrapper(p, lambda ps: torch.optim.Adam(ps, lr=0.01))
        _steps(opt, p, 2)
        return opt.state_dict()

    def combined() -> Any:
        p, q = _params(), {"z": torch.nn.Parameter(torch.ones(2))}
        c = keyed.CombinedOptimizer([("a", wrapper(p, lambda ps: torch.optim.SGD(ps, lr=0.1))),
                                     wrapper(q, lambda ps: torch.optim.Adagrad(ps, lr=0.1))])
        _steps(c, {**p, **q}, 2)
        return [list(c.params), [k for k, _ in c._optims], c.state_dict()]

    def warmup() -> Any:
        p = _params()
        inner = wrapper(p, lambda ps: torch.optim.SGD(ps, lr=0.1))
        opt = warm.WarmupOptimizer(inner, [warm.WarmupStage(policy=warm.WarmupPolicy.LINEAR, max_iters=3, value=0.1),
                                           warm.WarmupStage(policy=warm.WarmupPolicy.POLY, max_iters=6, value=1.0,
                                                            decay_iters=4)], lr=0.2)
        lrs = []
        for _ in range(7):
            opt.step()
            lrs.append(inner.param_groups[0]["lr"])
        return lrs

    def warmup_no_lr() -> Any:
        p = _params()
        inner = wrapper(p, lambda ps: torch.optim.SGD(ps, lr=0.1))
        del inner.param_groups[0]["lr"]
        warm.WarmupOptimizer(inner, [warm.WarmupStage()], lr=0.3)
        return inner.param_groups[0]["lr"]

    def clipping(kind: str) -> Any:
        p = _params()
        opt = clip.GradientClippingOptimizer(wrapper(p, lambda ps: torch.optim.SGD(ps, lr=0.1)),
                                             clipping=getattr(clip.GradientClipping, kind), max_gradient=0.3)
        out = _steps(opt, p)
        return out + ([opt.last_total_grad_norm, opt.compute_total_grad_norm()[0]] if kind == "NORM" else [])

    def rowwise() -> Any:
        p = _params()
        return _steps(rw.RowWiseAdagrad(list(p.values()), lr=0.1), p)

    return [("KeyedOptimizerWrapper SGD", sgd), ("Adam state_dict", adam_state), ("CombinedOptimizer", combined),
            ("WarmupOptimizer schedule", warmup), ("WarmupOptimizer without lr", warmup_no_lr),
            ("clipping NORM", lambda: clipping("NORM")), ("clipping VALUE", lambda: clipping("VALUE")),
            ("RowWiseAdagrad", rowwise)]


def datasets(lib: Any) -> Calls:
    rnd = lib.m("datasets.random")
    criteo = lib.m("datasets.criteo")

    def random_batches(**kw: Any) -> Any:
        ds = rnd.RandomRecDataset(keys=["a", "b"], batch_size=3, manual_seed=7, num_batches=3, **kw)
        return [[b.dense_features, b.sparse_features, b.labels] for b in ds]

    d = tempfile.mkdtemp()
    rng = np.random.default_rng(0)
    for day, rows in enumerate([10, 7]):
        np.save(f"{d}/day_{day}_dense.npy", rng.random((rows, 13), dtype=np.float32))
        np.save(f"{d}/day_{day}_sparse.npy", rng.integers(0, 50, (rows, 26)).astype(np.int32))
        np.save(f"{d}/day_{day}_labels.npy", rng.integers(0, 2, (rows, 1)).astype(np.int32))

    def criteo_counts(stage: str, days: List[int], **kw: Any) -> Any:
        out = []
        for rank in range(2):
            dp = criteo.InMemoryBinaryCriteoIterDataPipe(
                stage, [f"{d}/day_{i}_dense.npy" for i in days], [f"{d}/day_{i}_sparse.npy" for i in days],
                [f"{d}/day_{i}_labels.npy" for i in days], batch_size=3, rank=rank, world_size=2, hashes=[7] * 26, **kw)
            out.append([len(dp), [b.labels for b in dp]])
        return out

    return [
        ("RandomRecDataset hash/ids lists", lambda: random_batches(hash_sizes=[5, 9], ids_per_features=[2, 3])),
        ("RandomRecDataset defaults", lambda: random_batches()),
        ("RandomRecDataset fixed ids", lambda: random_batches(hash_size=4, ids_per_feature=2)),
        ("Criteo train", lambda: criteo_counts("train", [0, 1])),
        ("Criteo train drop_last", lambda: criteo_counts("train", [0, 1], drop_last=True)),
        ("Criteo train shuffled drop_last (counts)",
         lambda: [[n, sum(t.numel() for t in ls)] for n, ls in criteo_counts(
             "train", [0, 1], drop_last=True, shuffle_training_set=True)]),
        ("Criteo val", lambda: criteo_counts("val", [1])),
        ("Criteo test", lambda: criteo_counts("test", [1])),
        ("Criteo row ranges", lambda: criteo.BinaryCriteoUtils.get_file_row_ranges_and_remainder(
            [10, 7], rank=1, world_size=3)),
    ]


CASES = {"optim": optimizers, "datasets": datasets}
