"""``ModelInput``: the batch the test model zoo eats, and its random generators.

A generator returns ``(global_input, local_inputs)``: one batch of ``W * B`` samples for an unsharded model and
the same samples cut into ``W`` per-rank batches of ``B`` (rank ``r`` owns samples ``r*B .. r*B+B-1`` of every
feature), so a sharded model fed ``local_inputs[rank]`` must agree with the unsharded model fed ``global_input``.
"""

import random
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from recsys_lib.modules.embedding_configs import BaseEmbeddingConfig
from recsys_lib._public import public_at
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor
from recsys_lib.streamable import Pipelineable

_TableList = Sequence[BaseEmbeddingConfig]


def _rows_of(table: BaseEmbeddingConfig) -> int:
    """Ids of ``table`` are drawn from ``[0, rows)``: the post-pruning row count when set."""
    pruned = getattr(table, "num_embeddings_post_pruning", None)
    return int(pruned) if pruned is not None else int(table.num_embeddings)


def _power_law_ids(alpha: float, n: int, rows: int, dtype: torch.dtype, device: Optional[torch.device]) -> torch.Tensor:
    """``n`` ids in ``[0, rows)`` with ``P(id = k) ~ (k + 1) ** -alpha`` (inverse-CDF sampling of ``1/x**alpha``
    on ``[1, rows]``, shifted to 0-based; ``alpha == 0`` is uniform)."""
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if rows < 1:
        raise ValueError(f"num_embeddings must be >= 1, got {rows}")
    if rows == 1:
        return torch.zeros(n, dtype=dtype, device=device)
    if alpha == 0.0:
        return torch.randint(0, rows, (n,), dtype=dtype, device=device)
    u = torch.rand(n, device=device).clamp(1e-10, 1 - 1e-10)
    if abs(alpha - 1.0) < 2e-3:  # log-uniform limit
        x = rows**u
    elif alpha < 1.0:
        x = (u * (rows ** (1 - alpha) - 1) + 1) ** (1 / (1 - alpha))
    else:  # Pareto tail, redrawn where it passes the last row
        power = -1 / (alpha - 1)
        x = (1 - u) ** power
        over = x - 1 >= rows
        while bool(over.any()):
            x[over] = (1 - torch.rand(int(over.sum()), device=device).clamp(1e-10, 1 - 1e-10)) ** power
            over = x - 1 >= rows
    return (x - 1).long().clamp(0, rows - 1).to(dtype)


def _kjt(
    keys: List[str], values: List[torch.Tensor], lengths: List[torch.Tensor], weights: Optional[List[torch.Tensor]],
    use_offsets: bool, offsets_dtype: torch.dtype, **vbe: Any,
) -> KeyedJaggedTensor:
    """A KJT from per-key pieces, given by lengths or (``use_offsets``) by offsets of ``offsets_dtype``."""
    all_lengths = torch.cat(lengths) if lengths else torch.zeros(0, dtype=torch.int64)
    offsets = None
    if use_offsets:
        zero = torch.zeros(1, dtype=offsets_dtype, device=all_lengths.device)
        offsets = torch.cat([zero, all_lengths.cumsum(0).to(offsets_dtype)])
    return KeyedJaggedTensor(
        keys=keys,
        values=torch.cat(values) if values else torch.zeros(0, dtype=torch.int64),
        weights=torch.cat(weights) if weights is not None else None,
        lengths=None if use_offsets else all_lengths,
        offsets=offsets,
        **vbe,
    )


