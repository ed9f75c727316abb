"""The lookup kernels behind ``EmbeddingBagCollection`` / ``EmbeddingCollection.forward``.

Each is one function over the KJT and the list of table weights, so the modules' ``forward`` stays a single call:
TorchScript compiles it, and ``torch.fx`` keeps it as one node (the callers ``torch.fx.wrap`` these names),
because the work depends on the batch (per-key lengths read on the host).

Per table, a run of consecutive KJT keys is pooled with one ``embedding_bag`` call over one slice of values
(see ``_feature_layout``).
"""

from typing import Dict, List, Optional, Tuple

import torch

from recsys_lib.ops._host_buffers import host_empty
from recsys_lib.modules._feature_layout import all_ids_below, check_ids, check_keys, feature_runs
from recsys_lib.pt2.checks import is_pt2_compiling
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor


def reorder_inverse_indices(
    inverse_indices: Optional[Tuple[List[str], torch.Tensor]], feature_names: List[str]
) -> torch.Tensor:
    """Rows of the VBE inverse-index matrix ``(F, B)`` reordered to ``feature_names`` (empty tensor if none)."""
    if inverse_indices is None:
        return torch.empty(0)
    index: Dict[str, int] = {}
    for i, k in enumerate(inverse_indices[0]):
        index[k] = i
    rows: List[int] = []
    for f in feature_names:
        if f not in index:
            raise ValueError("inverse_indices has no row for feature '" + f + "'; keys are " + str(inverse_indices[0]))
        rows.append(index[f])
    return inverse_indices[1][torch.tensor(rows, device=inverse_indices[1].device)]


def process_pooled_embeddings(pooled_embeddings: List[torch.Tensor], inverse_indices: torch.Tensor) -> torch.Tensor:
    """Expand per-feature pooled outputs ``[B_f, D_f]`` to the full batch with ``inverse_indices`` ``(F, B)``.

    Returns ``[B, sum(D_f)]``: row ``b`` of feature ``f`` is ``pooled_embeddings[f][inverse_indices[f, b]]``.
    """
    if len(pooled_embeddings) != inverse_indices.size(0):
        raise ValueError(
            "process_pooled_embeddings: " + str(len(pooled_embeddings)) + " pooled tensors but inverse_indices has "
            + str(inverse_indices.size(0)) + " rows"
        )
    idx = inverse_indices.long()
    expanded: List[torch.Tensor] = []
    for i, p in enumerate(pooled_embeddings):
        expanded.append(p.index_select(0, idx[i]))
    return torch.cat(expanded, dim=1)


def _key_starts(features: KeyedJaggedTensor) -> List[int]:
    starts: List[int] = [0]
    for s in features.stride_per_key():
        starts.append(starts[-1] + s)
    return starts


@torch.jit.unused
def _bag_naming_bad_ids(
    weight: torch.Tensor,
    ids: torch.Tensor,
    offsets: torch.Tensor,
    mode: int,
    per_sample_weights: Optional[torch.Tensor],
    num_embeddings: int,
    table: str,
) -> torch.Tensor:
    """CPU ``embedding_bag`` (it checks every id and raises before writing); an id outside the table is re-raised
    as the ``ValueError`` naming the table and the range, as the up-front check would."""
    try:
        return torch.embedding_bag(weight, ids, offsets, False, mode, False, per_sample_weights, True, None)[0]
    except (RuntimeError, IndexError):
        check_ids(ids, num_embeddings, table)
        raise


