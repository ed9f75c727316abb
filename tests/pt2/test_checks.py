"""recsys_lib.pt2.checks: the dynamo-path switch and the guard helpers, eager and under torch.export."""

import torch

from recsys_lib.pt2.checks import (
    get_use_torchdynamo_compiling_path,
    guard_or_false,
    guard_or_true,
    is_non_strict_exporting,
    is_pt2_compiling,
    is_torchdynamo_compiling,
    pt2_guard_or_false,
    pt2_guard_or_true,
    set_use_torchdynamo_compiling_path,
)


def test_switch_turns_the_dynamo_path_on_and_off() -> None:
    assert get_use_torchdynamo_compiling_path() is False
    assert not is_torchdynamo_compiling() and not is_pt2_compiling()
    set_use_torchdynamo_compiling_path(True)
    try:
        assert get_use_torchdynamo_compiling_path() is True
        assert is_torchdynamo_compiling() and is_pt2_compiling() and not is_non_strict_exporting()
    finally:
        set_use_torchdynamo_compiling_path(False)
    assert not is_torchdynamo_compiling()


def test_guards_eager_return_the_value() -> None:
    for v in (True, False):
        assert guard_or_false(v) is v and guard_or_true(v) is v
        assert pt2_guard_or_false(v) is v and pt2_guard_or_true(v) is v


class _DataDependent(torch.nn.Module):
    def forward(self, n: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        k = n.item()  # unbacked under export: "k != 3" is unknown to the tracer
        a = 1.0 if pt2_guard_or_false(k != 3) else 0.0
        b = 1.0 if pt2_guard_or_true(k != 3) else 0.0
        return x * 0 + torch.tensor([a, b])


def test_guards_under_export_pick_their_default_for_unknown_facts() -> None:
    ep = torch.export.export(_DataDependent(), (torch.tensor(5), torch.zeros(2)), strict=False)
    assert ep.module()(torch.tensor(5), torch.zeros(2)).tolist() == [0.0, 1.0]  # False / True defaults baked in
    assert _DataDependent()(torch.tensor(5), torch.zeros(2)).tolist() == [1.0, 1.0]  # eager: the real value


def test_checks_script() -> None:
    @torch.jit.script
    def f(x: bool) -> bool:
        return pt2_guard_or_false(x) and not is_pt2_compiling()

    assert f(True) and not f(False)
