"""Weight-compression kernels (compress_groups, pack_nibbles, int8_asym_error): every
backend against the numpy reference, and the reference against NNCF 3.4's definitions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ovq.errors import KernelError, NonFiniteError
from ovq.kernels import get_kernels
from tests.kernels.conftest import strided

SET = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MODES = [(8, False), (8, True), (4, False), (4, True)]


@st.composite
def weights(draw):
    rows = draw(st.integers(1, 9))
    groups = draw(st.integers(1, 4))
    group = draw(st.sampled_from([1, 2, 3, 8, 16, 24, 40]))
    return (rows, groups * group), group, draw(st.integers(0, 3)), draw(st.integers(0, 2**31))


def _weight(spec, dtype):
    shape, _, view, seed = spec
    rng = np.random.default_rng(seed)
    w = strided(rng, shape, dtype, view)
    if seed % 3 == 0:  # constant rows and all-zero rows (eps scales, q = 0)
        w[0] = w[0, 0]
        w[-1] = 0
    return w


@SET
@given(spec=weights(), dtype=st.sampled_from(["float32", "float16", "bfloat16"]), mode=st.sampled_from(MODES),
       pack=st.booleans(), per_channel=st.booleans())
def test_compress_groups_parity(kern, ref, spec, dtype, mode, pack, per_channel):
    w = _weight(spec, dtype)
    bits, sym = mode
    g = -1 if per_channel else spec[1]
    got = kern.compress_groups(w, bits, sym=sym, group_size=g, pack=pack)
    want = ref.compress_groups(w, bits, sym=sym, group_size=g, pack=pack)
    for a, b in zip(got, want):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)


@SET
@given(spec=weights(), dtype=st.sampled_from(["float32", "float16", "bfloat16"]))
def test_int8_asym_error_parity(kern, ref, spec, dtype):
    w = _weight(spec, dtype)
    np.testing.assert_allclose(kern.int8_asym_error(w), ref.int8_asym_error(w), rtol=1e-9, atol=1e-30)


def test_generic_simd_path_matches(ref):
    from ovq.kernels import available_backends, set_generic_simd

    if "native" not in available_backends():
        pytest.skip("native kernels not built")
    w = (np.random.default_rng(3).standard_normal((33, 384)) * 0.1).astype(np.float16)
    fast = get_kernels("native").compress_groups(w, 4, sym=False, group_size=128)
    set_generic_simd(True)
    try:
        slow = get_kernels("native").compress_groups(w, 4, sym=False, group_size=128)
    finally:
        set_generic_simd(False)
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(fast, ref.compress_groups(w, 4, sym=False, group_size=128)):
        np.testing.assert_array_equal(a, b)


def _nncf_definition(w, bits, sym, group):
    """NNCF 3.4 weight_lowering.py, transcribed: float32, divide, round half to even, clip."""
    w = w.astype(np.float32)
    r, c = w.shape
    g = w.reshape(r, c // group, group)
    eps = np.finfo(np.float32).eps
    mn, mx = g.min(-1, keepdims=True), g.max(-1, keepdims=True)
    if sym:
        s = np.where(np.abs(mn) >= mx, np.abs(mn), -mx) / np.float32(2 ** (bits - 1))
        s = np.where(np.abs(s) < eps, eps, s)
        q = np.clip(np.round(g / s), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        return q.reshape(r, c), s.reshape(r, -1), None
    lo, hi = np.minimum(mn, 0), np.maximum(mx, 0)
    s = ((hi - lo) / np.float32(2**bits - 1)).astype(np.float32)
    s = np.where(np.abs(s) < eps, eps, s)
    zp = np.clip((0 - np.round(lo / s)).astype(np.int32), 0, 2**bits - 1)
    q = np.clip(np.round(g / s + zp.astype(np.float32)), 0, 2**bits - 1)
    return q.reshape(r, c), s.reshape(r, -1), zp.reshape(r, -1)


@pytest.mark.parametrize("bits,sym", MODES)
def test_reference_is_nncf_definition(ref, bits, sym):
    w = (np.random.default_rng(7).standard_normal((16, 256)) * 0.03).astype(np.float32)
    w[2] = np.abs(w[2])  # all positive: asym lo = 0
    w[3, 5] = 10.0       # sym: the +max extreme takes a negative scale
    q, s, zp = ref.compress_groups(w, bits, sym=sym, group_size=64, pack=False)
    wq, ws, wzp = _nncf_definition(w, bits, sym, 64)
    np.testing.assert_array_equal(q.astype(np.int32), wq.astype(np.int32))
    np.testing.assert_array_equal(s, ws)
    if not sym:
        np.testing.assert_array_equal(zp.astype(np.int32), wzp)
    else:
        assert s[3, 0] < 0 and q[3, 5] == -(2 ** (bits - 1))


def test_pack_nibbles_low_first(kern):
    q = np.array([1, 2, 3, 4, 5, 6, 7, 15], np.uint8)
    assert bytes(kern.pack_nibbles(q)) == bytes.fromhex("214365f7")
    assert bytes(kern.pack_nibbles(np.array([-8, 7, -1], np.int8))) == bytes([0x78, 0x0F])


def test_packed_equals_pack_of_unpacked(kern):
    w = np.random.default_rng(1).standard_normal((5, 64)).astype(np.float32)
    for sym in (False, True):
        q, _, _ = kern.compress_groups(w, 4, sym=sym, group_size=32, pack=False)
        p, _, _ = kern.compress_groups(w, 4, sym=sym, group_size=32, pack=True)
        assert p.shape == (5, 32)
        np.testing.assert_array_equal(p.reshape(-1), kern.pack_nibbles(q))


def test_bad_input(kern):
    w = np.ones((4, 6), np.float32)
    with pytest.raises(KernelError, match="does not divide"):
        kern.compress_groups(w, 4, sym=True, group_size=4)
    with pytest.raises(KernelError, match="bits"):
        kern.compress_groups(w, 3, sym=True)
    with pytest.raises(KernelError, match="2-D"):
        kern.compress_groups(np.ones(6, np.float32), 8, sym=True)
    w[1, 2] = np.nan
    with pytest.raises(NonFiniteError, match="'fc1'"):
        kern.compress_groups(w, 8, sym=False, name="fc1")
    with pytest.raises(NonFiniteError):
        kern.int8_asym_error(w)


@pytest.mark.parametrize("sym", [False, True])
def test_exact_halves_round_to_even(kern, ref, sym):
    # s = 0.5 exactly (asym: max 127.5, min 0; sym: |min| 64 -> s = 0.5): w / s lands on .5 steps.
    k = np.arange(1, 120, dtype=np.float32)
    w = np.concatenate([[0.0, 127.5] if not sym else [-64.0, 0.0], (k + 0.5) * 0.5 * (1 if not sym else -0.5)])
    w = np.tile(w.astype(np.float32), (3, 1))
    q, s, zp = kern.compress_groups(w, 8, sym=sym)
    assert np.all(s == 0.5)
    np.testing.assert_array_equal(q, ref.compress_groups(w, 8, sym=sym)[0])
    t = w[0, 2:] / np.float32(0.5)
    np.testing.assert_array_equal(q[0, 2:].astype(np.float32), np.rint(t))  # half to even


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_in_vector_lanes(kern, bad):
    w = np.ones((3, 256), np.float32)
    w[1, 77] = bad
    for bits, group in ((8, -1), (4, 128)):
        with pytest.raises(NonFiniteError, match="'w'"):
            kern.compress_groups(w, bits, sym=False, group_size=group, name="w")
    with pytest.raises(NonFiniteError):
        kern.int8_asym_error(w)
