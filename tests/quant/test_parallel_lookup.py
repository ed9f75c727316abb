"""The quantized EBC's threaded lookup (``recsys_lib.quant._parallel``): feature ranges looked up in parallel
threads must give exactly the single FBGEMM call's output, check ids as that path does, and stay out of the way of
copies, scripting and tracing."""

import copy
import pickle

import pytest
import torch

from recsys_lib import EmbeddingBagCollection, EmbeddingBagConfig, KeyedJaggedTensor, PoolingType
from recsys_lib.ops._fbgemm import fbgemm_available
from recsys_lib.quant import _parallel
from recsys_lib.quant import embedding_modules as qem
from recsys_lib.quant._parallel import split_points
from tests.quant._helpers import qconfig

pytestmark = pytest.mark.skipif(not fbgemm_available(), reason="the threaded lookup splits FBGEMM's CPU TBE")


def test_split_points_balance_contiguous_ranges():
    assert split_points([1.0] * 6, 2) == [0, 3, 6]
    assert split_points([1.0] * 5, 2) == [0, 2, 5]  # 2 vs 3: both cuts are 0.5 from the target; the first wins
    assert split_points([10.0, 1.0, 1.0, 1.0], 2) == [0, 1, 4]
    assert split_points([1.0, 1.0, 1.0, 10.0], 2) == [0, 3, 4]
    assert split_points([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3) == [0, 3, 5, 6]  # sums 6, 9, 6 (targets 7 and 14)
    assert split_points([1.0, 1.0], 4) == [0, 1, 2]  # never more ranges than features
    assert split_points([0.0, 0.0, 0.0], 2) == [0, 1, 3]  # every range non-empty
    assert split_points([5.0], 3) == [0, 1]


def _tables(mean=True):
    # Mixed dims, row counts and dtypes' widths; a table read by two features; a MEAN table (a second kernel group).
    return [
        EmbeddingBagConfig(num_embeddings=50 + 7 * i, embedding_dim=8 * (1 + i % 3), name="t" + str(i),
                           feature_names=["f" + str(i)] + (["g" + str(i)] if i % 2 else []),
                           pooling=PoolingType.MEAN if mean and i == 3 else PoolingType.SUM)
        for i in range(6)
    ]


def _quantized(dtype, weighted, output_dtype=torch.float, mean=True):
    torch.manual_seed(0)
    ebc = EmbeddingBagCollection(_tables(mean), is_weighted=weighted)
    ebc.qconfig = qconfig(dtype, output_dtype)
    return qem.EmbeddingBagCollection.from_float(ebc)


def _batch(weighted, batch_size=37, seed=1, bad=None, keys=None):
    g = torch.Generator().manual_seed(seed)
    tables = _tables()
    if keys is None:
        keys = [f for t in tables for f in t.feature_names][::-1]  # not the collection's order: a permute first
    rows = {f: t.num_embeddings for t in tables for f in t.feature_names}
    lengths = torch.randint(0, 6, (len(keys) * batch_size,), generator=g)
    values = torch.cat([
        torch.randint(0, rows[k], (int(lengths[i * batch_size:(i + 1) * batch_size].sum()),), generator=g)
        for i, k in enumerate(keys)
    ])
    if bad is not None:  # (feature, id): one id of that feature replaced
        i = keys.index(bad[0])
        start = int(lengths[: i * batch_size].sum())
        assert int(lengths[i * batch_size:(i + 1) * batch_size].sum()) > 0
        values[start] = bad[1]
    weights = torch.rand(values.numel(), generator=g) if weighted else None
    return KeyedJaggedTensor(keys=keys, values=values, lengths=lengths, weights=weights)


class _Threads:
    """``torch.set_num_threads(n)`` with every lookup threaded (no minimum size), counting threaded calls."""

    def __init__(self, monkeypatch, n):
        self.n = n
        self.calls = []
        monkeypatch.setattr(_parallel, "MIN_IDS_PER_PART", 1)
        real = qem.threaded_lookup

        def spy(*args):
            self.calls.append(args[7])  # parts
            return real(*args)

        monkeypatch.setattr(qem, "threaded_lookup", spy)

    def __enter__(self):
        self.before = torch.get_num_threads()
        torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self.before)


def _single_call(q, kjt):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return q(kjt).values()
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.qint8, torch.quint4x2, torch.quint2x4])
@pytest.mark.parametrize("weighted", [False, True])
def test_threaded_lookup_is_bit_identical_to_single_call(monkeypatch, dtype, weighted):
    q = _quantized(dtype, weighted)
    kjt = _batch(weighted)
    expected = _single_call(q, kjt)
    for n in (2, 3, 5):
        with _Threads(monkeypatch, n) as threads:
            out = q(kjt).values()
            assert torch.get_num_threads() == n  # restored after the parts ran on one intra-op thread each
        assert threads.calls == [n, n]  # both kernel groups (SUM, MEAN) took the threaded path
        assert torch.equal(out, expected), (dtype, weighted, n)


@pytest.mark.parametrize("output_dtype", [torch.float16, torch.bfloat16])
def test_threaded_lookup_keeps_output_dtype(monkeypatch, output_dtype):
    q = _quantized(torch.qint8, False, output_dtype)
    kjt = _batch(False)
    expected = _single_call(q, kjt)
    with _Threads(monkeypatch, 2) as threads, torch.inference_mode():
        out = q(kjt).values()
    assert threads.calls and out.dtype == output_dtype and torch.equal(out, expected)


