"""Independent numpy formulas for the metrics, and a harness that feeds batches and checks both
lifetime and window values against them (shared by the per-metric test files)."""

import numpy as np
import torch

ETA = 1e-12


def ne(p, y, w):
    p = np.clip(p, ETA, 1 - ETA)
    ce = -(w * (y * np.log(p) + (1 - y) * np.log(1 - p))).sum()
    pos, total = (w * y).sum(), w.sum()
    base = pos / total
    return ce / -(pos * np.log(base) + (total - pos) * np.log(1 - base))


def logloss(p, y, w):
    p = np.clip(p, ETA, 1 - ETA)
    return -(w * (y * np.log(p) + (1 - y) * np.log(1 - p))).sum() / w.sum()


def auc(p, y, w):
    """Pairwise definition, O(N^2): P(positive ranked above negative), ties count one half."""
    pos, neg = w * y, w * (1 - y)
    wins = (p[:, None] > p[None, :]) + 0.5 * (p[:, None] == p[None, :])
    denom = pos.sum() * neg.sum()
    return 0.5 if denom == 0 else float((pos[:, None] * neg[None, :] * wins).sum() / denom)


def auprc(p, y, w):
    """Average precision by thresholds, highest first: sum (R_k - R_{k-1}) P_k."""
    total = (w * y).sum()
    if total == 0:
        return 0.0
    ap, prev_recall = 0.0, 0.0
    for t in np.unique(p)[::-1]:
        chosen = p >= t
        tp, fp = (w * y * chosen).sum(), (w * (1 - y) * chosen).sum()
        recall = tp / total
        ap += (recall - prev_recall) * tp / (tp + fp)
        prev_recall = recall
    return ap


def calibration(p, y, w):
    return (w * p).sum() / (w * y).sum()


def ctr(p, y, w):
    return (w * y).sum() / w.sum()


def mse(p, y, w):
    return (w * (y - p) ** 2).sum() / w.sum()


def rmse(p, y, w):
    return np.sqrt(mse(p, y, w))


def mae(p, y, w):
    return (w * np.abs(y - p)).sum() / w.sum()


def accuracy(p, y, w, threshold=0.5):
    return (w * ((p >= threshold) == (y == 1))).sum() / w.sum()


def precision(p, y, w, threshold=0.5):
    chosen = p >= threshold
    return (w * y * chosen).sum() / (w * chosen).sum()


def recall(p, y, w, threshold=0.5):
    return (w * y * (p >= threshold)).sum() / (w * y).sum()


def weighted_avg(p, y, w):
    return (w * p).sum() / w.sum()


def make_batches(n_batches, n_tasks, batch_size, seed=0, ties=False):
    """Random (predictions, labels, weights) numpy arrays of shape (n_tasks, batch_size) per batch."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        p = rng.random((n_tasks, batch_size))
        if ties:
            p = np.round(p * 4) / 4  # many equal predictions
        y = (rng.random((n_tasks, batch_size)) < 0.4).astype(np.float64)
        w = rng.random((n_tasks, batch_size)) + 0.1
        out.append((p, y, w))
    return out


def feed(metric, batches, task_names, as_dict=True):
    for p, y, w in batches:
        if as_dict:
            metric.update(
                predictions={t: torch.tensor(p[i]) for i, t in enumerate(task_names)},
                labels={t: torch.tensor(y[i]) for i, t in enumerate(task_names)},
                weights={t: torch.tensor(w[i]) for i, t in enumerate(task_names)},
            )
        else:
            metric.update(predictions=torch.tensor(p), labels=torch.tensor(y), weights=torch.tensor(w))


def concat(batches, task):
    return tuple(np.concatenate([b[k][task] for b in batches]) for k in range(3))


def check_values(metric_cls, namespace, names, fns, window_batches, window_size, batches, prefixes=("lifetime_", "window_"),
                 rtol=1e-6, **kwargs):
    """Feeds ``batches`` to a 2-task metric; checks every ``{prefix}{name}`` against ``fn`` on the numpy data
    (lifetime: all batches; window: the last ``window_batches`` batches). Returns the computed dict."""
    from recsys_lib.metrics.metrics_config import RecTaskInfo

    tasks = [RecTaskInfo(name="a"), RecTaskInfo(name="b")]
    metric = metric_cls(world_size=1, my_rank=0, batch_size=batches[0][0].shape[1], tasks=tasks,
                        window_size=window_size, **kwargs)
    feed(metric, batches, ["a", "b"])
    out = metric.compute()
    expected_keys = {f"{namespace}-{t}|{pre}{n}" for t in "ab" for pre in prefixes for n in names}
    assert set(out) == expected_keys
    for i, t in enumerate("ab"):
        for name, fn in zip(names, fns):
            spans = {"lifetime_": batches, "window_": batches[-window_batches:]}
            for pre in prefixes:
                want = fn(*concat(spans[pre], i))
                got = out[f"{namespace}-{t}|{pre}{name}"]
                assert got.shape == () and got.dtype == torch.float64
                np.testing.assert_allclose(got.item(), want, rtol=rtol, err_msg=f"{t}|{pre}{name}")
    return out
