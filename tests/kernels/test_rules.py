"""Documented rules: NaN/Inf, empty tensors, zero ranges, mergeability, int4 packing."""

from __future__ import annotations

import os
import subprocess
import tempfile
import sys

import numpy as np
import pytest

from ovq.errors import BackendError, EmptyTensorError, KernelError, NonFiniteError
from ovq.kernels import Histogram, RunningAggregator, get_kernels, pack_int4, unpack_int4
from ovq.kernels import available_backends
from tests.kernels.conftest import backend_params

ALL = available_backends()


@pytest.mark.parametrize("backend", backend_params(ALL))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_raises_with_name(backend, bad):
    k = get_kernels(backend)
    x = np.ones((3, 4), np.float32)
    x[1, 2] = bad
    for call in (lambda: k.minmax(x, 0, name="conv1"), lambda: k.reduce_state(x, None, name="conv1"),
                 lambda: k.quantile(x, 0.5, 1, name="conv1"),
                 lambda: k.histogram(x, Histogram(0.0, 1.0, 4), name="conv1"),
                 lambda: k.quantize_weights(x, name="conv1") if False else k.quantize_weights(x)):
        with pytest.raises(NonFiniteError) as ei:
            call()
        assert isinstance(ei.value, KernelError)
    with pytest.raises(NonFiniteError, match="conv1"):
        k.minmax(x, name="conv1")


@pytest.mark.parametrize("backend", backend_params(ALL))
def test_empty(backend):
    k = get_kernels(backend)
    x = np.zeros((0, 3), np.float32)
    with pytest.raises(EmptyTensorError):
        k.minmax(x)
    with pytest.raises(EmptyTensorError):
        k.quantile(x, 0.5, 1)
    st = k.reduce_state(x, 1)
    assert (st.count == 0).all() and np.isinf(st.min).all() and (st.sum == 0).all()
    mn, mx = k.minmax(x, 0)  # zero channels: empty result, no error
    assert mn.shape == (0,)
    assert k.fake_quantize(x, -1, 1, -1, 1, 256).shape == (0, 3)


@pytest.mark.parametrize("backend", backend_params(ALL))
def test_zero_range_channels(backend):
    k = get_kernels(backend)
    w = np.zeros((4, 8), np.float32)
    w[1] = np.linspace(-1, 1, 8)
    lo, hi = k.weight_ranges(w, 255, "symmetric", 0)
    assert (hi > 0).all() and hi[0] == pytest.approx(0.01)  # zero filter: 1 % of max
    lo, hi = k.weight_ranges(w, 256, "asymmetric", 0)
    assert (hi - lo > 1e-3).all()
    q = k.quantize_weights(w, 255)
    np.testing.assert_array_equal(k.dequantize_weights(q)[0], 0)
    # il == ih in FakeQuantize gives NaN, as in OpenVINO
    assert np.isnan(k.fake_quantize(np.ones(3, np.float32), 0.5, 0.5, -1, 1, 7)).all()


@pytest.mark.parametrize("backend", backend_params(ALL))
def test_states_merge(backend):
    k = get_kernels(backend)
    x = np.random.default_rng(0).standard_normal((10, 4, 6)).astype(np.float32)
    a, b, whole = k.reduce_state(x[:4], 1), k.reduce_state(x[4:], 1), k.reduce_state(x, 1)
    m = a.merge(b)
    np.testing.assert_array_equal(m.min, whole.min)
    np.testing.assert_array_equal(m.max, whole.max)
    np.testing.assert_allclose(m.sum, whole.sum, rtol=1e-12)
    h1 = k.histogram(x[:4], Histogram(-2.0, 2.0, 16), 1)
    h2 = k.histogram(x[4:], Histogram(-2.0, 2.0, 16), 1)
    hw = k.histogram(x, Histogram(-2.0, 2.0, 16), 1)
    np.testing.assert_array_equal(h1.merge(h2).counts, hw.counts)
    acc = k.histogram(x[4:], h1.merge(Histogram(-2.0, 2.0, 16)), 1)
    np.testing.assert_array_equal(acc.counts, hw.counts)
    assert np.all(np.abs(hw.percentile(0.5) - np.median(np.moveaxis(x, 1, 0).reshape(4, -1), 1)) < 0.3)
    with pytest.raises(KernelError):
        h1.merge(Histogram(-1.0, 2.0, 16))
    ra, rb = RunningAggregator(), RunningAggregator()
    ra.update(k.per_sample(x[:4], "absmax", 0))
    rb.update(k.per_sample(x[4:], "absmax", 0))
    np.testing.assert_allclose(ra.merge(rb).median(), np.median(np.abs(x).max(axis=(1, 2))), rtol=1e-6)


