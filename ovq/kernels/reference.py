"""numpy reference kernels: the executable specification of every kernel.

Every backend (``native``, ``numba``) implements the functions below with the same
signature and must return the same values (bit-identical unless a function's docstring
names a tolerance); ``tests/kernels`` checks that. Speed is not a goal here: the code
is written to be read.

Conventions shared by every kernel (validation is done by :mod:`ovq.kernels`, which
calls these with already-checked arguments):

* ``x`` is a float32, float16 or bfloat16 array of any rank and any strides. Values are
  widened to float32 exactly; sums accumulate in float64.
* ``axis`` names the axes that are **kept** (the "channel" axes): ``None`` reduces the
  whole tensor to a scalar (shape ``()``), an int keeps that axis (shape ``(C,)``), a
  tuple keeps those axes in the given order (e.g. ``(0, 1)`` for per-sample,
  per-channel values of shape ``(N, C)``). Axes are already normalized (non-negative,
  distinct).
* Statistics need finite data: a NaN or ±Inf in ``x`` raises
  :class:`~ovq.errors.NonFiniteError` naming ``name``.
* The FakeQuantize arithmetic follows OpenVINO's CPU plugin at the f32 inference
  precision exactly (see :func:`fake_quantize`), including its float32 rounding, fused
  multiply-adds and x86 ``min``/``max`` NaN behaviour.
"""

from __future__ import annotations

import numpy as np

from ovq.errors import EmptyTensorError, NonFiniteError

# ----------------------------------------------------------------------------- helpers


def _f32(x: np.ndarray) -> np.ndarray:
    """Widen float16/bfloat16 (exactly) to float32; float32 passes through."""
    return np.asarray(x).astype(np.float32, copy=False)


def _check_finite(x32: np.ndarray, name: str) -> None:
    if not np.isfinite(x32).all():
        bad = int(np.count_nonzero(~np.isfinite(x32)))
        raise NonFiniteError(name, f"{bad} of {x32.size} values are not finite")


