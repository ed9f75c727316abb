"""Shard estimators: fill ``shard.perf`` (``EmbeddingPerfEstimator``) and ``shard.storage``
(``EmbeddingStorageEstimator``) of sharding options.

Both build a :class:`ShardCostInputs` per distinct shard size and ask the option's strategy for its
cost terms through the registry (``sharding/<x>_sharding/cost.py``); nothing here depends on which
sharding type an option has. Shards of equal size share one estimate (row-wise over 64 ranks is two
computations, not 64).

Storage of one shard::

    weights     sharder.storage_usage(shard) (+ optimizer state: Adam x2, Adagrad x1, row-wise 1/D)
    UVM cache   + cache_load_factor x weights in HBM (fused_uvm_caching)
    I/O         input ids + output vectors, x the pipeline's batches in flight, in HBM (DDR on cpu)
"""

import logging
from typing import Any, Dict, List, Optional, Tuple

import torch

from recsys_lib.distributed.planner._cost_terms import ShardCost, ShardCostInputs
from recsys_lib.distributed.sharding.strategy import strategy_for
from recsys_lib.distributed.planner.constants import NUM_POOLINGS, UVM_CACHING_RATIO
from recsys_lib.distributed.planner._sharder_data import SharderData, storage_usage_of
from recsys_lib.distributed.planner.constants import (  # noqa: F401  (TorchRec lists these here)
    BIGINT_DTYPE,
    DEFAULT_PERF_ESTIMATOR,
    KV_CACHING_RATIO,
    NUM_POOLINGS,
    UVM_CACHING_RATIO,
)
from recsys_lib.distributed.planner.types import (
    ParameterConstraints,
    PlannerError,
    PlannerErrorType,
    ShardEstimator,
    ShardingOption,
)
from recsys_lib.distributed.planner._hardware import Perf, Storage, Topology
from recsys_lib.distributed.planner.utils import sharder_name
from recsys_lib.distributed._core.sharder import ModuleSharder
from recsys_lib.distributed._core.enums import PipelineType
from recsys_lib.distributed.planner._offload_stats import EmbeddingOffloadStats  # noqa: F401
from recsys_lib.distributed.planner.utils import get_num_poolings  # noqa: F401
from recsys_lib.distributed._core.plan import KeyValueParams
from recsys_lib.distributed._core.enums import PipelineType
from recsys_lib.types import DataType
from recsys_lib.distributed.planner.estimator.types import DATA_TYPE_NUM_BITS  # noqa: F401,E402
from recsys_lib.distributed.planner.types import SharderDataMap  # noqa: F401,E402

logger = logging.getLogger(__name__)

_CACHING_KERNELS = ("fused_uvm_caching", "quant_uvm_caching")
_KV_KERNELS = ("key_value", "ssd_virtual_table", "dram_virtual_table", "dram_ssd_virtual_table")
_DTYPE_BYTES = {DataType.FP32: 4, DataType.FP16: 2, DataType.BF16: 2, DataType.INT8: 1, DataType.UINT8: 1,
                DataType.INT4: 1, DataType.INT2: 1}


def _caching_ratio(option: ShardingOption, sharder_data: Optional[SharderData]) -> Optional[float]:
    if option.cache_load_factor is not None:
        return option.cache_load_factor
    fused = sharder_data.fused_params if sharder_data is not None else {}
    clf = fused.get("cache_load_factor")
    return None if clf is None else float(clf)


def build_cost_inputs(
    option: ShardingOption,
    shard_size: List[int],
    topology: Topology,
    constraints: Optional[Dict[str, ParameterConstraints]],
    kernel_bw: float,
) -> ShardCostInputs:
    """Plain-number description of one shard of ``option`` for the strategy's ``shard_cost``."""
    lengths = option.input_lengths
    n = len(lengths) or 1
    pc = constraints.get(option.name) if constraints else None
    if pc is not None and pc.batch_sizes:
        batch_sizes = tuple(pc.batch_sizes) if len(pc.batch_sizes) == n else (pc.batch_sizes[0],) * n
    else:
        batch_sizes = (option.batch_size,) * n
    poolings = option.num_poolings or (pc.num_poolings if pc is not None and pc.num_poolings else None)
    out_bytes = _DTYPE_BYTES.get(option.output_dtype, 4) if option.output_dtype is not None else 4
    rows, cols, elem = option.table_shape()
    return ShardCostInputs(
        rows, cols, int(shard_size[0]), int(shard_size[1]), topology.world_size, topology.local_world_size,
        batch_sizes, tuple(lengths) if lengths else (1.0,),
        tuple(poolings) if poolings and len(poolings) == n else (NUM_POOLINGS,) * n,
        option.is_pooled, bool(option.is_weighted), kernel_bw, topology.intra_host_bw, topology.inter_host_bw,
        topology.bwd_compute_multiplier, topology.weighted_feature_bwd_compute_multiplier, elem, out_bytes,
    )


