"""``ShardedMCCRemapper``: one rank's remap step of a sharded inference MCC (``torchrec.distributed.mc_modules``).

Given the KJT a rank receives for one sharding (features grouped by table, ``table_feature_splits`` features per
table, keys ``fns``), each table's managed-collision module of that rank remaps the table's ids to rows of the
whole table, and the rank's first row of the table (``shard_metadata[table] = [offset, size]``) is subtracted::

    features  keys [a, b | c]   splits [2, 1]   (tables t0: a, b; t1: c)
    out       keys [a, b, c]    values: t0's local rows of a's and b's ids, then t1's of c's; lengths and
                                weights unchanged
"""

from typing import Dict, List

import torch
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor


@public_at("recsys_lib.distributed.mc_modules")
class ShardedMCCRemapper(nn.Module):
    """Remaps one rank's share of a sharding's features (see the module docstring).

    Args:
        table_feature_splits: features per table, in the order of ``managed_collision_modules``.
        fns: feature names, grouped by table.
        managed_collision_modules: ``{table: this rank's MC module}``.
        shard_metadata: ``{table: [first row of this rank, rows]}``.
    """

    def __init__(
        self,
        table_feature_splits: List[int],
        fns: List[str],
        managed_collision_modules: nn.ModuleDict,
        shard_metadata: Dict[str, List[int]],
    ) -> None:
        super().__init__()
        if len(table_feature_splits) != len(managed_collision_modules) or sum(table_feature_splits) != len(fns):
            raise ValueError(f"ShardedMCCRemapper: {len(managed_collision_modules)} tables and {len(fns)} features, "
                             f"but feature splits {table_feature_splits}")
        self._table_feature_splits: List[int] = table_feature_splits
        self._fns: List[str] = fns
        self.zchs = managed_collision_modules
        self._shard_metadata: Dict[str, List[int]] = shard_metadata
        self._table_to_offset: Dict[str, int] = {t: int(md[0]) for t, md in shard_metadata.items()}
        self._feature_to_offset: Dict[str, int] = {}
        i = 0
        for table, n in zip(self.zchs.keys(), table_feature_splits):
            for f in fns[i:i + n]:
                self._feature_to_offset[f] = self._table_to_offset[table]
            i += n

    def forward(self, features: KeyedJaggedTensor) -> KeyedJaggedTensor:
        """``features`` (keys ``fns``) with every id replaced by its local row (see the module docstring)."""
        splits = features.split(self._table_feature_splits)
        values: List[torch.Tensor] = []
        for i, (table, mc) in enumerate(self.zchs.items()):
            kjt = splits[i]
            remapped = mc({table: JaggedTensor(values=kjt.values(), lengths=kjt.lengths())})
            values.append(self.global_to_local_index(remapped)[table].values())
        return KeyedJaggedTensor(keys=self._fns, values=torch.cat(values) if values else features.values(),
                                 lengths=features.lengths(), weights=features.weights_or_none())

    def global_to_local_index(self, jt_dict: Dict[str, JaggedTensor]) -> Dict[str, JaggedTensor]:
        """Rows of this rank: each table's global rows minus its first row (in place)."""
        for table, jt in jt_dict.items():
            jt._values = jt.values() - self._table_to_offset[table]
        return jt_dict
