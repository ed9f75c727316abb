"""Triton batched kernel: TorchRec's ``fused_triton`` compute kernel.

TorchRec builds it on ``TritonTableBatchedEmbeddingBags``, a Triton TBE that ships only inside Meta's internal
FBGEMM tree (not in the ``fbgemm_gpu`` 1.8.0 packages) and runs only on CUDA devices. Constructing
:class:`TritonBatchedFusedEmbeddingBag` therefore raises ``RuntimeError`` naming CUDA and the missing module
unless both are present; with them, it drives that TBE like the FBGEMM fused kernels.
"""

import importlib
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from torch import nn
from torch.distributed import ProcessGroup

from recsys_lib._public import public_at
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._sharded.table_types import GroupedEmbeddingConfig
from recsys_lib.distributed._tbe.common import check_fused_dims, weights_precision
from recsys_lib.distributed._tbe.pooled import BaseBatchedEmbeddingBag
from recsys_lib.distributed.embedding_kernel import get_state_dict
from recsys_lib.optim.fused import EmptyFusedOptimizer, FusedOptimizer, FusedOptimizerModule

TRITON_TBE_MODULE = "deeplearning.fbgemm.fbgemm_gpu.fb.triton.triton_table_batched_embeddings"


def load_triton_tbe(kernel: str, device: Optional[torch.device]) -> Any:
    """The ``TritonTableBatchedEmbeddingBags`` class, or ``RuntimeError`` naming what is missing."""
    if device is None or torch.device(device).type != "cuda" or not torch.cuda.is_available():
        raise RuntimeError(f"{kernel} runs only on a CUDA device (Triton kernels), got device={device}")
    try:
        return importlib.import_module(TRITON_TBE_MODULE).TritonTableBatchedEmbeddingBags
    except ImportError:
        raise RuntimeError(
            f"{kernel} needs the Triton TBE {TRITON_TBE_MODULE}.TritonTableBatchedEmbeddingBags, which the "
            f"fbgemm_gpu packages do not ship; use the 'fused' compute kernel"
        ) from None


@public_at("recsys_lib.distributed.batched_embedding_kernel")
class TritonEmbeddingFusedOptimizer(FusedOptimizer):
    """Keyed view of a Triton TBE's in-backward optimizer (``"<table>.weight"`` plus its states).

    Args:
        config: the kernel's grouped config; ``emb_module``: the Triton TBE; ``pg``: unused without sharding
        metadata; ``create_for_table`` / ``param_weight_for_table``: restrict to one table;
        ``embedding_weights_by_table`` / ``all_optimizer_states``: precomputed ``split_embedding_weights()`` /
        ``split_optimizer_states()`` (one ``{state name: tensor}`` per table).
    """

    def __init__(
        self,
        config: GroupedEmbeddingConfig,
        emb_module: Any,
        pg: Optional[ProcessGroup] = None,
        create_for_table: Optional[str] = None,
        param_weight_for_table: Optional[nn.Parameter] = None,
        embedding_weights_by_table: Optional[List[torch.Tensor]] = None,
        all_optimizer_states: Optional[List[Dict[str, torch.Tensor]]] = None,
    ) -> None:
        self._emb_module = emb_module
        self._pg = pg
        weights = embedding_weights_by_table if embedding_weights_by_table is not None else emb_module.split_embedding_weights()
        states = all_optimizer_states if all_optimizer_states is not None else emb_module.split_optimizer_states()
        params: Dict[str, Any] = {}
        state: Dict[Any, Dict[str, Any]] = {}
        for i, table in enumerate(config.embedding_tables):
            if create_for_table is not None and table.name != create_for_table:
                continue
            param = param_weight_for_table if param_weight_for_table is not None else weights[i]
            params[f"{table.name}.weight"] = param
            table_states = states[i] if i < len(states) else {}
            state[param] = {f"{table.name}.{k}": v for k, v in table_states.items()}
        lr = float(emb_module.get_learning_rate()) if hasattr(emb_module, "get_learning_rate") else 0.0
        super().__init__(params, state, [{"params": list(params.values()), "lr": lr}])

    def _push_lr(self) -> None:
        if hasattr(self._emb_module, "set_learning_rate"):
            self._emb_module.set_learning_rate(float(self.param_groups[0]["lr"]))

    def zero_grad(self, set_to_none: bool = False) -> None:
        self._push_lr()

    def step(self, closure: Any = None) -> None:
        self._push_lr()


@public_at("recsys_lib.distributed.batched_embedding_kernel")
class TritonBatchedFusedEmbeddingBag(BaseBatchedEmbeddingBag, FusedOptimizerModule):
    """Pooled fused kernel over a Triton TBE (``compute_kernel="fused_triton"``); CUDA only (module doc)."""

    def __init__(
        self,
        config: GroupedEmbeddingConfig,
        pg: Optional[ProcessGroup] = None,
        device: Optional[torch.device] = None,
        sharding_type: Optional[Any] = None,
        env: Optional[ShardingEnv] = None,
    ) -> None:
        tbe_cls = load_triton_tbe(type(self).__name__, device)
        super().__init__(config, pg, device, sharding_type)
        self._env = env
        check_fused_dims(self._layout)
        fused = dict(config.fused_params or {})
        from fbgemm_gpu.split_embedding_configs import EmbOptimType, SparseType

        output_dtype = fused.get("output_dtype", SparseType.FP32)
        self._emb_module = tbe_cls(
            embedding_specs=list(zip(self._layout.rows, self._layout.cols)),
            feature_table_map=list(self._layout.feature_table_map),
            weights_precision=weights_precision(config).as_dtype(),
            output_dtype=output_dtype.as_dtype(),
            stochastic_rounding=fused.get("stochastic_rounding", True),
            learning_rate=fused.get("learning_rate", 0.01),
            eps=fused.get("eps", 0.1),
            optimizer=fused.get("optimizer", EmbOptimType.EXACT_SGD),
            device=device,
        )
        self._supports_vbe = True
        self._optim = TritonEmbeddingFusedOptimizer(config, self._emb_module, pg)
        with torch.no_grad():
            for table, weight in zip(config.embedding_tables, self.split_embedding_weights()):
                weight.uniform_(table.get_weight_init_min(), table.get_weight_init_max())

    @property
    def emb_module(self) -> Any:
        return self._emb_module

    @property
    def fused_optimizer(self) -> FusedOptimizer:
        return self._optim

    def split_embedding_weights(self) -> List[torch.Tensor]:
        return list(self._emb_module.split_embedding_weights())

    def state_dict(  # type: ignore[override]
        self, destination: Optional[Dict[str, Any]] = None, prefix: str = "", keep_vars: bool = False
    ) -> Dict[str, Any]:
        weights = [w if keep_vars else w.detach() for w in self.split_embedding_weights()]
        return get_state_dict(self._config.embedding_tables, weights, self._pg, destination, prefix)

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, torch.Tensor]]:
        yield from ()

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, nn.Parameter]]:
        for table, weight in zip(self._config.embedding_tables, self.split_embedding_weights()):
            param = nn.Parameter(weight)
            param._in_backward_optimizers = [EmptyFusedOptimizer()]  # type: ignore[attr-defined]
            yield (f"{prefix}." if prefix and not prefix.endswith(".") else prefix) + f"{table.name}.weight", param

    def flush(self) -> None:
        """Nothing is cached outside the device weights."""

    def purge(self) -> None:
        """Nothing is cached outside the device weights."""
