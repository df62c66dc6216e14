"""Quantiles on tensors large enough for the backends' fast paths (extreme ranks found in
one filtering pass, per-tensor work split across threads), against the reference."""

from __future__ import annotations

import numpy as np
import pytest

from tests.kernels.conftest import strided

QS = [
    [1e-4, 1 - 1e-4],
    [0.0, 1.0],
    [1e-3, 1e-4, 0.9999, 0.99],
    [1e-4, 0.5, 1 - 1e-4],  # a middle rank: exact path
    [0.02, 0.98],
]


def _orders(rng, x):
    flat = x.reshape(-1)
    yield x
    yield np.sort(flat).reshape(x.shape)  # ascending: worst case for the low side
    yield np.sort(flat)[::-1].reshape(x.shape)  # descending: worst for the high side
    yield np.round(x * 4).astype(np.float32) / 4  # many ties
    yield np.where(rng.random(x.shape) < 0.5, 0.0, x).astype(np.float32)  # zeros and -0


@pytest.mark.parametrize("q", QS)
@pytest.mark.parametrize("absolute", [False, True])
def test_quantile_large_per_tensor(kern, ref, q, absolute):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 50, 700), dtype=np.float32)
    for v in _orders(rng, x):
        np.testing.assert_array_equal(kern.quantile(v, q, None, absolute=absolute),
                                      ref.quantile(v, q, None, absolute=absolute))


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("view", [0, 1, 2, 3])
@pytest.mark.parametrize("axis", [None, 1, (0, 2)])
def test_quantile_large_views(kern, ref, dtype, view, axis):
    x = strided(np.random.default_rng(view), (4, 6, 40, 41), dtype, view)
    for q in QS[:3]:
        for absolute in (False, True):
            np.testing.assert_array_equal(kern.quantile(x, q, axis, absolute=absolute),
                                          ref.quantile(x, q, axis, absolute=absolute))


def test_quantile_large_nonfinite(kern):
    from ovq.errors import NonFiniteError

    x = np.random.default_rng(3).standard_normal((2, 64, 600), dtype=np.float32)
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[1, 5, 599] = bad
        for axis in (None, 1):
            with pytest.raises(NonFiniteError):
                kern.quantile(y, [1e-4, 1 - 1e-4], axis, name="t")


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_quantile_step_lanes(kern, ref, dtype):
    """Values beyond a bound, and NaN/Inf, in every lane of a 16-value step after the
    seeded head (the scans test 16 values at once and then look at single lanes)."""
    from ovq.errors import NonFiniteError

    x = strided(np.random.default_rng(11), (1024 + 64,), dtype, 0)
    big = np.finfo(x.dtype).max if dtype != "bfloat16" else x.dtype.type(3.0e38)
    for lane in range(16):
        y = x.copy()
        pos = 1024 + 16 + lane
        y[pos] = big
        y[pos + 16 if lane < 8 else pos - 16] = -big  # two hits in other steps
        for absolute in (False, True):
            np.testing.assert_array_equal(
                kern.quantile(y, [1e-3, 1 - 1e-3], None, absolute=absolute),
                ref.quantile(y, [1e-3, 1 - 1e-3], None, absolute=absolute))
        for bad in (np.nan, np.inf, -np.inf):
            y[pos] = bad
            with pytest.raises(NonFiniteError):
                kern.quantile(y, [1e-3], None, name="t")
