"""BF16 fused tables on CPU, where FBGEMM's CPU TBE has no BF16 kernels: our own lookup + fused optimizer.

The tables stay in bfloat16 (the public weights are these tensors). A forward gathers the batch's unique rows of
each table to float32, pools them with ``torch.nn.functional.embedding_bag`` (float32 accumulation, as FBGEMM's
accelerator BF16 kernels), and a gradient hook on the gathered rows applies the fused optimizer to those rows in
float32 during backward, writing them back rounded to the nearest bfloat16 (FBGEMM's accelerator kernels round
stochastically by default). Update rules, per row with its summed gradient ``g``::

    EXACT_SGD               w -= lr * g
    EXACT_ADAGRAD           m += g * g                  w -= lr * g / (sqrt(m) + eps)      m: (R, D) float32
    EXACT_ROWWISE_ADAGRAD   m += mean(g * g)            w -= lr * g / (sqrt(m) + eps)      m: (R,) float32

Cost against an FP32 FBGEMM table: half the weight memory; per batch one ``unique`` + a gather of the touched
rows per table and a plain-PyTorch pool instead of the fused kernel (a few times slower on CPU).
"""

from typing import Any, Dict, List, Optional

import torch
from fbgemm_gpu.split_embedding_configs import EmbOptimType
from fbgemm_gpu.split_table_batched_embeddings_ops_common import PoolingMode

from recsys_lib.modules.embedding_configs import BaseEmbeddingConfig

SUPPORTED_OPTIMIZERS = (EmbOptimType.EXACT_SGD, EmbOptimType.EXACT_ADAGRAD, EmbOptimType.EXACT_ROWWISE_ADAGRAD)
_KWARGS = ("learning_rate", "eps", "weight_decay", "weight_decay_mode")


