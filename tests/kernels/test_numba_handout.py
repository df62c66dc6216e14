"""The numba backend's task hand-out (workers taking runs of tasks from an atomic counter):
every task runs exactly once whatever the number of workers, so results match the
reference with more workers than threads, more workers than tasks, and runs of tasks
that do not divide the task count."""

from __future__ import annotations

import numpy as np
import pytest

from ovq.errors import NonFiniteError
from ovq.kernels import Histogram, available_backends, get_kernels
from tests.kernels.conftest import assert_same_reductions, strided

pytestmark = pytest.mark.skipif("numba" not in available_backends(), reason="numba missing")


@pytest.mark.parametrize("nt", [1, 2, 7, 64, 100, 4097])
@pytest.mark.parametrize("threads", [1, 2, 3, 16])
def test_take_covers_every_task_once(nt, threads):
    from ovq.kernels.numba_impl import _share, _take

    nw, chunk, nxt = _share(nt, threads)
    assert 1 <= nw <= min(threads, nt) and chunk >= 1
    seen = np.zeros(nt, np.int64)
    t0, t1 = _take(nxt, chunk, nt)
    while t0 < t1:
        assert 0 <= t0 < t1 <= nt and t1 - t0 <= chunk
        seen[t0:t1] += 1
        t0, t1 = _take(nxt, chunk, nt)
    np.testing.assert_array_equal(seen, 1)
    assert _take(nxt, chunk, nt) == (nt, nt)  # stays exhausted


# per tensor (dim 0 split into parts), few kept indices (split too), many kept indices
CASES = [((70001,), ()), ((3, 40000), (0,)), ((37, 1031), (0,)), ((2, 6, 40, 41), (1,))]


@pytest.mark.slow  # JIT-compiles most numba kernels (see backend_params in conftest.py)
@pytest.mark.parametrize("threads", [1, 3, 7])
@pytest.mark.parametrize("case", CASES)
def test_kernels_with_more_workers_than_threads(monkeypatch, threads, case):
    import numba

    # The wrappers size the split and the worker count from numba.get_num_threads();
    # more workers than pool threads just queue, which exercises the counter's races.
    monkeypatch.setattr(numba, "get_num_threads", lambda: threads)
    from ovq.kernels.numba_impl import _splits

    assert _splits(np.array([70001]), 1) == (1 if threads == 1 else 4 * threads)
    kern, ref = get_kernels("numba"), get_kernels("numpy")
    shape, axis = case
    x = strided(np.random.default_rng(threads), shape, "float32", 2)
    assert_same_reductions(kern, ref, x, axis)
    for q in ([1e-4, 1 - 1e-4], [0.3]):
        np.testing.assert_array_equal(kern.quantile(x, q, axis), ref.quantile(x, q, axis))
    h1 = kern.histogram(x, Histogram(-1.0, 1.5, 64), axis)
    h2 = ref.histogram(x, Histogram(-1.0, 1.5, 64), axis)
    np.testing.assert_array_equal(h1.counts, h2.counts)
    y = x[::-1].copy()
    for u, v in zip(kern.quantization_error(x, y, axis), ref.quantization_error(x, y, axis)):
        np.testing.assert_allclose(u, v, rtol=1e-10)
    fa = kern.fake_quantize(x, np.float32(-0.7), np.float32(0.9), np.float32(-1), np.float32(2),
                            255)
    fb = ref.fake_quantize(x, np.float32(-0.7), np.float32(0.9), np.float32(-1), np.float32(2),
                           255)
    np.testing.assert_array_equal(fa.view(np.int32), fb.view(np.int32))
    ax = axis[0] if axis else None
    nk = x.shape[ax] if ax is not None else 1
    il = np.linspace(-2.0, -0.5, nk).astype(np.float32)
    ih = np.linspace(0.5, 2.5, nk).astype(np.float32)
    qa = kern._m.quantize(x, il, ih, 255, ax, offset=-127)
    qb = ref._m.quantize(x, il, ih, 255, ax, offset=-127)
    np.testing.assert_array_equal(qa, qb)
    s = ((ih - il) / 254).astype(np.float32)
    np.testing.assert_array_equal(kern.dequantize(qb, s, np.float32(1), ax),
                                  ref.dequantize(qb, s, np.float32(1), ax))
    bad = x.copy()
    bad.reshape(-1)[-1] = np.nan  # in the last task
    with pytest.raises(NonFiniteError):
        kern.minmax(bad, axis)
    with pytest.raises(NonFiniteError):
        kern._m.quantize(bad, il, ih, 255, ax, offset=-127)
