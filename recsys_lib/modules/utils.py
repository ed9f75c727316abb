"""Small helpers used by the embedding collections and their sharded versions, and by MLP-style modules."""

import copy
import inspect
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Union

import torch
from torch import nn

from recsys_lib.ops.permute import permute_1d_segments_reference
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor
from recsys_lib.streamable import Multistreamable
from recsys_lib.types import CacheMixin


def _split_rows_to_jts(
    embeddings: torch.Tensor,
    values: torch.Tensor,
    lengths_per_key: List[torch.Tensor],
    length_per_key: List[int],
    embedding_names: List[str],
    need_indices: bool,
    features_to_permute_indices: Optional[Dict[str, List[int]]],
) -> Dict[str, JaggedTensor]:
    if len(embedding_names) != len(length_per_key):
        raise ValueError(f"construct_jagged_tensors: {len(embedding_names)} embedding names for "
                         f"{len(length_per_key)} features")
    rows = list(embeddings.split(length_per_key, dim=0))
    ids = list(values.split(length_per_key, dim=0))
    skip: Dict[int, bool] = {}
    merged: Dict[int, torch.Tensor] = {}
    if features_to_permute_indices is not None:
        position = {n: i for i, n in enumerate(embedding_names)}
        for name, pieces in features_to_permute_indices.items():
            if name not in position:
                raise ValueError(f"construct_jagged_tensors: features_to_permute_indices names {name!r}, which is "
                                 f"not among {embedding_names}")
            # The feature's rows are split column-wise over several positions: glue them back in column order.
            merged[position[name]] = torch.cat([rows[p] for p in pieces], dim=1)
            for p in pieces:
                if p != position[name]:
                    skip[p] = True
    out: Dict[str, JaggedTensor] = {}
    for i, name in enumerate(embedding_names):
        if i in skip:
            continue
        out[name] = JaggedTensor(
            values=merged.get(i, rows[i]), lengths=lengths_per_key[i], weights=ids[i] if need_indices else None
        )
    return out


@dataclass
class SequenceVBEContext(Multistreamable):
    """How to put sequence-embedding rows of a variable-batch (VBE) lookup back in feature-major order.

    Attributes:
        recat: order of the row segments, ``(S,)``.
        unpadded_lengths: rows per segment as received, ``(S,)``.
        reindexed_lengths: lengths after reordering, ``(F, B)``.
        reindexed_length_per_key: rows per feature after reordering (host list, ``F`` entries).
        reindexed_values: the ids in the same order (for ``need_indices``), optional.
    """

    recat: torch.Tensor
    unpadded_lengths: torch.Tensor
    reindexed_lengths: torch.Tensor
    reindexed_length_per_key: List[int]
    reindexed_values: Optional[torch.Tensor] = None

    def record_stream(self, stream: torch.Stream) -> None:
        for t in (self.recat, self.unpadded_lengths, self.reindexed_lengths, self.reindexed_values):
            if t is not None:
                t.record_stream(stream)


def construct_jagged_tensors(
    embeddings: torch.Tensor,
    features: KeyedJaggedTensor,
    embedding_names: List[str],
    need_indices: bool = False,
    features_to_permute_indices: Optional[Dict[str, List[int]]] = None,
    original_features: Optional[KeyedJaggedTensor] = None,
    reverse_indices: Optional[torch.Tensor] = None,
    seq_vbe_ctx: Optional[SequenceVBEContext] = None,
    use_gather_select: bool = False,
) -> Dict[str, JaggedTensor]:
    """Split sequence embeddings ``(N, D)`` (one row per id of ``features``) into one JT per feature.

    Args:
        embeddings: rows in the KJT's value order.
        features: the looked-up KJT (its key ``i`` becomes ``embedding_names[i]``).
        need_indices: put each feature's ids in its JT's weights.
        features_to_permute_indices: ``{name: [positions]}`` for a feature whose columns were looked up in
            pieces (column-wise sharding): the pieces at ``positions`` are concatenated along dim 1 under
            ``name`` and the other positions dropped.
        original_features / reverse_indices: for deduplicated lookups, ``embeddings[reverse_indices]`` are the
            rows of ``original_features``.
    """
    if reverse_indices is not None:
        if original_features is None:
            raise ValueError("construct_jagged_tensors: reverse_indices needs original_features")
        if use_gather_select:  # same rows as index_select; gather's backward is often faster
            index = reverse_indices.long().unsqueeze(1).expand(-1, embeddings.size(-1))
            embeddings = torch.gather(embeddings, 0, index)
        else:
            embeddings = embeddings.index_select(0, reverse_indices.long())
        features = original_features
    elif original_features is not None:
        features = original_features
    if seq_vbe_ctx is not None:
        # row segments (one per rank x feature) back into feature-major order
        _, embeddings, _ = permute_1d_segments_reference(seq_vbe_ctx.recat, seq_vbe_ctx.unpadded_lengths, embeddings)
        lengths_2d = seq_vbe_ctx.reindexed_lengths
        ids = seq_vbe_ctx.reindexed_values
        return _split_rows_to_jts(embeddings, ids if ids is not None else embeddings.new_zeros(embeddings.size(0)),
                                  list(lengths_2d.unbind(0)), seq_vbe_ctx.reindexed_length_per_key,
                                  embedding_names, need_indices and ids is not None, features_to_permute_indices)
    spk = features.stride_per_key()
    lengths = list(features.lengths().split(spk))
    return _split_rows_to_jts(embeddings, features.values(), lengths, features.length_per_key(), embedding_names,
                              need_indices, features_to_permute_indices)