class CpuBf16TableBatchedEmbedding:
    """A group of BF16 tables on CPU with the interface the fused collections use from an FBGEMM TBE:
    ``__call__(indices, offsets, per_sample_weights=None)``, ``split_embedding_weights()``,
    ``split_optimizer_states()``, ``set_learning_rate``, ``set_optimizer_step``.

    Args:
        tables: the group's tables (``data_type`` BF16); weights initialised by each config's ``init_fn``.
        feature_table_map: table of each input feature.
        pooling_mode: SUM, MEAN or NONE (one row per id, ``offsets`` then only delimit the features).
        optimizer: one of ``SUPPORTED_OPTIMIZERS``.
        tbe_kwargs: ``learning_rate`` (default 0.01), ``eps`` (1e-8); ``weight_decay`` only 0.
    """

    def __init__(self, tables: List[BaseEmbeddingConfig], feature_table_map: List[int], pooling_mode: PoolingMode,
                 optimizer: EmbOptimType, tbe_kwargs: Dict[str, Any]) -> None:
        names = [t.name for t in tables]
        if optimizer not in SUPPORTED_OPTIMIZERS:
            raise ValueError(f"tables {names}: BF16 fused tables on CPU support {[o.name for o in SUPPORTED_OPTIMIZERS]}"
                             f", got {optimizer.name}")
        unknown = [k for k in tbe_kwargs if k not in _KWARGS]
        if unknown or float(tbe_kwargs.get("weight_decay", 0.0)) != 0.0:
            raise ValueError(f"tables {names}: BF16 fused tables on CPU take learning_rate and eps only (weight_decay"
                             f" 0); got {sorted(tbe_kwargs)}")
        self._opt = optimizer
        self._lr = float(tbe_kwargs.get("learning_rate", 0.01))
        self._eps = float(tbe_kwargs.get("eps", 1.0e-8))
        self._mode = pooling_mode
        self._feature_table_map = list(feature_table_map)
        self._weights: List[torch.Tensor] = []
        self._states: List[List[torch.Tensor]] = []
        for t in tables:
            w = torch.empty(t.num_embeddings, t.embedding_dim, dtype=torch.bfloat16)
            with torch.no_grad():
                assert t.init_fn is not None
                t.init_fn(w)
            self._weights.append(w)
            if optimizer == EmbOptimType.EXACT_ADAGRAD:
                self._states.append([torch.zeros(t.num_embeddings, t.embedding_dim)])
            elif optimizer == EmbOptimType.EXACT_ROWWISE_ADAGRAD:
                self._states.append([torch.zeros(t.num_embeddings)])
            else:
                self._states.append([])

    # ---- the TBE interface -------------------------------------------------------------------------------
    def split_embedding_weights(self) -> List[torch.Tensor]:
        """Per-table ``(R, D)`` bfloat16 weights (the storage itself)."""
        return list(self._weights)

    def split_optimizer_states(self) -> List[List[torch.Tensor]]:
        """Per table: ``[]`` (SGD), ``[(R, D)]`` (Adagrad) or ``[(R,)]`` (row-wise Adagrad), float32."""
        return [list(s) for s in self._states]

    def set_learning_rate(self, lr: float) -> None:
        self._lr = float(lr)

    def get_learning_rate(self) -> float:
        return self._lr

    def set_optimizer_step(self, step: int) -> None:
        return None  # SGD / Adagrad updates do not depend on the step

    def __call__(self, indices: torch.Tensor, offsets: torch.Tensor,
                 per_sample_weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Pooled ``(B, sum of the features' D)`` float32, or ``(N, D)`` rows for ``PoolingMode.NONE``."""
        num_features = len(self._feature_table_map)
        stride = (offsets.numel() - 1) // num_features
        track = torch.is_grad_enabled()
        rows_per_table: Dict[int, torch.Tensor] = {}
        inverse: Dict[int, List[torch.Tensor]] = {}
        bounds = offsets.tolist()
        for t in sorted(set(self._feature_table_map)):
            parts = [indices[bounds[f * stride]: bounds[(f + 1) * stride]]
                     for f in range(num_features) if self._feature_table_map[f] == t]
            uniq, inv = torch.unique(torch.cat(parts), return_inverse=True)
            rows = self._weights[t].index_select(0, uniq).float()
            if track:
                rows.requires_grad_(True)
                rows.register_hook(self._updater(t, uniq))
            rows_per_table[t] = rows
            inverse[t] = list(inv.split([p.numel() for p in parts]))
        outs: List[torch.Tensor] = []
        for f in range(num_features):
            t = self._feature_table_map[f]
            local = inverse[t].pop(0)
            if self._mode == PoolingMode.NONE:
                outs.append(rows_per_table[t].index_select(0, local))
                continue
            bag = offsets[f * stride: (f + 1) * stride + 1]
            lo = bounds[f * stride]
            w = None if per_sample_weights is None else per_sample_weights[lo: bounds[(f + 1) * stride]].float()
            outs.append(torch.nn.functional.embedding_bag(
                local, rows_per_table[t], bag - lo, mode="mean" if self._mode == PoolingMode.MEAN else "sum",
                per_sample_weights=w, include_last_offset=True))
        return torch.cat(outs, dim=0 if self._mode == PoolingMode.NONE else 1)

    # ---- the fused optimizer -----------------------------------------------------------------------------
    def _updater(self, t: int, uniq: torch.Tensor) -> Any:
        def hook(grad: torch.Tensor) -> torch.Tensor:
            self._update(t, uniq, grad)
            return grad

        return hook

    @torch.no_grad()
    def _update(self, t: int, ids: torch.Tensor, grad: torch.Tensor) -> None:
        w = self._weights[t].index_select(0, ids).float()
        if self._opt == EmbOptimType.EXACT_SGD:
            w -= self._lr * grad
        elif self._opt == EmbOptimType.EXACT_ADAGRAD:
            m = self._states[t][0]
            m.index_add_(0, ids, grad * grad)
            w -= self._lr * grad / (m.index_select(0, ids).sqrt() + self._eps)
        else:
            m = self._states[t][0]
            m.index_add_(0, ids, (grad * grad).mean(dim=1))
            w -= (self._lr / (m.index_select(0, ids).sqrt() + self._eps)).unsqueeze(1) * grad
        self._weights[t].index_copy_(0, ids, w.to(torch.bfloat16))
