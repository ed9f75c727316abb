"""Crash safety of checkpoint folders: only committed checkpoints count; cut-short ones are skipped."""

import json
import logging
import os

import pytest
import torch
import torch.distributed.checkpoint as dcp

from recsys_lib.distributed.checkpoint import (
    checkpoint_dir, is_committed, keep_last, latest_committed, load_checkpoint, read_marker, save_checkpoint,
)
from recsys_lib.distributed._checkpoint.committed import drop_empty


def _write(root, step, value, commit=True):
    state = {"w": torch.full((3,), float(value))}
    if commit:
        return save_checkpoint(root, step, state, extra={"next_step": step, "value": value})
    path = checkpoint_dir(root, step)
    dcp.save(state, checkpoint_id=path, no_dist=True)  # written, never committed (a crash before the marker)
    return path


def test_latest_committed_skips_a_cut_short_checkpoint(tmp_path, caplog) -> None:
    root = str(tmp_path)
    assert latest_committed(root) is None
    _write(root, 2, 1.0)
    _write(root, 4, 2.0)
    cut = _write(root, 6, 3.0, commit=False)
    os.makedirs(checkpoint_dir(root, 8))  # a crash before any file was written
    with caplog.at_level(logging.WARNING):
        path = latest_committed(root)
    assert path == checkpoint_dir(root, 4)
    assert "step_00000006" in caplog.text and "incomplete" in caplog.text
    state = {"w": torch.zeros(3)}
    facts = load_checkpoint(path, state)
    assert facts == {"step": 4, "next_step": 4, "value": 2.0}
    torch.testing.assert_close(state["w"], torch.full((3,), 2.0))
    with pytest.raises(ValueError, match="step_00000006 is incomplete"):
        load_checkpoint(cut, {"w": torch.zeros(3)})
    with pytest.raises(ValueError, match="incomplete"):
        read_marker(cut)


def test_marker_is_written_atomically_and_names_the_step(tmp_path) -> None:
    path = _write(str(tmp_path), 3, 5.0)
    assert is_committed(path) and not any(n.endswith(".tmp") for n in os.listdir(path))
    with open(os.path.join(path, "COMMITTED")) as f:
        assert json.load(f)["step"] == 3
    assert os.path.isfile(os.path.join(path, ".metadata"))


def test_keep_last_keeps_the_newest_committed(tmp_path) -> None:
    root = str(tmp_path)
    for step in (1, 2, 3, 4):
        _write(root, step, float(step))
    _write(root, 5, 5.0, commit=False)  # newer than every committed one: may still be in progress, kept
    os.makedirs(checkpoint_dir(root, 0))  # older incomplete: deleted
    deleted = keep_last(root, 2)
    assert sorted(os.path.basename(p) for p in deleted) == ["step_00000000", "step_00000001", "step_00000002"]
    assert sorted(os.listdir(root)) == ["step_00000003", "step_00000004", "step_00000005"]
    with pytest.raises(ValueError, match="k must be >= 1"):
        keep_last(root, 0)


def test_drop_empty_removes_only_empty_dicts() -> None:
    t = torch.ones(1)
    assert drop_empty({"a": {}, "b": {"c": {}, "d": t}, "e": 0, "f": {"g": {}}}) == {"b": {"d": t}, "e": 0}
