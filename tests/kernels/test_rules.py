"""Documented rules: NaN/Inf, empty tensors, zero ranges, mergeability."""

from __future__ import annotations

import os
import subprocess
import tempfile
import sys

import numpy as np
import pytest

from ovq.errors import BackendError, EmptyTensorError, KernelError, NonFiniteError
from ovq.kernels import Histogram, get_kernels
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
                 lambda: k.quantize(x, -1.0, 1.0, 255, name="conv1")):
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
    q = k.quantize(w, -np.ones(4, np.float32), np.ones(4, np.float32), 255, 0, offset=-127)
    np.testing.assert_array_equal(k.dequantize(q, np.full(4, 1 / 127, np.float32), 0.0, 0)[0], 0)
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
    hw = k.histogram(x, Histogram(-2.0, 2.0, 16), 1)
    acc = k.histogram(x[4:], h1, 1)  # accumulates in place
    np.testing.assert_array_equal(acc.counts, hw.counts)


def _run(env_value: str, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OVQ_KERNELS": env_value}
    # cwd outside the checkout so the installed ovq, not the source tree, is imported.
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=tempfile.gettempdir(),
                          timeout=300)


@pytest.mark.parametrize("backend", backend_params(["numpy", "numba"]))
def test_forced_fallback_subprocess(backend):
    code = ("import numpy as np, ovq.kernels as K; k = K.get_kernels();"
            "print(k.backend, float(K.minmax(np.array([-3.0, 1.0], np.float32))[0]))")
    r = _run(backend, code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [backend, "-3.0"]


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
