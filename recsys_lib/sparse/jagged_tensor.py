"""Public import path of the sparse types (``torchrec.sparse.jagged_tensor``).

The three jagged classes are defined here, at their public path (TorchScript compiles a class from the source file
its ``__module__`` names, and pickles and error messages show it). Long method bodies and helpers live in private
siblings (``_build``, ``_kjt_views``, ``_kjt_ops``, ``_kjt_dist``, ``_kjt_checks``, ``_kt_regroup``, ``_compare``,
``_repr``, ``_checks``, ``_pytree``); kernels in ``recsys_lib/ops``.

Input checks, and the host syncs they cost:

* ``JT(...)``, ``KJT(...)``, ``KT(...)``: types, dtypes, ranks, sizes (weights vs values, offsets vs lengths, lengths
  vs keys x stride / VBE strides, KT widths). No sync.
* ``split`` / ``permute`` / ``dist_splits``: segment sums, index ranges (host lists). ``__getitem__`` (KJT, KT):
  unknown key -> ``UnknownKeyError`` (a KeyError and ValueError). No sync of their own (*).
* ``sync()``, ``from_*_sync``: per-key lengths sum to ``values.numel()``, in the one sync they do.
* ``validate_keyed_jagged_tensor``: all of the above + negative lengths, offsets start at 0 / non-decreasing / end at
  numel, duplicate keys, id ranges (syncs).

(*) these ops (and ``to_dict``, ``offset_per_key``) read ``length_per_key`` (one sync) when it is not cached, as
TorchRec's do; the checks add none. Other host syncs: ``dist_init`` (VBE strides, the recat sizes) and
``to_padded_dense`` without ``desired_length``. Under TorchScript the Python-side checks are skipped.
"""

from typing import Dict, List, Optional, Tuple, Union

import torch

from recsys_lib.ops.cumsum import complete_cumsum, lengths_from_offsets
from recsys_lib.sparse import _kjt_ops as ops
from recsys_lib.sparse._checks import check_jagged_parts, check_kt
from recsys_lib.sparse._errors import UnknownKeyError
from recsys_lib.sparse._kjt_checks import check_kjt_inputs, eager_length_per_key
from recsys_lib.sparse._meta import JaggedTensorMeta
from recsys_lib.sparse._utils import (
    bags, copy_parts, cumsum_list, flat, index_of_keys, optional_to, padded, record_streams, release_storages,
    tensors_nbytes,
)
from recsys_lib.streamable import Pipelineable