def shard_costs(
    option: ShardingOption,
    topology: Topology,
    constraints: Optional[Dict[str, ParameterConstraints]] = None,
    sharder_data: Optional[SharderData] = None,
) -> List[ShardCost]:
    """One :class:`ShardCost` per shard of ``option`` (computed once per distinct shard size; the result
    is kept on the option for the other estimators and the statistics, keyed by topology and sizes)."""
    clf = _caching_ratio(option, sharder_data)
    sizes = [(s.size[0], s.size[1]) for s in option.shards]
    cache_key = (
        topology.cost_signature, id(constraints), clf, option.sharding_type, option.compute_kernel,
        option.batch_size, tuple(option.input_lengths), tuple(sizes),
    )
    cached = getattr(option, "_shard_costs_cache", None)
    if cached is not None and cached[0] == cache_key:
        return cached[1]
    prefetch = bool(option.cache_params is not None and option.cache_params.prefetch_pipeline)
    bw = topology.kernel_bw(option.compute_kernel, clf, prefetch)
    if bw is None:
        raise PlannerError(
            f"no perf model for compute kernel {option.compute_kernel!r} on {topology.compute_device!r} "
            f"(table {option.fqn!r})",
            PlannerErrorType.OTHER,
        )
    shard_cost = option.__dict__.get("_shard_cost_fn")
    if shard_cost is None:
        shard_cost = strategy_for(option.sharding_type).cost_function()
        option.__dict__["_shard_cost_fn"] = shard_cost
    memo: Dict[Tuple[int, int], ShardCost] = {}
    out: List[ShardCost] = []
    base: Optional[ShardCostInputs] = None
    for key in sizes:
        cost = memo.get(key)
        if cost is None:
            if base is None:
                base = build_cost_inputs(option, list(key), topology, constraints, bw)
                cost = shard_cost(base)
            else:
                cost = shard_cost(base._replace(shard_rows=key[0], shard_cols=key[1]))
            memo[key] = cost
        out.append(cost)
    option._shard_costs_cache = (cache_key, out)  # type: ignore[attr-defined]
    return out


