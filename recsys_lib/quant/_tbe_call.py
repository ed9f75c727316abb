"""The FBGEMM inference TBE's lookup op called with the TBE's tensors, for dynamo (``torch.compile``, strict
``torch.export``): the TBE module's own forward reads its TorchScript-object members (the cache-location queue,
prefetch counters), which dynamo cannot trace; on CPU they hold nothing the lookup needs (no cache)."""

from typing import Optional

import torch
from torch import nn


def tbe_lookup_functional(
    tbe: nn.Module, indices: torch.Tensor, offsets: torch.Tensor, per_sample_weights: Optional[torch.Tensor]
) -> torch.Tensor:
    """What ``tbe(indices, offsets, per_sample_weights)`` returns for a CPU-host TBE without a cache or bounds
    checks (how the quantized collections build theirs); pruning remaps are applied as the TBE does."""
    if tbe.lxu_cache_weights.numel() > 0:  # type: ignore[union-attr, operator]
        raise ValueError("tbe_lookup_functional: TBEs with an LXU cache need the module's own forward")
    if tbe.index_remapping_hash_table.numel() > 0:  # type: ignore[union-attr, operator]
        indices = torch.ops.fbgemm.pruned_hashmap_lookup(
            indices, offsets, tbe.index_remapping_hash_table, tbe.index_remapping_hash_table_offsets)
    elif tbe.index_remappings_array.numel() > 0:  # type: ignore[union-attr, operator]
        indices = torch.ops.fbgemm.pruned_array_lookup(
            indices, offsets, tbe.index_remappings_array, tbe.index_remappings_array_offsets)
    return int_nbit_lookup(tbe, indices, offsets, per_sample_weights, tbe.weights_placements, tbe.weights_offsets,
                           tbe.weights_tys, tbe.D_offsets, tbe.total_D)


def int_nbit_lookup(
    tbe: nn.Module,
    indices: torch.Tensor,
    offsets: torch.Tensor,
    per_sample_weights: Optional[torch.Tensor],
    weights_placements: torch.Tensor,
    weights_offsets: torch.Tensor,
    weights_tys: torch.Tensor,
    D_offsets: torch.Tensor,
    total_D: int,
) -> torch.Tensor:
    """FBGEMM's inference lookup op over ``tbe``'s weights for the features the per-feature arrays describe
    (the TBE's own, or slices of them): ``(B, total_D)``."""
    return torch.ops.fbgemm.int_nbit_split_embedding_codegen_lookup_function(
        dev_weights=tbe.weights_host if tbe.host_size > 0 else tbe.weights_dev,
        uvm_weights=tbe.weights_uvm,
        weights_placements=weights_placements,
        weights_offsets=weights_offsets,
        weights_tys=weights_tys,
        D_offsets=D_offsets,
        total_D=total_D,
        max_int2_D=tbe.max_int2_D,
        max_int4_D=tbe.max_int4_D,
        max_int8_D=tbe.max_int8_D,
        max_float16_D=tbe.max_float16_D,
        max_float32_D=tbe.max_float32_D,
        indices=indices,
        offsets=offsets,
        pooling_mode=int(tbe.pooling_mode),
        indice_weights=per_sample_weights,
        output_dtype=tbe.output_dtype,
        lxu_cache_weights=tbe.lxu_cache_weights,
        lxu_cache_locations=torch.empty(0, dtype=torch.int32, device=indices.device),
        row_alignment=tbe.row_alignment,
        max_float8_D=tbe.max_float8_D,
        fp8_exponent_bits=tbe.fp8_exponent_bits,
        fp8_exponent_bias=tbe.fp8_exponent_bias,
    )