def construct_jagged_tensors_inference(
    embeddings: torch.Tensor,
    lengths: torch.Tensor,
    values: torch.Tensor,
    embedding_names: List[str],
    need_indices: bool = False,
    features_to_permute_indices: Optional[Dict[str, List[int]]] = None,
    reverse_indices: Optional[torch.Tensor] = None,
    remove_padding: bool = False,
) -> Dict[str, JaggedTensor]:
    """Inference form of :func:`construct_jagged_tensors`: ``lengths`` is ``(F, B)``, ``values`` the ids.

    ``remove_padding``: ``embeddings`` may hold padding rows after the ``sum(lengths)`` real ones; they are dropped
    (ignored when ``reverse_indices`` is given, which selects the rows itself).
    """
    if lengths.dim() != 2:
        raise ValueError(f"construct_jagged_tensors_inference: lengths must be (F, B), got shape {list(lengths.shape)}")
    if reverse_indices is not None:
        embeddings = embeddings.index_select(0, reverse_indices.long())
    elif remove_padding:
        embeddings = embeddings[: int(lengths.sum().item())]
    length_per_key: List[int] = lengths.sum(dim=1).tolist()
    return _split_rows_to_jts(embeddings, values, list(lengths.unbind(0)), length_per_key, embedding_names,
                              need_indices, features_to_permute_indices)


def init_mlp_weights_xavier_uniform(m: nn.Module) -> None:
    """For ``nn.Linear``: Xavier-uniform weight, zero bias (use with ``module.apply``)."""
    if isinstance(m, nn.Linear):
        torch.nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            m.bias.data.fill_(0.0)


def construct_modulelist_from_single_module(module: nn.Module, sizes: Tuple[int, ...]) -> nn.Module:
    """Nested ``nn.ModuleList`` of shape ``sizes`` filled with re-initialised deep copies of ``module``."""
    if len(sizes) == 0:
        raise ValueError("construct_modulelist_from_single_module: sizes must be non-empty")
    if sizes[0] <= 0:
        raise ValueError(f"construct_modulelist_from_single_module: sizes must be positive, got {sizes}")
    if len(sizes) == 1:
        copies = []
        for _ in range(sizes[0]):
            c = copy.deepcopy(module)
            c.apply(init_mlp_weights_xavier_uniform)
            copies.append(c)
        return nn.ModuleList(copies)
    return nn.ModuleList([construct_modulelist_from_single_module(module, sizes[1:]) for _ in range(sizes[0])])


def convert_list_of_modules_to_modulelist(modules: Iterable, sizes: Tuple[int, ...]) -> nn.Module:
    """Nested Python lists of modules (shape ``sizes``) → nested ``nn.ModuleList`` s."""
    items = list(modules)
    if len(sizes) == 0 or len(items) != sizes[0]:
        raise ValueError(f"convert_list_of_modules_to_modulelist: expected {sizes[0] if sizes else '?'} "
                         f"entries at this level (sizes {sizes}), got {len(items)}")
    if len(sizes) == 1:
        for m in items:
            if not isinstance(m, nn.Module):
                raise TypeError(f"convert_list_of_modules_to_modulelist: expected nn.Module, got {type(m).__name__}")
        return nn.ModuleList(items)
    return nn.ModuleList([convert_list_of_modules_to_modulelist(m, sizes[1:]) for m in items])


