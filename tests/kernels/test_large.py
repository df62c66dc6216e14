"""Kernels on tensors large enough for the fast paths: SIMD main loops and their tails,
work split across threads (per-tensor reductions), raw 16-bit loads, and a NaN/Inf at
positions inside a vector block, in a tail and in a later task. Against the reference."""

from __future__ import annotations

import numpy as np
import pytest

from ovq.errors import NonFiniteError
from ovq.kernels import Histogram
from tests.kernels.conftest import assert_same_reductions, strided

# (shape, kept axes): per tensor with splits, per row with odd tails, per channel.
CASES = [((70001,), ()), ((5, 4099), (0,)), ((3, 8, 1031), (1,)), ((2, 6, 40, 41), ())]
DTYPES = ["float32", "float16", "bfloat16"]


def _x(shape, dtype, view, seed=0):
    return strided(np.random.default_rng(seed), shape, dtype, view)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("view", [0, 2, 3])
@pytest.mark.parametrize("case", CASES)
def test_reducers_large(kern, ref, case, view, dtype):
    shape, axis = case
    x = _x(shape, dtype, view)
    assert_same_reductions(kern, ref, x, axis)
    for bins, absolute in ((2048, False), (7, True)):
        h1 = kern.histogram(x, Histogram(-1.0, 1.5, bins, absolute), axis)
        h2 = ref.histogram(x, Histogram(-1.0, 1.5, bins, absolute), axis)
        np.testing.assert_array_equal(h1.counts, h2.counts)
    ea, eb = kern.quantization_error(x, x[::-1] if x.ndim == 1 else x, axis), \
        ref.quantization_error(x, x[::-1] if x.ndim == 1 else x, axis)
    np.testing.assert_allclose(ea[0], eb[0], rtol=1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("flavor", ["snippets", "node"])
@pytest.mark.parametrize("case", CASES)
def test_fake_quantize_large(kern, ref, case, flavor, dtype):
    shape, axis = case
    x = _x(shape, dtype, 0, seed=1)
    ax = axis[0] if axis else 0
    rshape = [1] * x.ndim
    rshape[ax] = x.shape[ax]
    rng = np.random.default_rng(2)
    lo = -np.abs(rng.standard_normal(rshape)).astype(np.float32) - 0.01
    hi = np.abs(rng.standard_normal(rshape)).astype(np.float32) + 0.01
    for levels in (16, 255, 256):
        a = kern.fake_quantize(x, lo, hi, lo * 2, hi * 3, levels, flavor=flavor)
        b = ref.fake_quantize(x, lo, hi, lo * 2, hi * 3, levels, flavor=flavor)
        np.testing.assert_array_equal(a.view(np.int32), b.view(np.int32))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("levels", "offset", "itype"), [
    (255, -127, np.int8), (256, 0, np.uint8), (65535, -32767, np.int16),
    (65536, 0, np.uint16), (256, -128, np.int32),
    (65536, 0, np.int8),  # narrowing wraps (low bits), as numpy's astype
])
def test_quantize_dequantize_large(kern, ref, dtype, levels, offset, itype):
    x = _x((5, 4099), dtype, 0, seed=3)
    il = np.linspace(-2.0, -0.5, 5).astype(np.float32)
    ih = np.linspace(0.5, 2.5, 5).astype(np.float32)
    a = kern._m.quantize(x, il, ih, levels, 0, offset=offset, dtype=itype)
    b = ref._m.quantize(x, il, ih, levels, 0, offset=offset, dtype=itype)
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)
    scale = ((ih - il) / (levels - 1)).astype(np.float32)
    for ax, s, z in ((0, scale, np.float32(3)), (None, scale[:1], np.float32(-1))):
        np.testing.assert_array_equal(kern.dequantize(b, s, z, ax), ref.dequantize(b, s, z, ax))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("pos", [0, 13, 40000, 70000])
def test_nonfinite_large(kern, bad, pos):
    x = _x((70001,), "float32", 0, seed=4)
    x[pos] = bad
    for dtype in (np.float32, np.float16):
        y = x.astype(dtype)
        with pytest.raises(NonFiniteError):
            kern.minmax(y, name="t")
        with pytest.raises(NonFiniteError):
            kern.reduce_state(y, name="t")
        with pytest.raises(NonFiniteError):
            kern.histogram(y, Histogram(-1.0, 1.0, 64))
        with pytest.raises(NonFiniteError):
            kern.quantile(y, [1e-4, 1 - 1e-4])
        with pytest.raises(NonFiniteError):
            kern._m.quantize(y, np.float32(-1), np.float32(1), 255, None, offset=-127)


def test_native_generic_path_large(ref):
    """The portable (non-AVX2) native path on the same large cases."""
    from ovq.kernels import available_backends, get_kernels, set_generic_simd

    if "native" not in available_backends():
        pytest.skip("native extension not built")
    import ovq._native as nat

    k = get_kernels("native")
    try:
        set_generic_simd(True)
        assert not nat.simd_enabled()
        for case in CASES[:3]:
            test_reducers_large(k, ref, case, 0, "float16")
            test_fake_quantize_large(k, ref, case, "node", "float32")
        test_quantize_dequantize_large(k, ref, "bfloat16", 255, -127, np.int8)
        test_quantize_dequantize_large(k, ref, "float32", 65536, 0, np.int8)
        test_nonfinite_large(k, np.nan, 13)
    finally:
        set_generic_simd(False)


@pytest.mark.parametrize("q", [[1e-4], [1 - 1e-4], [0.0, 1.0]])
@pytest.mark.parametrize("absolute", [False, True])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_quantile_one_sided_nonfinite(kern, q, absolute, bad):
    """An inactive side (no rank near that end) must still notice NaN/Inf."""
    x = _x((3, 20000), "float32", 0, seed=5)
    for pos in (7, 1500, 19999):
        y = x.copy()
        y[1, pos] = bad
        with pytest.raises(NonFiniteError):
            kern.quantile(y, q, 0, absolute=absolute)
        with pytest.raises(NonFiniteError):
            kern.quantile(y, q, None, absolute=absolute)