class JaggedTensor(Pipelineable, metaclass=JaggedTensorMeta):
    """A batch of variable-length bags with optional per-value weights (one jagged dimension)::

        lengths = [2, 0, 1]          b0: [a, b]
        offsets = [0, 2, 2, 3]       b1: []
        values  = [a, b, c]          b2: [c]

    Args:
        values (Tensor): all bags concatenated, (N,) or (N, D).
        weights (Optional[Tensor]): one weight per value, (N,).
        lengths (Optional[Tensor]): bag sizes, (B,). One of ``lengths`` / ``offsets`` is required.
        offsets (Optional[Tensor]): ``[0, cumsum(lengths)]``, (B+1,).

    Example::

        jt = JaggedTensor(values=torch.tensor([1, 2, 3, 4]), lengths=torch.tensor([1, 3]), weights=None, offsets=None)
        jt.to_padded_dense(desired_length=2)  # tensor([[1, 0], [2, 3]])
    """

    def __init__(
        self, values: torch.Tensor, weights: Optional[torch.Tensor] = None, lengths: Optional[torch.Tensor] = None,
        offsets: Optional[torch.Tensor] = None,
    ) -> None:
        if not torch.jit.is_scripting():
            check_jagged_parts("JaggedTensor", values, weights, lengths, offsets)
        if lengths is None and offsets is None:
            raise ValueError("JaggedTensor: one of lengths or offsets is required")
        self._values: torch.Tensor = values
        self._weights: Optional[torch.Tensor] = weights
        self._lengths: Optional[torch.Tensor] = lengths
        self._offsets: Optional[torch.Tensor] = offsets

    # ----- constructors (bodies in ``_build``) -----
    @staticmethod
    def empty(
        is_weighted: bool = False, device: Optional[torch.device] = None, values_dtype: Optional[torch.dtype] = None,
        weights_dtype: Optional[torch.dtype] = None, lengths_dtype: torch.dtype = torch.int32,
    ) -> "JaggedTensor":
        return _build.jt_empty(is_weighted, device, values_dtype, weights_dtype, lengths_dtype)

    @staticmethod
    def empty_like(jt: "JaggedTensor", device: Optional[torch.device] = None) -> "JaggedTensor":
        return _build.jt_empty_like(jt, device)

    @staticmethod
    def from_dense_lengths(
        values: torch.Tensor, lengths: torch.Tensor, weights: Optional[torch.Tensor] = None
    ) -> "JaggedTensor":
        """From a padded (B, L[, D]) tensor and the valid length of each row (B,)."""
        return _build.jt_from_dense_lengths(values, lengths, weights)

    @staticmethod
    def from_dense(values: List[torch.Tensor], weights: Optional[List[torch.Tensor]] = None) -> "JaggedTensor":
        """From a list of B tensors, one bag each."""
        return _build.jt_from_dense(values, weights)

    # ----- accessors -----
    def values(self) -> torch.Tensor:
        return self._values

    def weights(self) -> torch.Tensor:
        w = self._weights
        if w is None:
            raise ValueError("JaggedTensor has no weights (use weights_or_none())")
        return w

    def weights_or_none(self) -> Optional[torch.Tensor]:
        return self._weights

    def lengths(self) -> torch.Tensor:
        lengths = self._lengths
        if lengths is None:
            offsets = self._offsets
            assert offsets is not None
            lengths = lengths_from_offsets(offsets)
            self._lengths = lengths
        return lengths

    def lengths_or_none(self) -> Optional[torch.Tensor]:
        return self._lengths

    def offsets(self) -> torch.Tensor:
        offsets = self._offsets
        if offsets is None:
            lengths = self._lengths
            assert lengths is not None
            offsets = complete_cumsum(lengths)
            self._offsets = offsets
        return offsets

    def offsets_or_none(self) -> Optional[torch.Tensor]:
        return self._offsets

    def device(self) -> torch.device:
        return self._values.device

    # ----- conversions -----
    def to_dense(self) -> List[torch.Tensor]:
        """One tensor per bag (host sync: reads the offsets, which index ``values``)."""
        return bags(self._values, self.offsets())

    def to_dense_weights(self) -> Optional[List[torch.Tensor]]:
        w = self._weights
        if w is None:
            return None
        return bags(w, self.offsets())

    def to_padded_dense(self, desired_length: Optional[int] = None, padding_value: float = 0.0) -> torch.Tensor:
        """(B, L[, D]) padded with ``padding_value``; rows longer than ``desired_length`` are truncated.

        ``desired_length=None`` pads to the longest bag (host sync).
        """
        return padded(self._values, self.lengths(), self._offsets, desired_length, padding_value)

    def to_padded_dense_weights(
        self, desired_length: Optional[int] = None, padding_value: float = 0.0
    ) -> Optional[torch.Tensor]:
        w = self._weights
        if w is None:
            return None
        return padded(w, self.lengths(), self._offsets, desired_length, padding_value)

    def to(self, device: torch.device, non_blocking: bool = False) -> "JaggedTensor":
        return JaggedTensor(
            values=self._values.to(device, non_blocking=non_blocking),
            weights=optional_to(self._weights, device, non_blocking),
            lengths=optional_to(self._lengths, device, non_blocking),
            offsets=optional_to(self._offsets, device, non_blocking),
        )

    @torch.jit.unused
    def record_stream(self, stream: torch.Stream) -> None:
        record_streams([self._values, self._weights, self._lengths, self._offsets], stream)

    @torch.jit.unused
    def copy_(self, jt: "JaggedTensor", non_blocking: bool = False) -> "JaggedTensor":
        """Copy ``jt``'s tensors into this JT's tensors in place (same shapes; e.g. into pinned buffers)."""
        copy_parts(self, jt, non_blocking)
        return self

    def size_in_bytes(self) -> int:
        return tensors_nbytes([self._values, self._weights, self._lengths, self._offsets])

    @torch.jit.unused
    def __str__(self) -> str:
        return _repr.jt_str(self)


