"""Shared fixtures for the kernel tests: backends and strided random tensors."""

from __future__ import annotations

import numpy as np
import pytest

from ovq.kernels import available_backends, get_kernels


def backend_params(names) -> list:
    """``names`` as pytest params, numba's marked ``slow``: on a fresh install its kernels
    JIT-compile on first use, about 3 min of CPU for these tests (cached on disk after)."""
    return [pytest.param(b, marks=pytest.mark.slow) if b == "numba" else b for b in names]


BACKENDS = [b for b in ("native", "numba") if b in available_backends()]


@pytest.fixture(params=backend_params(BACKENDS))
def kern(request):
    return get_kernels(request.param)


@pytest.fixture
def ref():
    return get_kernels("numpy")


def strided(rng: np.random.Generator, shape, dtype, view: int) -> np.ndarray:
    """Random tensor of ``shape``; ``view`` picks contiguous / sliced / reversed / transposed."""
    big = [n * 2 if view == 1 else n for n in shape]
    x = (rng.standard_normal(big) * rng.choice([1e-3, 1.0, 50.0])).astype(np.float32)
    if view == 1:
        x = x[tuple(slice(None, None, 2) for _ in shape)]
    elif view == 2:
        x = x[tuple(slice(None, None, -1) for _ in shape)]
    elif view == 3 and len(shape) > 1:
        x = np.ascontiguousarray(np.swapaxes(x, 0, -1)).swapaxes(0, -1)
    if dtype == "float16":
        return x.astype(np.float16)
    if dtype == "bfloat16":
        import ml_dtypes

        return x.astype(ml_dtypes.bfloat16)
    return x


def assert_same_reductions(kern, ref, x: np.ndarray, axis) -> None:
    """min/max and the mergeable reduce state of ``kern`` equal the reference's
    (min/max bit-identical, sums to 1e-12 relative)."""
    for a, b in zip(kern.minmax(x, axis), ref.minmax(x, axis)):
        np.testing.assert_array_equal(a, b)
    a, b = kern.reduce_state(x, axis), ref.reduce_state(x, axis)
    np.testing.assert_array_equal(a.min, b.min)
    np.testing.assert_array_equal(a.max, b.max)
    np.testing.assert_allclose(a.sum, b.sum, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(a.sumsq, b.sumsq, rtol=1e-12)
