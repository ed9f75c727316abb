"""Is a PT2 tracer (dynamo, ``torch.export`` strict or non-strict) running? And shape hints for it.

Host-side checks (ids in range, lengths summing to the values) read tensor data; under PT2 tracing those reads
are data-dependent, so the library skips them there (the traced program then trusts its inputs, as a compiled
kernel does) and states the size facts the tracer cannot infer with ``torch._check``. All of these return
``False`` / do nothing inside TorchScript.
"""

from typing import List

import torch
from torch.fx.experimental.symbolic_shapes import guard_or_false as _torch_guard_or_false
from torch.fx.experimental.symbolic_shapes import guard_or_true as _torch_guard_or_true


@torch.jit.unused
def guard_or_false(a: bool) -> bool:
    """``a`` where the tracer knows it; ``False`` where it depends on data (torch's ``guard_or_false``)."""
    return _torch_guard_or_false(a)


@torch.jit.unused
def guard_or_true(a: bool) -> bool:
    """``a`` where the tracer knows it; ``True`` where it depends on data (torch's ``guard_or_true``)."""
    return _torch_guard_or_true(a)


class _DynamoPathSwitch:
    """TorchRec's process-wide switch (``set_use_torchdynamo_compiling_path``): when on, the library takes its
    dynamo-tracing code paths even outside dynamo (e.g. to trace them with another tracer). Off by default; the only
    process-wide state of ``pt2`` (TorchRec's API is a global switch)."""

    enabled: bool = False


def set_use_torchdynamo_compiling_path(val: bool) -> None:
    """Turn the dynamo code paths on or off for this process (see ``_DynamoPathSwitch``)."""
    _DynamoPathSwitch.enabled = bool(val)


@torch.jit.unused
def get_use_torchdynamo_compiling_path() -> bool:
    """Whether ``set_use_torchdynamo_compiling_path(True)`` is in effect."""
    return _DynamoPathSwitch.enabled


def is_torchdynamo_compiling() -> bool:
    """True while dynamo traces (``torch.compile``, strict ``torch.export``) or the dynamo path is switched on."""
    if torch.jit.is_scripting():
        return False
    return get_use_torchdynamo_compiling_path() or torch.compiler.is_compiling()


def is_non_strict_exporting() -> bool:
    """True while non-strict ``torch.export`` traces (tensors are fake, dynamo is not running)."""
    if torch.jit.is_scripting():
        return False
    if is_torchdynamo_compiling():
        return False
    return torch.compiler.is_exporting() or torch._guards.detect_fake_mode() is not None


def is_pt2_compiling() -> bool:
    """True under any PT2 tracer."""
    if torch.jit.is_scripting():
        return False
    return is_torchdynamo_compiling() or is_non_strict_exporting()


def pt2_checks_tensor_slice(tensor: torch.Tensor, start_offset: int, end_offset: int, dim: int = 0) -> None:
    """Tell the tracer ``tensor[start_offset:end_offset]`` along ``dim`` is in bounds (no-op otherwise)."""
    if torch.jit.is_scripting() or not is_pt2_compiling():
        return
    torch._check_is_size(start_offset)
    torch._check_is_size(end_offset)
    torch._check(end_offset >= start_offset)
    torch._check(end_offset <= tensor.size(dim))


def pt2_checks_all_is_size(x: List[int]) -> List[int]:
    """Mark every (possibly unbacked) int of ``x`` as a size (>= 0); returns ``x``."""
    if torch.jit.is_scripting() or not is_pt2_compiling():
        return x
    for i in x:
        torch._check_is_size(i)
    return x


def pt2_check_size_nonzero(x: torch.Tensor) -> torch.Tensor:
    """Tell the tracer ``x`` has at least one element along dim 0; returns ``x``."""
    if torch.jit.is_scripting() or not is_pt2_compiling():
        return x
    torch._check(x.size(0) > 0)
    return x


def pt2_guard_or_false(x: bool) -> bool:
    """``x`` where it is known; ``False`` where it depends on data the tracer cannot see."""
    if torch.jit.is_scripting() or not is_pt2_compiling():
        return x
    return guard_or_false(x)


def pt2_guard_or_true(x: bool) -> bool:
    """``x`` where it is known; ``True`` where it depends on data the tracer cannot see."""
    if torch.jit.is_scripting() or not is_pt2_compiling():
        return x
    return guard_or_true(x)
