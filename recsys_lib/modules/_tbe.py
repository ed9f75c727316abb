"""FBGEMM table-batched embedding (TBE) plumbing for the fused single-device collections.

* :func:`convert_optimizer_type_and_kwargs` maps a torch/recsys_lib optimizer class + kwargs to FBGEMM's
  ``EmbOptimType`` + TBE kwargs (``lr`` → ``learning_rate``; torch-only kwargs at their defaults dropped).
* :func:`build_tbe` creates one ``SplitTableBatchedEmbeddingBagsCodegen`` over a group of tables.
* :class:`TBEFusedOptimizer` exposes the tables' optimizer state keyed by parameter FQN.

On CPU FBGEMM runs only ``EXACT_SGD``, ``EXACT_ADAGRAD``, ``EXACT_ROWWISE_ADAGRAD`` (and
``EMAINPLACE_ROWWISE_ADAGRAD``); other optimizers are rejected with a ``ValueError`` naming them.
"""

import inspect
from typing import Any, Dict, List, Optional, Tuple, Type

import torch
from fbgemm_gpu.split_embedding_configs import EmbOptimType
from fbgemm_gpu.split_table_batched_embeddings_ops_common import EmbeddingLocation, PoolingMode
from fbgemm_gpu.split_table_batched_embeddings_ops_training import (
    ComputeDevice,
    SplitTableBatchedEmbeddingBagsCodegen,
    WeightDecayMode,
)

from recsys_lib.modules._bf16_tbe import CpuBf16TableBatchedEmbedding
from recsys_lib.modules.embedding_configs import BaseEmbeddingConfig, data_type_to_sparse_type
from recsys_lib.types import DataType
from recsys_lib.optim._emb_opt_type import convert_optimizer_kwargs_to_fbgemm, optimizer_type_to_emb_opt_type
from recsys_lib.optim.fused import EmptyFusedOptimizer, FusedOptimizer

CPU_OPTIMIZERS = (
    EmbOptimType.EXACT_SGD,
    EmbOptimType.EXACT_ADAGRAD,
    EmbOptimType.EXACT_ROWWISE_ADAGRAD,
    EmbOptimType.EMAINPLACE_ROWWISE_ADAGRAD,
)

# torch.optim kwargs FBGEMM has no equivalent for: accepted only at these (no-op) values.
_TORCH_ONLY_DEFAULTS: Dict[str, Any] = {
    "lr_decay": 0.0,
    "initial_accumulator_value": 0.0,
    "maximize": False,
    "foreach": None,
    "differentiable": False,
    "fused": None,
    "capturable": False,
    "dampening": 0.0,
    "nesterov": False,
    "amsgrad": False,
}


def _tbe_kwarg_names() -> List[str]:
    return list(inspect.signature(SplitTableBatchedEmbeddingBagsCodegen.__init__).parameters)


def convert_optimizer_type_and_kwargs(
    optimizer_type: Type[torch.optim.Optimizer], optimizer_kwargs: Dict[str, Any]
) -> Tuple[EmbOptimType, Dict[str, Any]]:
    """``(torch.optim.Adagrad, {"lr": 0.1})`` → ``(EmbOptimType.EXACT_ADAGRAD, {"learning_rate": 0.1})``.

    Raises ``ValueError`` for an optimizer FBGEMM cannot fuse, or a kwarg with no FBGEMM meaning set to a
    non-default value (e.g. ``momentum=0.9`` for SGD, ``lr_decay=0.1`` for Adagrad).
    """
    opt = optimizer_type_to_emb_opt_type(optimizer_type)
    kwargs = convert_optimizer_kwargs_to_fbgemm(dict(optimizer_kwargs))
    name = getattr(optimizer_type, "__name__", str(optimizer_type))
    if "betas" in kwargs:
        kwargs["beta1"], kwargs["beta2"] = kwargs.pop("betas")
    if opt == EmbOptimType.EXACT_SGD and kwargs.get("momentum", 0.0) not in (0, 0.0):
        raise ValueError(f"{name}: momentum={kwargs['momentum']} cannot be fused (FBGEMM EXACT_SGD has no momentum)")
    if opt == EmbOptimType.EXACT_SGD:
        kwargs.pop("momentum", None)
    allowed = set(_tbe_kwarg_names())
    out: Dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in _TORCH_ONLY_DEFAULTS:
            if value != _TORCH_ONLY_DEFAULTS[key]:
                raise ValueError(f"{name}: {key}={value!r} has no FBGEMM equivalent; only "
                                 f"{_TORCH_ONLY_DEFAULTS[key]!r} can be fused")
            continue
        if key not in allowed or key in ("embedding_specs", "feature_table_map", "optimizer", "pooling_mode"):
            raise ValueError(f"{name}: unknown fused optimizer kwarg {key!r}")
        out[key] = value
    # torch.optim's weight_decay is L2 (added to the gradient); FBGEMM's default mode would ignore it.
    if out.get("weight_decay", 0.0) != 0.0 and "weight_decay_mode" not in out:
        out["weight_decay_mode"] = WeightDecayMode.L2
    return opt, out


