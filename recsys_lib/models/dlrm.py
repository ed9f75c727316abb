"""DLRM and its DCN / projection variants (``torchrec.models.dlrm``).

Data flow (``B`` batch, ``F`` sparse features, ``D`` embedding dim shared by all tables)::

    dense_features (B, in) ──dense_arch──> (B, D) ─────────┐
    sparse_features KJT ──sparse_arch──> (B, F, D) ────────┴─inter_arch─> (B, I) ─over_arch─> logits (B, out)

    DLRM             I = D + F + choose(F, 2)   pairwise dot products
    DLRM_DCN         I = (F + 1) * D            low-rank cross network
    DLRM_Projection  I = D + p1 * p2            dots between two MLP projections

State-dict keys follow TorchRec's (``sparse_arch.embedding_bag_collection.embedding_bags.<table>.weight``,
``dense_arch.model._mlp.<i>._linear.*``, ``over_arch.model.0._mlp.<i>._linear.*``, ``over_arch.model.1.*``), so
TorchRec checkpoints load with ``strict=True``.
"""

from typing import List, Optional, Tuple, Union

import torch
from torch import nn
from torch.nn.modules import module as _module_mod

from recsys_lib.datasets.utils import Batch
from recsys_lib.models._dlrm_dense_arches import (  # noqa: F401  (public re-exports)
    DenseArch,
    InteractionArch,
    InteractionDCNArch,
    InteractionProjectionArch,
    OverArch,
    _is_fx_tracing,
    choose,
)
from recsys_lib.models._model_input import loss_and_prediction
from recsys_lib.modules.crossnet import LowRankCrossNet
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.pt2.checks import is_pt2_compiling
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def _shared_embedding_dim(owner: str, embedding_bag_collection: nn.Module) -> int:
    configs = embedding_bag_collection.embedding_bag_configs()
    if len(configs) == 0:
        raise ValueError(f"{owner}: the embedding bag collection has no tables")
    dims = {c.name: c.embedding_dim for c in configs}
    if len(set(dims.values())) != 1:
        raise ValueError(f"{owner}: all tables must share one embedding_dim, got {dims}")
    return configs[0].embedding_dim


def _overlap_allowed(sparse_arch: nn.Module) -> bool:
    """Eager mode, a plain ``SparseArch`` and no hooks that calling it would run: then ``DLRM`` may start the
    lookup before the bottom MLP (graph capture keeps TorchRec's call order)."""
    if type(sparse_arch) is not SparseArch or sparse_arch._forward_hooks or sparse_arch._forward_pre_hooks:
        return False
    if _module_mod._global_forward_hooks or _module_mod._global_forward_pre_hooks:
        return False
    return not (_is_fx_tracing() or is_pt2_compiling())


def _on_device(module: nn.Module, device: Optional[torch.device]) -> nn.Module:
    # Modules without a device argument (interaction buffer, cross net) follow dense_device; on "meta"
    # they stay on the default device so that later materialisation cannot leave them uninitialised.
    if device is None or torch.device(device).type == "meta":
        return module
    return module.to(device)


class SparseArch(nn.Module):
    """Pools every sparse feature with the EmbeddingBagCollection and stacks them to ``(B, F, D)``.

    Args:
        embedding_bag_collection: the tables; all must have the same ``embedding_dim``.

    Example::

        ebc = EmbeddingBagCollection(tables=[EmbeddingBagConfig(name="t1", embedding_dim=4,
                                                                 num_embeddings=10, feature_names=["f1", "f2"])])
        arch = SparseArch(ebc)
        out = arch(kjt)  # (B, 2, 4)
    """

    def __init__(self, embedding_bag_collection: EmbeddingBagCollection) -> None:
        super().__init__()
        self.D: int = _shared_embedding_dim("SparseArch", embedding_bag_collection)
        self.embedding_bag_collection: EmbeddingBagCollection = embedding_bag_collection
        self._sparse_feature_names: List[str] = [
            name for conf in embedding_bag_collection.embedding_bag_configs() for name in conf.feature_names
        ]
        self.F: int = len(self._sparse_feature_names)

    def forward(self, features: KeyedJaggedTensor) -> torch.Tensor:
        """``features``: KJT with stride ``B`` -> ``(B, F, D)`` in table / feature order."""
        return self._stack(self.embedding_bag_collection(features).values())

    def _stack(self, pooled: torch.Tensor) -> torch.Tensor:
        """``(B, F * D)`` pooled values, one ``D``-block per feature -> ``(B, F, D)``."""
        return pooled.reshape(pooled.size(0), self.F, self.D)

    @property
    def sparse_feature_names(self) -> List[str]:
        return self._sparse_feature_names


