"""Data-aware weight-compression kernels (awq_errors, group_output_error): every backend
against the numpy reference, and the reference against a direct evaluation of NNCF's
objectives (``mean |W X - Q(W c)(X / c)|`` and ``mean((W_g X_g - deq(W_g) X_g)²)``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ovq.errors import KernelError

SET = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MODES = [(4, False), (4, True), (8, False), (8, True)]


def _case(seed, rows, g, n):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((rows, g)) * 0.05).astype(np.float32)
    x = (rng.standard_normal((g, n)) * rng.choice([0.1, 1.0, 20.0])).astype(np.float32)
    s = np.abs(x).max(axis=1).astype(np.float32) + np.float32(0.01)
    return w, x, s


@SET
@given(seed=st.integers(0, 2**31), rows=st.integers(1, 9), g=st.integers(1, 40), n=st.integers(1, 7),
       mode=st.sampled_from(MODES), floored=st.booleans())
def test_awq_errors_parity(kern, ref, seed, rows, g, n, mode, floored):
    w, x, s = _case(seed, rows, g, n)
    floor = (s * 0.5).astype(np.float32) if floored else None
    alphas = np.linspace(0, 0.99, 12).astype(np.float32)
    got = kern.awq_errors(w, x, s, alphas, bits=mode[0], sym=mode[1], floor=floor)
    want = ref.awq_errors(w, x, s, alphas, bits=mode[0], sym=mode[1], floor=floor)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12)


@SET
@given(seed=st.integers(0, 2**31), rows=st.integers(1, 9), groups=st.integers(1, 4), g=st.integers(1, 24),
       n=st.integers(1, 7), mode=st.sampled_from(MODES))
def test_group_output_error_parity(kern, ref, seed, rows, groups, g, n, mode):
    bits, sym = mode
    w, x, _ = _case(seed, rows, groups * g, n)
    _, scale, zp = ref.compress_groups(w, bits, sym=sym, group_size=g, pack=False)
    scale = scale * np.float32(0.9)  # not the min/max scales: levels clip
    zpf = None if zp is None else zp.astype(np.float32)
    got = kern.group_output_error(w, x, scale, zpf, bits=bits, sym=sym)
    want = ref.group_output_error(w, x, scale, zpf, bits=bits, sym=sym)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-15)


def test_reference_matches_nncf_objectives(ref):
    """The reference equals the objectives written out as NNCF computes them (two
    products subtracted) up to that subtraction's rounding."""
    w, x, s = _case(3, 6, 32, 5)
    alphas = np.array([0.0, 0.3, 0.77], np.float32)
    got = ref.awq_errors(w, x, s, alphas, bits=4, sym=False)
    for a, alpha in enumerate(alphas):
        c = (s ** alpha).astype(np.float32)
        _, sc, zp = ref.compress_groups(w * c, 4, sym=False, group_size=-1, pack=False)
        q = np.clip(np.rint((w * c) / sc + zp.astype(np.float32)), 0, 15)
        deq = (q - zp.astype(np.float32)) * sc
        want = np.mean(np.abs(deq.astype(np.float64) @ (x / c[:, None]) - w.astype(np.float64) @ x))
        assert got[a] == pytest.approx(want, rel=1e-5)
    _, sc, zp = ref.compress_groups(w, 4, sym=False, group_size=8, pack=False)
    e = ref.group_output_error(w, x, sc, zp.astype(np.float32), bits=4, sym=False)
    q = np.clip(np.rint(w.reshape(6, 4, 8) / sc[:, :, None] + zp[:, :, None]), 0, 15)
    deq = ((q - zp[:, :, None]) * sc[:, :, None]).astype(np.float64)
    fp = np.einsum("ogk,gkn->ogn", w.reshape(6, 4, 8).astype(np.float64), x.reshape(4, 8, 5).astype(np.float64))
    qo = np.einsum("ogk,gkn->ogn", deq, x.reshape(4, 8, 5).astype(np.float64))
    np.testing.assert_allclose(e, ((fp - qo) ** 2).mean(axis=2), rtol=1e-5)


def test_bad_arguments(ref):
    w, x, s = _case(0, 3, 8, 2)
    with pytest.raises(KernelError, match="awq_errors needs"):
        ref.awq_errors(w, x[:4], s, [0.5], bits=4, sym=False)
    with pytest.raises(KernelError, match="bits must be 4 or 8"):
        ref.awq_errors(w, x, s, [0.5], bits=3, sym=False)
    with pytest.raises(KernelError, match="do not divide"):
        ref.group_output_error(w, x, np.ones((3, 3), np.float32), None, bits=4, sym=True)