class EmbeddingPerfEstimator(ShardEstimator):
    """Fills ``shard.perf`` (ms per training step; forward only when ``is_inference``)."""

    def __init__(
        self,
        topology: Topology,
        constraints: Optional[Dict[str, ParameterConstraints]] = None,
        is_inference: bool = False,
    ) -> None:
        self._topology = topology
        self._constraints = constraints
        self._is_inference = is_inference

    def estimate(self, sharding_options: List[ShardingOption], sharder_data_map: Dict[str, SharderData]) -> None:
        for option in sharding_options:
            data = (sharder_data_map or {}).get(option.module_type_key)
            perfs: Dict[int, Perf] = {}
            for shard, cost in zip(option.shards, shard_costs(option, self._topology, self._constraints, data)):
                perf = perfs.get(id(cost))
                if perf is None:
                    inf = self._is_inference
                    perf = Perf(
                        fwd_compute=cost.fwd_compute,
                        fwd_comms=cost.fwd_comms,
                        bwd_compute=0.0 if inf else cost.bwd_compute,
                        bwd_comms=0.0 if inf else cost.bwd_comms,
                    )
                    perfs[id(cost)] = perf
                shard.perf = perf
            option.estimates_changed()

    @classmethod
    def perf_func_emb_wall_time(
        cls,
        shard_sizes: List[List[int]],
        compute_kernel: str,
        compute_device: str,
        sharding_type: str,
        batch_sizes: List[int],
        world_size: int,
        local_world_size: int,
        input_lengths: List[float],
        input_data_type_size: float,
        table_data_type_size: float,
        output_data_type_size: float,
        fwd_a2a_comm_data_type_size: float,
        bwd_a2a_comm_data_type_size: float,
        fwd_sr_comm_data_type_size: float,
        bwd_sr_comm_data_type_size: float,
        num_poolings: List[float],
        hbm_mem_bw: float,
        ddr_mem_bw: float,
        hbm_to_ddr_mem_bw: float,
        comms_bandwidths: Any,
        bwd_compute_multiplier: float,
        weighted_feature_bwd_compute_multiplier: float,
        is_pooled: bool,
        is_weighted: bool = False,
        caching_ratio: Optional[float] = None,
        is_inference: bool = False,
        prefetch_pipeline: bool = False,
        expected_cache_fetches: float = 0,
        uneven_sharding_perf_multiplier: float = 1.0,
        table_rows: Optional[int] = None,
        table_cols: Optional[int] = None,
    ) -> List[Perf]:
        """Perf of each shard from plain numbers (the estimator's model without sharding options).

        ``table_rows``/``table_cols`` (recsys_lib) give the whole table's shape; by default the sum of the
        shards' rows (row splits) and the widest shard's columns.
        """
        from recsys_lib.distributed.planner.constants import kernel_bw_lookup

        bw = kernel_bw_lookup(compute_device, compute_kernel, hbm_mem_bw, ddr_mem_bw, hbm_to_ddr_mem_bw,
                              caching_ratio, prefetch_pipeline)
        if bw is None:
            raise PlannerError(f"no perf model for compute kernel {compute_kernel!r} on {compute_device!r}")
        rows = table_rows if table_rows is not None else max(sum(s[0] for s in shard_sizes), 1)
        cols = table_cols if table_cols is not None else max(s[1] for s in shard_sizes)
        shard_cost = strategy_for(sharding_type).cost_function()
        perfs: List[Perf] = []
        for size in shard_sizes:
            c = shard_cost(ShardCostInputs(
                table_rows=rows, table_cols=cols, shard_rows=size[0], shard_cols=size[1], world_size=world_size,
                local_world_size=local_world_size, batch_sizes=tuple(batch_sizes),
                pooling_factors=tuple(input_lengths), num_poolings=tuple(num_poolings), is_pooled=is_pooled,
                is_weighted=is_weighted, kernel_bw=bw, intra_host_bw=comms_bandwidths.intra_host_bw,
                inter_host_bw=comms_bandwidths.inter_host_bw, bwd_compute_multiplier=bwd_compute_multiplier,
                weighted_feature_bwd_compute_multiplier=weighted_feature_bwd_compute_multiplier,
                table_dtype_size=int(table_data_type_size), output_dtype_size=int(output_data_type_size),
                input_dtype_size=int(input_data_type_size),
            ))
            bwd = 0.0 if is_inference else 1.0
            perfs.append(Perf(c.fwd_compute * uneven_sharding_perf_multiplier, c.fwd_comms,
                              bwd * c.bwd_compute * uneven_sharding_perf_multiplier, bwd * c.bwd_comms))
        return perfs


def _optimizer_kind(sharder_data: SharderData, tensor: torch.Tensor) -> str:
    """Normalised optimizer name from the sharder's fused params or ``apply_optimizer_in_backward``."""
    name = ""
    fused = sharder_data.fused_params
    if "optimizer" in fused:
        opt = fused["optimizer"]
        name = str(getattr(opt, "name", opt))
    else:
        classes = getattr(tensor, "_optimizer_classes", None)
        if classes:
            name = classes[0].__name__
    return name.upper().replace("_", "")


def _optimizer_multiplier_of(kind: str, cols: int) -> float:
    """Optimizer state per weight element: Adam/LAMB 2, Adagrad 1, row-wise variants 1/D, SGD 0."""
    if "ROWWISE" in kind:
        return 1.0 / max(cols, 1) * (2 if "ADAM" in kind or "LAMB" in kind else 1)
    if "ADAM" in kind or "LAMB" in kind:
        return 2.0
    if "ADAGRAD" in kind:
        return 1.0
    return 0.0