class KeyedJaggedTensor(Pipelineable, metaclass=JaggedTensorMeta):
    """Keyed batch of jagged features (the input of every embedding module): one jagged dimension per key, stored
    key-major::

        keys = ["f1", "f2"], stride (B) = 3
                  b0      b1    b2
          f1   [1, 2]    []    [3]
          f2   [4]       [5]   [6, 7]
        lengths = [2, 0, 1, 1, 1, 2]       # (F*B,)
        values  = [1, 2, 3, 4, 5, 6, 7]    # (sum(L),)
        offsets = [0, 2, 2, 3, 4, 5, 7]    # (F*B+1,)

    Variable batch per key (VBE): ``stride_per_key_per_rank[f][r]`` is the batch of key ``f`` from rank ``r``; the
    lengths then hold ``sum_r stride_per_key_per_rank[f][r]`` entries for key ``f``. Host-side caches keep TorchRec's
    names (``_length_per_key``, ``_offset_per_key``, ``_index_per_key``, ``_jt_dict``, ...): ``sync()`` fills the
    per-key lengths (one host sync), ``unsync()`` drops them.

    Args:
        keys (List[str]): feature names, ``F`` of them.
        values (Tensor): ids of every (key, sample) bag, key-major, (sum(L),).
        weights (Optional[Tensor]): one weight per value, (sum(L),).
        lengths (Optional[Tensor]): bag sizes, key-major, (F*B,). One of lengths/offsets is required.
        offsets (Optional[Tensor]): ``[0, cumsum(lengths)]``, (F*B+1,).
        stride (Optional[int]): batch size ``B``; default ``lengths.numel() // F``.
        stride_per_key_per_rank (Optional[List[List[int]]]): VBE batch sizes ``[F][W]``.
        stride_per_key, length_per_key, lengths_offset_per_key, offset_per_key, index_per_key, jt_dict:
            precomputed caches (trusted, not checked).
        inverse_indices (Optional[Tuple[List[str], Tensor]]): VBE keys and (F, B) indices expanding each key's
            deduplicated batch back to the full batch.

    Example::

        kjt = KeyedJaggedTensor.from_lengths_sync(
            keys=["f1", "f2"], values=torch.arange(1, 8), lengths=torch.tensor([2, 0, 1, 1, 1, 2]))
        kjt["f2"].values()  # tensor([4, 5, 6, 7])
    """

    def __init__(
        self, keys: List[str], values: torch.Tensor, weights: Optional[torch.Tensor] = None,
        lengths: Optional[torch.Tensor] = None, offsets: Optional[torch.Tensor] = None, stride: Optional[int] = None,
        stride_per_key_per_rank: Optional[Union[List[List[int]], torch.Tensor]] = None,
        stride_per_key: Optional[List[int]] = None, length_per_key: Optional[List[int]] = None,
        lengths_offset_per_key: Optional[List[int]] = None, offset_per_key: Optional[List[int]] = None,
        index_per_key: Optional[Dict[str, int]] = None, jt_dict: Optional[Dict[str, JaggedTensor]] = None,
        inverse_indices: Optional[Tuple[List[str], torch.Tensor]] = None,
    ) -> None:
        spkpr: Optional[List[List[int]]] = None
        if stride_per_key_per_rank is not None:
            if isinstance(stride_per_key_per_rank, torch.Tensor):
                as_list: List[List[int]] = stride_per_key_per_rank.tolist()
                spkpr = as_list
            else:
                spkpr = stride_per_key_per_rank
        if not torch.jit.is_scripting():
            keys = check_kjt_inputs(keys, values, weights, lengths, offsets, stride, spkpr)
        if lengths is None and offsets is None:
            raise ValueError("KeyedJaggedTensor: one of lengths or offsets is required")
        self._keys: List[str] = keys
        self._values: torch.Tensor = values
        self._weights: Optional[torch.Tensor] = weights
        self._lengths: Optional[torch.Tensor] = lengths
        self._offsets: Optional[torch.Tensor] = offsets
        self._stride: Optional[int] = stride
        self._stride_per_key_per_rank: Optional[List[List[int]]] = spkpr
        self._variable_stride_per_key: bool = spkpr is not None
        if spkpr is not None and stride_per_key is None:
            stride_per_key = ops.stride_per_key_from_rank(spkpr)
        self._stride_per_key: Optional[List[int]] = stride_per_key
        self._length_per_key: Optional[List[int]] = length_per_key
        self._offset_per_key: Optional[List[int]] = offset_per_key
        self._lengths_offset_per_key: Optional[List[int]] = lengths_offset_per_key
        self._index_per_key: Optional[Dict[str, int]] = index_per_key
        self._jt_dict: Optional[Dict[str, JaggedTensor]] = jt_dict
        self._inverse_indices: Optional[Tuple[List[str], torch.Tensor]] = inverse_indices

    # ----- constructors -----
    @staticmethod
    def from_offsets_sync(
        keys: List[str], values: torch.Tensor, offsets: torch.Tensor, weights: Optional[torch.Tensor] = None,
        stride: Optional[int] = None, stride_per_key_per_rank: Optional[List[List[int]]] = None,
        inverse_indices: Optional[Tuple[List[str], torch.Tensor]] = None,
    ) -> "KeyedJaggedTensor":
        return _build.synced(keys, values, weights, None, offsets, stride, stride_per_key_per_rank, inverse_indices)

    @staticmethod
    def from_lengths_sync(
        keys: List[str], values: torch.Tensor, lengths: torch.Tensor, weights: Optional[torch.Tensor] = None,
        stride: Optional[int] = None, stride_per_key_per_rank: Optional[List[List[int]]] = None,
        inverse_indices: Optional[Tuple[List[str], torch.Tensor]] = None,
    ) -> "KeyedJaggedTensor":
        return _build.synced(keys, values, weights, lengths, None, stride, stride_per_key_per_rank, inverse_indices)

    @staticmethod
    def concat(kjt_list: List["KeyedJaggedTensor"]) -> "KeyedJaggedTensor":
        """Keys, values, lengths and weights of all KJTs one after another (batch sizes may differ: VBE)."""
        return _build.concat(kjt_list)

    @staticmethod
    def empty(
        is_weighted: bool = False, device: Optional[torch.device] = None, values_dtype: Optional[torch.dtype] = None,
        weights_dtype: Optional[torch.dtype] = None, lengths_dtype: torch.dtype = torch.int32,
    ) -> "KeyedJaggedTensor":
        return _build.empty(is_weighted, device, values_dtype, weights_dtype, lengths_dtype)

    @staticmethod
    def empty_like(kjt: "KeyedJaggedTensor", device: Optional[torch.device] = None) -> "KeyedJaggedTensor":
        """No keys, ``kjt``'s stride and dtypes, on ``device`` (default: ``kjt``'s)."""
        return _build.empty_like(kjt, device)

    @staticmethod
    def from_jt_dict(jt_dict: Dict[str, JaggedTensor]) -> "KeyedJaggedTensor":
        """Keys in dict order; per-key batch sizes may differ (then the KJT is VBE)."""
        return _build.from_jt_dict(jt_dict)

    # ----- accessors -----
    def keys(self) -> List[str]:
        return self._keys

    def values(self) -> torch.Tensor:
        return self._values

    def weights(self) -> torch.Tensor:
        w = self._weights
        if w is None:
            raise ValueError("KeyedJaggedTensor has no weights (use weights_or_none())")
        return w

    def weights_or_none(self) -> Optional[torch.Tensor]:
        return self._weights

    def lengths(self) -> torch.Tensor:
        lengths = self._lengths
        if lengths is None:
            offsets = self._offsets
            assert offsets is not None
            lengths = lengths_from_offsets(offsets)
            self._lengths = lengths
        return lengths

    def lengths_or_none(self) -> Optional[torch.Tensor]:
        return self._lengths

    def offsets(self) -> torch.Tensor:
        offsets = self._offsets
        if offsets is None:
            lengths = self._lengths
            assert lengths is not None
            offsets = complete_cumsum(lengths)
            self._offsets = offsets
        return offsets

    def offsets_or_none(self) -> Optional[torch.Tensor]:
        return self._offsets

    def device(self) -> torch.device:
        return self._values.device

    def stride(self) -> int:
        stride = self._stride
        if stride is None:
            stride = ops.infer_stride(len(self._keys), self._stride_per_key, self._lengths, self._offsets)
            self._stride = stride
        return stride

    def stride_per_key(self) -> List[int]:
        spk = self._stride_per_key
        if spk is None:
            spk = [self.stride()] * len(self._keys)
            self._stride_per_key = spk
        return spk

    def stride_per_key_per_rank(self) -> List[List[int]]:
        return self._spkpr_or_uniform()

    def _spkpr_or_uniform(self) -> List[List[int]]:
        spkpr = self._stride_per_key_per_rank
        if spkpr is None:
            return [[self.stride()] for _ in range(len(self._keys))]
        return spkpr

    def variable_stride_per_key(self) -> bool:
        return self._variable_stride_per_key

    def inverse_indices(self) -> Tuple[List[str], torch.Tensor]:
        ii = self._inverse_indices
        if ii is None:
            raise ValueError("KeyedJaggedTensor has no inverse_indices (use inverse_indices_or_none())")
        return ii

    def inverse_indices_or_none(self) -> Optional[Tuple[List[str], torch.Tensor]]:
        return self._inverse_indices

    def _key_indices(self) -> Dict[str, int]:
        """Key → its index in ``keys()``; a repeated key maps to its last index."""
        return index_of_keys(self._keys)

    def length_per_key(self) -> List[int]:
        """Values per key (host sync when not cached)."""
        lpk = self._length_per_key
        if lpk is None:
            if torch.jit.is_scripting() or len(self._keys) == 0 or self._values.device.type == "meta":
                lpk = ops.compute_length_per_key(self.lengths(), len(self._keys), self._stride_per_key)
            else:
                lpk = self._checked_length_per_key()
            self._length_per_key = lpk
        return lpk

    @torch.jit.unused
    def _checked_length_per_key(self) -> List[int]:
        """Eager: per-key lengths and the batch checks in one host read; re-bases offsets not starting at 0 (see
        ``_kjt_checks.eager_length_per_key``)."""
        offsets = self._offsets
        lpk, base = eager_length_per_key(
            self._keys, self._values, self.lengths(), offsets, self._variable_stride_per_key, self._stride_per_key
        )
        if base != 0 and offsets is not None:
            self._values = self._values[base:]
            w = self._weights
            if w is not None:
                self._weights = w[base:]
            self._offsets = offsets - base
        return lpk

    def length_per_key_or_none(self) -> Optional[List[int]]:
        return self._length_per_key

    def offset_per_key(self) -> List[int]:
        opk = self._offset_per_key
        if opk is None:
            opk = cumsum_list(self.length_per_key())
            self._offset_per_key = opk
        return opk

    def offset_per_key_or_none(self) -> Optional[List[int]]:
        return self._offset_per_key

    def lengths_offset_per_key(self) -> List[int]:
        lopk = self._lengths_offset_per_key
        if lopk is None:
            lopk = cumsum_list(self.stride_per_key())
            self._lengths_offset_per_key = lopk
        return lopk

    def index_per_key(self) -> Dict[str, int]:
        ipk = self._index_per_key
        if ipk is None:
            ipk = index_of_keys(self._keys)
            self._index_per_key = ipk
        return ipk

    def sync(self) -> "KeyedJaggedTensor":
        """Fill the per-key caches now (one host sync); checks that the lengths add up to the values."""
        self.length_per_key()  # eager: also checks the batch (see _kjt_checks.checked_length_per_key)
        self.offset_per_key()
        return self

    def unsync(self) -> "KeyedJaggedTensor":
        self._length_per_key = None
        self._offset_per_key = None
        return self

    # ----- restructuring -----
    def __getitem__(self, key: str) -> JaggedTensor:
        jt_dict = self._jt_dict
        if jt_dict is not None and key in jt_dict:
            return jt_dict[key]
        ipk = self.index_per_key()
        if key not in ipk:
            raise UnknownKeyError(f"KeyedJaggedTensor has no key '{key}'; keys are {self._keys}")
        i = ipk[key]
        opk = self.offset_per_key()
        lopk = self.lengths_offset_per_key()
        start, end = opk[i], opk[i + 1]
        lengths = flat(self.lengths())[lopk[i] : lopk[i + 1]]
        w = self._weights
        return trusted_jt(self._values[start:end], None if w is None else w[start:end], lengths, None)

    def to_dict(self, compute_offsets: bool = True) -> Dict[str, JaggedTensor]:
        """Per-key JTs (views, offsets rebased to 0); cached in ``_jt_dict``."""
        jt_dict = self._jt_dict
        if jt_dict is None:
            spk: Optional[List[int]] = self._stride_per_key if self._variable_stride_per_key else None
            lpk = self.length_per_key()  # first: it may re-base values (offsets not starting at 0)
            jt_dict = _kjt_views.jt_dict_from_parts(
                self._keys, self._values, self._weights, self.lengths(), lpk, spk, compute_offsets
            )
            self._jt_dict = jt_dict
        return jt_dict

    # The restructuring methods compute their pieces in ``_kjt_views`` (tensors and host lists in and out: a helper
    # typed with this class cannot be compiled while TorchScript compiles the class) and wrap them in ``_view``.
    def split(self, segments: List[int]) -> List["KeyedJaggedTensor"]:
        """Consecutive groups of ``segments[i]`` keys; tensors are views of this KJT's."""
        ops.check_segments(segments, len(self._keys))
        opk = self.offset_per_key()  # first: the per-key lengths may re-base values (offsets not starting at 0)
        spkpr = self._spkpr_or_uniform() if self._variable_stride_per_key else None
        pieces = _kjt_views.split_pieces(
            segments, self._keys, self._values, self._weights, flat(self.lengths()), opk, self.length_per_key(),
            self.lengths_offset_per_key(), self.stride_per_key(), spkpr,
        )
        stride = self.stride()
        if not torch.jit.is_scripting():
            ii = self._inverse_indices
            return [_unchecked_kjt(k, v, w, l_, stride, p, s, lp, o, ii) for k, v, w, l_, p, s, lp, o in pieces]
        out: List[KeyedJaggedTensor] = []
        for keys, values, weights, lengths, seg_spkpr, spk, lpk, seg_opk in pieces:
            out.append(self._view(keys, values, weights, lengths, stride, seg_spkpr, spk, lpk, seg_opk))
        return out

    def permute(self, indices: List[int], indices_tensor: Optional[torch.Tensor] = None) -> "KeyedJaggedTensor":
        """Keys reordered (and possibly repeated or dropped) as ``[keys[i] for i in indices]``."""
        ops.check_permute(indices, len(self._keys))
        lpk = self.length_per_key()
        spk = self.stride_per_key()
        total = self.offset_per_key()[-1]
        lengths, values, weights = _kjt_views.permuted_tensors(
            indices, indices_tensor, lpk, spk, total, self.lengths(), self._values, self._weights,
            self._variable_stride_per_key,
        )
        spkpr: Optional[List[List[int]]] = None
        if self._variable_stride_per_key:
            full = self._spkpr_or_uniform()
            spkpr = [full[i] for i in indices]
        new_lpk = [lpk[i] for i in indices]
        return self._view([self._keys[i] for i in indices], values, weights, lengths, self.stride(), spkpr,
                          [spk[i] for i in indices], new_lpk, cumsum_list(new_lpk))

    def _view(
        self, keys: List[str], values: torch.Tensor, weights: Optional[torch.Tensor], lengths: torch.Tensor,
        stride: int, spkpr: Optional[List[List[int]]], stride_per_key: List[int], length_per_key: List[int],
        offset_per_key: List[int],
    ) -> "KeyedJaggedTensor":
        """A KJT made of pieces of this valid one (``split``/``permute``), with its inverse indices: unchecked in
        eager mode."""
        if not torch.jit.is_scripting():
            return _unchecked_kjt(keys, values, weights, lengths, stride, spkpr, stride_per_key, length_per_key,
                                  offset_per_key, self._inverse_indices)
        return KeyedJaggedTensor(
            keys=keys, values=values, weights=weights, lengths=lengths, offsets=None, stride=stride,
            stride_per_key_per_rank=spkpr, stride_per_key=stride_per_key, length_per_key=length_per_key,
            lengths_offset_per_key=None, offset_per_key=offset_per_key, index_per_key=None, jt_dict=None,
            inverse_indices=self._inverse_indices,
        )

    def flatten_lengths(self) -> "KeyedJaggedTensor":
        return KeyedJaggedTensor(
            keys=self._keys, values=self._values, weights=self._weights, lengths=self.lengths().view(-1),
            offsets=None, stride=self._stride, stride_per_key_per_rank=self._stride_per_key_per_rank,
            stride_per_key=self._stride_per_key, length_per_key=self._length_per_key, lengths_offset_per_key=None,
            offset_per_key=self._offset_per_key, index_per_key=None, jt_dict=None,
            inverse_indices=self._inverse_indices,
        )

    # ----- devices and streams -----
    def to(
        self, device: torch.device, non_blocking: bool = False, dtype: Optional[torch.dtype] = None
    ) -> "KeyedJaggedTensor":
        """Copy to ``device``; ``dtype`` (if given) converts the weights."""
        w = self._weights
        if w is not None:
            w = w.to(device, non_blocking=non_blocking) if dtype is None else w.to(device, dtype, non_blocking=non_blocking)
        ii = self._inverse_indices
        return KeyedJaggedTensor(
            keys=self._keys, values=self._values.to(device, non_blocking=non_blocking), weights=w,
            lengths=optional_to(self._lengths, device, non_blocking),
            offsets=optional_to(self._offsets, device, non_blocking), stride=self._stride,
            stride_per_key_per_rank=self._stride_per_key_per_rank, stride_per_key=self._stride_per_key,
            length_per_key=self._length_per_key, lengths_offset_per_key=self._lengths_offset_per_key,
            offset_per_key=self._offset_per_key, index_per_key=self._index_per_key,
            inverse_indices=None if ii is None else (ii[0], ii[1].to(device, non_blocking=non_blocking)), jt_dict=None,
        )

    @torch.jit.unused
    def pin_memory(self) -> "KeyedJaggedTensor":
        """Copy into page-locked host memory (needs an accelerator runtime, as ``Tensor.pin_memory``)."""
        return _build.pin_memory(self)

    @torch.jit.unused
    def record_stream(self, stream: torch.Stream) -> None:
        record_streams([self._values, self._weights, self._lengths, self._offsets], stream)

    @torch.jit.unused
    def copy_(self, kjt: "KeyedJaggedTensor", non_blocking: bool = False) -> "KeyedJaggedTensor":
        """Copy ``kjt``'s tensors into this KJT's in place (same keys and shapes, e.g. reused pinned buffers)."""
        if kjt.keys() != self._keys:
            raise ValueError(f"copy_: keys differ: {self._keys} vs {kjt.keys()}")
        copy_parts(self, kjt, non_blocking)
        self._length_per_key = kjt._length_per_key
        self._offset_per_key = kjt._offset_per_key
        self._jt_dict = None
        return self

    @torch.jit.unused
    def clear_storage(self) -> None:
        """Release the memory of the tensors (their storages shrink to 0 bytes); the KJT is unusable afterwards."""
        release_storages([self._values, self._weights, self._lengths, self._offsets])

    def size_in_bytes(self) -> int:
        return tensors_nbytes([self._values, self._weights, self._lengths, self._offsets])

    # ----- distribution (all-to-all of KJTs) -----
    def dist_labels(self) -> List[str]:
        return _kjt_dist.dist_labels(self._variable_stride_per_key, self._weights is not None)

    def dist_splits(self, key_splits: List[int]) -> List[List[int]]:
        """Per label, how many elements go to each destination that receives ``key_splits[d]`` consecutive keys."""
        ops.check_segments(key_splits, len(self._keys))
        return ops.dist_splits(key_splits, self.stride_per_key(), self.length_per_key(),
                            self._variable_stride_per_key, self._weights is not None)

    def dist_tensors(self) -> List[torch.Tensor]:
        spk = self.stride_per_key() if self._variable_stride_per_key else None
        return _kjt_dist.dist_tensors(self.lengths(), self._values, self._weights, spk)

    @staticmethod
    def dist_init(
        keys: List[str], tensors: List[torch.Tensor], variable_stride_per_key: bool, num_workers: int,
        recat: Optional[torch.Tensor], stride_per_rank: Optional[List[int]], stagger: int = 1,
    ) -> "KeyedJaggedTensor":
        """Rebuild the local KJT after the all-to-all (see ``_kjt_dist`` for the layout)."""
        return _kjt_dist.dist_init(keys, tensors, variable_stride_per_key, num_workers, recat, stride_per_rank, stagger)

    @torch.jit.unused
    def __str__(self) -> str:
        return _repr.kjt_str(self)