def pool_tables(
    features: KeyedJaggedTensor,
    tables: List[torch.Tensor],
    table_names: List[str],
    table_features: List[List[str]],
    flat_features: List[str],
    all_features: Dict[str, int],
    num_embeddings: List[int],
    modes: List[int],
    is_weighted: bool,
) -> torch.Tensor:
    """Pooled lookups of every table: ``(B, sum over tables and their features of D)``, float32."""
    keys = features.keys()
    index = check_keys(keys, all_features, "EmbeddingBagCollection")
    opk = features.offset_per_key()  # first: reading the per-key lengths checks the batch and may re-base values
    values = features.values()
    weights: Optional[torch.Tensor] = features.weights_or_none() if is_weighted else None
    if is_weighted and weights is None:
        raise ValueError("EmbeddingBagCollection(is_weighted=True) needs a KJT with weights")
    vbe = features.variable_stride_per_key()
    starts = _key_starts(features)
    stride = 0 if vbe else features.stride()
    # Zero-based offsets of every feature, (F, B+1), from one cumsum: a feature's bags are one row view.
    local = torch.empty(0)
    if not vbe:
        counts = features.lengths().view(len(keys), stride).cumsum(1)
        local = torch.cat([torch.zeros(len(keys), 1, dtype=counts.dtype, device=counts.device), counts], dim=1)
    offsets = torch.empty(0)
    have_offsets = False
    need_grad = torch.is_grad_enabled()
    # On CPU (eager) aten's kernel validates every id itself and raises before writing anything: a bad id is then
    # named (table, range) from the error path, so a good batch pays no extra pass. Elsewhere one min/max over the
    # whole batch usually proves every id valid; otherwise check table by table.
    kernel_checks = values.device.type == "cpu" and not torch.jit.is_scripting() and not is_pt2_compiling()
    ids_ok = kernel_checks or all_ids_below(values, min(num_embeddings))
    pooled: List[torch.Tensor] = []
    for t in range(len(tables)):
        name = table_names[t]
        if weights is not None and modes[t] == 1:
            raise ValueError("EmbeddingBagCollection: table '" + name + "' has MEAN pooling; per-id weights "
                             "need SUM pooling")
        # Without autograd a detached weight lets aten take its forward-only path (no backward bookkeeping).
        weight = tables[t] if need_grad else tables[t].detach()
        positions = [index[f] for f in table_features[t]]
        runs = [(p, 1) for p in positions] if vbe else feature_runs(positions)
        for start, n in runs:
            lo = opk[start]
            hi = opk[start + n]
            if n == 1 and not vbe:
                o = local[start]
            else:
                if not have_offsets:
                    offsets = features.offsets()
                    have_offsets = True
                o = offsets[starts[start]: starts[start + n] + 1]
                if lo != 0:
                    o = o - lo
            ids = values[lo:hi]
            if not ids_ok:
                check_ids(ids, num_embeddings[t], name)
            w: Optional[torch.Tensor] = None
            if weights is not None:
                w = weights[lo:hi].to(weight.dtype)
            # The aten op directly: nn.EmbeddingBag.forward's kernel without its Python-side checks.
            if kernel_checks:
                out = _bag_naming_bad_ids(weight, ids, o, modes[t], w, num_embeddings[t], name)
            else:
                out = torch.embedding_bag(weight, ids, o, False, modes[t], False, w, True, None)[0]
            if n > 1:
                # (n*B, D) bag-major per feature → (B, n*D) feature-minor columns
                d = out.size(1)
                out = out.view(n, stride, d).transpose(0, 1).reshape(stride, n * d)
            pooled.append(out)
    if vbe:
        inverse = reorder_inverse_indices(features.inverse_indices_or_none(), flat_features)
        if inverse.numel() == 0:
            raise ValueError("EmbeddingBagCollection: a variable-batch KJT needs inverse_indices to "
                             "expand pooled outputs to the full batch")
        result = process_pooled_embeddings(pooled, inverse)
    elif len(pooled) == 1:
        result = pooled[0]
    elif kernel_checks:  # eager CPU: the (B, sum D) output in a buffer with 2 MB pages
        result = _cat_columns(pooled)
    else:
        result = torch.cat(pooled, dim=1)
    return result if result.dtype == torch.float32 else result.float()


class _CatColumns(torch.autograd.Function):
    @staticmethod
    def forward(ctx, *parts: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.widths = [p.size(1) for p in parts]
        out = host_empty((parts[0].size(0), sum(ctx.widths)), parts[0].dtype, parts[0].device)
        return torch.cat(parts, dim=1, out=out)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> Tuple[torch.Tensor, ...]:  # type: ignore[override]
        return tuple(grad.split(ctx.widths, dim=1))


@torch.jit.unused
def _cat_columns(parts: List[torch.Tensor]) -> torch.Tensor:
    """``torch.cat(parts, dim=1)`` (same values and gradient) written into a ``host_empty`` buffer: a fresh
    output this size would otherwise take a page fault per 4 KB page as the concatenation writes it."""
    if len({p.dtype for p in parts}) != 1:
        return torch.cat(parts, dim=1)
    return _CatColumns.apply(*parts)


def lookup_sequences(
    features: KeyedJaggedTensor,
    tables: List[torch.Tensor],
    table_names: List[str],
    table_features: List[List[str]],
    embedding_names: List[List[str]],
    all_features: Dict[str, int],
    num_embeddings: List[int],
    need_indices: bool,
) -> Dict[str, JaggedTensor]:
    """One row per id: ``{embedding name: JaggedTensor(values (N_f, D) float32, lengths L_f, weights ids?)}``."""
    index = check_keys(features.keys(), all_features, "EmbeddingCollection")
    opk = features.offset_per_key()  # first: reading the per-key lengths checks the batch and may re-base values
    values = features.values()
    lengths = features.lengths()
    starts = _key_starts(features)
    lpk = features.length_per_key()
    out: Dict[str, JaggedTensor] = {}
    ids_ok = all_ids_below(values, min(num_embeddings))
    for t in range(len(tables)):
        positions = [index[f] for f in table_features[t]]
        names = embedding_names[t]
        j = 0
        for start, n in feature_runs(positions):
            ids = values[opk[start]: opk[start + n]]
            if not ids_ok:
                check_ids(ids, num_embeddings[t], table_names[t])
            rows = torch.nn.functional.embedding(ids, tables[t])
            if rows.dtype != torch.float32:  # FP16/BF16 tables: outputs are float32, as TorchRec's
                rows = rows.float()
            parts = [rows] if n == 1 else list(rows.split(lpk[start: start + n], dim=0))
            id_parts = [ids] if n == 1 else list(ids.split(lpk[start: start + n], dim=0))
            for k in range(n):
                p = start + k
                out[names[j]] = JaggedTensor(
                    values=parts[k],
                    lengths=lengths[starts[p]: starts[p + 1]],
                    weights=id_parts[k] if need_indices else None,
                )
                j += 1
    return out
