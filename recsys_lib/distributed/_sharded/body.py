"""The body of a sharded ``EmbeddingBagCollection`` / ``EmbeddingCollection``, as one composed value.

A sharded module builds a :class:`ShardedEmbeddingBody` in its ``__init__`` and assigns its parts under
TorchRec's attribute names (``_input_dists``, ``_lookups``, ``_output_dists``, ...). The body owns what both
modules share: plan → one ``EmbeddingSharding`` per sharding type (from the registry), the input router, the
per-sharding dists and lookups, and this rank's table shards (state dict, parameters, fused optimizer)::

    body = ShardedEmbeddingBody(configs, params, plan, env, device, fused_params, codecs,
                                sequence=False, weights_attr="embedding_bags", owner_name="ShardedEBC")
    awaitable = body.input_dist(ctx, kjt, sequence=False)   # checks the KJT, routes, starts every input dist

Per batch, the input KJT is checked *before* any collective (:func:`input_error`: keys, lengths, ids, weights,
variable batch; one vectorised pass), so that bad input on one rank raises on every rank: the bad rank takes part
in every input dist's split-size exchange with an error status (:func:`fail_on_every_rank`), its peers read that
status and raise "rank(s) [k] passed an invalid KJT", and every exchange of the batch is consumed on every rank,
so the next batch starts in step. Then :class:`ShardingRouter` puts the features in sharding order and cuts one
KJT per sharding (views of the input's tensors).
"""

from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from recsys_lib.distributed._parallel2d.env import ShardingEnv2D, sharding_env
from recsys_lib.distributed._sharded.common import (
    TableHolder,
    TableState,
    create_sharding_infos,
    create_shardings,
    drop_internal_missing_keys,
    kernels_of,
    unwrap,
)
from recsys_lib.distributed._sharded.state_checks import dedupe_unexpected_keys, shape_errors
from recsys_lib.distributed.embedding_sharding import (
    EmbeddingSharding,
    EmbeddingShardingContext,
    KJTListSplitsAwaitable,
    SplitsWithFacts,
)
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._dist.kjt import KJTAllToAll
from recsys_lib.modules.embedding_configs import EmbeddingTableConfig, PoolingType
from recsys_lib.modules.embedding_modules import get_embedding_names_by_table
from recsys_lib.sparse._build import unchecked_kjt as _unchecked_kjt
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor



# ---- per-batch input: checks (before any collective), then the split per sharding ----


def check_ids(kjt: KeyedJaggedTensor, rows: Sequence[Optional[int]], owner: str) -> None:
    """``ValueError`` if any id of feature ``f`` is outside ``[0, rows[f])`` (names the feature and the id);
    ``TypeError`` for non-integer ids. Features with ``rows[f] = None`` are read by no table and not checked (as
    TorchRec ignores them); values after the last bag belong to no feature and are not read."""
    lpk = kjt.length_per_key()
    values = kjt.values()
    total = sum(lpk)
    if total == 0:
        return
    if values.is_floating_point() or values.dtype == torch.bool:
        raise TypeError(f"{owner}: ids must be integers, got {values.dtype}")
    if values.numel() != total:
        values = values[:total]
    if len(set(rows)) == 1 and rows[0] is not None:
        lo, hi = torch.aminmax(values)  # one pass
        if int(lo) >= 0 and int(hi) < rows[0]:
            return
    per_key = values.split(lpk)
    read = [i for i, r in enumerate(rows) if r is not None and lpk[i] > 0]
    if not read:
        return
    # one min/max per read feature, one host transfer (cheaper than expanding the row limits to every id)
    bounds: List[List[int]] = torch.stack([torch.stack(torch.aminmax(per_key[i])) for i in read]).tolist()
    for i, (lo, hi) in zip(read, bounds):
        jt_rows = rows[i]
        assert jt_rows is not None
        if lo < 0 or hi >= jt_rows:
            jt = per_key[i]
            bad = jt[(jt < 0) | (jt >= jt_rows)][0]
            raise ValueError(
                f"{owner}: feature {kjt.keys()[i]!r} has id {int(bad)} outside its table's rows [0, {jt_rows})"
            )


def check_vbe_input(features: KeyedJaggedTensor, owner: str) -> None:
    """A variable-batch input of a sharded module holds this rank's batch only: one batch size per key."""
    per_rank = features.stride_per_key_per_rank()
    bad = [(k, s) for k, s in zip(features.keys(), per_rank) if len(s) != 1]
    if bad:
        raise ValueError(
            f"{owner}: a variable-batch input KJT must give one batch size per key (this rank's), but "
            f"(key, stride_per_key_per_rank) {bad} do not"
        )