class KeyedTensor(Pipelineable, metaclass=JaggedTensorMeta):
    """Dense per-key blocks concatenated along ``key_dim`` (an EmbeddingBagCollection's output)::

        keys = ["a", "b"], length_per_key = [1, 2], key_dim = 1
        values (B=2, 3):   a | b b
                           a | b b
        offset_per_key = [0, 1, 3]

    Args:
        keys (List[str]): key names (unique).
        length_per_key (List[int]): width ``D`` of each key's block.
        values (Tensor): (B, sum(D)) for ``key_dim=1``.
        key_dim (int): the dimension holding the keys.
        offset_per_key, index_per_key: precomputed caches.

    Example::

        kt = KeyedTensor.from_tensor_list(["a", "b"], [torch.ones(2, 1), 2 * torch.ones(2, 2)])
        kt["b"]  # (2, 2) tensor of twos
    """

    def __init__(
        self, keys: List[str], length_per_key: List[int], values: torch.Tensor, key_dim: int = 1,
        offset_per_key: Optional[List[int]] = None, index_per_key: Optional[Dict[str, int]] = None,
    ) -> None:
        if not torch.jit.is_scripting():
            check_kt(keys, length_per_key, values, key_dim)
        self._keys: List[str] = keys
        self._length_per_key: List[int] = length_per_key
        self._values: torch.Tensor = values
        self._key_dim: int = key_dim
        self._offset_per_key: Optional[List[int]] = offset_per_key
        self._index_per_key: Optional[Dict[str, int]] = index_per_key

    @staticmethod
    def from_tensor_list(
        keys: List[str], tensors: List[torch.Tensor], key_dim: int = 1, cat_dim: int = 1
    ) -> "KeyedTensor":
        return _build.kt_from_tensor_list(keys, tensors, key_dim, cat_dim)

    def keys(self) -> List[str]:
        return self._keys

    def values(self) -> torch.Tensor:
        return self._values

    def key_dim(self) -> int:
        return self._key_dim

    def device(self) -> torch.device:
        return self._values.device

    def length_per_key(self) -> List[int]:
        return self._length_per_key

    def offset_per_key(self) -> List[int]:
        opk = self._offset_per_key
        if opk is None:
            opk = cumsum_list(self._length_per_key)
            self._offset_per_key = opk
        return opk

    def _key_indices(self) -> Dict[str, int]:
        ipk = self._index_per_key
        if ipk is None:
            ipk = index_of_keys(self._keys)
            self._index_per_key = ipk
        return ipk

    def __getitem__(self, key: str) -> torch.Tensor:
        ipk = self._key_indices()
        if key not in ipk:
            raise UnknownKeyError(f"KeyedTensor has no key '{key}'; keys are {self._keys}")
        i = ipk[key]
        start = self.offset_per_key()[i]
        return self._values.narrow(self._key_dim, start, self._length_per_key[i])

    def size_in_bytes(self) -> int:
        """Bytes held by ``values()``."""
        return self._values.numel() * self._values.element_size()

    def to_dict(self) -> Dict[str, torch.Tensor]:
        parts = torch.split(self._values, self._length_per_key, dim=self._key_dim)
        out: Dict[str, torch.Tensor] = {}
        for i, k in enumerate(self._keys):
            out[k] = parts[i]
        return out

    @staticmethod
    def regroup(keyed_tensors: List["KeyedTensor"], groups: List[List[str]]) -> List[torch.Tensor]:
        """``[cat(blocks of group g along dim 1) for g in groups]``; keys may repeat across groups."""
        return _regroup(keyed_tensors, groups)

    @staticmethod
    def regroup_as_dict(
        keyed_tensors: List["KeyedTensor"], groups: List[List[str]], keys: List[str]
    ) -> Dict[str, torch.Tensor]:
        return _kt_regroup.regroup_as_dict(keyed_tensors, groups, keys)

    @torch.jit.unused
    def record_stream(self, stream: torch.Stream) -> None:
        self._values.record_stream(stream)

    def to(self, device: torch.device, non_blocking: bool = False) -> "KeyedTensor":
        return KeyedTensor(
            keys=self._keys, length_per_key=self._length_per_key,
            values=self._values.to(device, non_blocking=non_blocking), key_dim=self._key_dim,
            offset_per_key=self._offset_per_key, index_per_key=self._index_per_key,
        )

    @torch.jit.unused
    def __str__(self) -> str:
        return _repr.kt_str(self)


