"""What every inference sharding (TW / RW / CW, pooled and sequence) shares: shards per rank, local quantized
modules, the input split and the output combination. The strategy classes (``<x>_sharding/infer.py``) choose
``row_split`` (ids travel to the rank owning their rows; pooled partial sums are added) and ``pooled``.

Only ranks holding a shard ("active ranks") get a local module; all "ranks" are devices of this process.
"""

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._dist.all_to_one import EmbeddingsAllToOne
from recsys_lib.distributed._infer.modules import InferInputSplit, InferRowSplitPooledSum, InferSequenceGather
from recsys_lib.distributed._infer.shards import InferShard, shard_config, shard_weights, table_shards
from recsys_lib.distributed.embedding_sharding import EmbeddingShardingInfo
from recsys_lib.distributed.fused_params import (
    FUSED_PARAM_QUANT_STATE_DICT_SPLIT_SCALE_BIAS,
    FUSED_PARAM_REGISTER_TBE_BOOL,
    FUSED_PARAM_TBE_ROW_ALIGNMENT,
)
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig


@dataclass(frozen=True)
class LocalModuleOptions:
    """How the local quantized modules are built (from the unsharded module)."""

    is_weighted: bool = False
    output_dtype: torch.dtype = torch.float32
    register_tbes: bool = False
    row_alignment: int = 16
    split_scale_bias: bool = False  # local state dicts: weight + weight_qscale + weight_qbias


def local_module_fused_params(output_dtype: torch.dtype, register_tbes: bool, row_alignment: int,
                              split_scale_bias: bool = False) -> Dict[str, Any]:
    """The ``fused_params`` that ask :meth:`InferEmbeddingShardingBase.create_lookup` for these local modules."""
    return {"output_dtype": output_dtype, FUSED_PARAM_REGISTER_TBE_BOOL: register_tbes,
            FUSED_PARAM_TBE_ROW_ALIGNMENT: row_alignment,
            FUSED_PARAM_QUANT_STATE_DICT_SPLIT_SCALE_BIAS: split_scale_bias}


def options_from_fused_params(infos: List[EmbeddingShardingInfo],
                              fused_params: Optional[Dict[str, Any]]) -> LocalModuleOptions:
    """Local module options from ``fused_params`` (defaults: float32 outputs, no TBE registration, 16-byte
    rows); weighted when the tables' configs are."""
    fp = fused_params or {}
    dtype = fp.get("output_dtype", torch.float32)
    if not isinstance(dtype, torch.dtype):
        as_dtype = getattr(dtype, "as_dtype", None)  # an FBGEMM SparseType
        if as_dtype is None:
            raise ValueError(f"fused_params['output_dtype'] must be a torch.dtype or SparseType, got {dtype!r}")
        dtype = as_dtype()
    weighted = any(bool(getattr(i.embedding_config, "is_weighted", False)) for i in infos)
    return LocalModuleOptions(is_weighted=weighted, output_dtype=dtype,
                              register_tbes=bool(fp.get(FUSED_PARAM_REGISTER_TBE_BOOL, False)),
                              row_alignment=int(fp.get(FUSED_PARAM_TBE_ROW_ALIGNMENT, 16)),
                              split_scale_bias=bool(fp.get(FUSED_PARAM_QUANT_STATE_DICT_SPLIT_SCALE_BIAS, False)))


