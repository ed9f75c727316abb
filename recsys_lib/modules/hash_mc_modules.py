"""Multi-probe zero-collision hash module (``torchrec.modules.hash_mc_modules``).

State (state-dict keys)::

    _hash_zch_identities   (Z, 1) int64 parameter (no grad): the id in each row, -1 = free
    _hash_zch_metadata     (Z, 1) int32 buffer, only with an eviction policy: expiry / access hour per row
    _hash_zch_runtime_meta (Z, 1 or D) int64 parameter, only with track_id_freq / write_runtime_meta_dim
    _hash_zch_bucket       (1, 1) number of buckets (persistent unless persist_hash_zch_bucket=False)

The table is split into ``total_num_buckets`` buckets (``output_segments``); an id goes to bucket
``id mod buckets`` (``input_hash_size == 0``) or ``id // ceil(input_hash_size / buckets)``, then probes inside
it (``recsys_lib/modules/_zch_probe.py``). Training inserts; eval (or a feature named ``*_readonly``) only looks
up. Lookups use FBGEMM's ``zero_collision_hash`` on every device; inserts use it on CUDA and our vectorised CPU
code on CPU, where FBGEMM's build is read-only.
"""

import logging
import math
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
import torch.distributed as dist

from recsys_lib.modules import _hash_zch_sync, _zch_probe
from recsys_lib.modules._zch_directory import ReadonlyZchDirectory
from recsys_lib.modules._hash_zch_remap import _compute_lengths_from_hits, remap_features  # noqa: F401
from recsys_lib.modules._mc_base import ManagedCollisionModule
from recsys_lib.modules.hash_mc_evictions import (
    get_kernel_from_policy,
    HashZchEvictionConfig,
    HashZchEvictionModule,
    HashZchEvictionPolicyName,
)
from recsys_lib.modules.hash_mc_metrics import ScalarLogger
from recsys_lib.sparse.jagged_tensor import JaggedTensor

logger: logging.Logger = logging.getLogger(__name__)


def _tensor_may_to_device(
    src: torch.Tensor, device: Optional[torch.device] = None
) -> Tuple[torch.Tensor, torch.device]:
    """``(src on device, src's original device)``; no copy when already there or for ``meta``."""
    src_device = src.device
    if device is None or device.type == "meta" or src_device == device:
        return src, src_device
    return src.to(device), src_device


