"""``HashZchManagedCollisionModule.remap``: one feature at a time, probe, then fix lengths / weights of misses."""

from typing import Dict, Optional

import torch
from torch import nn

from recsys_lib.sparse.jagged_tensor import JaggedTensor


def _compute_lengths_from_hits(lengths: torch.Tensor, hit_indices: torch.Tensor) -> torch.Tensor:
    """Ids kept per bag: ``(B,)`` lengths and ``(sum(L),)`` hit mask -> ``(B,)`` hits per bag."""
    hit = hit_indices
    bag = torch.repeat_interleave(torch.arange(lengths.numel(), device=lengths.device), lengths.to(torch.int64))
    return torch.zeros_like(lengths).index_add_(0, bag, hit.to(lengths.dtype))


@torch.no_grad()
def remap_features(
    mc: nn.Module,
    features: Dict[str, JaggedTensor],
    mutate_miss_lengths: bool,
    write_weights: Optional[torch.Tensor],
) -> Dict[str, JaggedTensor]:
    """Rows of every feature's ids; inserts in training, looks up in eval or for ``*<read_only_suffix>`` features.

    With ``disable_fallback`` ids that find no row are removed (or set to row 0 with ``no_bag``), their weights
    with them, and ``mutate_miss_lengths`` recounts each bag's ids.
    """
    readonly = not mc.training
    metadata = mc._hash_zch_metadata if mc.training else None
    identities_0 = mc._hash_zch_identities.data.clone() if mc._scalar_logger is not None else None
    metadata_0 = metadata.clone() if (mc._scalar_logger is not None and metadata is not None) else None
    offset_t = mc._output_global_offset_tensor
    if offset_t is not None and offset_t.device != mc.device and mc.device.type != "meta":
        mc._output_global_offset_tensor = offset_t = offset_t.to(mc.device)
    out: Dict[str, JaggedTensor] = {}
    for name, feature in features.items():
        read_only = readonly or name.lower().endswith(mc._read_only_suffix)
        input_metadata, threshold = mc._eviction_module(feature) if mc._eviction_module is not None else (None, -1)
        values = feature.values()
        opt_in_rands = None
        if 0 < mc._opt_in_prob < 100 and mc.training:
            opt_in_rands = (torch.rand_like(values, dtype=torch.float) * 100).to(torch.int32)
        orig_device = values.device
        values = values.to(mc.device) if values.device != mc.device and mc.device.type != "meta" else values
        values, local_sizes, offsets = mc.input_mapper(values=values, output_offset=offset_t)
        rows, evictions = mc._zero_collision_hash(
            input=values, identities=mc._hash_zch_identities, max_probe=mc._max_probe, circular_probe=True,
            exp_hours=-1, readonly=read_only, local_sizes=local_sizes, offsets=offsets,
            metadata=None if read_only else metadata, output_on_uvm=False, disable_fallback=mc._disable_fallback,
            _modulo_identity_DPRECATED=False, input_metadata=input_metadata, eviction_threshold=threshold,
            eviction_policy=mc.eviction_flag, opt_in_prob=mc._opt_in_prob,
            num_reserved_slots=mc.get_reserved_slots_per_bucket(), opt_in_rands=opt_in_rands,
            runtime_meta=None if mc._write_runtime_meta_dim > 0 else mc._hash_zch_runtime_meta,
        )
        meta_param = mc._hash_zch_runtime_meta
        if meta_param is not None and evictions is not None and evictions.numel() > 0:
            meta_param.data[evictions] = 0  # a new owner starts with fresh metadata
        if mc._track_id_freq and meta_param is not None and not read_only and not rows.is_cuda:
            owned = rows[rows >= 0]  # FBGEMM's CUDA insert counts these itself
            meta_param.data[:, 0].index_add_(0, owned, torch.ones_like(owned))
        if write_weights is not None:
            mc.update_runtime_meta(values, rows, write_weights)
        lengths: Optional[torch.Tensor] = feature.lengths()
        jt_offsets: Optional[torch.Tensor] = feature.offsets_or_none()
        weights = feature.weights_or_none()
        hit = rows != -1
        if mc._disable_fallback:
            if mc._no_bag:
                rows = torch.where(hit, rows, 0)
            else:
                rows = rows[hit]
                weights = weights[hit] if weights is not None else None
                if mutate_miss_lengths:
                    assert lengths is not None
                    lengths, jt_offsets = _compute_lengths_from_hits(lengths, hit), None
        if mc._scalar_logger is not None:
            assert identities_0 is not None
            mc._scalar_logger.update(
                identities_0=identities_0, identities_1=mc._hash_zch_identities, values=values, remapped_ids=rows,
                hit_indices=hit, evicted_emb_indices=evictions, metadata=metadata_0,
                eviction_config=mc._eviction_config,
            )
        if offset_t is not None:
            rows = rows + offset_t
        if evictions is not None and evictions.numel() > 0:
            mc._evicted_indices.append(evictions)
        out[name] = JaggedTensor(values=rows.to(orig_device), lengths=lengths, offsets=jt_offsets, weights=weights)
    if mc._scalar_logger is not None:
        mc._scalar_logger(run_type="train" if mc.training else "eval", identities=mc._hash_zch_identities.data)
    return out