def regroup_kts(keyed_tensors: List[KeyedTensor], groups: List[List[str]]) -> List[torch.Tensor]:
    """Same as :meth:`KeyedTensor.regroup` (TorchRec's functional form)."""
    return _regroup(keyed_tensors, groups)


def permute_multi_embedding(keyed_tensors: List[KeyedTensor], groups: List[List[str]]) -> List[torch.Tensor]:
    """Same result as :meth:`KeyedTensor.regroup` (TorchRec routes this one to ``fbgemm.permute_multi_embedding``)."""
    return _regroup(keyed_tensors, groups)


class ComputeKJTToJTDict(torch.nn.Module):
    """``kjt -> kjt.to_dict()``.

    Example::

        ComputeKJTToJTDict()(kjt)["f1"].values()
    """

    def forward(self, keyed_jagged_tensor: KeyedJaggedTensor) -> Dict[str, JaggedTensor]:
        return keyed_jagged_tensor.to_dict()


class ComputeJTDictToKJT(torch.nn.Module):
    """``jt_dict -> KeyedJaggedTensor.from_jt_dict(jt_dict)``."""

    def forward(self, jt_dict: Dict[str, JaggedTensor]) -> KeyedJaggedTensor:
        return KeyedJaggedTensor.from_jt_dict(jt_dict)


