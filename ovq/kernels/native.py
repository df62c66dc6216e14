"""Native backend: thin shim from the reference signatures to ``ovq._native``.

Each function plans a strided walk (:mod:`ovq.kernels._layout`, no copies), calls the
C++ kernel with the GIL released, and raises the same errors as the reference.
"""

from __future__ import annotations

import numpy as np

from ovq import _native
from ovq.errors import EmptyTensorError, NonFiniteError
from ovq.kernels import reference as _ref
from ovq.kernels._layout import bfloat16, is_bfloat16, plan, range_constants

_ITYPES = {np.dtype(np.int8): 0, np.dtype(np.uint8): 1, np.dtype(np.int16): 2,
           np.dtype(np.uint16): 3, np.dtype(np.int32): 4}


def _code(x: np.ndarray) -> tuple[np.ndarray, int]:
    if x.dtype == np.float32:
        return x, 0
    if x.dtype == np.float16:
        return x.view(np.uint16), 1
    if is_bfloat16(x.dtype):
        return x.view(np.uint16), 2
    return x.astype(np.float32), 0


def _raw(x: np.ndarray) -> tuple[np.ndarray, int]:
    x = np.asarray(x)
    return _code(x)


def _empty_guard(x: np.ndarray, axis: tuple[int, ...], name: str, what: str) -> bool:
    """True if there is nothing to compute; raises if outputs reduce over nothing."""
    if x.size:
        return False
    kept = int(np.prod([x.shape[a] for a in axis], dtype=np.int64))
    if kept:
        raise EmptyTensorError(name, f"{what} over zero elements")
    return True



def minmax(x, axis=(), *, name="tensor"):
    x, code = _raw(x)
    kshape = tuple(x.shape[a] for a in axis)
    if _empty_guard(x, axis, name, "min/max"):
        return np.empty(kshape, np.float32), np.empty(kshape, np.float32)
    p = plan([x], axis)
    mn, mx, ok = _native.minmax(p.flats[0], code, p.koffs[0], p.rstrides[0], p.rshape)
    if not ok:
        raise NonFiniteError(name)
    return mn.reshape(kshape), mx.reshape(kshape)


def moments(x, axis=(), *, name="tensor"):
    x, code = _raw(x)
    if x.size == 0:
        return _ref.moments(np.zeros(x.shape, np.float32), axis, name=name)
    kshape = tuple(x.shape[a] for a in axis)
    p = plan([x], axis)
    mn, mx, s, q, ok = _native.moments(p.flats[0], code, p.koffs[0], p.rstrides[0], p.rshape)
    if not ok:
        raise NonFiniteError(name)
    count = np.full(kshape, p.r, np.int64)
    return count, mn.reshape(kshape), mx.reshape(kshape), s.reshape(kshape), q.reshape(kshape)


def quantile(x, q, axis=(), *, absolute=False, name="tensor"):
    x, code = _raw(x)
    q = np.asarray(q, np.float64).reshape(-1)
    kshape = tuple(x.shape[a] for a in axis)
    if _empty_guard(x, axis, name, "quantile"):
        return np.empty((q.size, *kshape))
    p = plan([x], axis)
    out, ok = _native.quantile(p.flats[0], code, p.koffs[0], p.rstrides[0], p.rshape, q,
                               bool(absolute))
    if not ok:
        raise NonFiniteError(name)
    return out.reshape((q.size, *kshape))


def histogram(x, lo, hi, bins, axis=(), *, absolute=False, name="tensor"):
    x, code = _raw(x)
    kshape = tuple(x.shape[a] for a in axis)
    if x.size == 0:
        return np.zeros((*kshape, bins + 2), np.int64)
    p = plan([x], axis)
    lo = np.ascontiguousarray(np.broadcast_to(np.asarray(lo, np.float64), kshape).reshape(-1))
    hi = np.ascontiguousarray(np.broadcast_to(np.asarray(hi, np.float64), kshape).reshape(-1))
    out, ok = _native.histogram(p.flats[0], code, p.koffs[0], p.rstrides[0], p.rshape, lo, hi,
                                int(bins), bool(absolute))
    if not ok:
        raise NonFiniteError(name)
    return out.reshape((*kshape, bins + 2))


def quantization_error(x, y, axis=(), *, name="tensor"):
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != y.dtype:  # mixed precisions: compare in float32
        x, y = _ref._f32(x), _ref._f32(y)
    (x, code), (y, _) = _code(x), _code(y)
    kshape = tuple(x.shape[a] for a in axis)
    if x.size == 0:
        return np.zeros(kshape), np.zeros(kshape)
    p = plan([x, y], axis)
    sse, ssx, ok = _native.quant_error(p.flats[0], code, p.koffs[0], p.rstrides[0], p.flats[1],
                                       p.koffs[1], p.rstrides[1], p.rshape)
    if not ok:  # let the reference name the offending tensor
        return _ref.quantization_error(_ref._f32(_unview(x, code)), _ref._f32(_unview(y, code)),
                                       axis, name=name)
    return sse.reshape(kshape), ssx.reshape(kshape)