class InferEmbeddingShardingBase:
    """Inference sharding of a set of tables of one sharding type.

    Args:
        sharding_infos: the tables; ``embedding_config.num_embeddings`` is the stored (post-pruning) rows and
            ``param`` the table's stored quantized rows ``(R, row_bytes)`` uint8.
        env: ``world_size`` "ranks" (devices of this process).
        device: the device outputs are gathered on (default CPU).
    """

    row_split: bool = False
    pooled: bool = True
    # pooled, not row split: the dist that puts the active ranks' outputs side by side (the strategy's TorchRec
    # ``Infer*PooledEmbeddingDist``)
    concat_dist: Optional[Callable[[torch.device, int], nn.Module]] = None

    def __init__(
        self,
        sharding_infos: List[EmbeddingShardingInfo],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
    ) -> None:
        self._infos = list(sharding_infos)
        self._env = env
        self._world_size = env.world_size
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        by_rank: List[List[Tuple[EmbeddingShardingInfo, InferShard]]] = [[] for _ in range(self._world_size)]
        for info in self._infos:
            for s in table_shards(info.embedding_config, info.param_sharding, self._world_size):
                by_rank[s.rank].append((info, s))
        # One local module per active rank; a sequence module needs one width, so a rank holding shards of
        # several widths (column-wise EC) gets one local module per width.
        self._active: List[int] = []
        self._by_rank: List[List[Tuple[EmbeddingShardingInfo, InferShard]]] = []
        for r in range(self._world_size):
            widths = sorted({s.cols for _, s in by_rank[r]}) if not self.pooled else [0]
            for w in widths:
                group = [(i, s) for i, s in by_rank[r] if self.pooled or s.cols == w]
                if group:
                    self._active.append(r)
                    self._by_rank.append(group)
        self._lookups: Optional[nn.ModuleList] = None
        self._names: Dict[Tuple[str, str], str] = {}
        for info in self._infos:
            cfg = info.embedding_config
            names = cfg.embedding_names if cfg.embedding_names else cfg.feature_names
            for f, n in zip(cfg.feature_names, names):
                self._names[(cfg.name, f)] = n

    # ---- facts -------------------------------------------------------------------------------------------
    def active_ranks(self) -> List[int]:
        """The rank of each local module, in order (ranks holding no shard have none)."""
        return list(self._active)

    def embedding_names(self) -> List[str]:
        return [self._names[(i.embedding_config.name, f)] for i in self._infos for f in i.embedding_config.feature_names]

    def feature_names(self) -> List[str]:
        return [f for i in self._infos for f in i.embedding_config.feature_names]

    def embedding_dims(self) -> List[int]:
        return [i.embedding_config.embedding_dim for i in self._infos for _ in i.embedding_config.feature_names]

    # ---- modules -----------------------------------------------------------------------------------------
    def create_input_dist(self, device: Optional[torch.device] = None) -> InferInputSplit:
        """The input split: one KJT per active rank."""
        features: List[List[str]] = []
        lo: List[List[int]] = []
        hi: List[List[int]] = []
        for shards in self._by_rank:
            features.append([f for info, _ in shards for f in info.embedding_config.feature_names])
            lo.append([s.row_offset for info, s in shards for _ in info.embedding_config.feature_names])
            hi.append([s.row_offset + s.rows for info, s in shards for _ in info.embedding_config.feature_names])
        rows = {f: i.embedding_config.num_embeddings for i in self._infos for f in i.embedding_config.feature_names}
        tables = {f: i.embedding_config.name for i in self._infos for f in i.embedding_config.feature_names}
        return InferInputSplit(features, lo, hi, self.row_split, rows, tables)

    def create_lookup(
        self,
        device: Optional[torch.device] = None,
        fused_params: Optional[Dict[str, Any]] = None,
        feature_processor: Optional[Any] = None,
    ) -> nn.ModuleList:
        """One local quantized module per active rank over its shards (weights copied from ``param``).

        Args:
            device: where the local modules live (default: this sharding's device; ``meta`` tables stay on meta).
            fused_params: how to build them: ``"output_dtype"`` (``torch.dtype`` or FBGEMM ``SparseType``),
                ``FUSED_PARAM_REGISTER_TBE_BOOL``, ``FUSED_PARAM_TBE_ROW_ALIGNMENT`` (see :func:`local_module_fused_params`).
            feature_processor: not supported by quantized inference sharding (``ValueError`` if given).
        """
        if feature_processor is not None:
            raise ValueError(f"{type(self).__name__}: quantized inference sharding has no feature processors")
        self._lookups = self._build_lookups(options_from_fused_params(self._infos, fused_params), device)
        return self._lookups

    def _build_lookups(self, options: LocalModuleOptions, target: Optional[torch.device]) -> nn.ModuleList:
        from recsys_lib.quant.embedding_modules import EmbeddingBagCollection, EmbeddingCollection

        out: List[nn.Module] = []
        for shards in self._by_rank:
            configs: List[Any] = []
            weights: Dict[str, Tuple[torch.Tensor, Optional[torch.Tensor]]] = {}
            for info, s in shards:
                cfg = info.embedding_config
                local = shard_config(cfg, s, sum_pooling=self.row_split)
                common = dict(num_embeddings=local.num_embeddings, embedding_dim=local.embedding_dim,
                              name=cfg.name, data_type=cfg.data_type, feature_names=list(cfg.feature_names))
                if self.pooled:
                    configs.append(EmbeddingBagConfig(pooling=local.pooling, **common))  # type: ignore
                else:
                    configs.append(EmbeddingConfig(**common))  # type: ignore[arg-type]
                weights[cfg.name] = shard_weights(info.param, cfg, s)
            # A model built on meta (weights loaded later) shards on meta; otherwise on this sharding's device.
            on_meta = shards[0][0].param.device.type == "meta"
            device = torch.device("meta") if on_meta else (torch.device(target) if target is not None
                                                            else self._device)
            # Row shards pool partial sums: keep them in float32 until they are added (as the kernel would).
            dtype = torch.float32 if self.row_split else options.output_dtype
            if self.pooled:
                module: nn.Module = EmbeddingBagCollection(
                    configs, options.is_weighted, device, dtype, weights,  # type: ignore[arg-type]
                    register_tbes=options.register_tbes, row_alignment=options.row_alignment,
                    quant_state_dict_split_scale_bias=options.split_scale_bias)
            else:
                module = EmbeddingCollection(configs, device, False, dtype, weights,  # type: ignore[arg-type]
                                             register_tbes=options.register_tbes,
                                             row_alignment=options.row_alignment,
                                             quant_state_dict_split_scale_bias=options.split_scale_bias)
            out.append(module)
        return nn.ModuleList(out)

    def local_shards(self) -> List[List[Tuple[EmbeddingShardingInfo, InferShard]]]:
        """Per local module (in ``create_lookup`` order): its ``(table info, shard)`` pairs."""
        return [list(group) for group in self._by_rank]

    def _global_position(self) -> Dict[Tuple[str, int], int]:
        pos: Dict[Tuple[str, int], int] = {}
        for name, dim in zip(self.embedding_names(), self.embedding_dims()):
            for c in range(dim):
                pos[(name, c)] = len(pos)
        return pos

    def _local_columns(self, lookups: nn.ModuleList) -> List[List[Tuple[str, int]]]:
        """Per active rank, the ``(embedding name, column)`` of each column its local module outputs."""
        out: List[List[Tuple[str, int]]] = []
        for k, m in enumerate(lookups):
            col0 = {info.embedding_config.name: s.col_offset for info, s in self._by_rank[k]}
            cols: List[Tuple[str, int]] = []
            for f, t, d in zip(m._feature_order, m._table_per_feature, m._length_per_key):  # type: ignore
                name = self._names[(t, f)]
                cols.extend((name, col0[t] + j) for j in range(d))
            out.append(cols)
        return out

    def _created_lookups(self) -> nn.ModuleList:
        """The local modules of the last :meth:`create_lookup`, or (not created yet) their layout on meta."""
        if self._lookups is None:
            return self._build_lookups(options_from_fused_params(self._infos, None), torch.device("meta"))
        return self._lookups

    def create_output_dist(self, device: Optional[torch.device] = None) -> nn.Module:
        """Pooled: the per-rank outputs side by side (``EmbeddingsAllToOne``), or summed (row split).
        Sequence: ``InferSequenceGather``. Column order follows the local modules of :meth:`create_lookup`."""
        lookups = self._created_lookups()
        device = torch.device(device) if device is not None else self._device
        if self.pooled:
            if not self.row_split:
                if self.concat_dist is None:
                    return EmbeddingsAllToOne(device, len(self._active), cat_dim=1)
                return self.concat_dist(device, len(self._active))
            pos = self._global_position()
            columns = [[pos[c] for c in cols] for cols in self._local_columns(lookups)]
            return InferRowSplitPooledSum(columns, len(pos))
        return self._sequence_gather(lookups)

    def output_columns(self) -> List[Tuple[str, int]]:
        """``(embedding name, column)`` of each column the pooled output dist returns."""
        if self.row_split:
            return list(self._global_position())
        return [c for cols in self._local_columns(self._created_lookups()) for c in cols]

    def _sequence_gather(self, lookups: nn.ModuleList) -> InferSequenceGather:
        names: List[str] = []
        feats: List[str] = []
        sources: List[List[int]] = []
        slots: List[List[int]] = []
        for info in self._infos:
            cfg = info.embedding_config
            for f in cfg.feature_names:
                src: List[Tuple[int, int, int]] = []  # (order key, active index, slot)
                for k, shards in enumerate(self._by_rank):
                    rank_features = [g for i2, _ in shards for g in i2.embedding_config.feature_names]
                    for i2, s in shards:
                        if i2.embedding_config.name == cfg.name:
                            slot = rank_features.index(f)
                            src.append((s.row_offset if self.row_split else s.col_offset, k, slot))
                src.sort()
                names.append(self._names[(cfg.name, f)])
                feats.append(f)
                sources.append([k for _, k, _ in src])
                slots.append([slot for _, _, slot in src])
        return InferSequenceGather(names, feats, sources, slots, self.row_split)