# The modules holding method bodies, the functions moved out of this file, and pytree registration need the classes
# above, so they are imported last (each imports this one). Methods call ``_build.concat(...)`` etc. through the
# module objects; TorchScript resolves those names (and the helpers' annotations) when it compiles, after this import.
from recsys_lib.sparse import _build, _kjt_dist, _kjt_views, _kt_regroup, _repr  # noqa: E402
from recsys_lib.sparse._build import unchecked_kjt as _unchecked_kjt  # noqa: E402
from recsys_lib.sparse._compare import jt_dict_is_equal, jt_is_equal, kjt_is_equal  # noqa: E402,F401
from recsys_lib.sparse._kjt_views import jt_dict_from_parts as _jt_dict_from_parts  # noqa: E402,F401
from recsys_lib.sparse._kjt_views import trusted_jt  # noqa: E402
from recsys_lib.sparse._kt_regroup import regroup as _regroup  # noqa: E402
from recsys_lib.sparse._pytree import flatten_kjt_list, register_pytree_nodes, unflatten_kjt_list  # noqa: E402

register_pytree_nodes()

# Calls to these helpers stay single nodes in fx graphs instead of being traced through.
torch.fx.wrap("regroup_kts")
torch.fx.wrap("permute_multi_embedding")
torch.fx.wrap("flatten_kjt_list")
torch.fx.wrap("unflatten_kjt_list")

__all__ = [
    "JaggedTensor",
    "JaggedTensorMeta",
    "KeyedJaggedTensor",
    "KeyedTensor",
    "ComputeJTDictToKJT",
    "ComputeKJTToJTDict",
    "flatten_kjt_list",
    "jt_is_equal",
    "kjt_is_equal",
    "permute_multi_embedding",
    "regroup_kts",
    "unflatten_kjt_list",
]
