"""``KTRegroupAsDict``: regroup the pooled outputs of several ``KeyedTensor`` s into named dense tensors.

    kt1 keys [a(2), b(1)]   kt2 keys [c(3)]   groups [["c", "a"], ["b"]]   keys ["x", "y"]
    -> {"x": cat(c, a) (B, 5), "y": b (B, 1)}

The column plan (which input, which columns) is pure Python over the keys (microseconds), so it is rebuilt
per call: the module stays stateless, TorchScript-compatible and one node under ``torch.fx``.
"""

from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from recsys_lib.ops.regroup import plan_regroup, regroup_slices
from recsys_lib.sparse.jagged_tensor import KeyedTensor
from recsys_lib.fx.tracer import is_fx_tracing
from recsys_lib.types import CacheMixin, DataType


@torch.fx.wrap
def kt_regroup_as_dict(
    keyed_tensors: List[KeyedTensor],
    groups: List[List[str]],
    keys: List[str],
    dtype: Optional[torch.dtype],
    multi_device: bool,
) -> Dict[str, torch.Tensor]:
    """``{keys[i]: cat(columns of groups[i] along dim 1)}`` over ``keyed_tensors``."""
    if len(keyed_tensors) == 0:
        raise ValueError("KTRegroupAsDict: expected at least one KeyedTensor")
    kt_keys: List[List[str]] = []
    kt_lengths: List[List[int]] = []
    values: List[torch.Tensor] = []
    for kt in keyed_tensors:
        if kt.key_dim() != 1:
            raise ValueError("KTRegroupAsDict: only key_dim=1 is supported, got " + str(kt.key_dim()))
        kt_keys.append(kt.keys())
        kt_lengths.append(kt.length_per_key())
        values.append(kt.values())
    if multi_device:
        target = values[0].device
        for i in range(len(values)):
            values[i] = values[i].to(target)
    outs = regroup_slices(values, plan_regroup(kt_keys, kt_lengths, groups))
    result: Dict[str, torch.Tensor] = {}
    for i, k in enumerate(keys):
        result[k] = outs[i] if dtype is None else outs[i].to(dtype)
    return result


def _permute_arguments(
    plan: List[List[Tuple[int, int, int]]], in_widths: List[int], device: torch.device
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, List[int]]:
    """TorchRec's ``permute_multi_embedding`` arguments for a regroup plan.

    Returns ``permutes`` (rows ``[in_tensor, out_tensor, in_start, out_start, length, jump]``, int32), the input
    and output widths (int32) and the output widths as a host list.
    """
    rows: List[List[int]] = []
    out_lengths: List[int] = []
    for g, slices in enumerate(plan):
        out_start = 0
        for src, start, length in slices:
            rows.append([src, g, start, out_start, length, 0])
            out_start += length
        out_lengths.append(out_start)
    permutes = torch.tensor(rows, dtype=torch.int32, device=device).view(-1, 6)
    in_shapes = torch.tensor(in_widths, dtype=torch.int32, device=device)
    out_shapes = torch.tensor(out_lengths, dtype=torch.int32, device=device)
    return permutes, in_shapes, out_shapes, out_lengths


class PermuteMultiEmbedding(nn.Module):
    """Column permutation of several ``(B, D_i)`` tensors into the groups' ``(B, out_lengths[g])`` tensors.

    ``init_tensors`` sets the plan (TorchRec's ``permutes`` layout: one row ``[in_tensor, out_tensor, in_start,
    out_start, length, jump]`` per copied block); before that, ``forward`` returns its input. The buffers are not
    persistent (no state-dict keys).

    Args:
        groups: the key groups (kept for reference).
        multi_device: inputs may live on another device than the buffers.
    """

    def __init__(self, groups: List[List[str]], multi_device: bool = False) -> None:
        super().__init__()
        self._groups = groups
        self.register_buffer("_permutes", torch.empty(0), persistent=False)
        self.register_buffer("_in_shapes", torch.empty(0), persistent=False)
        self.register_buffer("_out_shapes", torch.empty(0), persistent=False)
        self._out_lengths: Optional[List[int]] = None
        self._blocks: List[List[Tuple[int, int, int]]] = []  # per output: (in tensor, in start, length), host copy
        self._multi_device = multi_device

    def init_tensors(
        self, permute: torch.Tensor, in_shapes: torch.Tensor, out_shapes: torch.Tensor, out_lengths: List[int]
    ) -> None:
        self._permutes = permute
        self._in_shapes = in_shapes
        self._out_shapes = out_shapes
        self._out_lengths = out_lengths
        blocks: List[List[Tuple[int, int, int, int]]] = [[] for _ in out_lengths]
        for row in permute.tolist():  # once per init: the plan is small host data
            blocks[row[1]].append((row[3], row[0], row[2], row[4]))
        self._blocks = [[(b[1], b[2], b[3]) for b in sorted(bl)] for bl in blocks]

    @torch.jit.export
    def set_device(self, device: str) -> None:
        self._permutes = self._permutes.to(device)
        self._in_shapes = self._in_shapes.to(device)
        self._out_shapes = self._out_shapes.to(device)

    def forward(self, values: List[torch.Tensor]) -> List[torch.Tensor]:
        """``values``: ``(B, D_i)`` tensors → one ``(B, out_lengths[g])`` tensor per group."""
        if self._out_lengths is None:
            return values
        if self._multi_device and len(values) > 1:
            target = values[0].device
            values = [v.to(target) for v in values]
        return regroup_slices(values, self._blocks)