class TrainInputMapper(torch.nn.Module):
    """Bucket of each id: its size and start row, as at training time.

    Args:
        input_hash_size: id range; ``0`` = buckets by ``id mod total_num_buckets``, else by contiguous id blocks.
        total_num_buckets: buckets over all ranks.
        size_per_rank: ``(buckets,)`` rows per bucket.
        train_rank_offsets: ``(buckets,)`` first row of each bucket.
        inference_dispatch_div_train_world_size: divide ids by the buckets (``mod`` the block) first.
        name: table name (logs).
    """

    _zch_size_per_training_rank: torch.Tensor
    _train_rank_offsets: torch.Tensor

    def __init__(
        self,
        input_hash_size: int,
        total_num_buckets: int,
        size_per_rank: torch.Tensor,
        train_rank_offsets: torch.Tensor,
        inference_dispatch_div_train_world_size: bool = False,
        name: Optional[str] = None,
    ) -> None:
        super().__init__()
        if total_num_buckets <= 0:
            raise ValueError(f"TrainInputMapper({name!r}): total_num_buckets must be positive, got {total_num_buckets}")
        self._input_hash_size = input_hash_size
        self._buckets = total_num_buckets
        self._inference_dispatch_div_train_world_size = inference_dispatch_div_train_world_size
        self._name = name
        self.register_buffer("_zch_size_per_training_rank", size_per_rank, persistent=False)
        self.register_buffer("_train_rank_offsets", train_rank_offsets, persistent=False)

    def _get_values_sizes_offsets(
        self, x: torch.Tensor, output_offset: Optional[torch.Tensor]
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        sizes, _ = _tensor_may_to_device(self._zch_size_per_training_rank, x.device)
        starts, _ = _tensor_may_to_device(self._train_rank_offsets, x.device)
        if self._input_hash_size == 0:
            ranks = torch.remainder(x, self._buckets)
            if self._inference_dispatch_div_train_world_size:
                x = torch.div(x, self._buckets, rounding_mode="floor")
        else:
            block = -(-self._input_hash_size // self._buckets)
            if x.numel() > 0 and (bool((x < 0).any()) or bool((x >= self._input_hash_size).any())):
                bad = x[(x < 0) | (x >= self._input_hash_size)][:5].tolist()
                raise ValueError(
                    f"HashZchManagedCollisionModule({self._name!r}): ids must lie in [0, input_hash_size="
                    f"{self._input_hash_size}), got e.g. {bad}"
                )
            ranks = torch.div(x, block, rounding_mode="floor")
            if self._inference_dispatch_div_train_world_size:
                x = torch.remainder(x, block)
        local_sizes = sizes.index_select(0, ranks)
        offsets = starts.index_select(0, ranks)
        if output_offset is not None:
            offsets = offsets - output_offset
        return x, local_sizes, offsets

    def forward(
        self, values: torch.Tensor, output_offset: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        """Args: values ``(N,)`` ids; output_offset: first global row of this rank. Returns: ``(values, sizes
        (N,), bucket starts (N,) relative to the rank)``."""
        return self._get_values_sizes_offsets(values, output_offset)


@torch.fx.wrap
def _get_device(hash_zch_identities: torch.Tensor) -> torch.device:
    return hash_zch_identities.device


@torch.fx.wrap
def _append_eviction_indice(evicted_indices: List[torch.Tensor], evictions: Optional[torch.Tensor]) -> None:
    if evictions is not None and evictions.numel() > 0:
        evicted_indices.append(evictions)


class HashZchManagedCollisionModule(ManagedCollisionModule):
    """Multi-probe ZCH: each id owns a row found by probing from its hash; misses collide (or are dropped).

    Args:
        zch_size: ``Z`` rows (>= 1).
        device: device of the tables.
        total_num_buckets: buckets (``Z`` must divide evenly unless ``output_segments`` is given).
        max_probe: probe window.
        input_hash_size: id range for block bucketing; 0 = bucket by ``id mod buckets``.
        output_segments: bucket boundaries (rows), ``buckets + 1`` entries.
        is_inference: start in inference (read-only) mode.
        name: table name (metrics).
        tb_logging_frequency: metrics report period in steps (0 = off).
        eviction_policy_name: TTL / LRU policy, or None (no eviction).
        eviction_config: its parameters.
        inference_dispatch_div_train_world_size: see ``TrainInputMapper``.
        start_bucket: first bucket of this (sharded) module.
        end_bucket: one past the last bucket (default all).
        opt_in_prob: percent of new ids admitted (-1 = all); needs ``percent_reserved_slots``.
        percent_reserved_slots: percent of rows reserved for ids not admitted.
        disable_fallback: drop ids that find no row (lengths shrink when ``mutate_miss_lengths``).
        track_id_freq: count lookups per row in ``_hash_zch_runtime_meta``.
        read_only_suffix: features named ``*<suffix>`` are looked up read-only.
        enable_per_feature_lookups: kept for the sharded module.
        no_bag: with ``disable_fallback``, keep dropped ids as row 0 instead of removing them.
        write_runtime_meta_dim: width of custom runtime metadata per row (0 = none).
        persist_hash_zch_bucket: keep ``_hash_zch_bucket`` in the state dict.

    Example::

        mc = HashZchManagedCollisionModule(zch_size=100, device=torch.device("cpu"), total_num_buckets=2)
        rows = mc({"t": JaggedTensor(values=torch.tensor([2**60, 5]), lengths=torch.tensor([2]))})
    """

    IDENTITY_BUFFER: str = "_hash_zch_identities"
    METADATA_BUFFER: str = "_hash_zch_metadata"
    RUNTIME_META_BUFFER: str = "_hash_zch_runtime_meta"
    BUCKET_BUFFER: str = "_hash_zch_bucket"

    _evicted_indices: List[torch.Tensor]

    def __init__(
        self,
        zch_size: int,
        device: torch.device,
        total_num_buckets: int,
        max_probe: int = 128,
        input_hash_size: int = 0,
        output_segments: Optional[List[int]] = None,
        is_inference: bool = False,
        name: Optional[str] = None,
        tb_logging_frequency: int = 0,
        eviction_policy_name: Optional[HashZchEvictionPolicyName] = None,
        eviction_config: Optional[HashZchEvictionConfig] = None,
        inference_dispatch_div_train_world_size: bool = False,
        start_bucket: int = 0,
        end_bucket: Optional[int] = None,
        opt_in_prob: int = -1,
        percent_reserved_slots: float = 0,
        disable_fallback: bool = False,
        track_id_freq: bool = False,
        read_only_suffix: str = "_readonly",
        enable_per_feature_lookups: bool = False,
        no_bag: bool = False,
        write_runtime_meta_dim: int = 0,
        persist_hash_zch_bucket: bool = True,
    ) -> None:
        _check_hash_zch_args(name, zch_size, total_num_buckets, output_segments, percent_reserved_slots, opt_in_prob,
                             track_id_freq, write_runtime_meta_dim, max_probe)
        if output_segments is None:
            output_segments = [(zch_size // total_num_buckets) * b for b in range(total_num_buckets + 1)]
        super().__init__(device=device, output_segments=output_segments, skip_state_validation=True)
        self._zch_size: int = zch_size
        self._output_segments: List[int] = output_segments
        self._start_bucket: int = start_bucket
        self._end_bucket: int = end_bucket if end_bucket is not None else total_num_buckets
        self._output_global_offset_tensor: Optional[torch.Tensor] = None
        if output_segments[start_bucket] > 0:
            self._output_global_offset_tensor = torch.tensor(
                [output_segments[start_bucket]], dtype=torch.int64,
                device=device if device.type != "meta" else torch.device("cpu"),
            )
        self._device: torch.device = device
        self._input_hash_size: int = input_hash_size
        self._is_inference: bool = is_inference
        self._name: Optional[str] = name
        self._tb_logging_frequency: int = tb_logging_frequency if (name is not None and not is_inference) else 0
        self._eviction_policy_name: Optional[HashZchEvictionPolicyName] = eviction_policy_name
        self._eviction_policy_name_copy: Optional[HashZchEvictionPolicyName] = eviction_policy_name
        self._eviction_config: Optional[HashZchEvictionConfig] = eviction_config
        self._eviction_module: Optional[HashZchEvictionModule] = (
            HashZchEvictionModule(eviction_policy_name, device, eviction_config)
            if eviction_policy_name is not None and self.training else None
        )
        self._opt_in_prob: int = opt_in_prob
        self._percent_reserved_slots: float = percent_reserved_slots
        self._disable_fallback: bool = disable_fallback
        self._track_id_freq: bool = track_id_freq
        self._write_runtime_meta_dim: int = write_runtime_meta_dim
        self._max_probe: int = max_probe
        self._buckets: int = total_num_buckets
        self._read_only_suffix: str = read_only_suffix
        self._enable_per_feature_lookups: bool = enable_per_feature_lookups
        self._no_bag: bool = no_bag
        self._persist_hash_zch_bucket: bool = persist_hash_zch_bucket
        self._scalar_logger: Optional[ScalarLogger] = None
        if self._tb_logging_frequency > 0 and device.type != "meta":
            self._scalar_logger = self._create_scalar_logger()

        identities, metadata = self._create_zch_buffer(zch_size, self._eviction_module is not None, device, True)
        self._hash_zch_identities = torch.nn.Parameter(identities, requires_grad=False)
        self.register_buffer(HashZchManagedCollisionModule.METADATA_BUFFER, metadata)
        self._hash_zch_runtime_meta: Optional[torch.Tensor] = None
        meta_dim = 1 if track_id_freq else write_runtime_meta_dim
        if meta_dim > 0:
            self._hash_zch_runtime_meta = torch.nn.Parameter(
                torch.zeros((zch_size, meta_dim), dtype=torch.int64, device=device), requires_grad=False
            )
        self.register_buffer(
            HashZchManagedCollisionModule.BUCKET_BUFFER, torch.tensor([[total_num_buckets]]),
            persistent=persist_hash_zch_bucket,
        )
        self._evicted_indices = []
        # read-only lookups on CPU: an index of the identity table, rebuilt whenever the table changes
        self._readonly_directory = ReadonlyZchDirectory()
        size_per_rank = torch.diff(torch.tensor(output_segments, dtype=torch.int64))
        self.input_mapper: torch.nn.Module = TrainInputMapper(
            input_hash_size=input_hash_size,
            total_num_buckets=total_num_buckets,
            size_per_rank=size_per_rank,
            train_rank_offsets=torch.cumsum(size_per_rank, 0) - size_per_rank,
            inference_dispatch_div_train_world_size=inference_dispatch_div_train_world_size,
            name=name,
        )
        if is_inference:
            self.reset_inference_mode()

    # -- buffers and kernels -------------------------------------------------------------------------------
    def _create_zch_buffer(
        self, size: int, support_evict: bool, device: torch.device, long_type: bool
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        identities = torch.full((size, 1), -1, dtype=torch.int64 if long_type else torch.int32, device=device)
        metadata = torch.full((size, 1), -1, dtype=torch.int32, device=device) if support_evict else None
        return identities, metadata

    def _zero_collision_hash(
        self,
        input: torch.Tensor,
        identities: torch.Tensor,
        max_probe: int,
        circular_probe: bool,
        exp_hours: int,
        readonly: bool,
        local_sizes: Optional[torch.Tensor],
        offsets: Optional[torch.Tensor],
        metadata: Optional[torch.Tensor],
        output_on_uvm: bool,
        disable_fallback: bool,
        _modulo_identity_DPRECATED: bool,
        input_metadata: Optional[torch.Tensor],
        eviction_threshold: int,
        eviction_policy: int,
        opt_in_prob: int,
        num_reserved_slots: int,
        opt_in_rands: Optional[torch.Tensor],
        runtime_meta: Optional[torch.Tensor],
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Slots ``(N,)`` of ``input`` and the slots evicted on the way (``(E,)`` or None)."""
        if input.is_cuda and not readonly:
            out, evicted = torch.ops.fbgemm.zero_collision_hash(
                input, identities, max_probe, circular_probe=circular_probe, exp_hours=exp_hours,
                readonly=False, local_sizes=local_sizes, offsets=offsets, metadata=metadata,
                output_on_uvm=output_on_uvm, disable_fallback=disable_fallback, input_metadata=input_metadata,
                eviction_threshold=eviction_threshold, eviction_policy=eviction_policy, opt_in_prob=opt_in_prob,
                num_reserved_slots=num_reserved_slots, opt_in_rands=opt_in_rands, runtime_meta=runtime_meta,
            )
            return out, evicted[evicted >= 0] if evicted is not None else None
        if readonly:
            return self._readonly_directory.lookup(input, identities, max_probe, local_sizes, offsets,
                                                   disable_fallback, opt_in_prob, num_reserved_slots), None
        return _zch_probe.insert(
            input, identities.data, max_probe, local_sizes, offsets, disable_fallback, metadata, input_metadata,
            eviction_threshold, eviction_policy, metadata_val=_zch_probe_hour(), opt_in_prob=opt_in_prob,
            num_reserved_slots=num_reserved_slots, opt_in_rands=opt_in_rands,
        )

    def _create_scalar_logger(self) -> ScalarLogger:
        assert self._name is not None
        return ScalarLogger(
            name=self._name, zch_size=self._zch_size, frequency=self._tb_logging_frequency,
            start_bucket=self._start_bucket, num_buckets_per_rank=self._end_bucket - self._start_bucket,
            num_reserved_slots_per_bucket=self.get_reserved_slots_per_bucket(), device=self._device,
            disable_fallback=self._disable_fallback,
        )

    # -- properties and modes ---------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return _get_device(self._hash_zch_identities)

    @property
    def max_probe(self) -> int:
        return self._max_probe

    @property
    def disable_fallback(self) -> bool:
        return self._disable_fallback

    @property
    def eviction_flag(self) -> int:
        return get_kernel_from_policy(self._eviction_policy_name)

    def buckets(self) -> int:
        return self._buckets

    @property
    def is_sharded(self) -> bool:
        return (self._end_bucket - self._start_bucket) < self._buckets

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, torch.Tensor]]:
        yield from super().named_buffers(prefix, recurse, remove_duplicate)
        pre = prefix + "." if prefix else ""
        yield pre + self.IDENTITY_BUFFER, self._hash_zch_identities.data
        if self._track_id_freq and self._hash_zch_runtime_meta is not None:
            yield pre + self.RUNTIME_META_BUFFER, self._hash_zch_runtime_meta.data

    def validate_state(self) -> None:
        """Nothing to normalise: identities are positional (the module registers no load-time check)."""

    def _set_eval_mode_impl(self) -> None:
        self.eval()
        self._is_inference = True
        self._evicted_indices = []
        self._eviction_policy_name = None
        self._eviction_module = None

    @staticmethod
    def _reset_inference_mode_load_state_dict_pre_hook(
        module: "HashZchManagedCollisionModule", state_dict: Dict[str, Any], prefix: str, *args: Any
    ) -> None:
        if module._is_inference:
            state_dict.pop(prefix + HashZchManagedCollisionModule.METADATA_BUFFER, None)

    def reset_inference_mode(self) -> None:
        """Read-only from now on; drops the eviction metadata (and ignores it in loaded state dicts)."""
        self._set_eval_mode_impl()
        self._hash_zch_metadata = None
        self._register_load_state_dict_pre_hook(self._reset_inference_mode_load_state_dict_pre_hook, with_module=True)

    def reset_intrainer_bulk_eval_mode(self) -> None:
        self._set_eval_mode_impl()

    def reset_training_mode(self) -> None:
        self._is_inference = False
        self.train()
        self._eviction_policy_name = self._eviction_policy_name_copy
        self._eviction_module = (
            HashZchEvictionModule(self._eviction_policy_name, self._device, self._eviction_config)
            if self._eviction_policy_name is not None else None
        )

    # -- the MC interface -------------------------------------------------------------------------------------
    def preprocess(self, features: Dict[str, JaggedTensor]) -> Dict[str, JaggedTensor]:
        return features

    def profile(self, features: Dict[str, JaggedTensor]) -> Dict[str, JaggedTensor]:
        return features

    def evict(self) -> Optional[torch.Tensor]:
        if len(self._evicted_indices) == 0:
            return None
        out = torch.unique(torch.cat(self._evicted_indices))
        self._evicted_indices = []
        return out + self._output_global_offset_tensor if self._output_global_offset_tensor is not None else out

    def get_reserved_slots_per_bucket(self) -> int:
        if self._opt_in_prob == -1:
            return -1
        return math.floor(self._zch_size * self._percent_reserved_slots / 100 / (self._end_bucket - self._start_bucket))

    def remap(
        self,
        features: Dict[str, JaggedTensor],
        mutate_miss_lengths: bool = True,
        write_weights: Optional[torch.Tensor] = None,
    ) -> Dict[str, JaggedTensor]:
        return remap_features(self, features, mutate_miss_lengths, write_weights)

    def forward(self, features: Dict[str, JaggedTensor], mutate_miss_lengths: bool = True) -> Dict[str, JaggedTensor]:
        """Args: ``{table: JaggedTensor}`` of raw ids. Returns: the same of rows (see ``disable_fallback``)."""
        return self.remap(features, mutate_miss_lengths=mutate_miss_lengths)

    def output_size(self) -> int:
        return self._zch_size

    def input_size(self) -> int:
        return self._input_hash_size

    def open_slots(self) -> torch.Tensor:
        return torch.tensor([0])

    def rebuild_with_output_id_range(
        self,
        output_id_range: Tuple[int, int],
        output_segments: Optional[List[int]] = None,
        device: Optional[torch.device] = None,
    ) -> "HashZchManagedCollisionModule":
        if output_id_range[0] not in self._output_segments or output_id_range[1] not in self._output_segments:
            raise RuntimeError(
                f"HashZchManagedCollisionModule({self._name!r}): rows {list(output_id_range)} do not start and end on "
                f"bucket boundaries {self._output_segments}; the planner must place whole buckets per rank"
            )
        return self.__class__(
            zch_size=output_id_range[1] - output_id_range[0], device=device or self.device, max_probe=self._max_probe,
            total_num_buckets=self._buckets, input_hash_size=self._input_hash_size, is_inference=self._is_inference,
            start_bucket=self._output_segments.index(output_id_range[0]),
            end_bucket=self._output_segments.index(output_id_range[1]), output_segments=self._output_segments,
            name=self._name, tb_logging_frequency=self._tb_logging_frequency,
            eviction_policy_name=self._eviction_policy_name, eviction_config=self._eviction_config,
            opt_in_prob=self._opt_in_prob, percent_reserved_slots=self._percent_reserved_slots,
            disable_fallback=self._disable_fallback, track_id_freq=self._track_id_freq,
            read_only_suffix=self._read_only_suffix, enable_per_feature_lookups=self._enable_per_feature_lookups,
            no_bag=self._no_bag, write_runtime_meta_dim=self._write_runtime_meta_dim,
            persist_hash_zch_bucket=self._persist_hash_zch_bucket,
        )

    def sync_identities(
        self,
        is_root_node: bool,
        num_replica_gp: int,
        replica_ranks: List[int],
        replica_pg: dist.ProcessGroup,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Merges this table with its 2D-sharding replicas' (``_hash_zch_sync.py``).

        Returns:
            ``(survived (Z,) bool, rank_to_global (Z,))``: rows whose id is still in the merged table, and its row
            there (-1 otherwise).
        """
        return _hash_zch_sync.sync_identities(self, is_root_node, num_replica_gp, replica_ranks, replica_pg)

    # -- runtime metadata -------------------------------------------------------------------------------------
    def lookup_runtime_meta(self, features: torch.Tensor, remapped_ids: torch.Tensor) -> torch.Tensor:
        """Runtime metadata ``(N * dim,)`` of each id's row; 0 where the row holds another id, -1 without meta."""
        if features.numel() != remapped_ids.numel():
            raise ValueError(f"lookup_runtime_meta: {features.numel()} ids but {remapped_ids.numel()} rows")
        if self._hash_zch_runtime_meta is None:
            return torch.full_like(remapped_ids, -1)
        owned = self._hash_zch_identities[remapped_ids, 0] == features
        meta = torch.index_select(self._hash_zch_runtime_meta, 0, remapped_ids)
        return torch.where(owned.unsqueeze(1), meta, torch.zeros_like(meta)).reshape(-1)

    def lookup_custom_runtime_meta(self, remapped_ids: torch.Tensor) -> torch.Tensor:
        if self._hash_zch_runtime_meta is None:
            raise RuntimeError(f"HashZchManagedCollisionModule({self._name!r}) keeps no runtime metadata "
                               "(write_runtime_meta_dim=0, track_id_freq=False)")
        return torch.index_select(self._hash_zch_runtime_meta, 0, remapped_ids)

    def update_runtime_meta(self, raw_ids: torch.Tensor, remapped_ids: torch.Tensor, weights: torch.Tensor) -> None:
        """Write ``weights`` (``(N,)`` or ``(N, D)``) as runtime metadata of the rows the ids own."""
        if self._hash_zch_runtime_meta is None:
            raise RuntimeError(f"HashZchManagedCollisionModule({self._name!r}): no runtime metadata to update")
        if weights.dim() == 1:
            weights = weights.unsqueeze(1)
        if not self._disable_fallback:
            owned = self._hash_zch_identities.data.view(-1)[remapped_ids] == raw_ids
            remapped_ids, weights = remapped_ids[owned], weights[owned]
        self._hash_zch_runtime_meta.data[remapped_ids] = weights.view(self._hash_zch_runtime_meta.dtype)

    def get_indices_of_reserved_slots_per_bucket(self) -> Optional[torch.Tensor]:
        """Rows reserved for not-admitted ids, local to this module, or None without opt-in."""
        n = self.get_reserved_slots_per_bucket()
        if n == -1:
            return None
        sizes = self.input_mapper._zch_size_per_training_rank
        starts = self.input_mapper._train_rank_offsets
        rows = torch.cat([torch.arange(int(starts[b] + sizes[b]) - n, int(starts[b] + sizes[b]), device=self.device)
                          for b in range(self._start_bucket, self._end_bucket)])
        return rows - self._output_global_offset_tensor if self._output_global_offset_tensor is not None else rows


def _zch_probe_hour() -> int:
    return int(time.time() / 3600)


def _check_hash_zch_args(
    name: Optional[str],
    zch_size: int,
    total_num_buckets: int,
    output_segments: Optional[List[int]],
    percent_reserved_slots: float,
    opt_in_prob: int,
    track_id_freq: bool,
    write_runtime_meta_dim: int,
    max_probe: int,
) -> None:
    who = f"HashZchManagedCollisionModule({name!r})"
    if not isinstance(zch_size, int) or zch_size < 1:
        raise ValueError(f"{who}: zch_size must be an int >= 1, got {zch_size!r}")
    if total_num_buckets < 1:
        raise ValueError(f"{who}: total_num_buckets must be >= 1, got {total_num_buckets}")
    if output_segments is None and zch_size % total_num_buckets != 0:
        raise ValueError(f"{who}: zch_size {zch_size} must divide into {total_num_buckets} buckets evenly, "
                         "or pass output_segments")
    if max_probe < 1:
        raise ValueError(f"{who}: max_probe must be >= 1, got {max_probe}")
    if not 0 <= percent_reserved_slots < 100:
        raise ValueError(f"{who}: percent_reserved_slots must be in [0, 100), got {percent_reserved_slots}")
    if opt_in_prob > 0 and percent_reserved_slots <= 0:
        raise ValueError(f"{who}: opt_in_prob > 0 needs percent_reserved_slots > 0")
    if track_id_freq and write_runtime_meta_dim > 0:
        raise ValueError(f"{who}: track_id_freq and write_runtime_meta_dim share _hash_zch_runtime_meta; pick one")