def input_error(
    owner: str, features: KeyedJaggedTensor, needed: List[str], rows_of: Dict[str, int], weighted: bool,
    pooled: bool = False,
) -> Optional[str]:
    """Why ``features`` cannot be distributed, or None. Every check of the batch is here, so that nothing an input
    dist does afterwards can fail on one rank only.

    Checked: every needed feature present; lengths non-negative and within the values (``length_per_key``, one
    host transfer, which the split needs anyway); ids integers inside their tables' rows; weights present for a
    weighted module; a variable-batch KJT with one batch size per key (and ``inverse_indices`` when pooled).

    Args:
        owner: named in the message.
        needed: the module's features (the KJT may have more keys).
        rows_of: rows of the (smallest) table each feature reads.
        weighted: the module needs per-id weights.
        pooled: a variable-batch KJT must carry ``inverse_indices`` (pooled outputs are expanded to the full batch).
    """
    keys = features.keys()
    present = set(keys)
    missing = sorted({f for f in needed if f not in present})
    if missing:
        return f"{owner}: input KJT lacks features {missing}; its keys are {keys}"
    try:
        if features.variable_stride_per_key():
            check_vbe_input(features, owner)
            if pooled and features.inverse_indices_or_none() is None:
                raise ValueError(
                    f"{owner}: a variable-batch (VBE) KJT needs inverse_indices to expand the pooled embeddings back "
                    f"to the full batch (KeyedJaggedTensor(..., inverse_indices=(keys, T[F, B])))"
                )
        if weighted and features.weights_or_none() is None:
            raise ValueError(f"{owner}: the module is weighted but the input KJT has no weights")
        check_ids(features, [rows_of.get(k, None) for k in keys], owner)
    except (ValueError, TypeError, RuntimeError) as e:
        return f"{owner}: {e}" if not str(e).startswith(owner) else str(e)
    return None


def fail_on_every_rank(input_dists: nn.ModuleList, error: str) -> None:
    """Raises ``ValueError(error)`` after taking part, with an error status, in the split-size exchange of every
    KJT all-to-all of ``input_dists`` (the peers, whose inputs may be fine, then raise too)."""
    empty = KeyedJaggedTensor(keys=[], values=torch.empty(0, dtype=torch.long), lengths=torch.empty(0, dtype=torch.int))
    requests = []
    for a2a in (m for d in input_dists for m in d.modules() if isinstance(m, KJTAllToAll)):
        try:
            requests.append(a2a(empty))
        except ValueError:  # a world of one: no exchange to take part in
            pass
    for request in requests:
        try:
            request.wait()
        except ValueError:
            pass
    raise ValueError(error)


def split_by_keys(features: KeyedJaggedTensor, splits: List[int], keep_weights: bool) -> List[KeyedJaggedTensor]:
    """Consecutive groups of ``splits[i]`` keys as KJTs viewing ``features``' tensors (weights dropped unless
    ``keep_weights``). The input was checked (:func:`input_error`), so the pieces skip the KJT constructor."""
    keys = features.keys()
    values = features.values()
    weights = features.weights_or_none() if keep_weights else None
    lengths = features.lengths().view(-1)
    lpk = features.length_per_key()
    spk = features.stride_per_key()
    spkpr = features.stride_per_key_per_rank() if features.variable_stride_per_key() else None
    stride = features.stride()
    inverse = features.inverse_indices_or_none()
    out: List[KeyedJaggedTensor] = []
    k0 = v0 = l0 = 0
    for n in splits:
        k1 = k0 + n
        seg_lpk = lpk[k0:k1]
        seg_spk = spk[k0:k1]
        v1 = v0 + sum(seg_lpk)
        l1 = l0 + sum(seg_spk)
        opk = [0]
        for x in seg_lpk:
            opk.append(opk[-1] + x)
        # an empty piece carries int32 lengths whatever the input's dtype, as KeyedJaggedTensor.split does
        seg_lengths = lengths[l0:l1] if n else torch.empty(0, dtype=torch.int32, device=lengths.device)
        out.append(_unchecked_kjt(
            keys[k0:k1], values[v0:v1], None if weights is None else weights[v0:v1], seg_lengths, stride,
            None if spkpr is None else spkpr[k0:k1], seg_spk, seg_lpk, opk, inverse,
        ))
        k0, v0, l0 = k1, v1, l1
    return out