def test_int4_pack_roundtrip():
    q = np.array([-8, 7, 0, -1, 3], np.int8)
    p = pack_int4(q)
    assert p.tolist() == [0x78, 0xF0, 0x03]
    np.testing.assert_array_equal(unpack_int4(p, 5), q)


def test_weight_rules_from_doc():
    k = get_kernels("numpy")
    # asymmetric tune_range: 0 becomes exactly a level
    w = np.array([[-22.7355, 14.668]], np.float32)
    lo, hi = k.weight_ranges(w, 256, "asymmetric", 0)
    zp = -lo / ((hi - lo) / 255)
    assert abs(zp[0] - round(zp[0])) < 1e-3 and lo[0] <= -22.7355 and hi[0] >= 14.668
    lo, hi = k.weight_ranges(np.array([[-1.0, 0.5]], np.float32), 256, "symmetric", 0)
    assert lo[0] == pytest.approx(-256 / 254) and hi[0] == 1.0
    lo, hi = k.weight_ranges(np.array([[-1.0, 0.5]], np.float32), 255, "symmetric", 0,
                             half_range=True)
    assert hi[0] == pytest.approx(2.0)


def test_bias_shift_rules():
    k = get_kernels("numpy")
    fp = np.ones((4, 3, 2), np.float32)
    q = np.zeros((4, 3, 2), np.float32)
    s, ok = k.bias_shift(fp, q, [1.0, 1.0, 1.0], axis=1)
    np.testing.assert_array_equal(s, 1.0)
    assert ok
    assert not k.bias_shift(fp, q, [0.4, 1.0, 1.0], axis=1)[1]  # ratio 2.5 >= 2
    assert not k.bias_shift(fp, q, [0.0, 1.0, 1.0], axis=1)[1]  # zero bias: never
    assert k.bias_shift(fp, q, [0.4, 1.0, 1.0], axis=1, threshold=1000)[1]


def _run(env_value: str, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OVQ_KERNELS": env_value}
    # cwd outside the checkout so the installed ovq, not the source tree, is imported.
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=tempfile.gettempdir(),
                          timeout=300)


@pytest.mark.parametrize("backend", backend_params(["numpy", "numba"]))
def test_forced_fallback_subprocess(backend):
    code = ("import numpy as np, ovq.kernels as K; k = K.get_kernels();"
            "print(k.backend, float(K.reduce_absmax(np.array([-3.0, 1.0], np.float32))))")
    r = _run(backend, code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [backend, "3.0"]


def test_forcing_missing_backend_raises():
    code = ("import sys; sys.modules['ovq._native'] = None\n"
            "from ovq.errors import BackendError\nimport ovq.kernels as K\n"
            "try:\n    K.get_kernels()\nexcept BackendError as e:\n    print('BackendError')\n")
    r = _run("native", code)
    assert r.stdout.strip() == "BackendError", r.stderr
    with pytest.raises(BackendError):
        get_kernels("cuda")


def test_import_ovq_does_not_load_kernels():
    r = _run("auto", "import sys, ovq; print('numba' in sys.modules, 'ovq._native' in sys.modules)")
    assert r.stdout.split() == ["False", "False"], r.stderr


@pytest.mark.skipif("native" not in ALL, reason="native extension not built")
def test_generic_simd_path_matches():
    import ovq._native as nat
    from ovq.kernels import set_generic_simd, set_num_threads

    k = get_kernels("native")
    x = np.random.default_rng(3).standard_normal((3, 37, 41)).astype(np.float32)
    ref_mm = k.minmax(x, 0)
    ref_fq = k.fake_quantize(x, -1, 1, -2, 2, 255, flavor="node")
    ref_q = k.quantile(x, [0.01, 0.99], 0)
    try:
        set_generic_simd(True)
        set_num_threads(1)
        assert not nat.simd_enabled()
        for a, b in zip(k.minmax(x, 0), ref_mm):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(k.fake_quantize(x, -1, 1, -2, 2, 255, flavor="node"), ref_fq)
        np.testing.assert_array_equal(k.quantile(x, [0.01, 0.99], 0), ref_q)
    finally:
        set_generic_simd(False)
        set_num_threads(0)