def extract_module_or_tensor_callable(
    module_or_callable: Union[Callable[[], nn.Module], nn.Module, Callable[[torch.Tensor], torch.Tensor]],
) -> Union[nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
    """A module as is; a zero-argument factory (``nn.ReLU``) called; a tensor function (``torch.relu``) as is."""
    if isinstance(module_or_callable, nn.Module):
        return module_or_callable
    if not callable(module_or_callable):
        raise TypeError(f"expected an nn.Module or a callable, got {type(module_or_callable).__name__}")
    try:
        params = inspect.signature(module_or_callable).parameters.values()
        required = [p for p in params if p.default is inspect.Parameter.empty
                    and p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        takes_no_args = len(required) == 0
    except (TypeError, ValueError):  # builtins without a signature (e.g. torch.relu) take a tensor
        takes_no_args = False
    if takes_no_args:
        made = module_or_callable()
        if isinstance(made, nn.Module):
            return made
    return module_or_callable  # type: ignore[return-value]


def get_module_output_dimension(
    module: Union[Callable[[torch.Tensor], torch.Tensor], nn.Module], in_features: int
) -> int:
    """Last-dim size of ``module(torch.rand(1, in_features))``."""
    x = torch.rand(1, in_features)
    params = list(module.parameters()) if isinstance(module, nn.Module) else []
    if params:
        x = x.to(device=params[0].device, dtype=params[0].dtype)
    return int(module(x).size(-1))


def check_module_output_dimension(
    module: Union[Iterable[nn.Module], nn.Module], in_features: int, out_features: int
) -> bool:
    """Whether ``module`` (or every module of a list) maps ``in_features`` to ``out_features``."""
    if isinstance(module, (list, nn.ModuleList)):
        return all(check_module_output_dimension(m, in_features, out_features) for m in module)
    return get_module_output_dimension(module, in_features) == out_features


def jagged_index_select_with_empty(
    values: torch.Tensor, ids: torch.Tensor, offsets: torch.Tensor, output_offsets: torch.Tensor
) -> torch.Tensor:
    """Concatenate the segments ``ids`` of a jagged ``values``; returns ``(sum of their lengths, 1)``.

    ``offsets`` / ``output_offsets`` are *inclusive* cumulative sums (no leading 0), as FBGEMM's
    ``jagged_index_select_2d_forward_v2`` takes them; ``output_offsets[-1]`` is the output length.
    """
    flat = values.flatten().unsqueeze(-1)
    if ids.numel() == 0:
        return flat[:0]
    ends = offsets.long()
    starts = torch.cat([ends.new_zeros(1), ends[:-1]])
    sel_starts = starts.index_select(0, ids.long())
    sel_lengths = ends.index_select(0, ids.long()) - sel_starts
    total = int(output_offsets[-1]) if output_offsets.numel() > 0 else 0
    if int(sel_lengths.sum()) != total:
        raise ValueError(f"jagged_index_select_with_empty: selected segments hold {int(sel_lengths.sum())} values "
                         f"but output_offsets ends at {total}")
    out_starts = torch.cumsum(sel_lengths, 0) - sel_lengths
    index = torch.arange(total, device=flat.device) - torch.repeat_interleave(out_starts - sel_starts, sel_lengths,
                                                                              output_size=total)
    return flat.index_select(0, index)


def deterministic_dedup(ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sorted unique ``ids`` and, for each, the position of its *last* occurrence in ``ids``."""
    sorted_ids, order = torch.sort(ids, stable=True)
    unique, inverse = torch.unique_consecutive(sorted_ids, return_inverse=True)
    last = torch.full((unique.numel(),), -1, dtype=torch.int64, device=ids.device)
    last = last.scatter_reduce(0, inverse, order, reduce="amax", include_self=True)
    return unique, last


def reset_module_states_post_sharding(module: nn.Module) -> None:
    """Drop the cached derived state (``CacheMixin.clear_cache``) of every submodule, e.g. after sharding changed
    the layout a cache was built for."""
    for sub in module.modules():
        if isinstance(sub, CacheMixin):
            sub.clear_cache()


def make_hash_zch_buckets_non_persistent(module: nn.Module) -> int:
    """Exclude the ``_hash_zch_bucket`` buffer (derived from config) of every submodule from ``state_dict``.

    Lets checkpoints written before that buffer existed load strictly. Returns how many buffers were changed.
    """
    name = "_hash_zch_bucket"
    changed = 0
    for sub in module.modules():
        if name in sub._buffers and name not in sub._non_persistent_buffers_set:
            sub._non_persistent_buffers_set.add(name)
            changed += 1
    return changed
