import random
from unittest import mock

import pytest
import torch
from iopath.common.file_io import PathHandler, PathManagerFactory
from torch.utils.data.datapipes.iter import IterableWrapper

from recsys_lib.datasets.utils import (
    Batch,
    Limit,
    LoadFiles,
    ParallelReadConcat,
    ReadLinesFromCSV,
    idx_split_train_val,
    rand_split_train_val,
    safe_cast,
    train_filter,
    val_filter,
)


def test_batch_to_keeps_values_and_type():
    sparse = mock.MagicMock()
    sparse.to.return_value = "moved-kjt"
    b = Batch(torch.arange(6.0).view(2, 3), sparse, torch.tensor([0, 1]))
    out = b.to(torch.device("cpu"), non_blocking=True)
    assert isinstance(out, Batch)
    torch.testing.assert_close(out.dense_features, b.dense_features)
    torch.testing.assert_close(out.labels, b.labels)
    sparse.to.assert_called_once_with(device=torch.device("cpu"), non_blocking=True)
    assert out.sparse_features == "moved-kjt"


def test_batch_record_stream_and_pin_memory_reach_every_part():
    parts = [mock.MagicMock() for _ in range(3)]
    b = Batch(*parts)
    b.record_stream("s")
    for p in parts:
        p.record_stream.assert_called_once_with("s")
    pinned = b.pin_memory()
    assert [pinned.dense_features, pinned.sparse_features, pinned.labels] == [p.pin_memory.return_value for p in parts]


def test_safe_cast():
    assert safe_cast("12", int, -1) == 12
    assert safe_cast("", int, -1) == -1
    assert safe_cast("x", float, 0.5) == 0.5
    assert safe_cast(None, int, 7) == 7


def test_load_files_text_and_binary(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("hello\n")
    [(path, stream)] = list(LoadFiles([str(p)], mode="r"))
    assert path == str(p) and stream.read() == "hello\n"
    [(_, stream)] = list(LoadFiles([str(p)]))
    assert stream.read() == b"hello\n"
    assert len(LoadFiles([str(p)], length=1)) == 1
    with pytest.raises(TypeError, match="no length"):
        len(LoadFiles([str(p)]))
    with pytest.raises(ValueError, match="reading only"):
        LoadFiles([str(p)], mode="w")
    with pytest.raises(TypeError, match="paths as str"):
        list(LoadFiles([3]))


class _MemHandler(PathHandler):
    """An in-memory iopath handler: proves LoadFiles goes through the PathManager, not open()."""

    files = {"mem://x.csv": "a,b\n1,2\n3,4\n"}

    def _get_supported_prefixes(self):
        return ["mem://"]

    def _open(self, path, mode="r", buffering=-1, **kwargs):
        import io

        return io.StringIO(self.files[path])


def test_other_iopath_handlers_plug_in():
    key = "recsys_lib_test_mem"
    PathManagerFactory.get(key).register_handler(_MemHandler(), allow_override=True)
    rows = list(ReadLinesFromCSV(LoadFiles(["mem://x.csv"], mode="r", path_manager_key=key), skip_first_line=True))
    assert rows == [["1", "2"], ["3", "4"]]


def test_read_lines_from_csv_tsv_and_quotes(tmp_path):
    p = tmp_path / "a.tsv"
    p.write_text('h1\th2\n1\t\n"x\ty"\t3\n')
    rows = list(ReadLinesFromCSV(LoadFiles([str(p), str(p)], mode="r"), skip_first_line=True, delimiter="\t"))
    assert rows == [["1", ""], ["x\ty", "3"]] * 2


def test_limit_and_parallel_read_concat():
    assert list(Limit(IterableWrapper(range(10)), 3)) == [0, 1, 2]
    assert list(Limit(IterableWrapper(range(2)), 5)) == [0, 1]
    assert list(Limit(IterableWrapper(range(2)), 0)) == []
    with pytest.raises(ValueError):
        Limit(IterableWrapper(range(2)), -1)
    dps = [IterableWrapper([1, 2]), IterableWrapper([3]), IterableWrapper([4, 5])]
    assert list(ParallelReadConcat(*dps)) == [1, 2, 3, 4, 5]
    assert list(ParallelReadConcat(*dps, dp_selector=lambda d: d[1:])) == [3, 4, 5]


def _worker_items(worker_id, num_workers, dps):
    info = mock.Mock(id=worker_id, num_workers=num_workers)
    with mock.patch("recsys_lib.datasets.utils.get_worker_info", return_value=info):
        return list(ParallelReadConcat(*dps))


def test_parallel_read_concat_splits_datapipes_across_workers():
    dps = [IterableWrapper([i]) for i in range(5)]
    got = [_worker_items(w, 2, dps) for w in range(2)]
    assert got == [[0, 2, 4], [1, 3]]
    with pytest.raises(ValueError, match="workers"):
        _worker_items(0, 6, dps)


def test_rand_split_is_disjoint_complete_and_seeded():
    items = list(range(1000))
    train, val = rand_split_train_val(IterableWrapper(items), 0.7, random_seed=3)
    t, v = list(train), list(val)
    rng = random.Random(3)
    expected_train = [i for i in items if rng.random() < 0.7]
    assert t == expected_train
    assert sorted(t + v) == items and not set(t) & set(v)
    assert list(train) == t  # same split on every epoch
    t2, _ = rand_split_train_val(IterableWrapper(items), 0.7, random_seed=4)
    assert list(t2) != t
    with pytest.raises(ValueError, match="train_perc"):
        rand_split_train_val(IterableWrapper(items), 1.0)


def test_idx_split_by_index():
    train, val = idx_split_train_val(IterableWrapper(list("abcdefghijklmnopqrst")), 0.3, decimal_places=1)
    assert list(train) == list("abcklm")  # index % 10 < 3
    assert list(val) == list("defghijnopqrst")
    assert train_filter(lambda i: i, 0.25, 2, 124) and val_filter(lambda i: i, 0.25, 2, 125)
    with pytest.raises(ValueError, match="decimal places"):
        idx_split_train_val(IterableWrapper([]), 0.255, decimal_places=2)
    with pytest.raises(ValueError, match="train_perc"):
        idx_split_train_val(IterableWrapper([]), 0.0)
