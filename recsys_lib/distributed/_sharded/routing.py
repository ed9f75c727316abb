"""Routing a sharded module's input KJT: checks, then the split per sharding.

:class:`ShardingRouter` puts the input's features into sharding order and splits it per sharding. The checks run
*before* any collective so that bad input on one rank raises on every rank instead of leaving its peers waiting
in an all-to-all.

:func:`input_error` finds what is wrong (missing keys, a variable-batch KJT with several batch sizes per key,
missing weights for a weighted module, ids outside their table's rows); :func:`fail_on_every_rank` takes part in
every input dist's split-size exchange with an error status, then raises. The other ranks' exchanges see that
status and raise "rank(s) [k] passed an invalid KJT" (see ``_dist_kjt``).
"""

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from recsys_lib.distributed._dist.kjt import KJTAllToAll
from recsys_lib.distributed.embedding_sharding import EmbeddingSharding
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

_NO_LIMIT = 2**62


def check_ids(kjt: KeyedJaggedTensor, rows: Sequence[int], owner: str) -> None:
    """``ValueError`` if any id of feature ``f`` is outside ``[0, rows[f])`` (names the feature and the id)."""
    values = kjt.values()
    if values.numel() == 0:
        return
    if values.is_floating_point():
        raise TypeError(f"{owner}: ids must be integers, got {values.dtype}")
    if len(set(rows)) == 1:
        lo, hi = torch.aminmax(values)  # one pass
        if int(lo) >= 0 and int(hi) < rows[0]:
            return
    else:
        lpk = kjt.length_per_key()
        limit = torch.repeat_interleave(torch.tensor(list(rows), device=values.device),
                                        torch.tensor(lpk, device=values.device))
        if not bool(((values < 0) | (values >= limit)).any()):
            return
    for key, jt_rows, jt in zip(kjt.keys(), rows, kjt.values().split(kjt.length_per_key())):
        if jt.numel() and (int(jt.min()) < 0 or int(jt.max()) >= jt_rows):
            bad = jt[(jt < 0) | (jt >= jt_rows)][0]
            raise ValueError(
                f"{owner}: feature {key!r} has id {int(bad)} outside its table's rows [0, {jt_rows})"
            )


def check_vbe_input(features: KeyedJaggedTensor, owner: str) -> None:
    """A variable-batch input of a sharded module holds this rank's batch only: one batch size per key."""
    per_rank = features.stride_per_key_per_rank()
    bad = [(k, s) for k, s in zip(features.keys(), per_rank) if len(s) != 1]
    if bad:
        raise ValueError(
            f"{owner}: a variable-batch input KJT must give one batch size per key (this rank's), but "
            f"(key, stride_per_key_per_rank) {bad} do not"
        )


def input_error(
    owner: str, features: KeyedJaggedTensor, needed: List[str], rows_of: Dict[str, int], weighted: bool,
    pooled: bool = False,
) -> Optional[str]:
    """Why ``features`` cannot be distributed, or None.

    Args:
        owner: named in the message.
        needed: the module's features (the KJT may have more keys).
        rows_of: rows of the (smallest) table each feature reads.
        weighted: the module needs per-id weights.
        pooled: a variable-batch KJT must carry ``inverse_indices`` (pooled outputs are expanded to the full batch).
    """
    keys = features.keys()
    present = set(keys)
    missing = sorted({f for f in needed if f not in present})
    if missing:
        return f"{owner}: input KJT lacks features {missing}; its keys are {keys}"
    try:
        if features.variable_stride_per_key():
            check_vbe_input(features, owner)
            if pooled and features.inverse_indices_or_none() is None:
                raise ValueError(
                    f"{owner}: a variable-batch (VBE) KJT needs inverse_indices to expand the pooled embeddings back "
                    f"to the full batch (KeyedJaggedTensor(..., inverse_indices=(keys, T[F, B])))"
                )
        if weighted and features.weights_or_none() is None:
            raise ValueError(f"{owner}: the module is weighted but the input KJT has no weights")
        check_ids(features, [rows_of.get(k, _NO_LIMIT) for k in keys], owner)
    except (ValueError, TypeError) as e:
        return str(e)
    return None


def fail_on_every_rank(input_dists: nn.ModuleList, error: str) -> None:
    """Raises ``ValueError(error)`` after taking part, with an error status, in the split-size exchange of every
    KJT all-to-all of ``input_dists`` (the peers, whose inputs may be fine, then raise too)."""
    empty = KeyedJaggedTensor(keys=[], values=torch.empty(0, dtype=torch.long), lengths=torch.empty(0, dtype=torch.int))
    requests = []
    for a2a in (m for d in input_dists for m in d.modules() if isinstance(m, KJTAllToAll)):
        try:
            requests.append(a2a(empty))
        except ValueError:  # a world of one: no exchange to take part in
            pass
    for request in requests:
        try:
            request.wait()
        except ValueError:
            pass
    raise ValueError(error)


class ShardingRouter:
    """Puts an input KJT's features into sharding order (each sharding's ``feature_names()``, concatenated;
    a feature may repeat, e.g. once per column shard) and splits it per sharding."""

    def __init__(self, shardings: List[EmbeddingSharding], owner: str) -> None:
        self._owner = owner
        self.feature_names: List[str] = [f for s in shardings for f in s.feature_names()]
        self.feature_splits: List[int] = [len(s.feature_names()) for s in shardings]
        self._cache: Dict[Tuple[str, ...], Tuple[List[int], torch.Tensor]] = {}

    def _order(self, keys: List[str]) -> Tuple[List[int], torch.Tensor]:
        key = tuple(keys)
        if key not in self._cache:
            index = {k: i for i, k in enumerate(keys)}
            missing = sorted({f for f in self.feature_names if f not in index})
            if missing:
                raise ValueError(f"{self._owner}: input KJT lacks features {missing}; its keys are {keys}")
            order = [index[f] for f in self.feature_names]
            self._cache[key] = (order, torch.tensor(order, dtype=torch.int64))
        return self._cache[key]

    def split(self, features: KeyedJaggedTensor) -> List[KeyedJaggedTensor]:
        order, order_t = self._order(features.keys())
        if order != list(range(len(features.keys()))):
            features = features.permute(order, order_t.to(features.device()))
        return features.split(self.feature_splits)
