"""pair_saturation: parity of every backend with the numpy reference, known values, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from ovq.errors import KernelError


@pytest.mark.parametrize("rows,k,outs", [(1, 2, 1), (37, 64, 9), (5, 18, 3), (300, 130, 17), (3, 1024, 2)])
def test_matches_reference(kern, ref, rows, k, outs):
    rng = np.random.default_rng(rows * 1000 + k)
    a = rng.integers(0, 256, (rows, k), dtype=np.uint8)
    w = rng.integers(-128, 128, (outs, k)).astype(np.int8)
    got, want = kern.pair_saturation(a, w), ref.pair_saturation(a, w)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])  # integer errors: exact in float64


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_near_the_bound(kern, ref, seed):
    """Weight rows that can and cannot saturate side by side, with columns whose codes
    stay in a narrow band (the bound the backends use to skip rows must not skip one that
    saturates)."""
    rng = np.random.default_rng(seed)
    rows, k, outs = 40, 48, 60
    lo = rng.integers(0, 200, k)
    a = np.clip(lo + rng.integers(0, 56, (rows, k)), 0, 255).astype(np.uint8)
    scale = rng.choice([16, 64, 100, 128], outs)[:, None]
    w = np.clip(rng.integers(-128, 128, (outs, k)) * scale // 128, -128, 127).astype(np.int8)
    got, want = kern.pair_saturation(a, w), ref.pair_saturation(a, w)
    assert 0 < np.count_nonzero(want[1]) < outs  # both kinds of rows are present
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])


def test_generic_path_matches_reference(ref):
    """The portable path (bounds, skip test and pair sums) gives what the AVX2 one does."""
    from ovq.kernels import available_backends, get_kernels, set_generic_simd

    if "native" not in available_backends():
        pytest.skip("native kernels not built")
    rng = np.random.default_rng(7)
    a = np.clip(rng.integers(0, 200, 70) + rng.integers(0, 56, (33, 70)), 0, 255).astype(np.uint8)
    w = (rng.integers(-128, 128, (50, 70)) * rng.choice([16, 100, 128], 50)[:, None] // 128).astype(np.int8)
    set_generic_simd(True)
    try:
        slow = get_kernels("native").pair_saturation(a, w)
    finally:
        set_generic_simd(False)
    want = ref.pair_saturation(a, w)
    assert 0 < np.count_nonzero(want[1]) < 50
    for got, expected in zip(slow, want):
        np.testing.assert_array_equal(got, expected)


def test_known_values(kern):
    # x = 255 everywhere; pairs are columns (0, 1) and (2, 3)
    a = np.full((1, 4), 255, np.uint8)
    w = np.array([[127, 127, 0, 0],     # one pair at 64770: saturates to 32767
                  [127, 0, 127, 0],     # two pairs at 32385: exact
                  [-128, -128, 127, 127],  # -65280 -> -32768 and 64770 -> 32767
                  [64, 64, 64, 64]], np.int8)  # 32640 per pair: the 7-bit bound, exact
    err_sq, saturated = kern.pair_saturation(a, w)
    assert saturated.tolist() == [1, 0, 2, 0]
    assert err_sq.tolist() == [(64770 - 32767) ** 2, 0.0, ((-65280 + 32768) + (64770 - 32767)) ** 2, 0.0]


def test_empty_and_bad_operands(kern):
    assert kern.pair_saturation(np.zeros((0, 4), np.uint8), np.ones((3, 4), np.int8))[1].tolist() == [0, 0, 0]
    with pytest.raises(KernelError, match="even"):
        kern.pair_saturation(np.zeros((2, 3), np.uint8), np.zeros((2, 3), np.int8))
    with pytest.raises(KernelError, match="uint8 activations and int8 weights"):
        kern.pair_saturation(np.zeros((2, 4), np.int8), np.zeros((2, 4), np.int8))
    with pytest.raises(KernelError, match="columns"):
        kern.pair_saturation(np.zeros((2, 4), np.uint8), np.zeros((2, 6), np.int8))