def _rows(x32: np.ndarray, axis: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
    """View ``x`` as ``(K, R)``: kept axes (in order) first, then everything else."""
    kshape = tuple(x32.shape[a] for a in axis)
    moved = np.moveaxis(x32, axis, tuple(range(len(axis)))) if axis else x32
    k = int(np.prod(kshape, dtype=np.int64))
    return moved.reshape(k, -1) if k else moved.reshape(0, 0), kshape


def fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Correctly rounded float32 fused multiply-add ``a * b + c`` (one rounding).

    The float32 product is exact in float64; the float64 sum is exact up to the error
    term ``err`` (TwoSum), which decides the rounding only when the float64 sum lies
    exactly halfway between two float32 numbers.
    """
    a64 = np.asarray(a, np.float32).astype(np.float64)
    b64 = np.asarray(b, np.float32).astype(np.float64)
    c64 = np.asarray(c, np.float32).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        p = a64 * b64
        s = p + c64
        bp = s - p
        err = (p - (s - bp)) + (c64 - bp)
        r = s.astype(np.float32)
        back = r.astype(np.float64)
        d = back - s  # rounding step taken by the float32 conversion
        other = np.nextafter(r, np.where(d > 0, -np.inf, np.inf).astype(np.float32))
        tie = (d != 0) & np.isfinite(d) & ((other.astype(np.float64) - s) == -d)
        # At a tie the exact value is s + err: move toward it if err points away from r.
        fix = tie & (err != 0) & ((err > 0) != (d > 0))
        return np.where(fix, other, r).astype(np.float32)


def _x86_max(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``maxps(a, b)``: ``a`` if ``a > b`` else ``b`` (a NaN ``a`` yields ``b``)."""
    return np.where(a > b, a, b)


def _x86_min(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``minps(a, b)``: ``a`` if ``a < b`` else ``b`` (a NaN ``a`` yields ``b``)."""
    return np.where(a < b, a, b)


# --------------------------------------------------------------------------- reducers


def minmax(x: np.ndarray, axis: tuple[int, ...] = (), *, name: str = "tensor"
           ) -> tuple[np.ndarray, np.ndarray]:
    """Minimum and maximum over all axes not in ``axis``.

    Returns:
        ``(min, max)``, float32 arrays of the kept shape.

    Raises:
        NonFiniteError: ``x`` holds NaN or ±Inf.
        EmptyTensorError: some output would reduce over zero elements.
    """
    x32 = _f32(x)
    rows, kshape = _rows(x32, axis)
    if rows.shape[0] and rows.shape[1] == 0:
        raise EmptyTensorError(name, "min/max over zero elements")
    _check_finite(x32, name)
    if rows.shape[0] == 0:
        e = np.empty(kshape, np.float32)
        return e, e.copy()
    return rows.min(axis=1).reshape(kshape), rows.max(axis=1).reshape(kshape)


def moments(x: np.ndarray, axis: tuple[int, ...] = (), *, name: str = "tensor"
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mergeable reducer state over all axes not in ``axis``.

    Returns:
        ``(count, min, max, sum, sumsq)`` with the kept shape: count int64, min/max
        float32, sum and sum of squares float64 (each float32 value widened, squared
        and accumulated in float64; backends may sum in another order, so sums agree
        to a relative 1e-12). Zero elements give the merge identity: count 0,
        min +Inf, max -Inf, sums 0.

    Raises:
        NonFiniteError: ``x`` holds NaN or ±Inf.
    """
    x32 = _f32(x)
    _check_finite(x32, name)
    rows, kshape = _rows(x32, axis)
    n = rows.shape[1] if rows.shape[0] else 0
    count = np.full(kshape, n, np.int64)
    if n == 0:
        return (count, np.full(kshape, np.inf, np.float32), np.full(kshape, -np.inf, np.float32),
                np.zeros(kshape), np.zeros(kshape))
    r64 = rows.astype(np.float64)
    return (count, rows.min(axis=1).reshape(kshape), rows.max(axis=1).reshape(kshape),
            r64.sum(axis=1).reshape(kshape), (r64 * r64).sum(axis=1).reshape(kshape))


def quantile(x: np.ndarray, q: np.ndarray, axis: tuple[int, ...] = (), *,
             absolute: bool = False, name: str = "tensor") -> np.ndarray:
    """Quantiles (linear interpolation, numpy's default method) over non-kept axes.

    For ``n`` sorted values ``v`` and a probability ``p``: ``h = (n - 1) * p`` (float64),
    ``i = floor(h)``, ``j = min(i + 1, n - 1)``, result ``v[i] + (h - i) * (v[j] - v[i])``
    in float64. ``absolute=True`` takes quantiles of ``|x|``.

    Returns:
        float64 array of shape ``(len(q), *kept_shape)``.

    Raises:
        NonFiniteError, EmptyTensorError: as :func:`minmax`.
    """
    x32 = _f32(x)
    rows, kshape = _rows(x32, axis)
    if rows.shape[0] and rows.shape[1] == 0:
        raise EmptyTensorError(name, "quantile over zero elements")
    _check_finite(x32, name)
    q = np.asarray(q, np.float64).reshape(-1)
    out = np.empty((q.size, rows.shape[0]), np.float64)
    if rows.shape[0]:
        v = np.sort(np.abs(rows) if absolute else rows, axis=1).astype(np.float64)
        n = v.shape[1]
        for k, p in enumerate(q):
            h = (n - 1) * p
            i = int(np.floor(h))
            j = min(i + 1, n - 1)
            out[k] = v[:, i] + (h - i) * (v[:, j] - v[:, i])
    return out.reshape((q.size, *kshape))


def histogram(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, bins: int,
              axis: tuple[int, ...] = (), *, absolute: bool = False, name: str = "tensor"
              ) -> np.ndarray:
    """Counts of values in ``bins`` equal-width bins over ``[lo, hi]`` per kept index.

    ``lo``/``hi`` are float64 arrays of the kept shape (``hi > lo``). A value ``v``
    (``|v|`` with ``absolute``) goes to slot 0 if ``v < lo``, slot ``bins + 1`` if
    ``v > hi``, else slot ``1 + min(floor((v - lo) * (bins / (hi - lo))), bins - 1)``,
    all in float64 (so ``v == hi`` lands in the last bin, as in numpy).

    Returns:
        int64 array ``(*kept_shape, bins + 2)``: underflow, the bins, overflow.

    Raises:
        NonFiniteError: ``x`` holds NaN or ±Inf.
    """
    x32 = _f32(x)
    _check_finite(x32, name)
    rows, kshape = _rows(x32, axis)
    lo = np.broadcast_to(np.asarray(lo, np.float64), kshape).reshape(-1)
    hi = np.broadcast_to(np.asarray(hi, np.float64), kshape).reshape(-1)
    out = np.zeros((rows.shape[0], bins + 2), np.int64)
    scale = bins / (hi - lo)
    for k in range(rows.shape[0]):
        v = rows[k].astype(np.float64)
        if absolute:
            v = np.abs(v)
        idx = np.minimum(np.floor((v - lo[k]) * scale[k]), bins - 1) + 1
        idx = np.where(v < lo[k], 0, np.where(v > hi[k], bins + 1, idx)).astype(np.int64)
        out[k] = np.bincount(idx, minlength=bins + 2)
    return out.reshape((*kshape, bins + 2))


# ------------------------------------------------------------------------ FakeQuantize


def fq_constants(input_low, input_high, output_low, output_high, levels: int,
                 flavor: str = "snippets") -> tuple[np.ndarray, ...]:
    """Per-range constants ``(cl, ch, isc, ish, osc, osh)`` the CPU plugin derives.

    Both flavors compute in float32 with ``L1 = float32(levels - 1)``:

    * ``node`` (the CPU ``FakeQuantize`` node's JIT kernel): ``isc = L1 / (ih - il)``,
      ``ish = (-il * L1) / (ih - il)``, ``osc = (oh - ol) / L1``, ``osh = ol``.
    * ``snippets`` (the decomposition the CPU plugin tokenizes a standalone FQ into):
      ``isc = L1 / (ih - il)``, ``ish = il * isc`` (subtracted), ``osc``/``osh`` as above.
    """
    il, ih, ol, oh = (np.asarray(v, np.float32) for v in (input_low, input_high, output_low,
                                                          output_high))
    l1 = np.float32(levels - 1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        isc = (l1 / (ih - il)).astype(np.float32)
        if flavor == "node":
            ish = ((-il * l1) / (ih - il)).astype(np.float32)
        else:
            ish = (il * isc).astype(np.float32)
        osc = ((oh - ol) / l1).astype(np.float32)
    return il, ih, isc, ish, osc, ol


def fake_quantize(x: np.ndarray, input_low, input_high, output_low, output_high,
                  levels: int, *, flavor: str = "snippets") -> np.ndarray:
    """OpenVINO FakeQuantize-1 exactly as the CPU plugin computes it at f32 precision.

    Ranges broadcast against ``x`` (numpy rules). With the constants of
    :func:`fq_constants`, and ``max(a, b) = a if a > b else b``,
    ``min(a, b) = a if a < b else b`` (x86 semantics), round-half-to-even ``rint`` and a
    single-rounding float32 ``fma``:

    * ``snippets``: ``c = min(max(x, il), ih)``; ``t = rint(float32(c * isc) - ish)``;
      ``y = fma(t, osc, ol)``. A NaN input gives ``ol``.
    * ``node``: ``c = max(min(x, ih), il)``; ``t = rint(fma(c, isc, ish))``;
      ``y = fma(t, osc, ol)``. A NaN input gives ``oh``.

    ``il == ih`` gives NaN, as in OpenVINO. The result is float32 with the broadcast
    shape.
    """
    x32 = _f32(x)
    il, ih, isc, ish, osc, ol = fq_constants(input_low, input_high, output_low,
                                             output_high, levels, flavor)
    with np.errstate(invalid="ignore", over="ignore"):
        if flavor == "node":
            c = _x86_max(_x86_min(x32, ih), il)
            t = np.rint(fma32(c, isc, ish))
        else:
            c = _x86_min(_x86_max(x32, il), ih)
            t = np.rint((c * isc).astype(np.float32) - ish)
        return fma32(t, osc, ol)


def quantize(x: np.ndarray, input_low: np.ndarray, input_high: np.ndarray, levels: int,
             axis: int | None = None, *, offset: int = 0, dtype=np.int8,
             name: str = "tensor") -> np.ndarray:
    """Integer level of each value, as the CPU FakeQuantize node computes it, plus offset.

    ``input_low``/``input_high`` are float32 scalars or 1-D arrays along ``axis``.
    ``t = rint(fma(max(min(x, ih), il), isc, ish))`` with the ``node`` constants of
    :func:`fq_constants`, clipped to ``[0, levels - 1]``; the result is ``t + offset``
    cast to ``dtype`` (e.g. ``offset = -127`` stores a 255-level symmetric grid as int8).

    Raises:
        NonFiniteError: ``x`` holds NaN or ±Inf.
    """
    x32 = _f32(x)
    _check_finite(x32, name)
    il = np.asarray(input_low, np.float32)
    ih = np.asarray(input_high, np.float32)
    if axis is not None and il.ndim:
        shape = [1] * x32.ndim
        shape[axis] = -1
        il, ih = il.reshape(shape), ih.reshape(shape)
    il, ih, isc, ish, _, _ = fq_constants(il, ih, 0.0, 1.0, levels, "node")
    c = _x86_max(_x86_min(x32, ih), il)
    t = np.clip(np.rint(fma32(c, isc, ish)), 0, levels - 1)
    return (t.astype(np.int64) + offset).astype(dtype)


def dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray,
               axis: int | None = None) -> np.ndarray:
    """``float32(q - zero_point) * scale`` in float32, per channel along ``axis``.

    ``q`` is any integer array; ``scale`` and ``zero_point`` are scalars or 1-D arrays
    along ``axis`` (``zero_point`` is taken as float32).
    """
    q = np.asarray(q)
    s = np.asarray(scale, np.float32)
    z = np.asarray(zero_point, np.float32)
    if axis is not None:
        shape = [1] * q.ndim
        shape[axis] = -1
        s = s.reshape(shape) if s.ndim else s
        z = z.reshape(shape) if z.ndim else z
    return ((q.astype(np.float32) - z).astype(np.float32) * s).astype(np.float32)


def quantization_error(x: np.ndarray, y: np.ndarray, axis: tuple[int, ...] = (), *,
                       name: str = "tensor") -> tuple[np.ndarray, np.ndarray]:
    """Sum of squared errors ``Σ(x - y)²`` and signal energy ``Σx²`` per kept index.

    Differences and squares are taken in float64 from the float32 values; sums agree
    across backends to a relative 1e-12.

    Raises:
        NonFiniteError: ``x`` or ``y`` holds NaN or ±Inf.
    """
    x32, y32 = _f32(x), _f32(y)
    _check_finite(x32, name)
    _check_finite(y32, name + " (quantized)")
    rx, kshape = _rows(x32, axis)
    ry, _ = _rows(y32, axis)
    d = rx.astype(np.float64) - ry.astype(np.float64)
    x64 = rx.astype(np.float64)
    return (d * d).sum(axis=1).reshape(kshape), (x64 * x64).sum(axis=1).reshape(kshape)


def pair_saturation(a: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """INT8 pair saturation of ``a @ w.T`` as x86 INT8 kernels without VNNI compute it.

    ``a`` (rows × K, uint8 activation codes) and ``w`` (outs × K, int8 weight codes), K
    even. Such kernels (``vpmaddubsw``) add the products of columns ``2j`` and ``2j + 1``
    into a saturating int16 before summing in int32. Per weight row ``o``:

    * ``err_sq[o]`` = Σ over rows of (exact dot product - the saturated one)², float64;
    * ``saturated[o]`` = the number of (row, pair) sums outside [-32768, 32767], int64.
    """
    a64 = a.astype(np.int64).reshape(a.shape[0], -1, 2)
    w64 = w.astype(np.int64).reshape(w.shape[0], -1, 2)
    err_sq = np.zeros(w.shape[0], np.float64)
    saturated = np.zeros(w.shape[0], np.int64)
    for o in range(w.shape[0]):
        s = (a64 * w64[o]).sum(axis=2)  # rows × pairs, exact
        d = s - np.clip(s, -32768, 32767)
        err_sq[o] = float((d.sum(axis=1).astype(np.float64) ** 2).sum())
        saturated[o] = int(np.count_nonzero(d))
    return err_sq, saturated


# ------------------------------------------------------------------ weight compression
# Weight-only compression (``ovq.compress_weights``): group-wise scales and zero points,
# rounding to 8/4-bit integers, nibble packing, and the per-row INT8_ASYM error that
# orders layers by sensitivity. The arithmetic is NNCF 3.4's data-free integer
# quantization (``weight_lowering.py``) in float32: true division, round half to even.

EPS32 = np.float32(np.finfo(np.float32).eps)


def group_params(g32: np.ndarray, bits: int, sym: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Scale (float32) and zero point (float32 levels, or None) of each group.

    ``g32`` is ``(R, G, g)`` float32, reduced over its last axis.

    * asym: ``lo = min(min, 0)``, ``hi = max(max, 0)``, ``s = (hi - lo) / (2^bits - 1)``,
      ``zp = clip(-rint(lo / s), 0, 2^bits - 1)``;
    * sym: ``s = |min| / 2^(bits-1)`` if ``|min| >= max`` else ``-max / 2^(bits-1)`` (the
      sign that sends the largest-magnitude weight exactly to the lowest level);

    then ``|s| < eps(f32)`` becomes ``eps``.
    """
    mn = g32.min(axis=-1, keepdims=True)
    mx = g32.max(axis=-1, keepdims=True)
    if sym:
        half = np.float32(2 ** (bits - 1))
        a = np.abs(mn)
        s = np.where(a >= mx, a, -mx) / half
        return np.where(np.abs(s) < EPS32, EPS32, s).astype(np.float32), None
    top = np.float32(2**bits - 1)
    lo = np.minimum(mn, np.float32(0))
    hi = np.maximum(mx, np.float32(0))
    s = ((hi - lo) / top).astype(np.float32)
    s = np.where(np.abs(s) < EPS32, EPS32, s).astype(np.float32)
    zp = np.clip(-np.rint(lo / s), np.float32(0), top).astype(np.float32)
    return s, zp


def pack_nibbles(q: np.ndarray) -> np.ndarray:
    """Two 4-bit values per byte, low nibble first (OpenVINO's u4/i4 layout).

    ``q`` is int8 or uint8 in ``[-8, 7]`` / ``[0, 15]`` (two's complement low nibbles
    for i4). The last row of an odd count gets a zero high nibble.
    """
    b = np.ascontiguousarray(q).reshape(-1).view(np.uint8) & np.uint8(0x0F)
    if b.size % 2:
        b = np.concatenate([b, np.zeros(1, np.uint8)])
    return (b[0::2] | (b[1::2] << np.uint8(4))).astype(np.uint8)


def compress_groups(w: np.ndarray, bits: int, sym: bool, group: int, packed: bool, *,
                    name: str = "tensor") -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Quantize the rows of a 2-D weight ``w`` ``(R, C)`` in groups of ``group`` columns.

    Levels: ``q = clip(rint(w / s), -2^(bits-1), 2^(bits-1) - 1)`` as int8 (sym) or
    ``q = clip(rint(w / s + zp), 0, 2^bits - 1)`` as uint8 (asym), with ``s``/``zp`` of
    :func:`group_params`.

    Returns:
        ``(q, scale, zero_point)``: ``q`` ``(R, C)`` int8/uint8, or, with ``packed``
        (``bits == 4`` and ``C`` even), ``(R, C // 2)`` uint8 nibble pairs (low first);
        ``scale`` float32 ``(R, C // group)``; ``zero_point`` uint8 ``(R, C // group)``
        or ``None`` (sym).

    Raises:
        NonFiniteError: ``w`` holds NaN or ±Inf.
    """
    x = _f32(w)
    _check_finite(x, name)
    r, c = x.shape
    g = x.reshape(r, c // group, group)
    s, zp = group_params(g, bits, sym)
    if sym:
        half = np.float32(2 ** (bits - 1))
        q = np.clip(np.rint(g / s), -half, half - 1).astype(np.int8).reshape(r, c)
    else:
        top = np.float32(2**bits - 1)
        q = np.clip(np.rint(g / s + zp), 0, top).astype(np.uint8).reshape(r, c)
    if packed:
        q = pack_nibbles(q).reshape(r, c // 2)
    zp8 = None if zp is None else zp.reshape(r, -1).astype(np.uint8)
    return q, s.reshape(r, -1), zp8


def int8_asym_error(w: np.ndarray, *, name: str = "tensor") -> np.ndarray:
    """Per-row mean squared error of per-row INT8_ASYM quantization of ``w`` ``(R, C)``.

    ``mean((f32(q - zp) * s - w)^2)`` over each row, accumulated in float64; NNCF's
    data-free sensitivity of a layer is ``1 / (max of this + eps)``.
    """
    x = _f32(w)
    _check_finite(x, name)
    r, c = x.shape
    g = x.reshape(r, 1, c)
    s, zp = group_params(g, 8, False)
    q = np.clip(np.rint(g / s + zp), 0, np.float32(255))
    d = ((q - zp) * s - g).astype(np.float64)
    return (d * d).mean(axis=(1, 2))


# ------------------------------------------------------ data-aware weight compression
# The inner loops of AWQ and scale estimation (``ovq.compression.awq``,
# ``ovq.compression.scale_estimation``): quantize-dequantize a weight with candidate
# scales and measure the error of the MatMul output on calibration activations. The
# output error is computed from the weight error, ``Σ_k (w_k - deq_k) x_kn``, which is
# NNCF's ``W X - deq(W) X`` without the cancellation of two large products.


def _qdq_levels(t: np.ndarray, bits: int, sym: bool) -> tuple[float, float]:
    if sym:
        half = np.float32(2 ** (bits - 1))
        return -half, half - 1
    return np.float32(0), np.float32(2**bits - 1)


def awq_errors(w: np.ndarray, x: np.ndarray, s: np.ndarray, floor: np.ndarray, alphas: np.ndarray, bits: int,
               sym: bool) -> np.ndarray:
    """AWQ's grid search errors for one group of input channels.

    For each ``alpha``: ``c = max(s ** alpha, floor)`` (float32, per channel), every
    row of ``w * c`` quantized on its own (:func:`group_params` over the whole row) to
    ``deq``, and the error ``mean over rows o and samples n of |Σ_k (w_ok - deq_ok / c_k) x_kn|``
    (NNCF: ``mean |W X - Q(W c)(X / c)|``).

    Args:
        w: ``(O, g)`` float32 weights of the group.
        x: ``(g, n)`` float32 activations (per-sample channel means).
        s: ``(g,)`` float32 positive channel magnitudes.
        floor: ``(g,)`` float32 lower bounds of the scale (0: none).
        alphas: ``(A,)`` float32 exponents.

    Returns:
        ``(A,)`` float64 errors.
    """
    w = np.asarray(w, np.float32)
    x = np.asarray(x, np.float32)
    out = np.empty(len(alphas), np.float64)
    lo, hi = _qdq_levels(w, bits, sym)
    for a, alpha in enumerate(np.asarray(alphas, np.float32)):
        c = np.maximum(np.power(np.asarray(s, np.float32), alpha), np.asarray(floor, np.float32)).astype(np.float32)
        wc = (w * c).astype(np.float32)[:, None, :]
        sc, zp = group_params(wc, bits, sym)
        z = np.float32(0) if zp is None else zp
        q = np.clip(np.rint(wc / sc + z), lo, hi)
        deq = ((q - z) * sc).astype(np.float32)[:, 0, :]
        d = (w - (deq / c).astype(np.float32)).astype(np.float64)
        out[a] = float(np.mean(np.abs(d @ x.astype(np.float64))))
    return out


def quantize_with(w: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, bits: int, sym: bool
                  ) -> np.ndarray:
    """Levels of ``w`` ``(O, C)`` with given per-group ``scale`` / ``zero_point`` ``(O, G)``:
    ``clip(rint(w / s + zp))`` as float32 ``(O, G, C / G)`` (NNCF's quantization with a
    precomputed scale and zero point)."""
    w = np.asarray(w, np.float32)
    o, c = w.shape
    groups = scale.shape[1]
    g = w.reshape(o, groups, c // groups)
    s = np.asarray(scale, np.float32)[:, :, None]
    z = np.float32(0) if zero_point is None else np.asarray(zero_point, np.float32)[:, :, None]
    lo, hi = _qdq_levels(w, bits, sym)
    q = g / s
    q += z
    np.rint(q, out=q)
    return np.clip(q, lo, hi, out=q)


def group_output_error(w: np.ndarray, x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, bits: int,
                       sym: bool) -> np.ndarray:
    """Scale estimation's error of each row and group with given scales and zero points.

    ``deq = (clip(rint(w / s + zp)) - zp) * s`` per group, then
    ``mean over samples n of (Σ_{k in group} (w_ok - deq_ok) x_kn)²`` (NNCF:
    ``mean((W_g X_g - deq(W_g) X_g)²)``).

    Args:
        w: ``(O, C)`` float32 weight.
        x: ``(C, n)`` float32 activations.
        scale: ``(O, G)`` float32 scales (``G`` divides ``C``).
        zero_point: ``(O, G)`` float32 zero points, or None (symmetric).

    Returns:
        ``(O, G)`` float64 errors.
    """
    w = np.asarray(w, np.float32)
    o, c = w.shape
    groups = scale.shape[1]
    g = c // groups
    q = quantize_with(w, scale, zero_point, bits, sym)
    z = np.float32(0) if zero_point is None else np.asarray(zero_point, np.float32)[:, :, None]
    deq = ((q - z) * np.asarray(scale, np.float32)[:, :, None]).astype(np.float32)
    d = (w.reshape(o, groups, g) - deq).astype(np.float64)
    xg = np.asarray(x, np.float64).reshape(groups, g, -1)
    y = np.einsum("ogk,gkn->ogn", d, xg)
    return np.mean(y * y, axis=2)