@torch.fx.wrap
def _to_tensor_dict(keys: List[str], values: List[torch.Tensor]) -> Dict[str, torch.Tensor]:
    out: Dict[str, torch.Tensor] = {}
    for i, key in enumerate(keys):
        out[key] = values[i]
    return out


def module_init(module: "KTRegroupAsDict", keyed_tensors: List[KeyedTensor]) -> None:
    """Build and cache ``module``'s column plan from the layout of ``keyed_tensors`` (done by the first forward).

    Raises ``RuntimeError`` when a key is held by two inputs (which one to read would be ambiguous).
    """
    seen: Dict[str, int] = {}
    for i, kt in enumerate(keyed_tensors):
        if kt.key_dim() != 1:
            raise ValueError("KTRegroupAsDict: only key_dim=1 is supported, got " + str(kt.key_dim()))
        for k in kt.keys():
            if k in seen:
                raise RuntimeError(f"KTRegroupAsDict: key {k!r} is held by inputs {seen[k]} and {i}")
            seen[k] = i
    plan = plan_regroup([kt.keys() for kt in keyed_tensors], [kt.length_per_key() for kt in keyed_tensors],
                        module._groups)
    widths = [int(kt.values().size(1)) for kt in keyed_tensors]
    permutes, in_shapes, out_shapes, out_lengths = _permute_arguments(plan, widths, keyed_tensors[0].values().device)
    module._permute_pooled_embs_impl.init_tensors(permutes, in_shapes, out_shapes, out_lengths)
    module._layout = _layout_of(keyed_tensors)
    module._is_inited = True


def _layout_of(keyed_tensors: List[KeyedTensor]) -> List[List[str]]:
    out: List[List[str]] = []
    for kt in keyed_tensors:
        out.append(kt.keys() + [str(n) for n in kt.length_per_key()])
    return out


class KTRegroupAsDict(nn.Module, CacheMixin):
    """Regroup ``List[KeyedTensor]`` into ``{keys[i]: cat(columns of groups[i])}``.

    The column plan is computed from the first batch (``module_init``) and cached; ``clear_cache()`` drops it
    (e.g. after the inputs' layout changed by sharding).

    Args:
        groups: key lists, one per output.
        keys: output names, one per group.
        emb_dtype: cast outputs to this dtype (``None``: keep).
        multi_device: inputs may live on different devices; outputs land on the first input's device.
    """

    def __init__(
        self,
        groups: List[List[str]],
        keys: List[str],
        emb_dtype: Optional[DataType] = None,
        multi_device: bool = False,
    ) -> None:
        super().__init__()
        if len(groups) != len(keys):
            raise ValueError(f"KTRegroupAsDict: {len(keys)} keys for {len(groups)} groups; need one key per group")
        if len(set(keys)) != len(keys):
            raise ValueError(f"KTRegroupAsDict: output keys must be unique, got {keys}")
        self._groups: List[List[str]] = [list(g) for g in groups]
        self._keys: List[str] = list(keys)
        self._is_inited: bool = False
        self._layout: List[List[str]] = []
        self._permute_pooled_embs_impl = PermuteMultiEmbedding(self._groups, multi_device)
        self._emb_dtype = emb_dtype
        self._dtype: Optional[torch.dtype] = None
        if emb_dtype is not None:
            from recsys_lib.modules.embedding_configs import data_type_to_dtype
            self._dtype = data_type_to_dtype(emb_dtype)
        self._multi_device: bool = bool(multi_device)

    def clear_cache(self) -> None:
        """Forget the column plan; the next forward rebuilds it."""
        self._is_inited = False

    def embedding_cast(self, embs: List[torch.Tensor]) -> List[torch.Tensor]:
        """``embs`` cast to ``emb_dtype`` (unchanged when none was given)."""
        dtype = self._dtype
        if dtype is None:
            return embs
        return [e.to(dtype) for e in embs]

    def forward(self, keyed_tensors: List[KeyedTensor]) -> Dict[str, torch.Tensor]:
        # The cached plan is reused only for the same input layout (TorchRec reuses it blindly: a changed layout
        # would be regrouped wrongly without an error); the comparison is a few host list compares.
        if self._is_inited and not torch.jit.is_scripting() and not is_fx_tracing():
            if _layout_of(keyed_tensors) != self._layout:
                self._is_inited = False
        if not self._is_inited:
            if torch.jit.is_scripting() or is_fx_tracing():
                # no cache while compiling/tracing: the plan is rebuilt per call inside one wrapped node
                return kt_regroup_as_dict(keyed_tensors, self._groups, self._keys, self._dtype, self._multi_device)
            module_init(self, keyed_tensors)
        values: List[torch.Tensor] = [kt.values() for kt in keyed_tensors]
        return _to_tensor_dict(self._keys, self.embedding_cast(self._permute_pooled_embs_impl(values)))