class DLRM(nn.Module):
    """Deep Learning Recommendation Model (Naumov et al., 2019).

    Args:
        embedding_bag_collection: tables for the sparse features (one shared ``embedding_dim`` ``D``).
        dense_in_features: number of dense features.
        dense_arch_layer_sizes: bottom-MLP widths; the last must equal ``D``.
        over_arch_layer_sizes: top-MLP widths (at least two); the last is the number of logits.
        dense_device: device of the dense parameters (the EBC keeps its own).

    Example::

        model = DLRM(ebc, dense_in_features=13, dense_arch_layer_sizes=[32, D], over_arch_layer_sizes=[16, 1])
        logits = model(dense_features, kjt)  # (B, 1)
    """

    def __init__(
        self,
        embedding_bag_collection: EmbeddingBagCollection,
        dense_in_features: int,
        dense_arch_layer_sizes: List[int],
        over_arch_layer_sizes: List[int],
        dense_device: Optional[torch.device] = None,
    ) -> None:
        super().__init__()
        embedding_dim = _shared_embedding_dim(type(self).__name__, embedding_bag_collection)
        if len(dense_arch_layer_sizes) == 0 or dense_arch_layer_sizes[-1] != embedding_dim:
            raise ValueError(
                f"{type(self).__name__}: the last dense_arch_layer_sizes entry must equal the embedding dim "
                f"{embedding_dim}, got dense_arch_layer_sizes={list(dense_arch_layer_sizes)}"
            )
        self.sparse_arch: SparseArch = SparseArch(embedding_bag_collection)
        num_sparse_features = len(self.sparse_arch.sparse_feature_names)
        self.dense_arch = DenseArch(dense_in_features, dense_arch_layer_sizes, device=dense_device)
        self.inter_arch: nn.Module = _on_device(InteractionArch(num_sparse_features), dense_device)
        over_in = embedding_dim + choose(num_sparse_features, 2) + num_sparse_features
        self.over_arch = OverArch(over_in, over_arch_layer_sizes, device=dense_device)
        self._dense_path_compiled: bool = False

    def compile_dense_path(self, compile_mode: str = "reduce-overhead") -> None:
        """Wrap ``dense_arch``, ``inter_arch`` and ``over_arch`` in ``torch.compile(mode=compile_mode)``.

        On CUDA the default mode captures CUDA graphs of the small dense kernels; on CPU it compiles them. The
        sparse arch stays eager (its shapes change per batch). Idempotent: a second call does nothing.
        """
        if self._dense_path_compiled:
            return
        self.dense_arch = torch.compile(self.dense_arch, mode=compile_mode)  # type: ignore[assignment]
        self.inter_arch = torch.compile(self.inter_arch, mode=compile_mode)  # type: ignore[assignment]
        self.over_arch = torch.compile(self.over_arch, mode=compile_mode)  # type: ignore[assignment]
        self._dense_path_compiled = True

    def forward(self, dense_features: torch.Tensor, sparse_features: KeyedJaggedTensor) -> torch.Tensor:
        """``dense_features``: ``(B, dense_in_features)``; ``sparse_features``: KJT of stride ``B``.

        Returns logits ``(B, over_arch_layer_sizes[-1])``.
        """
        if torch.jit.is_scripting():
            embedded_dense = self.dense_arch(dense_features)  # (B, D)
            embedded_sparse = self.sparse_arch(sparse_features)  # (B, F, D)
        elif _overlap_allowed(self.sparse_arch):
            embedded_dense, embedded_sparse = self._sparse_lookup_first(dense_features, sparse_features)
        else:
            embedded_dense = self.dense_arch(dense_features)
            embedded_sparse = self.sparse_arch(sparse_features)
        concatenated_dense = self.inter_arch(dense_features=embedded_dense, sparse_features=embedded_sparse)
        return self.over_arch(concatenated_dense)


    @torch.jit.unused
    def _sparse_lookup_first(
        self, dense_features: torch.Tensor, sparse_features: KeyedJaggedTensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(dense_arch(dense), sparse_arch(sparse))`` with the lookup started first: a sharded EBC returns a
        lazy awaitable, so its output all-to-all travels while the bottom MLP runs, and autograd (which runs
        the later-created node first) issues the gradient all-to-all, runs the bottom MLP's backward, and only
        then waits for it. Same values as the plain order."""
        pooled = self.sparse_arch.embedding_bag_collection(sparse_features)
        embedded_dense = self.dense_arch(dense_features)
        return embedded_dense, self.sparse_arch._stack(pooled.values())


class DLRM_DCN(DLRM):
    """DLRM whose interaction is a low-rank cross network (DCN-v2) over ``cat(dense, sparse)``.

    Args:
        embedding_bag_collection: as for :class:`DLRM`, and so are ``dense_in_features``,
            ``dense_arch_layer_sizes``, ``over_arch_layer_sizes`` and ``dense_device``.
        dcn_num_layers: number of cross layers.
        dcn_low_rank_dim: rank of each cross layer.

    The over arch takes ``(F + 1) * D`` inputs.
    """

    def __init__(
        self,
        embedding_bag_collection: EmbeddingBagCollection,
        dense_in_features: int,
        dense_arch_layer_sizes: List[int],
        over_arch_layer_sizes: List[int],
        dcn_num_layers: int,
        dcn_low_rank_dim: int,
        dense_device: Optional[torch.device] = None,
    ) -> None:
        super().__init__(
            embedding_bag_collection, dense_in_features, dense_arch_layer_sizes, over_arch_layer_sizes, dense_device
        )
        embedding_dim = self.sparse_arch.D
        num_sparse_features = self.sparse_arch.F
        crossnet = LowRankCrossNet(
            in_features=(num_sparse_features + 1) * embedding_dim,
            num_layers=dcn_num_layers,
            low_rank=dcn_low_rank_dim,
        )
        self.inter_arch = _on_device(InteractionDCNArch(num_sparse_features, crossnet), dense_device)
        over_in = (num_sparse_features + 1) * embedding_dim
        self.over_arch = OverArch(over_in, over_arch_layer_sizes, device=dense_device)


class DLRM_Projection(DLRM):
    """DLRM whose interaction takes dot products between two MLP projections of ``cat(dense, sparse)``.

    Args:
        embedding_bag_collection: as for :class:`DLRM`, and so are ``dense_in_features``,
            ``dense_arch_layer_sizes``, ``over_arch_layer_sizes`` and ``dense_device``.
        interaction_branch1_layer_sizes: widths of branch 1; the last must be a multiple ``p1 * D``.
        interaction_branch2_layer_sizes: widths of branch 2; the last must be a multiple ``p2 * D``.

    The over arch takes ``D + p1 * p2`` inputs.
    """

    def __init__(
        self,
        embedding_bag_collection: EmbeddingBagCollection,
        dense_in_features: int,
        dense_arch_layer_sizes: List[int],
        over_arch_layer_sizes: List[int],
        interaction_branch1_layer_sizes: List[int],
        interaction_branch2_layer_sizes: List[int],
        dense_device: Optional[torch.device] = None,
    ) -> None:
        super().__init__(
            embedding_bag_collection, dense_in_features, dense_arch_layer_sizes, over_arch_layer_sizes, dense_device
        )
        embedding_dim = self.sparse_arch.D
        num_sparse_features = self.sparse_arch.F
        for name, sizes in (
            ("interaction_branch1_layer_sizes", interaction_branch1_layer_sizes),
            ("interaction_branch2_layer_sizes", interaction_branch2_layer_sizes),
        ):
            if len(sizes) == 0 or sizes[-1] % embedding_dim != 0:
                raise ValueError(
                    f"DLRM_Projection: the last {name} entry must be a multiple of the embedding dim "
                    f"{embedding_dim}, got {list(sizes)}"
                )
        branch_in = num_sparse_features * embedding_dim + dense_arch_layer_sizes[-1]
        self.inter_arch = InteractionProjectionArch(
            num_sparse_features=num_sparse_features,
            interaction_branch1=DenseArch(branch_in, interaction_branch1_layer_sizes, device=dense_device),
            interaction_branch2=DenseArch(branch_in, interaction_branch2_layer_sizes, device=dense_device),
        )
        p1 = interaction_branch1_layer_sizes[-1] // embedding_dim
        p2 = interaction_branch2_layer_sizes[-1] // embedding_dim
        self.over_arch = OverArch(dense_arch_layer_sizes[-1] + p1 * p2, over_arch_layer_sizes, device=dense_device)


class DLRMTrain(nn.Module):
    """Wraps a DLRM with a binary cross-entropy-with-logits loss for training loops and pipelines.

    Args:
        dlrm_module: the model; its logits must be ``(B, 1)``.

    ``forward(batch)`` returns ``(loss, (loss.detach(), logits.detach(), labels.detach()))`` with
    ``logits`` squeezed to ``(B,)``.
    """

    def __init__(self, dlrm_module: DLRM) -> None:
        super().__init__()
        self.model = dlrm_module
        self.loss_fn: nn.Module = nn.BCEWithLogitsLoss()

    def forward(self, batch: Batch) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        logits = self.model(batch.dense_features, batch.sparse_features).squeeze(-1)  # (B,)
        loss = self.loss_fn(logits, batch.labels.float())
        return loss, (loss.detach(), logits.detach(), batch.labels.detach())


class DLRMWrapper(DLRM):
    """``DLRM`` on one ``ModelInput`` batch: ``(loss, logits)`` while training, the logits otherwise."""

    def forward(  # type: ignore[override]
        self, model_input: "ModelInput"  # noqa: F821 - recsys_lib.distributed.test_utils' batch type
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        pred = super().forward(dense_features=model_input.float_features, sparse_features=model_input.idlist_features)
        return loss_and_prediction(pred, model_input.label, self.training)