def calculate_pipeline_io_cost(
    input_size: int,
    output_size: int,
    prefetch_size: int,
    pipeline_type: PipelineType,
    multipass_prefetch_max_pass: Optional[int],
    count_ephemeral_storage_cost: bool = False,
    is_inference: bool = False,
) -> int:
    """Bytes of a shard's input/output buffers alive at the memory peak (TorchRec's rule).

    ==========================  =====================================================================
    pipeline                    bytes
    ==========================  =====================================================================
    none, train_base            input + output
    train_sparse_dist           2 x input (next batch's ids already arrived) [+ output if ephemeral]
    train_prefetch_sparse_dist  3 x input + (1 + 6 / passes) x prefetch [+ output if ephemeral]
    inference                   0
    ==========================  =====================================================================
    """
    if is_inference:
        return 0
    ephemeral = output_size if count_ephemeral_storage_cost else 0
    if pipeline_type == PipelineType.TRAIN_SPARSE_DIST:
        return 2 * input_size + ephemeral
    if pipeline_type == PipelineType.TRAIN_PREFETCH_SPARSE_DIST:
        passes = multipass_prefetch_max_pass or 1
        return 3 * input_size + int((1 + 6 / passes) * prefetch_size) + ephemeral
    return input_size + output_size


class EmbeddingStorageEstimator(ShardEstimator):
    """Fills ``shard.storage`` (bytes in HBM and DDR; see the module docstring)."""

    def __init__(
        self,
        topology: Topology,
        constraints: Optional[Dict[str, ParameterConstraints]] = None,
        pipeline_type: PipelineType = PipelineType.NONE,
        run_embedding_at_peak_memory: bool = False,
        is_inference: bool = False,
    ) -> None:
        self._topology = topology
        self._constraints = constraints
        self._pipeline_type = pipeline_type
        self._run_embedding_at_peak_memory = run_embedding_at_peak_memory
        self._is_inference = is_inference

    def estimate(self, sharding_options: List[ShardingOption], sharder_data_map: Dict[str, SharderData]) -> None:
        if not sharder_data_map:
            raise ValueError(
                "EmbeddingStorageEstimator.estimate needs sharder_data_map (sharder_name(module type) → SharderData)"
            )
        device = self._topology.compute_device
        io_kind = "ddr" if device == "cpu" else "hbm"
        self._opt_mult: Dict[Tuple[int, int], str] = {}
        for option in sharding_options:
            key = option.module_type_key
            if key not in sharder_data_map:
                raise ValueError(f"no sharder for module type {key!r} of table {option.fqn!r}")
            sharder = sharder_data_map[key]
            costs = shard_costs(option, self._topology, self._constraints, sharder)
            clf = _caching_ratio(option, sharder)
            memo: Dict[Tuple[int, int], Storage] = {}
            for shard, cost in zip(option.shards, costs):
                size = (shard.size[0], shard.size[1])
                storage = memo.get(size)
                if storage is None:
                    storage = self._shard_storage(option, sharder, size, cost, clf, io_kind)
                    memo[size] = storage
                shard.storage = storage
            option.estimates_changed()

    def _shard_storage(
        self,
        option: ShardingOption,
        sharder: SharderData,
        size: Tuple[int, int],
        cost: ShardCost,
        clf: Optional[float],
        io_kind: str,
    ) -> Storage:
        device = self._topology.compute_device
        meta = torch.empty(size, dtype=option.tensor.dtype, device="meta")
        usage = storage_usage_of(sharder, meta, device, option.compute_kernel)
        kind_key = (id(sharder), id(option.tensor))
        kind = self._opt_mult.get(kind_key)
        if kind is None:
            kind = self._opt_mult[kind_key] = _optimizer_kind(sharder, option.tensor)
        mult = 1.0 + _optimizer_multiplier_of(kind, size[1])
        return _shard_storage_of(
            usage, mult, option.compute_kernel, clf, int(cost.input_bytes), int(cost.output_bytes),
            self._pipeline_type, self._is_inference, io_kind == "hbm", self._run_embedding_at_peak_memory,
        )