def _unview(x, code):
    if code == 1:
        return x.view(np.float16)
    if code == 2:
        return x.view(bfloat16())
    return x


def fake_quantize(x, input_low, input_high, output_low, output_high, levels, *,
                  flavor="snippets"):
    x = np.asarray(x)
    prep = range_constants(x.shape, (input_low, input_high, output_low, output_high), levels,
                           flavor)
    if prep is None or x.size == 0:
        return _ref.fake_quantize(x, input_low, input_high, output_low, output_high, levels,
                                  flavor=flavor)
    axis, c = prep
    xr, code = _code(x)
    out = np.empty_like(x, dtype=np.float32)
    p = plan([xr, out], axis)
    _native.fake_quantize(p.flats[0], code, p.koffs[0], p.rstrides[0], p.flats[1], p.koffs[1],
                          p.rstrides[1], p.rshape, c, 1 if flavor == "node" else 0)
    return out


def quantize(x, input_low, input_high, levels, axis=None, *, offset=0, dtype=np.int8,
             name="tensor"):
    x = np.asarray(x)
    dt = np.dtype(dtype)
    if x.size == 0 or dt not in _ITYPES:
        return _ref.quantize(x, input_low, input_high, levels, axis, offset=offset, dtype=dtype,
                             name=name)
    il = np.asarray(input_low, np.float32).reshape(-1)
    ih = np.asarray(input_high, np.float32).reshape(-1)
    il_, ih_, isc, ish, _, _ = _ref.fq_constants(il, ih, 0.0, 1.0, levels, "node")
    c = np.ascontiguousarray(np.stack(np.broadcast_arrays(il_, ih_, isc, ish)), np.float32)
    kept = (axis,) if axis is not None else ()
    if axis is None or c.shape[1] == 1:
        c = c[:, :1]
    xr, code = _code(x)
    out = np.empty_like(x, dtype=dt)
    p = plan([xr, out], kept)
    ok = _native.quantize(p.flats[0], code, p.koffs[0], p.rstrides[0], p.flats[1], _ITYPES[dt],
                          p.koffs[1], p.rstrides[1], p.rshape, np.ascontiguousarray(c), int(levels),
                          int(offset))
    if not ok:
        raise NonFiniteError(name)
    return out


def dequantize(q, scale, zero_point, axis=None):
    q = np.asarray(q)
    if q.size == 0 or q.dtype not in _ITYPES:
        return _ref.dequantize(q, scale, zero_point, axis)
    s = np.ascontiguousarray(np.asarray(scale, np.float32).reshape(-1))
    z = np.ascontiguousarray(np.asarray(zero_point, np.float32).reshape(-1))
    s, z = (np.ascontiguousarray(v) for v in np.broadcast_arrays(s, z))
    kept = (axis,) if axis is not None and s.size > 1 else ()
    out = np.empty_like(q, dtype=np.float32)
    p = plan([q, out], kept)
    _native.dequantize(p.flats[0], _ITYPES[q.dtype], p.koffs[0], p.rstrides[0], p.flats[1],
                       p.koffs[1], p.rstrides[1], p.rshape, s, z)
    return out


def pair_saturation(a, w):
    return _native.pair_saturation(np.ascontiguousarray(a, np.uint8), np.ascontiguousarray(w, np.int8))


def compress_groups(w, bits, sym, group, packed, *, name="tensor"):
    x, code = _code(np.ascontiguousarray(w))
    r, c = x.shape
    q = np.empty((r, c // 2 if packed else c), np.uint8 if packed or not sym else np.int8)
    scale = np.empty((r, c // group), np.float32)
    zp = None if sym else np.empty((r, c // group), np.uint8)
    if x.size == 0:
        return q, scale, zp
    ok = _native.compress_groups(x, code, int(bits), bool(sym), int(group), bool(packed), q.reshape(-1).view(np.uint8),
                                 scale, zp if zp is not None else np.empty(0, np.uint8))
    if not ok:
        raise NonFiniteError(name)
    return q, scale, zp


def int8_asym_error(w, *, name="tensor"):
    x, code = _code(np.ascontiguousarray(w))
    out = np.empty(x.shape[0], np.float64)
    if x.size == 0:
        return np.zeros(x.shape[0])
    if not _native.int8_asym_error(x, code, out):
        raise NonFiniteError(name)
    return out


pack_nibbles = _ref.pack_nibbles


def awq_errors(w, x, s, floor, alphas, bits, sym):
    return _native.awq_errors(w, x, s, floor, alphas, int(bits), bool(sym))


def group_output_error(w, x, scale, zero_point, bits, sym):
    return _native.group_output_error(w, x, scale, zero_point, int(bits), bool(sym))