@public_at("recsys_lib.distributed.test_utils.test_model")
@dataclass
class ModelInput(Pipelineable):
    """One batch for the test model zoo.

    Attributes:
        float_features (Tensor): dense features, ``(B, num_float_features)``.
        idlist_features (KeyedJaggedTensor): unweighted sparse features, ``B`` samples per key.
        idscore_features (Optional[KeyedJaggedTensor]): weighted sparse features (weights in ``[0, 1)``).
        label (Tensor): ``(B,)`` targets in ``[0, 1)``.
    """

    __test__ = False  # not a pytest class

    float_features: torch.Tensor
    idlist_features: Any
    idscore_features: Optional[Any]
    label: torch.Tensor

    @staticmethod
    def generate(
        batch_size: int,
        world_size: int,
        num_float_features: int,
        tables: _TableList,
        weighted_tables: _TableList,
        pooling_avg: int = 10,
        dedup_tables: Optional[_TableList] = None,
        variable_batch_size: bool = False,
        tables_pooling: Optional[List[int]] = None,
        weighted_tables_pooling: Optional[List[int]] = None,
        randomize_indices: bool = True,
        device: Optional[torch.device] = None,
        max_feature_lengths: Optional[List[int]] = None,
        input_type: str = "kjt",
        use_offsets: bool = False,
        indices_dtype: torch.dtype = torch.int64,
        offsets_dtype: torch.dtype = torch.int64,
        lengths_dtype: torch.dtype = torch.int64,
        random_seed: Optional[int] = None,
        power_law_alpha: Optional[float] = None,
    ) -> Tuple["ModelInput", List["ModelInput"]]:
        """A global batch of ``world_size * batch_size`` samples and its ``world_size`` per-rank slices.

        Each sample's length per feature is ``|N(pooling, 1)|`` truncated to an integer (``pooling`` is the
        table's entry of ``tables_pooling`` / ``weighted_tables_pooling``, else ``pooling_avg``; with
        ``tables_pooling`` it is ``max(N(p, p / 10), 1)``), clamped by ``max_feature_lengths`` (one entry per
        unweighted feature). Ids are uniform in ``[0, rows)`` (power-law with ``power_law_alpha``; all zero
        when not ``randomize_indices``, as are dense features and labels). ``variable_batch_size``: rank ``r``
        keeps ``max(batch_size - r, 1)`` samples with ids (the rest get length 0 in the global batch).
        ``dedup_tables`` is accepted and unused, as in TorchRec.

        Returns:
            Tuple[ModelInput, List[ModelInput]]: the global batch and one batch per rank.
        """
        del dedup_tables
        if input_type != "kjt":
            if input_type == "td":
                raise ValueError("ModelInput.generate: input_type='td' needs the tensordict package, not installed")
            raise ValueError(f"ModelInput.generate: unknown input_type {input_type!r} (expected 'kjt' or 'td')")
        for name, pooling, tbls in (("tables_pooling", tables_pooling, tables),
                                    ("weighted_tables_pooling", weighted_tables_pooling, weighted_tables)):
            if pooling and len(pooling) != len(tbls):
                raise ValueError(f"{name} and tables must have the same length. Got {len(pooling)} and {len(tbls)}.")
        if random_seed is not None:
            torch.manual_seed(random_seed)
        B, W = batch_size, world_size
        kept = [max(B - r, 1) if variable_batch_size else B for r in range(W)]

        def lengths_for(mean: float, normal_sd: Optional[float], cap: Optional[int]) -> torch.Tensor:
            if normal_sd is not None:
                raw = torch.normal(mean, normal_sd, [B * W], device=device).clamp(min=1.0)
            else:
                raw = (torch.randn(B * W, device=device) + mean).abs()
            lengths = raw.to(lengths_dtype)
            if cap:
                lengths = lengths.clamp(max=cap)
            if variable_batch_size:
                mask = torch.zeros(B * W, dtype=torch.bool, device=device)
                for r in range(W):
                    mask[r * B: r * B + kept[r]] = True
                lengths = torch.where(mask, lengths, torch.zeros_like(lengths))
            return lengths

        def ids_for(n: int, rows: int) -> torch.Tensor:
            if not randomize_indices:
                return torch.zeros(n, dtype=indices_dtype, device=device)
            if power_law_alpha is not None:
                return _power_law_ids(power_law_alpha, n, rows, indices_dtype, device)
            return torch.randint(0, rows, (n,), dtype=indices_dtype, device=device)

        # (key, lengths, ids, weights) per feature: unweighted then weighted.
        plain: List[Tuple[str, torch.Tensor, torch.Tensor]] = []
        f = 0
        for t, table in enumerate(tables):
            for key in table.feature_names:
                cap = max_feature_lengths[f] if max_feature_lengths else None
                if tables_pooling is not None:
                    lengths = lengths_for(tables_pooling[t], tables_pooling[t] / 10, cap)
                else:
                    lengths = lengths_for(pooling_avg, None, cap)
                plain.append((key, lengths, ids_for(int(lengths.sum()), _rows_of(table))))
                f += 1
        scored: List[Tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for t, table in enumerate(weighted_tables):
            for key in table.feature_names:
                mean = weighted_tables_pooling[t] if weighted_tables_pooling else pooling_avg
                lengths = lengths_for(mean, None, None)
                n = int(lengths.sum())
                ids = ids_for(n, _rows_of(table))
                scored.append((key, lengths, ids, torch.rand(n, device=device)))

        make = torch.rand if randomize_indices else torch.zeros
        dense = make((B * W, num_float_features), device=device)
        label = make(B * W, device=device)

        def build(rank: Optional[int]) -> ModelInput:
            def cut(lengths: torch.Tensor, *flat: torch.Tensor) -> List[torch.Tensor]:
                if rank is None:
                    return [lengths, *flat]
                ends = [0] + lengths.view(W, B).sum(1).cumsum(0).tolist()
                rows = lengths[rank * B: rank * B + kept[rank]]
                return [rows] + [x[ends[rank]: ends[rank + 1]] for x in flat]

            p = [cut(ln, ids) for _, ln, ids in plain]
            s = [cut(ln, ids, w) for _, ln, ids, w in scored]
            idlist = _kjt([k for k, _, _ in plain], [x[1] for x in p], [x[0] for x in p], None,
                          use_offsets, offsets_dtype)
            idscore = None
            if scored:
                idscore = _kjt([k for k, _, _, _ in scored], [x[1] for x in s], [x[0] for x in s],
                               [x[2] for x in s], use_offsets, offsets_dtype)
            rows = slice(None) if rank is None else slice(rank * B, (rank + 1) * B)
            return ModelInput(float_features=dense[rows], idlist_features=idlist, idscore_features=idscore,
                              label=label[rows])

        return build(None), [build(r) for r in range(W)]

    @staticmethod
    def generate_variable_batch_input(
        average_batch_size: int,
        world_size: int,
        num_float_features: int,
        tables: _TableList,
        weighted_tables: Optional[_TableList] = None,
        pooling_avg: int = 10,
        global_constant_batch: bool = False,
        use_offsets: bool = False,
        indices_dtype: torch.dtype = torch.int64,
        offsets_dtype: torch.dtype = torch.int64,
        lengths_dtype: torch.dtype = torch.int64,
        random_seed: Optional[int] = None,
    ) -> Tuple["ModelInput", List["ModelInput"]]:
        """Variable-batch (VBE) inputs: each rank has, per feature, a random number ``1 .. 2 * avg - 1`` of
        distinct samples (lengths in ``[0, 5)``) and inverse indices expanding them to ``2 * avg`` samples.

        The global KJT stacks the ranks' samples per feature (``stride_per_key_per_rank`` is the per-feature
        total; inverse indices shifted by the ranks before). With ``global_constant_batch`` the global KJT is
        instead expanded through the inverse indices to a constant batch of ``2 * avg * world_size``. Seeds
        ``torch`` and ``random`` with ``random_seed`` (100 when None). ``pooling_avg`` is unused, as in TorchRec.

        Returns:
            Tuple[ModelInput, List[ModelInput]]: the global batch and one batch per rank.
        """
        seed = 100 if random_seed is None else random_seed
        torch.manual_seed(seed)
        random.seed(seed)
        dedup = 2
        full = dedup * average_batch_size

        def features(tbls: _TableList, weighted: bool) -> Tuple[KeyedJaggedTensor, List[KeyedJaggedTensor]]:
            rows = {k: _rows_of(t) for t in tbls for k in t.feature_names}
            keys = list(rows)
            # per rank, per key: (lengths, values, weights, inverse)
            drawn: List[Dict[str, Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], torch.Tensor]]] = []
            for _ in range(world_size):
                per_key = {}
                for key, n_rows in rows.items():
                    stride = random.randint(1, full - 1)
                    lengths = torch.randint(0, 5, (stride,), dtype=lengths_dtype)
                    n = int(lengths.sum())
                    values = torch.randint(0, n_rows, (n,), dtype=indices_dtype)
                    weights = torch.rand(n) if weighted else None
                    inverse = torch.randint(0, stride, (full,), dtype=indices_dtype)
                    per_key[key] = (lengths, values, weights, inverse)
                drawn.append(per_key)
            local = []
            for per_key in drawn:
                pieces = [per_key[k] for k in keys]
                vbe: Dict[str, Any] = {}
                if not use_offsets:
                    vbe = {"stride_per_key_per_rank": [[int(p[0].numel())] for p in pieces],
                           "inverse_indices": (keys, torch.stack([p[3] for p in pieces]))}
                local.append(_kjt(keys, [p[1] for p in pieces], [p[0] for p in pieces],
                                  [p[2] for p in pieces] if weighted else None, use_offsets, offsets_dtype, **vbe))
            ordered = [(k, drawn[r][k]) for k in keys for r in range(world_size)]
            if global_constant_batch:
                lengths, values, weights = [], [], []
                for _, (ln, val, wt, inv) in ordered:
                    starts = torch.cat([ln.new_zeros(1), ln.cumsum(0)]).tolist()
                    lengths.append(ln[inv])
                    values += [val[starts[i]: starts[i + 1]] for i in inv.tolist()]
                    if wt is not None:
                        weights += [wt[starts[i]: starts[i + 1]] for i in inv.tolist()]
                glob = _kjt(keys, values, lengths, weights if weighted else None, use_offsets, offsets_dtype)
            else:
                inverse = []
                for k in keys:
                    shift, parts = 0, []
                    for r in range(world_size):
                        parts.append(drawn[r][k][3] + shift)
                        shift += int(drawn[r][k][0].numel())
                    inverse.append(torch.cat(parts))
                glob = _kjt(
                    keys, [p[1] for _, p in ordered], [p[0] for _, p in ordered],
                    [p[2] for _, p in ordered] if weighted else None, use_offsets, offsets_dtype,
                    stride_per_key_per_rank=[[sum(int(drawn[r][k][0].numel()) for r in range(world_size))]
                                             for k in keys],
                    inverse_indices=(keys, torch.stack(inverse)),
                )
            return glob, local

        glob_ids, local_ids = features(tables, weighted=bool(tables) and bool(getattr(tables[0], "is_weighted", False)))
        glob_scores, local_scores = None, []
        if weighted_tables:
            is_weighted = bool(getattr(weighted_tables[0], "is_weighted", False))
            glob_scores, local_scores = features(weighted_tables, weighted=is_weighted)
        dense = torch.rand((full * world_size, num_float_features))
        labels = [torch.rand(full) for _ in range(world_size)]
        local = [
            ModelInput(float_features=dense[r * full: (r + 1) * full], idlist_features=local_ids[r],
                       idscore_features=local_scores[r] if local_scores else None, label=labels[r])
            for r in range(world_size)
        ]
        return ModelInput(dense, glob_ids, glob_scores, torch.cat(labels)), local

    def to(
        self, device: torch.device, non_blocking: bool = False, data_copy_stream: Optional[torch.Stream] = None
    ) -> "ModelInput":
        """This batch on ``device``; with ``data_copy_stream`` the copies are issued on that stream (after it
        waits for the current one) into tensors allocated up front."""
        if data_copy_stream is None:
            def move(x: Any) -> Any:
                return None if x is None else x.to(device=device, non_blocking=non_blocking)

            return ModelInput(move(self.float_features), move(self.idlist_features),
                              move(self.idscore_features), move(self.label))
        if not isinstance(self.idlist_features, KeyedJaggedTensor):
            raise ValueError("ModelInput.to with data_copy_stream needs KeyedJaggedTensor features")
        dev_mod = torch.get_device_module(device)
        out = ModelInput(
            torch.empty_like(self.float_features, device=device),
            KeyedJaggedTensor.empty_like(self.idlist_features, device=device),
            None if self.idscore_features is None else KeyedJaggedTensor.empty_like(self.idscore_features, device=device),
            torch.empty_like(self.label, device=device),
        )
        current = dev_mod.current_stream(device)
        with dev_mod.stream(data_copy_stream):
            data_copy_stream.wait_stream(current)
            out.float_features.copy_(self.float_features, non_blocking=non_blocking)
            out.label.copy_(self.label, non_blocking=non_blocking)
            out.idlist_features.copy_(self.idlist_features, non_blocking=non_blocking)
            if out.idscore_features is not None:
                out.idscore_features.copy_(self.idscore_features, non_blocking=non_blocking)
        return out

    def record_stream(self, stream: torch.Stream) -> None:
        """Marks every tensor of the batch as used on ``stream``."""
        self.float_features.record_stream(stream)
        for kjt in (self.idlist_features, self.idscore_features):
            if isinstance(kjt, KeyedJaggedTensor):
                kjt.record_stream(stream)
        self.label.record_stream(stream)

    def size_in_bytes(self) -> int:
        """Bytes held by the dense features, labels and the KJTs' tensors."""
        size = self.float_features.element_size() * self.float_features.numel()
        size += self.label.element_size() * self.label.numel()
        for kjt in (self.idlist_features, self.idscore_features):
            if isinstance(kjt, KeyedJaggedTensor):
                size += kjt.size_in_bytes()
        return size
