"""numba implementations of the kernels, same signatures as :mod:`ovq.kernels.reference`.

The jitted kernels walk the same strided plans as the native backend
(:mod:`ovq.kernels._layout`), so views are not copied; float16/bfloat16 inputs are
widened to float32 first (one copy). Compilation is lazy (first call), cached on disk.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ovq.errors import EmptyTensorError, NonFiniteError
from ovq.kernels import reference as _ref
from ovq.kernels._layout import plan, range_constants

_jit = numba.njit(cache=True, nogil=True)


@_jit
def _run_offset(o, rshape, rstrides):
    """Element offset of the o-th innermost run of the box (row-major over dims[:-1])."""
    off = 0
    nd = rshape.shape[0]
    for d in range(nd - 2, -1, -1):
        i = o % rshape[d]
        o //= rshape[d]
        off += i * rstrides[d]
    return off


@_jit
def _nruns(rshape):
    n = 1
    for d in range(rshape.shape[0] - 1):
        n *= rshape[d]
    return n


@_jit
def _minmax_k(flat, koff, rshape, rstrides):
    k = koff.shape[0]
    mn = np.full(k, np.inf, np.float32)
    mx = np.full(k, -np.inf, np.float32)
    nf = np.float32(0.0)
    n_in = rshape[-1]
    s_in = rstrides[-1]
    runs = _nruns(rshape)
    for kk in numba.prange(k):
        a = mn[kk]
        b = mx[kk]
        f = np.float32(0.0)
        for o in range(runs):
            base = koff[kk] + _run_offset(o, rshape, rstrides)
            for i in range(n_in):
                v = flat[base + i * s_in]
                a = v if v < a else a
                b = v if v > b else b
                f += v - v
        mn[kk] = a
        mx[kk] = b
        nf += f
    return mn, mx, nf == 0.0


@_jit
def _moments_k(flat, koff, rshape, rstrides):
    k = koff.shape[0]
    mn = np.full(k, np.inf, np.float32)
    mx = np.full(k, -np.inf, np.float32)
    s = np.zeros(k)
    q = np.zeros(k)
    n_in = rshape[-1]
    s_in = rstrides[-1]
    runs = _nruns(rshape)
    for kk in range(k):
        a = mn[kk]
        b = mx[kk]
        s0 = 0.0
        q0 = 0.0
        for o in range(runs):
            base = koff[kk] + _run_offset(o, rshape, rstrides)
            for i in range(n_in):
                v = flat[base + i * s_in]
                a = v if v < a else a
                b = v if v > b else b
                d = np.float64(v)
                s0 += d
                q0 += d * d
        mn[kk] = a
        mx[kk] = b
        s[kk] = s0
        q[kk] = q0
    ok = True
    for kk in range(k):
        if not (math.isfinite(s[kk]) and math.isfinite(q[kk])):
            ok = False
    return mn, mx, s, q, ok


@_jit
def _gather(flat, base0, rshape, rstrides, absolute):
    n_in = rshape[-1]
    s_in = rstrides[-1]
    runs = _nruns(rshape)
    buf = np.empty(runs * n_in, np.float32)
    j = 0
    nf = np.float32(0.0)
    for o in range(runs):
        base = base0 + _run_offset(o, rshape, rstrides)
        for i in range(n_in):
            v = flat[base + i * s_in]
            nf += v - v
            buf[j] = abs(v) if absolute else v
            j += 1
    return buf, nf == 0.0


@_jit
def _quantile_k(flat, koff, rshape, rstrides, q, absolute):
    k = koff.shape[0]
    out = np.empty((q.shape[0], k))
    ok = True
    for kk in range(k):
        buf, fin = _gather(flat, koff[kk], rshape, rstrides, absolute)
        if not fin:
            ok = False
            continue
        n = buf.shape[0]
        for qi in range(q.shape[0]):
            h = (n - 1) * q[qi]
            i = int(math.floor(h))
            j = min(i + 1, n - 1)
            vi = np.float64(np.partition(buf, i)[i])
            vj = vi if j == i else np.float64(np.partition(buf, j)[j])
            out[qi, kk] = vi + (h - i) * (vj - vi)
    return out, ok


@_jit
def _histogram_k(flat, koff, rshape, rstrides, lo, hi, bins, absolute):
    k = koff.shape[0]
    out = np.zeros((k, bins + 2), np.int64)
    n_in = rshape[-1]
    s_in = rstrides[-1]
    runs = _nruns(rshape)
    nf = np.float32(0.0)
    for kk in range(k):
        l = lo[kk]
        h = hi[kk]
        scale = bins / (h - l)
        for o in range(runs):
            base = koff[kk] + _run_offset(o, rshape, rstrides)
            for i in range(n_in):
                f = flat[base + i * s_in]
                nf += f - f
                if f != f:
                    continue
                v = abs(np.float64(f)) if absolute else np.float64(f)
                if v < l:
                    out[kk, 0] += 1
                elif v > h:
                    out[kk, bins + 1] += 1
                else:
                    b = math.floor((v - l) * scale)
                    if b > bins - 1:
                        b = bins - 1
                    out[kk, int(b) + 1] += 1
    return out, nf == 0.0


@_jit
def _qerr_k(xf, xk, xs, yf, yk, ys, rshape):
    k = xk.shape[0]
    sse = np.zeros(k)
    ssx = np.zeros(k)
    n_in = rshape[-1]
    runs = _nruns(rshape)
    for kk in range(k):
        e = 0.0
        s2 = 0.0
        for o in range(runs):
            bx = xk[kk] + _run_offset(o, rshape, xs)
            by = yk[kk] + _run_offset(o, rshape, ys)
            for i in range(n_in):
                a = np.float64(xf[bx + i * xs[-1]])
                b = np.float64(yf[by + i * ys[-1]])
                d = a - b
                e += d * d
                s2 += a * a
        sse[kk] = e
        ssx[kk] = s2
    return sse, ssx


@_jit
def _fma32(a, b, c):
    """Correctly rounded float32 a*b+c (see reference.fma32)."""
    p = np.float64(a) * np.float64(b)
    s = p + np.float64(c)
    bp = s - p
    err = (p - (s - bp)) + (np.float64(c) - bp)
    r = np.float32(s)
    d = np.float64(r) - s
    if d != 0.0 and math.isfinite(d) and err != 0.0:
        other = np.nextafter(r, np.float32(-np.inf) if d > 0 else np.float32(np.inf))
        if np.float64(other) - s == -d and ((err > 0) != (d > 0)):
            return other
    return r


@_jit
def _fq_k(xf, xk, xs, of, ok_, os_, rshape, c, flavor):
    k = xk.shape[0]
    per_k = c.shape[1] != 1
    n_in = rshape[-1]
    runs = _nruns(rshape)
    for kk in range(k):
        ci = kk if per_k else 0
        cl = c[0, ci]
        ch = c[1, ci]
        isc = c[2, ci]
        ish = c[3, ci]
        osc = c[4, ci]
        osh = c[5, ci]
        for o in range(runs):
            bx = xk[kk] + _run_offset(o, rshape, xs)
            bo = ok_[kk] + _run_offset(o, rshape, os_)
            for i in range(n_in):
                x = xf[bx + i * xs[-1]]
                if flavor == 1:
                    v = x if x < ch else ch
                    v = v if v > cl else cl
                    t = np.float32(np.rint(_fma32(v, isc, ish)))
                else:
                    v = x if x > cl else cl
                    v = v if v < ch else ch
                    t = np.float32(np.rint(np.float32(v * isc) - ish))
                of[bo + i * os_[-1]] = _fma32(t, osc, osh)


@_jit
def _quantize_k(xf, xk, xs, of, ok_, os_, rshape, c, top, offset):
    k = xk.shape[0]
    per_k = c.shape[1] != 1
    n_in = rshape[-1]
    runs = _nruns(rshape)
    nf = np.float32(0.0)
    for kk in range(k):
        ci = kk if per_k else 0
        cl = c[0, ci]
        ch = c[1, ci]
        isc = c[2, ci]
        ish = c[3, ci]
        for o in range(runs):
            bx = xk[kk] + _run_offset(o, rshape, xs)
            bo = ok_[kk] + _run_offset(o, rshape, os_)
            for i in range(n_in):
                x = xf[bx + i * xs[-1]]
                nf += x - x
                v = x if x < ch else ch
                v = v if v > cl else cl
                t = np.rint(_fma32(v, isc, ish))
                t = 0.0 if t < 0.0 else (top if t > top else t)
                if t != t:
                    t = 0.0
                of[bo + i * os_[-1]] = int(t) + offset
    return nf == 0.0


@_jit
def _deq_k(qf, qk, qs, of, ok_, os_, rshape, s, z):
    k = qk.shape[0]
    per_k = s.shape[0] != 1
    n_in = rshape[-1]
    runs = _nruns(rshape)
    for kk in range(k):
        sc = s[kk if per_k else 0]
        zp = z[kk if per_k else 0]
        for o in range(runs):
            bq = qk[kk] + _run_offset(o, rshape, qs)
            bo = ok_[kk] + _run_offset(o, rshape, os_)
            for i in range(n_in):
                of[bo + i * os_[-1]] = np.float32(np.float32(qf[bq + i * qs[-1]]) - zp) * sc


# ------------------------------------------------------------------------ wrappers


def _f32(x) -> np.ndarray:
    x = np.asarray(x)
    return x if x.dtype == np.float32 else x.astype(np.float32)


def minmax(x, axis=(), *, name="tensor"):
    x = _f32(x)
    kshape = tuple(x.shape[a] for a in axis)
    if x.size == 0:
        return _ref.minmax(x, axis, name=name)
    p = plan([x], axis)
    mn, mx, ok = _minmax_k(p.flats[0], p.koffs[0], p.rshape, p.rstrides[0])
    if not ok:
        raise NonFiniteError(name)
    return mn.reshape(kshape), mx.reshape(kshape)


def moments(x, axis=(), *, name="tensor"):
    x = _f32(x)
    kshape = tuple(x.shape[a] for a in axis)
    if x.size == 0:
        return _ref.moments(x, axis, name=name)
    p = plan([x], axis)
    mn, mx, s, q, ok = _moments_k(p.flats[0], p.koffs[0], p.rshape, p.rstrides[0])
    if not ok:
        raise NonFiniteError(name)
    return (np.full(kshape, p.r, np.int64), mn.reshape(kshape), mx.reshape(kshape),
            s.reshape(kshape), q.reshape(kshape))


def quantile(x, q, axis=(), *, absolute=False, name="tensor"):
    x = _f32(x)
    q = np.asarray(q, np.float64).reshape(-1)
    kshape = tuple(x.shape[a] for a in axis)
    if x.size == 0:
        return _ref.quantile(x, q, axis, absolute=absolute, name=name)
    p = plan([x], axis)
    out, ok = _quantile_k(p.flats[0], p.koffs[0], p.rshape, p.rstrides[0], q, bool(absolute))
    if not ok:
        raise NonFiniteError(name)
    return out.reshape((q.size, *kshape))


def histogram(x, lo, hi, bins, axis=(), *, absolute=False, name="tensor"):
    x = _f32(x)
    kshape = tuple(x.shape[a] for a in axis)
    if x.size == 0:
        return np.zeros((*kshape, bins + 2), np.int64)
    p = plan([x], axis)
    lo = np.ascontiguousarray(np.broadcast_to(np.asarray(lo, np.float64), kshape).reshape(-1))
    hi = np.ascontiguousarray(np.broadcast_to(np.asarray(hi, np.float64), kshape).reshape(-1))
    out, ok = _histogram_k(p.flats[0], p.koffs[0], p.rshape, p.rstrides[0], lo, hi, int(bins),
                           bool(absolute))
    if not ok:
        raise NonFiniteError(name)
    return out.reshape((*kshape, bins + 2))


def quantization_error(x, y, axis=(), *, name="tensor"):
    x, y = _f32(x), _f32(y)
    kshape = tuple(x.shape[a] for a in axis)
    if x.size == 0:
        return np.zeros(kshape), np.zeros(kshape)
    p = plan([x, y], axis)
    sse, ssx = _qerr_k(p.flats[0], p.koffs[0], p.rstrides[0], p.flats[1], p.koffs[1],
                       p.rstrides[1], p.rshape)
    if not (np.isfinite(sse).all() and np.isfinite(ssx).all()):
        return _ref.quantization_error(x, y, axis, name=name)
    return sse.reshape(kshape), ssx.reshape(kshape)


def fake_quantize(x, input_low, input_high, output_low, output_high, levels, *,
                  flavor="snippets"):
    x = _f32(x)
    prep = range_constants(x.shape, (input_low, input_high, output_low, output_high), levels,
                           flavor)
    if prep is None or x.size == 0:
        return _ref.fake_quantize(x, input_low, input_high, output_low, output_high, levels,
                                  flavor=flavor)
    axis, c = prep
    out = np.empty_like(x, dtype=np.float32)
    p = plan([x, out], axis)
    _fq_k(p.flats[0], p.koffs[0], p.rstrides[0], p.flats[1], p.koffs[1], p.rstrides[1],
          p.rshape, c, 1 if flavor == "node" else 0)
    return out


def quantize(x, input_low, input_high, levels, axis=None, *, offset=0, dtype=np.int8,
             name="tensor"):
    x = _f32(x)
    if x.size == 0:
        return _ref.quantize(x, input_low, input_high, levels, axis, offset=offset, dtype=dtype)
    il = np.asarray(input_low, np.float32).reshape(-1)
    ih = np.asarray(input_high, np.float32).reshape(-1)
    il_, ih_, isc, ish, _, _ = _ref.fq_constants(il, ih, 0.0, 1.0, levels, "node")
    c = np.ascontiguousarray(np.stack(np.broadcast_arrays(il_, ih_, isc, ish)), np.float32)
    kept = (axis,) if axis is not None else ()
    if axis is None or c.shape[1] == 1:
        c = np.ascontiguousarray(c[:, :1])
    out = np.empty_like(x, dtype=np.dtype(dtype))
    p = plan([x, out], kept)
    ok = _quantize_k(p.flats[0], p.koffs[0], p.rstrides[0], p.flats[1], p.koffs[1],
                     p.rstrides[1], p.rshape, c, np.float32(levels - 1), int(offset))
    if not ok:
        raise NonFiniteError(name)
    return out


def dequantize(q, scale, zero_point, axis=None):
    q = np.asarray(q)
    if q.size == 0:
        return _ref.dequantize(q, scale, zero_point, axis)
    s, z = np.broadcast_arrays(np.asarray(scale, np.float32).reshape(-1),
                               np.asarray(zero_point, np.float32).reshape(-1))
    s, z = np.ascontiguousarray(s), np.ascontiguousarray(z)
    kept = (axis,) if axis is not None and s.size > 1 else ()
    out = np.empty_like(q, dtype=np.float32)
    p = plan([q, out], kept)
    _deq_k(p.flats[0], p.koffs[0], p.rstrides[0], p.flats[1], p.koffs[1], p.rstrides[1],
           p.rshape, s, z)
    return out
