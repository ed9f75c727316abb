"""The body of a sharded ``EmbeddingBagCollection`` / ``EmbeddingCollection``, as one composed value.

A sharded module builds a :class:`ShardedEmbeddingBody` in its ``__init__`` and assigns its parts under
TorchRec's attribute names (``_input_dists``, ``_lookups``, ``_output_dists``, ...). The body owns what both
modules share: plan → one ``EmbeddingSharding`` per sharding type (from the registry), the input router, the
per-sharding dists and lookups, and this rank's table shards (state dict, parameters, fused optimizer)::

    body = ShardedEmbeddingBody(configs, params, plan, env, device, fused_params, codecs,
                                sequence=False, weights_attr="embedding_bags", owner_name="ShardedEBC")
    awaitable = body.input_dist(ctx, kjt, sequence=False)   # checks ids, routes, starts every input dist
"""

from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
from torch import nn

from recsys_lib.distributed._sharded.common import (
    TableHolder,
    TableState,
    create_sharding_infos,
    create_shardings,
    drop_internal_missing_keys,
    kernels_of,
    unwrap,
)
from recsys_lib.distributed._sharded.routing import ShardingRouter, fail_on_every_rank, input_error
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
from recsys_lib.modules.embedding_configs import EmbeddingTableConfig, PoolingType
from recsys_lib.modules.embedding_modules import get_embedding_names_by_table
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


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
    ) -> None:
        self.owner_name = owner_name
        self.weights_attr = weights_attr
        infos = create_sharding_infos(configs, params, plan, fused_params, owner_name)
        self.sharding_type_to_sharding: Dict[str, EmbeddingSharding] = create_shardings(
            infos, env, device, qcomm_codecs_registry, sequence
        )
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
        """Checks ``features`` (on error: raises on every rank, see ``routing``), routes them per sharding
        and starts every sharding's input dist (split sizes first); appends one sharding context per sharding to
        ``ctx.sharding_contexts``."""
        error = input_error(self.owner_name, features, self.router.feature_names, self.rows_of, weighted, pooled)
        if error is not None:
            fail_on_every_rank(self.input_dists, error)
        vbe = features.variable_stride_per_key()
        awaitables = []
        for features_i, dist in zip(self.router.split(features), self.input_dists):
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
