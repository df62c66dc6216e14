"""Every kernel on every backend against the numpy reference (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ovq.kernels import Histogram
from tests.kernels.conftest import strided

SET = settings(max_examples=25, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])
dtypes = st.sampled_from(["float32", "float16", "bfloat16"])


@st.composite
def tensors(draw, max_rank=4):
    rank = draw(st.integers(1, max_rank))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=rank, max_size=rank)))
    view = draw(st.integers(0, 3))
    seed = draw(st.integers(0, 2**31))
    nkeep = draw(st.integers(0, min(2, rank)))
    axes = draw(st.permutations(range(rank)))[:nkeep]
    return shape, view, seed, tuple(axes)




def X(spec, dtype):
    shape, view, seed, _ = spec
    return strided(np.random.default_rng(seed), shape, dtype, view)


@SET
@given(spec=tensors(), dtype=dtypes)
def test_minmax(kern, ref, spec, dtype):
    x, axis = X(spec, dtype), spec[3]
    for a, b in zip(kern.minmax(x, axis), ref.minmax(x, axis)):
        assert a.dtype == np.float32 and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


@SET
@given(spec=tensors(), dtype=dtypes)
def test_moments(kern, ref, spec, dtype):
    x, axis = X(spec, dtype), spec[3]
    a, b = kern.reduce_state(x, axis), ref.reduce_state(x, axis)
    np.testing.assert_array_equal(a.count, b.count)
    np.testing.assert_array_equal(a.min, b.min)
    np.testing.assert_array_equal(a.max, b.max)
    np.testing.assert_allclose(a.sum, b.sum, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(a.sumsq, b.sumsq, rtol=1e-12)
    np.testing.assert_allclose(kern.reduce_mean(x, axis), ref.reduce_mean(x, axis), rtol=1e-9,
                               atol=1e-12)


@SET
@given(spec=tensors(), dtype=dtypes, absolute=st.booleans(),
       q=st.lists(st.floats(0, 1), min_size=1, max_size=4))
def test_quantile(kern, ref, spec, dtype, absolute, q):
    x, axis = X(spec, dtype), spec[3]
    np.testing.assert_array_equal(kern.quantile(x, q, axis, absolute=absolute),
                                  ref.quantile(x, q, axis, absolute=absolute))


def test_quantile_matches_numpy(kern):
    x = np.random.default_rng(1).standard_normal((3, 1001)).astype(np.float32)
    q = [1e-4, 0.5, 1 - 1e-4]
    np.testing.assert_allclose(kern.quantile(x, q, 0), np.quantile(x.astype(np.float64), q, axis=1),
                               rtol=1e-12)


@SET
@given(spec=tensors(), dtype=dtypes, absolute=st.booleans(), bins=st.integers(1, 20))
def test_histogram(kern, ref, spec, dtype, absolute, bins):
    x, axis = X(spec, dtype), spec[3]
    h1 = kern.histogram(x, Histogram(-1.0, 1.5, bins, absolute), axis)
    h2 = ref.histogram(x, Histogram(-1.0, 1.5, bins, absolute), axis)
    np.testing.assert_array_equal(h1.counts, h2.counts)
    assert h1.counts.sum(axis=-1).min(initial=x.size) >= 0


@pytest.mark.parametrize("bins", [2048, 70_000])  # 4 interleaved count arrays / one array (> 2^16 slots)
def test_histogram_vector_path_both_counter_layouts(kern, ref, bins):
    x = np.random.default_rng(3).standard_normal((3, 40_000)).astype(np.float32)
    x[1, ::7] = 0.25  # long runs into one bin
    for axis in (None, 0):
        h1 = kern.histogram(x, Histogram(-2.0, 2.0, bins), axis)
        h2 = ref.histogram(x, Histogram(-2.0, 2.0, bins), axis)
        np.testing.assert_array_equal(h1.counts, h2.counts)


@SET
@given(spec=tensors(), dtype=dtypes, flavor=st.sampled_from(["snippets", "node"]),
       levels=st.sampled_from([2, 3, 15, 16, 255, 256, 65535, 65536]), per_channel=st.booleans())
def test_fake_quantize(kern, ref, spec, dtype, flavor, levels, per_channel):
    x = X(spec, dtype)
    rng = np.random.default_rng(spec[2] + 1)
    ax = spec[3][0] if spec[3] else 0
    shape = [1] * x.ndim
    if per_channel:
        shape[ax] = x.shape[ax]
    lo = -np.abs(rng.standard_normal(shape)).astype(np.float32) - 0.01
    hi = np.abs(rng.standard_normal(shape)).astype(np.float32) + 0.01
    a = kern.fake_quantize(x, lo, hi, lo * 2, hi * 3, levels, flavor=flavor)
    b = ref.fake_quantize(x, lo, hi, lo * 2, hi * 3, levels, flavor=flavor)
    np.testing.assert_array_equal(a.view(np.int32), b.view(np.int32))


@SET
@given(spec=tensors(), dtype=dtypes, mode=st.sampled_from(["symmetric", "asymmetric"]),
       levels=st.sampled_from([15, 16, 255, 256, 65535, 65536]), per_channel=st.booleans())
def test_weight_quantization(kern, ref, spec, dtype, mode, levels, per_channel):
    from ovq.quantization.ranges import weight_range
    from ovq.quantization.records import QConfig

    x = X(spec, dtype)
    axis = (spec[3][0] if spec[3] else 0) if per_channel else None
    half = levels // 2
    config = QConfig("q", 8, mode, -half, half if levels % 2 else half - 1)
    assert config.levels == levels
    lo, hi = weight_range(np.asarray(x, np.float32), () if axis is None else (axis,), config, axis is not None)
    lo, hi = (lo.reshape(-1), hi.reshape(-1)) if axis is not None else (lo.reshape(()), hi.reshape(()))
    dtype_q = np.int16 if levels > 256 else np.int8
    a = kern.quantize(x, lo, hi, levels, axis, offset=-half, dtype=dtype_q)
    b = ref.quantize(x, lo, hi, levels, axis, offset=-half, dtype=dtype_q)
    np.testing.assert_array_equal(a, b)
    scale = ((hi.astype(np.float64) - lo) / (levels - 1)).astype(np.float32)
    zp = (np.rint(-lo.astype(np.float64) / scale) - half).astype(np.float32)
    da, db = kern.dequantize(a, scale, zp, axis), ref.dequantize(b, scale, zp, axis)
    np.testing.assert_array_equal(da, db)
    ea, eb = kern.quantization_error(x, da, axis), ref.quantization_error(x, db, axis)
    np.testing.assert_allclose(ea[0], eb[0], rtol=1e-10)
    np.testing.assert_allclose(ea[1], eb[1], rtol=1e-10)
