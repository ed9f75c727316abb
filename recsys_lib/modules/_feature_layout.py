"""Where each table's features sit inside a ``KeyedJaggedTensor`` (pure helpers shared by the collections).

A KJT stores its features key-major::

    keys     f0        f1        f2
    lengths  |B of f0| |B of f1| |B of f2|      (F*B,)
    values   |ids f0 | |ids f1 | |ids f2 |      (sum(L),)

A table whose features are consecutive keys in the KJT (``[f1, f2]`` above) is looked up with one kernel call
over one slice of ``values``; otherwise each feature is looked up on its own. These functions are TorchScript-
compatible so the collections' ``forward`` stays scriptable.
"""

from typing import Dict, List, Tuple

import torch

from recsys_lib.modules.embedding_configs import BaseEmbeddingConfig
from recsys_lib.pt2.checks import is_pt2_compiling
from recsys_lib.sparse._errors import UnknownKeyError


def table_feature_names(table: BaseEmbeddingConfig) -> List[str]:
    """The features of ``table`` (a table without ``feature_names`` is looked up by its own name)."""
    return list(table.feature_names) if len(table.feature_names) > 0 else [table.name]


def embedding_names_by_table(tables: List[BaseEmbeddingConfig]) -> List[List[str]]:
    """Output names per table: the feature name, or ``feature@table`` if several tables read that feature."""
    count: Dict[str, int] = {}
    for t in tables:
        for f in table_feature_names(t):
            count[f] = count.get(f, 0) + 1
    return [[f if count[f] == 1 else f + "@" + t.name for f in table_feature_names(t)] for t in tables]


def check_keys(keys: List[str], consumed: Dict[str, int], owner: str) -> Dict[str, int]:
    """Map each table feature → its position among the KJT keys.

    KJT keys that no table reads are ignored (as TorchRec does: one KJT often feeds several collections). A key
    repeated in the KJT maps to its last position (TorchRec's ``to_dict`` keeps the last). A table feature missing
    from the KJT raises ``UnknownKeyError`` (a ``KeyError``, as TorchRec's, and a ``ValueError``) naming it.
    """
    index: Dict[str, int] = {}
    for i, k in enumerate(keys):
        if k in consumed:
            index[k] = i
    if len(index) != len(consumed):
        missing: List[str] = []
        for f in consumed.keys():
            if f not in index:
                missing.append(f)
        raise UnknownKeyError(owner + ": features " + str(missing) + " of the tables are missing from the input "
                              "keys " + str(keys))
    return index


def feature_runs(positions: List[int]) -> List[Tuple[int, int]]:
    """Split KJT key positions into runs of consecutive keys: ``[3, 4, 0]`` → ``[(3, 2), (0, 1)]`` (start, count)."""
    runs: List[Tuple[int, int]] = []
    start = positions[0]
    n = 1
    for p in positions[1:]:
        if p == start + n:
            n += 1
        else:
            runs.append((start, n))
            start = p
            n = 1
    runs.append((start, n))
    return runs


def check_ids(ids: torch.Tensor, num_embeddings: int, table: str) -> None:
    """Raise ``ValueError`` unless every id is in ``[0, num_embeddings)`` (one min/max pass; skipped while PT2
    traces, where the values are not known)."""
    if is_pt2_compiling() or ids.numel() == 0:
        return
    lo_hi = torch.aminmax(ids)
    lo = int(lo_hi[0])
    hi = int(lo_hi[1])
    if lo < 0 or hi >= num_embeddings:
        raise ValueError(
            "table '" + table + "': ids must be in [0, " + str(num_embeddings) + "), got min " + str(lo)
            + " max " + str(hi)
        )


def all_ids_below(ids: torch.Tensor, bound: int) -> bool:
    """Whether every id is in ``[0, bound)``: one pass that lets callers skip per-table checks (``True`` while
    PT2 traces, and for meta tensors: no data to check)."""
    if is_pt2_compiling() or ids.numel() == 0 or ids.device.type == "meta":
        return True
    lo_hi = torch.aminmax(ids)
    return int(lo_hi[0]) >= 0 and int(lo_hi[1]) < bound