def check_cpu_optimizer(opt: EmbOptimType, device: torch.device, optimizer_type: Any) -> None:
    """Raise ``ValueError`` if FBGEMM has no CPU kernel for ``opt`` and ``device`` is the CPU."""
    if device.type == "cpu" and opt not in CPU_OPTIMIZERS:
        name = getattr(optimizer_type, "__name__", str(optimizer_type))
        raise ValueError(
            f"optimizer {name} (FBGEMM {opt.name}) has no CPU kernel; on CPU use one of "
            f"{[o.name for o in CPU_OPTIMIZERS]} (torch.optim.SGD, torch.optim.Adagrad, RowWiseAdagrad)"
        )


def build_tbe(
    tables: List[BaseEmbeddingConfig],
    feature_table_map: List[int],
    pooling_mode: PoolingMode,
    opt: EmbOptimType,
    tbe_kwargs: Dict[str, Any],
    device: torch.device,
    location: Optional[EmbeddingLocation],
) -> SplitTableBatchedEmbeddingBagsCodegen:
    """One TBE over ``tables``; feature ``i`` of its input reads table ``feature_table_map[i]``."""
    if device.type == "cpu":
        loc, compute = EmbeddingLocation.HOST, ComputeDevice.CPU
    elif device.type == "cuda":
        loc, compute = (location if location is not None else EmbeddingLocation.DEVICE), ComputeDevice.CUDA
    else:
        raise ValueError(f"fused embedding modules run on cpu or cuda, got device {device}")
    for t in tables:
        if t.embedding_dim % 4 != 0:
            raise ValueError(f"table {t.name!r}: FBGEMM's fused kernel needs embedding_dim to be a multiple of 4, "
                             f"got {t.embedding_dim}")
    precisions = {t.data_type for t in tables}
    if len(precisions) != 1:
        raise ValueError(f"one TBE needs one data_type, got {sorted(str(p) for p in precisions)}")
    if device.type == "cpu" and tables[0].data_type == DataType.BF16:
        # FBGEMM's CPU TBE has no BF16 kernels: bf16 storage with a float32 lookup/optimizer of our own.
        return CpuBf16TableBatchedEmbedding(tables, feature_table_map, pooling_mode, opt, tbe_kwargs)  # type: ignore
    tbe = SplitTableBatchedEmbeddingBagsCodegen(
        embedding_specs=[(t.num_embeddings, t.embedding_dim, loc, compute) for t in tables],
        feature_table_map=feature_table_map,
        optimizer=opt,
        pooling_mode=pooling_mode,
        weights_precision=data_type_to_sparse_type(tables[0].data_type),
        device=device,
        table_names=[t.name for t in tables],
        **tbe_kwargs,
    )
    with torch.no_grad():
        for t, w in zip(tables, tbe.split_embedding_weights()):
            assert t.init_fn is not None
            t.init_fn(w)
    return tbe


def weight_parameters(tbe: SplitTableBatchedEmbeddingBagsCodegen) -> List[torch.nn.Parameter]:
    """Per-table ``(R, D)`` parameters sharing storage with the TBE's weights (updated inside backward)."""
    out: List[torch.nn.Parameter] = []
    for w in tbe.split_embedding_weights():
        p = torch.nn.Parameter(w.detach(), requires_grad=True)
        # Marks the weight as updated in backward: dense optimizers skip it (in_backward_optimizer_filter).
        p._in_backward_optimizers = [EmptyFusedOptimizer()]  # type: ignore[attr-defined]
        out.append(p)
    return out


class TBEFusedOptimizer(FusedOptimizer):
    """The optimizer fused into one or more TBEs, keyed by parameter FQN.

    State is ``{"<table>.weight": {"<table>.weight.momentum_1": tensor}}`` as TorchRec's unsharded fused modules
    write it (views into the TBE's own buffers, so loading a state dict updates the kernel). ``step()`` only pushes a changed ``param_groups[0]["lr"]`` into the kernels.
    """

    def __init__(
        self,
        tbes: List[SplitTableBatchedEmbeddingBagsCodegen],
        params_per_tbe: List[List[Tuple[str, str, torch.nn.Parameter]]],
        learning_rate: float,
    ) -> None:
        params: Dict[str, torch.Tensor] = {}
        state: Dict[Any, Any] = {}
        for tbe, named in zip(tbes, params_per_tbe):
            opt_states = tbe.split_optimizer_states()
            for (fqn, table, p), table_states in zip(named, opt_states):
                params[fqn] = p
                state[p] = {f"{fqn}.momentum_{i + 1}": s for i, s in enumerate(table_states)}
        groups = [{"params": list(params.values()), "lr": learning_rate}]
        super().__init__(params, state, groups)
        self._tbes = tbes
        self._lr = learning_rate

    def step(self, closure: Optional[Any] = None) -> None:  # type: ignore[override]
        lr = float(self.param_groups[0]["lr"])
        if lr != self._lr:
            for tbe in self._tbes:
                tbe.set_learning_rate(lr)
            self._lr = lr

    def zero_grad(self, set_to_none: bool = False) -> None:
        return None

    def set_optimizer_step(self, step: int) -> None:
        for tbe in self._tbes:
            tbe.set_optimizer_step(step)
