"""FBGEMM's inference TBE taking bag lengths instead of offsets (TorchRec's
``IntNBitTableBatchedEmbeddingBagsCodegenWithLength``)."""

from typing import Any, Optional

import torch
from fbgemm_gpu.split_table_batched_embeddings_ops_inference import IntNBitTableBatchedEmbeddingBagsCodegen

from recsys_lib._public import public_at
from recsys_lib.ops.cumsum import complete_cumsum


@public_at("recsys_lib.distributed.quant_embedding_kernel")
class IntNBitTableBatchedEmbeddingBagsCodegenWithLength(IntNBitTableBatchedEmbeddingBagsCodegen):
    """``IntNBitTableBatchedEmbeddingBagsCodegen`` (same constructor) whose ``forward`` takes
    ``lengths (T*B,)`` and builds the offsets ``(T*B+1,)`` itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

    def forward(  # type: ignore[override]
        self,
        indices: torch.Tensor,
        lengths: torch.Tensor,
        per_sample_weights: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Pooled (or per-id) embeddings of ``indices`` grouped in bags of ``lengths``."""
        offsets = complete_cumsum(lengths)
        return super().forward(indices, offsets.to(indices.dtype), per_sample_weights)