def test_threaded_lookup_rejects_out_of_range_ids_in_any_part(monkeypatch):
    q = _quantized(torch.qint8, False)
    # f0 is in the first range (the caller's thread), g5 in the last (a worker's).
    for feature, table, rows in (("f0", "t0", 50), ("g5", "t5", 85)):
        for bad in (rows, -1):
            with _Threads(monkeypatch, 2) as threads:
                with pytest.raises(ValueError, match="table '" + table + "'.*" + str(bad)):
                    q(_batch(False, bad=(feature, bad)))
                assert torch.get_num_threads() == 2
            assert threads.calls


def test_small_batches_and_one_thread_use_the_single_call(monkeypatch):
    q = _quantized(torch.qint8, False)
    calls = []
    real = qem.threaded_lookup
    monkeypatch.setattr(qem, "threaded_lookup", lambda *a: calls.append(a) or real(*a))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        q(_batch(False))  # a few hundred ids: below MIN_IDS_PER_PART
        monkeypatch.setattr(_parallel, "MIN_IDS_PER_PART", 1)
        torch.set_num_threads(1)
        q(_batch(False))
    finally:
        torch.set_num_threads(before)
    assert calls == []


def test_copies_pickles_and_scripts_after_threaded_lookups(monkeypatch):
    q = _quantized(torch.quint4x2, True)
    kjt = _batch(True)
    expected = _single_call(q, kjt)
    with _Threads(monkeypatch, 2) as threads:
        q(kjt)
        clone = copy.deepcopy(q)
        restored = pickle.loads(pickle.dumps(q))
        assert torch.equal(clone(kjt).values(), expected)
        assert torch.equal(restored(kjt).values(), expected)
        scripted = torch.jit.script(q)
        assert torch.equal(scripted(kjt).values(), expected)
    assert len(threads.calls) == 2 * 3  # q, clone, restored (two groups each); the scripted module calls once


class _FromTensors(torch.nn.Module):
    def __init__(self, q, keys):
        super().__init__()
        self.q = q
        self.keys = keys

    def forward(self, values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.q(KeyedJaggedTensor(keys=self.keys, values=values, lengths=lengths)).values()


def test_fx_and_export_trace_the_single_call(monkeypatch):
    from recsys_lib.fx import symbolic_trace
    from recsys_lib.pt2.utils import register_fake_classes

    register_fake_classes()
    q = _quantized(torch.qint8, False, mean=False)  # one kernel group, keys in its order: export traces that
    kjt = _batch(False, keys=q._feature_order)
    expected = _single_call(q, kjt)
    with _Threads(monkeypatch, 2) as threads:
        traced = symbolic_trace(q)
        exported = torch.export.export(_FromTensors(q, kjt.keys()), (kjt.values(), kjt.lengths()), strict=False)
        assert threads.calls == []  # tracers never see the threads
        assert torch.equal(traced(kjt).values(), expected)
        assert torch.equal(exported.module()(kjt.values(), kjt.lengths()), expected)


def _forward_in_child(q, kjt, expected, conn):
    conn.send(torch.equal(q(kjt).values(), expected))


def test_forked_child_runs_threaded_lookups(monkeypatch):
    import multiprocessing

    q = _quantized(torch.qint8, False)
    kjt = _batch(False)
    expected = _single_call(q, kjt)
    with _Threads(monkeypatch, 2) as threads:
        q(kjt)  # the parent's worker threads now exist; a forked child has none of them
        ctx = multiprocessing.get_context("fork")
        parent_end, child_end = ctx.Pipe()
        child = ctx.Process(target=_forward_in_child, args=(q, kjt, expected, child_end))
        child.start()
        child.join(timeout=60)
        if child.is_alive():
            child.kill()
        assert parent_end.poll(0) and parent_end.recv() is True
    assert threads.calls


def test_threaded_lookup_with_int32_ids(monkeypatch):
    q = _quantized(torch.quint4x2, True)
    kjt = _batch(True)
    expected = _single_call(q, kjt)
    kjt32 = KeyedJaggedTensor(keys=kjt.keys(), values=kjt.values().int(), lengths=kjt.lengths().int(),
                              weights=kjt.weights())
    with _Threads(monkeypatch, 2) as threads:
        out = q(kjt32).values()
    assert threads.calls and torch.equal(out, expected)


def test_threaded_lookup_never_overwrites_a_result_the_caller_holds(monkeypatch):
    q = _quantized(torch.qint8, False)
    kjts = [_batch(False, seed=s) for s in (1, 2, 3)]
    expected = [_single_call(q, k) for k in kjts]
    with _Threads(monkeypatch, 2):
        first = q(kjts[0]).values()
        second = q(kjts[1]).values()  # `first` is held: written elsewhere
        assert first.data_ptr() != second.data_ptr()
        ptr = first.data_ptr()
        del first
        third = q(kjts[2]).values()  # `first`'s buffer is free again and reused
    assert third.data_ptr() == ptr
    assert torch.equal(second, expected[1]) and torch.equal(third, expected[2])
