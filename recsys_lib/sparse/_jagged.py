"""``JaggedTensor``: one jagged dimension (a batch of variable-length bags).

::

    lengths = [2, 0, 1]          b0: [a, b]
    offsets = [0, 2, 2, 3]       b1: []
    values  = [a, b, c]          b2: [c]
    # values: (N,) or (N, D)   lengths: (B,)   offsets: (B+1,)   weights: (N,) optional
"""

from typing import Dict, List, Optional

import torch

from recsys_lib.ops.cumsum import complete_cumsum, lengths_from_offsets
from recsys_lib.ops.jagged_dense import jagged_to_padded_dense
from recsys_lib.sparse._checks import check_jagged_parts
from recsys_lib.sparse._meta import JaggedTensorMeta
from recsys_lib.sparse._utils import optional_to
from recsys_lib.streamable import Pipelineable


class JaggedTensor(Pipelineable, metaclass=JaggedTensorMeta):
    """A batch of variable-length bags with optional per-value weights.

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
        self,
        values: torch.Tensor,
        weights: Optional[torch.Tensor] = None,
        lengths: Optional[torch.Tensor] = None,
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

    # ----- constructors -----
    @staticmethod
    def empty(
        is_weighted: bool = False,
        device: Optional[torch.device] = None,
        values_dtype: Optional[torch.dtype] = None,
        weights_dtype: Optional[torch.dtype] = None,
        lengths_dtype: torch.dtype = torch.int32,
    ) -> "JaggedTensor":
        weights = torch.empty(0, dtype=weights_dtype, device=device) if is_weighted else None
        return JaggedTensor(
            values=torch.empty(0, dtype=values_dtype, device=device),
            offsets=torch.zeros(1, dtype=lengths_dtype, device=device),
            lengths=torch.empty(0, dtype=lengths_dtype, device=device),
            weights=weights,
        )

    @staticmethod
    def empty_like(jt: "JaggedTensor", device: Optional[torch.device] = None) -> "JaggedTensor":
        dev = jt.device() if device is None else device
        w = jt.weights_or_none()
        return JaggedTensor.empty(
            is_weighted=w is not None,
            device=dev,
            values_dtype=jt.values().dtype,
            weights_dtype=None if w is None else w.dtype,
            lengths_dtype=jt.lengths().dtype,
        )

    @staticmethod
    def from_dense_lengths(
        values: torch.Tensor, lengths: torch.Tensor, weights: Optional[torch.Tensor] = None
    ) -> "JaggedTensor":
        """From a padded (B, L[, D]) tensor and the valid length of each row (B,)."""
        mask = torch.arange(values.size(1), device=values.device).unsqueeze(0) < lengths.view(-1, 1)
        w: Optional[torch.Tensor] = None
        if weights is not None:
            w = weights[mask]
        return JaggedTensor(values=values[mask], lengths=lengths, weights=w, offsets=None)

    @staticmethod
    def from_dense(values: List[torch.Tensor], weights: Optional[List[torch.Tensor]] = None) -> "JaggedTensor":
        """From a list of B tensors, one bag each."""
        lengths = torch.tensor([v.size(0) for v in values], dtype=torch.int32, device=values[0].device)
        w: Optional[torch.Tensor] = None
        if weights is not None:
            w = torch.cat(weights)
        return JaggedTensor(values=torch.cat(values), lengths=lengths, weights=w, offsets=None)

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
        return _bags(self._values, self.offsets())

    def to_dense_weights(self) -> Optional[List[torch.Tensor]]:
        w = self._weights
        if w is None:
            return None
        return _bags(w, self.offsets())

    def to_padded_dense(self, desired_length: Optional[int] = None, padding_value: float = 0.0) -> torch.Tensor:
        """(B, L[, D]) padded with ``padding_value``; rows longer than ``desired_length`` are truncated.

        ``desired_length=None`` pads to the longest bag (host sync).
        """
        return _padded(self._values, self.lengths(), self._offsets, desired_length, padding_value)

    def to_padded_dense_weights(
        self, desired_length: Optional[int] = None, padding_value: float = 0.0
    ) -> Optional[torch.Tensor]:
        w = self._weights
        if w is None:
            return None
        return _padded(w, self.lengths(), self._offsets, desired_length, padding_value)

    def to(self, device: torch.device, non_blocking: bool = False) -> "JaggedTensor":
        return JaggedTensor(
            values=self._values.to(device, non_blocking=non_blocking),
            weights=optional_to(self._weights, device, non_blocking),
            lengths=optional_to(self._lengths, device, non_blocking),
            offsets=optional_to(self._offsets, device, non_blocking),
        )

    @torch.jit.unused
    def record_stream(self, stream: torch.Stream) -> None:
        for t in (self._values, self._weights, self._lengths, self._offsets):
            if t is not None:
                t.record_stream(stream)

    @torch.jit.unused
    def copy_(self, jt: "JaggedTensor", non_blocking: bool = False) -> "JaggedTensor":
        """Copy ``jt``'s tensors into this JT's tensors in place (same shapes; e.g. into pinned buffers)."""
        _copy_parts(self, jt, non_blocking)
        return self

    def size_in_bytes(self) -> int:
        total = self._values.numel() * self._values.element_size()
        for t in (self._weights, self._lengths, self._offsets):
            if t is not None:
                total += t.numel() * t.element_size()
        return total

    @torch.jit.unused
    def __str__(self) -> str:
        values = [t.tolist() for t in self.to_dense()]
        dense_w = self.to_dense_weights()
        if dense_w is None:
            return "JaggedTensor({\n    " + str(values) + "\n})\n"
        weights = [t.tolist() for t in dense_w]
        return 'JaggedTensor({\n    "values": ' + str(values) + ',\n    "weights": ' + str(weights) + "\n})\n"


def _bags(data: torch.Tensor, offsets: torch.Tensor) -> List[torch.Tensor]:
    """``data[offsets[i]:offsets[i+1]]`` per bag: offsets are indices (need not start at 0; trailing data ignored)."""
    offs: List[int] = offsets.tolist()
    n = data.size(0)
    for i in range(len(offs) - 1):
        if offs[i] > offs[i + 1] or offs[i] < 0 or offs[i + 1] > n:
            raise ValueError(
                f"JaggedTensor: bag {i} spans offsets [{offs[i]}, {offs[i + 1]}), expected 0 <= start <= end <= "
                f"{n} (the number of values)"
            )
    return [data[offs[i]: offs[i + 1]] for i in range(len(offs) - 1)]


def _padded(
    data: torch.Tensor,
    lengths: torch.Tensor,
    offsets: Optional[torch.Tensor],
    desired_length: Optional[int],
    padding_value: float,
) -> torch.Tensor:
    longest: Optional[int] = None
    if desired_length is None:
        longest = int(lengths.max().item()) if lengths.numel() > 0 else 0
        width = longest
    else:
        if desired_length < 0:
            raise ValueError(f"to_padded_dense: desired_length must be >= 0, got {desired_length}")
        width = desired_length
    return jagged_to_padded_dense(data, lengths, offsets, width, padding_value, longest)


def jt_is_equal(jt_1: "JaggedTensor", jt_2: "JaggedTensor") -> bool:
    """True when both JTs hold the same values, lengths and weights (offsets derived)."""
    if not isinstance(jt_1, JaggedTensor) or not isinstance(jt_2, JaggedTensor):
        return False
    if not _opt_equal(jt_1.weights_or_none(), jt_2.weights_or_none()):
        return False
    return _same(jt_1.values(), jt_2.values()) and _same(jt_1.lengths(), jt_2.lengths())


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.equal(a, b.to(a.dtype)))


def _opt_equal(a: Optional[torch.Tensor], b: Optional[torch.Tensor]) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return _same(a, b)


def jt_dict_is_equal(d1: Dict[str, JaggedTensor], d2: Dict[str, JaggedTensor]) -> bool:
    if list(d1.keys()) != list(d2.keys()):
        return False
    for k in d1.keys():
        if not jt_is_equal(d1[k], d2[k]):
            return False
    return True


def trusted_jt(
    values: torch.Tensor, weights: Optional[torch.Tensor], lengths: torch.Tensor, offsets: Optional[torch.Tensor]
) -> JaggedTensor:
    """A JT made of views of a valid KJT (``to_dict``/``__getitem__``): the input checks are skipped in eager mode."""
    if not torch.jit.is_scripting():
        jt = object.__new__(JaggedTensor)
        jt.__dict__.update(_values=values, _weights=weights, _lengths=lengths, _offsets=offsets)
        return jt
    return JaggedTensor(values=values, weights=weights, lengths=lengths, offsets=offsets)


def _copy_parts(dst: object, src: object, non_blocking: bool) -> None:
    """In-place copy of the tensors of one jagged object into another of the same layout (eager only)."""
    for name in ("_values", "_weights", "_lengths", "_offsets"):
        d, s_ = getattr(dst, name), getattr(src, name)
        if (d is None) != (s_ is None):
            raise ValueError(f"copy_: {name[1:]} is present in only one of the two objects")
        if d is not None:
            if d.shape != s_.shape:
                raise ValueError(f"copy_: {name[1:]} shapes differ: {tuple(d.shape)} vs {tuple(s_.shape)}")
            d.copy_(s_, non_blocking=non_blocking)