class ShardingRouter:
    """Puts an input KJT's features into sharding order (each sharding's ``feature_names()``, concatenated;
    a feature may repeat, e.g. once per column shard) and splits it per sharding."""

    def __init__(self, shardings: List[EmbeddingSharding], owner: str) -> None:
        self._owner = owner
        self.feature_names: List[str] = [f for s in shardings for f in s.feature_names()]
        self.feature_splits: List[int] = [len(s.feature_names()) for s in shardings]
        self._cache: Dict[Tuple[str, ...], Tuple[bool, List[int], torch.Tensor]] = {}

    def _order(self, keys: List[str]) -> Tuple[bool, List[int], torch.Tensor]:
        key = tuple(keys)
        if key not in self._cache:
            index = {k: i for i, k in enumerate(keys)}
            missing = sorted({f for f in self.feature_names if f not in index})
            if missing:
                raise ValueError(f"{self._owner}: input KJT lacks features {missing}; its keys are {keys}")
            order = [index[f] for f in self.feature_names]
            identity = order == list(range(len(keys)))
            self._cache[key] = (identity, order, torch.tensor(order, dtype=torch.int64))
        return self._cache[key]

    def split(self, features: KeyedJaggedTensor, keep_weights: bool = True) -> List[KeyedJaggedTensor]:
        """One KJT per sharding, keys in that sharding's ``feature_names()`` order; weights dropped unless
        ``keep_weights`` (an unweighted module ignores them, so they are not sent)."""
        identity, order, order_t = self._order(features.keys())
        if not keep_weights and features.weights_or_none() is not None:
            features = split_by_keys(features, [len(features.keys())], False)[0]
        if not identity:
            features = features.permute(order, order_t.to(features.device()))
        if len(self.feature_splits) == 1:
            return [features]
        return split_by_keys(features, self.feature_splits, True)


def sharded_table_configs(
    tables: List[Any], pooling: Optional[PoolingType], is_weighted: bool
) -> List[EmbeddingTableConfig]:
    """``EmbeddingTableConfig`` s of a module's table configs with their output names (``pooling=None``
    keeps each table's own pooling)."""
    names = get_embedding_names_by_table(tables)
    return [
        EmbeddingTableConfig(
            num_embeddings=t.num_embeddings, embedding_dim=t.embedding_dim, name=t.name, data_type=t.data_type,
            feature_names=list(t.feature_names), weight_init_max=t.weight_init_max, weight_init_min=t.weight_init_min,
            init_fn=t.init_fn, need_pos=t.need_pos, pooling=t.pooling if pooling is None else pooling,
            is_weighted=is_weighted, has_feature_processor=False, embedding_names=list(n),
        )
        for t, n in zip(tables, names)
    ]