def _shard_storage_of(
    usage: Dict[str, int],
    optimizer_factor: float,
    compute_kernel: str,
    caching_ratio: Optional[float],
    input_bytes: int,
    output_bytes: int,
    pipeline_type: PipelineType,
    is_inference: bool,
    io_on_hbm: bool,
    at_peak_memory: bool = False,
    count_ephemeral_storage_cost: bool = False,
    multipass_prefetch_max_pass: Optional[int] = None,
) -> Storage:
    """One shard's storage from its weight bytes (``usage``), optimizer-state factor and I/O bytes."""
    hbm = int(usage.get("hbm", 0) * optimizer_factor)
    ddr = int(usage.get("ddr", 0) * optimizer_factor)
    if compute_kernel in _CACHING_KERNELS:
        ratio = UVM_CACHING_RATIO if caching_ratio is None else caching_ratio
        hbm += int(ratio * ddr)
    io = calculate_pipeline_io_cost(
        input_bytes, output_bytes, 0, pipeline_type, multipass_prefetch_max_pass,
        count_ephemeral_storage_cost, is_inference,
    )
    if at_peak_memory:
        io += output_bytes
    if io_on_hbm:
        hbm += io
    else:
        ddr += io
    return Storage(hbm=hbm, ddr=ddr)


def calculate_shard_storages(
    sharder_data: SharderData,
    sharding_type: str,
    tensor: torch.Tensor,
    compute_device: str,
    compute_kernel: str,
    shard_sizes: List[List[int]],
    batch_sizes: List[int],
    world_size: int,
    local_world_size: int,
    input_lengths: List[float],
    num_poolings: List[float],
    caching_ratio: float,
    is_pooled: bool,
    input_data_type_size: float,
    output_data_type_size: float,
    pipeline_type: PipelineType = PipelineType.NONE,
    count_ephemeral_storage_cost: bool = False,
    is_inference: bool = False,
    multipass_prefetch_max_pass: Optional[int] = None,
    key_value_params: Optional[KeyValueParams] = None,
    kv_cache_load_factor: float = KV_CACHING_RATIO,
    use_virtual_table: bool = False,
) -> List[Storage]:
    """Storage of each shard of a ``tensor`` table cut into ``shard_sizes`` (``[rows, cols]`` each).

    Weights (+ optimizer state from ``sharder_data.fused_params``) as the sharder counts them, the UVM
    cache share (``caching_ratio``), and the shard's input/output buffers times the batches the pipeline
    keeps in flight. Key-value / virtual-table kernels keep the weights on SSD and
    ``kv_cache_load_factor`` of them in HBM.
    """
    rows, cols = int(tensor.shape[0]), int(tensor.shape[1])
    shard_cost = strategy_for(sharding_type).cost_function()
    kind = _optimizer_kind(sharder_data, tensor)
    kv = use_virtual_table or key_value_params is not None or compute_kernel in _KV_KERNELS
    out: List[Storage] = []
    for size in shard_sizes:
        c = shard_cost(ShardCostInputs(
            rows, cols, int(size[0]), int(size[1]), world_size, local_world_size, tuple(batch_sizes),
            tuple(input_lengths), tuple(num_poolings), is_pooled, False, 1.0, 1.0, 1.0, 1.0, 1.0,
            int(tensor.element_size()), int(output_data_type_size), int(input_data_type_size),
        ))
        meta = torch.empty([int(size[0]), int(size[1])], dtype=tensor.dtype, device="meta")
        factor = 1.0 + _optimizer_multiplier_of(kind, int(size[1]))
        if kv:
            weights = int(meta.numel() * meta.element_size() * factor)
            usage = {"hbm" if compute_device != "cpu" else "ddr": int(weights * kv_cache_load_factor)}
            st = _shard_storage_of(usage, 1.0, compute_kernel, None, int(c.input_bytes), int(c.output_bytes),
                                   pipeline_type, is_inference, compute_device != "cpu", False,
                                   count_ephemeral_storage_cost, multipass_prefetch_max_pass)
            out.append(Storage(hbm=st.hbm, ddr=st.ddr, ssd=weights))
            continue
        usage = storage_usage_of(sharder_data, meta, compute_device, compute_kernel)
        out.append(_shard_storage_of(
            usage, factor, compute_kernel, caching_ratio, int(c.input_bytes), int(c.output_bytes), pipeline_type,
            is_inference, compute_device != "cpu", False, count_ephemeral_storage_cost, multipass_prefetch_max_pass,
        ))
    return out
