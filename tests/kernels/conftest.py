"""Shared fixtures for the kernel tests: backends and strided random tensors."""

from __future__ import annotations

import numpy as np
import pytest

from ovq.kernels import available_backends, get_kernels

BACKENDS = [b for b in ("native", "numba") if b in available_backends()]


@pytest.fixture(params=BACKENDS)
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