class ShardedEmbeddingBody:
    """Shardings, dists, lookups and table shards of one sharded EBC/EC (see the module docstring).

    Args:
        configs: the module's tables with output names (:func:`sharded_table_configs`).
        params: table name → unsharded weight (copied into the shards unless on ``meta``).
        plan: table name → ``ParameterSharding`` (checked: every table planned, known types and kernels).
        env: world, rank and process group.
        device: where shards and outputs live.
        fused_params: the sharder's FBGEMM arguments (merged per table with in-backward optimizers and the plan).
        qcomm_codecs_registry: wire codecs keyed by ``CommOp.value``.
        sequence: build the registry's sequence (EC) shardings instead of the pooled (EBC) ones.
        weights_attr: the unsharded module's table dict (``embedding_bags`` / ``embeddings``).
        owner_name: named in error messages.

    Attributes:
        sharding_type_to_sharding: one ``EmbeddingSharding`` per sharding type, in order of first appearance.
        router: puts input features into sharding order and splits them per sharding.
        rows_of: feature → rows of the (smallest) table it reads (input id check).
        input_dists / lookups / output_dists: index ``i`` belongs to sharding ``i``.
        table_state: this rank's shards of every table.
        tables: ``{table: TableHolder}`` (the module assigns it under ``weights_attr``).
    """

    def __init__(
        self,
        configs: List[EmbeddingTableConfig],
        params: Dict[str, torch.Tensor],
        plan: Mapping[str, ParameterSharding],
        env: ShardingEnv,
        device: torch.device,
        fused_params: Optional[Dict[str, Any]],
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]],
        sequence: bool,
        weights_attr: str,
        owner_name: str,
        sharding_order: Optional[List[str]] = None,
    ) -> None:
        self.owner_name = owner_name
        self.weights_attr = weights_attr
        if isinstance(env, ShardingEnv2D):  # 2-D parallel: the tables are sharded over the sharding group
            env = sharding_env(env)
        infos = create_sharding_infos(configs, params, plan, fused_params, owner_name)
        by_type = create_shardings(infos, env, device, qcomm_codecs_registry, sequence)
        # ``sharding_order`` (sharder's ``sharded_module_order_overwrite``): listed types first, the rest after.
        first = [t for t in (sharding_order or []) if t in by_type]
        self.sharding_type_to_sharding: Dict[str, EmbeddingSharding] = {
            t: by_type[t] for t in first + [t for t in by_type if t not in first]
        }
        shardings = list(self.sharding_type_to_sharding.values())
        self.router = ShardingRouter(shardings, owner_name)
        self.rows_of: Dict[str, int] = {}
        for c in configs:
            for f in c.feature_names:
                self.rows_of[f] = min(c.num_embeddings, self.rows_of.get(f, c.num_embeddings))
        self.input_dists = nn.ModuleList([s.create_input_dist(device) for s in shardings])
        # Kernels initialise their shards with the global RNG, differently per rank; keep the caller's RNG stream
        # untouched so code after sharding draws the same numbers on every rank.
        with torch.random.fork_rng(devices=[]):
            self.lookups = nn.ModuleList([s.create_lookup(device) for s in shardings])
        self.output_dists = nn.ModuleList([s.create_output_dist(device) for s in shardings])
        # Every input id is checked against its table once, before any input dist (``input_dist``): the
        # row-split input dists and the kernels need not repeat that pass.
        for m in list(self.input_dists.modules()) + list(self.lookups.modules()):
            if hasattr(m, "_check_ids"):
                m._check_ids = False
        self.table_state = TableState(configs, plan, self.lookups, env)
        self.table_shapes: Dict[str, Tuple[int, int]] = {c.name: (c.num_embeddings, c.embedding_dim) for c in configs}
        self.tables = nn.ModuleDict({c.name: TableHolder(self.table_state, c.name) for c in configs})
        self._row_state: Optional[Any] = None
        self._row_state_ids: Tuple[int, ...] = ()
        for c in configs:
            p = params[c.name]
            if p.device.type != "meta":
                self.table_state.load(c.name, p.detach().to(device), f"{weights_attr}.{c.name}.weight")

    # ---- per batch ----

    def input_dist(
        self, ctx: Any, features: KeyedJaggedTensor, sequence: bool, weighted: bool = False, pooled: bool = False
    ) -> KJTListSplitsAwaitable:
        """Checks ``features`` (on error: raises on every rank, see the module docstring), routes them per
        sharding (weights dropped unless ``weighted``: unweighted modules ignore them) and starts every sharding's
        input dist (split sizes first); appends one sharding context per sharding to ``ctx.sharding_contexts``."""
        error = input_error(self.owner_name, features, self.router.feature_names, self.rows_of, weighted, pooled)
        if error is not None:
            fail_on_every_rank(self.input_dists, error)
        vbe = features.variable_stride_per_key()
        awaitables = []
        for features_i, dist in zip(self.router.split(features, keep_weights=weighted), self.input_dists):
            sctx = EmbeddingShardingContext(variable_batch_per_feature=vbe)
            if vbe:
                sctx.batch_size_per_feature_pre_a2a = features_i.stride_per_key()
            if sequence:
                sctx.length_per_key_before_input_dist = features_i.length_per_key()
            ctx.sharding_contexts.append(sctx)
            awaitable = dist(features_i)
            if isinstance(awaitable, SplitsWithFacts):
                sctx.input_dist_facts = awaitable.facts
            awaitables.append(awaitable)
        return KJTListSplitsAwaitable(awaitables, ctx)

    # ---- state, parameters, optimizer (the module's overrides call these) ----

    def _key(self, prefix: str, table: str) -> str:
        return f"{prefix}{self.weights_attr}.{table}.weight"

    def state_dict(self, destination: Optional[Dict[str, Any]], prefix: str, keep_vars: bool) -> Dict[str, Any]:
        """``{prefix + "<weights_attr>.<table>.weight": ShardedTensor or tensor}`` in table order."""
        if destination is None:
            destination = {}
        for table in self.table_state.table_names:
            destination[self._key(prefix, table)] = self.table_state.value(table, keep_vars)
        return destination

    def load_from_state_dict(
        self, state_dict: Mapping[str, Any], prefix: str, strict: bool, missing_keys: List[str],
        unexpected_keys: List[str], error_msgs: Optional[List[str]] = None,
    ) -> None:
        """Copies this module's table entries in; other keys under ``prefix`` are unexpected.

        All or nothing: every entry is checked (global shape, then this rank's pieces) before any table is
        copied. Errors go to ``error_msgs`` (``nn.Module.load_state_dict`` raises them together) or, without
        it, raise ``RuntimeError``. Dtypes are cast on copy, as ``nn.Module`` does.
        """
        own = {self._key(prefix, t): t for t in self.table_state.table_names}
        errors = shape_errors({key: self.table_shapes[t] for key, t in own.items()}, state_dict)
        copies: List[Tuple[torch.Tensor, torch.Tensor]] = []
        if not errors:
            for key, table in own.items():
                if key in state_dict:
                    try:
                        copies.extend(self.table_state.pieces(table, state_dict[key], key))
                    except (ValueError, TypeError) as e:
                        errors.append(str(e))
        if errors:
            if error_msgs is None:
                raise RuntimeError(f"Error(s) in loading state_dict for {self.owner_name}:\n\t" + "\n\t".join(errors))
            error_msgs.extend(errors)
        else:
            with torch.no_grad():
                for dst, piece in copies:
                    dst.copy_(piece)
        if strict:
            missing_keys.extend(key for key in own if key not in state_dict)
            unexpected_keys.extend(k for k in state_dict if k.startswith(prefix) and k not in own)

    def missing_keys_hook(self) -> Any:
        """A ``load_state_dict`` post hook dropping the dists' and kernels' internals from ``missing_keys``
        (the module's own ``<weights_attr>.<table>.weight`` entries replace them) and reporting each unexpected
        key once (the module and its table dict both see an extra ``<weights_attr>.<x>`` key)."""
        internal: List[str] = []
        for child, sub in (("_input_dists", self.input_dists), ("_lookups", self.lookups),
                           ("_output_dists", self.output_dists)):
            internal.extend(n for n, _ in nn.Module.named_parameters(sub, prefix=child))
            internal.extend(n for n, _ in nn.Module.named_buffers(sub, prefix=child))
        drop_internal = drop_internal_missing_keys(internal)

        def hook(module: nn.Module, incompatible_keys: Any) -> None:
            drop_internal(module, incompatible_keys)
            dedupe_unexpected_keys(module, incompatible_keys)

        return hook

    def named_parameters(self, prefix: str, recurse: bool) -> Iterator[Tuple[str, nn.Parameter]]:
        """The kernels' parameters under the unsharded names (``<weights_attr>.<table>.weight``)."""
        if not recurse:
            return
        base = f"{prefix}.{self.weights_attr}" if prefix else self.weights_attr
        for lookup in self.lookups:
            for name, param in unwrap(lookup).named_parameters():
                yield f"{base}.{name}", param

    def fused_optimizer(self) -> Any:
        """``CombinedOptimizer`` of the fused kernels' optimizers, keyed ``<weights_attr>.<table>.weight``; row-wise
        states of column-split tables are plan-independent ``(R,)`` values (``_checkpoint/rowwise_state.py``)."""
        from recsys_lib.distributed._checkpoint.rowwise_state import (
            ColumnSplitRowwiseState,
            RowwiseStateOptimizer,
            split_columns,
        )
        from recsys_lib.optim.fused import FusedOptimizerModule

        optims = [(self.weights_attr, k.fused_optimizer) for k in kernels_of(self.lookups)
                  if isinstance(k, FusedOptimizerModule)]
        # Column-split row-wise states are swapped for plan-independent values once per set of kernel
        # optimizers (``DistributedModelParallel.copy`` makes new ones).
        ids = tuple(id(o) for _, o in optims)
        if self._row_state is None or self._row_state_ids != ids:
            # Only modules with a column-split table (known on every rank from the plan) pay collectives.
            split = any(md is not None and split_columns(md.shards_metadata) for md in self.table_state.global_md.values())
            pg = self.table_state.process_group if split else None
            self._row_state = ColumnSplitRowwiseState([o for _, o in optims], pg)
            self._row_state_ids = ids
        return RowwiseStateOptimizer(optims, self._row_state)

    def refresh_tables(self) -> None:
        """Rebuilds the kernels' per-table views and this rank's shards after the kernels' weight buffers were
        replaced (``utils.EmbeddingQuantizationUtils``)."""
        from recsys_lib.distributed._tbe.kernel import FusedTableBatchMethods

        for kernel in kernels_of(self.lookups):
            if isinstance(kernel, FusedTableBatchMethods):
                kernel.refresh_tables()
        self.table_state.refresh(self.lookups)

    def reset_parameters(self) -> None:
        """Re-initialises every local shard with its table's ``init_fn`` (default uniform)."""
        for kernel in kernels_of(self.lookups):
            kernel.init_parameters()
