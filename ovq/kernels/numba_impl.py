"""numba implementations of the kernels, same signatures as :mod:`ovq.kernels.reference`.

The jitted kernels walk the same strided plans as the native backend
(:mod:`ovq.kernels._layout`), so views are not copied, and float16/bfloat16 inputs are
read as raw 16-bit words and widened in registers (no float32 copy). Work is split into
tasks like the native backend (per kept index, and along the outer reduced dim when
there are few kept indices) and handed out to one worker per thread of numba's pool
through an atomic counter (``prange`` over the workers; see "task hand-out" below).
Compilation is lazy (first call), cached on disk.

Why the loops look the way they do (numba does not SLP-vectorize, and it never puts
fast-math flags on ``select``, so LLVM will not vectorize a float min/max reduction):

* min/max reduce integer **order keys** of the IEEE bits (``b ^ 0x7fff…`` for negative
  ``b``), which are monotone in the float value; integer min/max reductions vectorize.
  The largest ``|bits|`` seen doubles as the NaN/Inf check, so no float ``v - v``
  accumulation chain (a serial dependency) is needed.
* Contiguous runs (stride 1) are passed as contiguous slices so LLVM sees unit-stride
  loads; other strides go through a strided view of the same memory.
* Float64 sums are the only reassociated arithmetic (``fastmath={"reassoc"}`` on the
  moment kernel); sums may differ from the reference in the last bits (documented
  tolerance). FakeQuantize/quantize use the hardware fused multiply-add through an LLVM
  intrinsic, which is correctly rounded, so they stay bit-identical.
"""

from __future__ import annotations

import os

# numba's OpenMP pool spins while it waits at a barrier ("active" wait); when the other
# cores are busy (a shared CI box, a calibration running beside inference) the spinning
# threads take CPU from the ones doing the work: measured 3.5x slower per-channel
# quantiles on a loaded 2-core machine. Passive waiting costs a wake-up per parallel
# call (microseconds) against kernels that run for milliseconds. Only a default: an explicit OMP_WAIT_POLICY wins, and it must be set before libgomp
# loads (numba loads it on the first parallel call).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from ovq.errors import NonFiniteError
from ovq.kernels import reference as _ref
from ovq.kernels._layout import is_bfloat16, plan, range_constants

_jit = numba.njit(cache=True, nogil=True)
_pjit = numba.njit(cache=True, nogil=True, parallel=True)

# ------------------------------------------------------------------- LLVM intrinsics


@intrinsic
def _val(typingctx, x, bf):
    """float32 value of an element: float32 as is; a uint16 word as bfloat16 if ``bf``
    else IEEE half (both widenings are exact and branch-free, so loops vectorize)."""
    if x == types.float32:
        def cg(context, builder, sig, args):
            return args[0]
    elif x == types.uint16:
        def cg(context, builder, sig, args):
            w = args[0]
            f32 = ir.FloatType()
            bfv = builder.bitcast(builder.shl(builder.zext(w, ir.IntType(32)),
                                              ir.Constant(ir.IntType(32), 16)), f32)
            hv = builder.fpext(builder.bitcast(w, ir.HalfType()), f32)
            flag = context.cast(builder, args[1], sig.args[1], types.boolean)
            return builder.select(flag, bfv, hv)
    else:
        return None
    return types.float32(x, bf), cg


@intrinsic
def _key(typingctx, x):
    """int32 order key of an element's IEEE bits: ``b ^ 0x7fff…`` if the sign is set,
    else ``b`` (16-bit words sign-extended). Monotone in the value; its own inverse.
    Written in LLVM so the arithmetic stays 32-bit (numba widens int32 ops to int64)."""
    if x == types.float32:
        def cg(context, builder, sig, args):
            i = builder.bitcast(args[0], ir.IntType(32))
            m = builder.lshr(builder.ashr(i, ir.Constant(ir.IntType(32), 31)),
                             ir.Constant(ir.IntType(32), 1))
            return builder.xor(i, m)
    elif x == types.uint16:
        def cg(context, builder, sig, args):
            w = args[0]
            m = builder.lshr(builder.ashr(w, ir.Constant(ir.IntType(16), 15)),
                             ir.Constant(ir.IntType(16), 1))
            return builder.sext(builder.xor(w, m), ir.IntType(32))
    else:
        return None
    return types.int32(x), cg


@intrinsic
def _kdist(typingctx, x, base):
    """``key(x) - base`` as uint32 (wrapping), for a float32 ``x``: ``lo <= key <= hi``
    is then one unsigned test ``_kdist(x, lo) <= hi - lo``."""
    if x != types.float32 or base != types.int32:
        return None

    def cg(context, builder, sig, args):
        i32 = ir.IntType(32)
        i = builder.bitcast(args[0], i32)
        m = builder.lshr(builder.ashr(i, ir.Constant(i32, 31)), ir.Constant(i32, 1))
        return builder.sub(builder.xor(i, m), args[1])

    return types.uint32(x, base), cg


@intrinsic
def _absbits(typingctx, x):
    """The element's IEEE bits without the sign, as int32 (>= the Inf pattern: NaN/Inf)."""
    if x == types.float32:
        def cg(context, builder, sig, args):
            i = builder.bitcast(args[0], ir.IntType(32))
            return builder.and_(i, ir.Constant(ir.IntType(32), 0x7FFFFFFF))
    elif x == types.uint16:
        def cg(context, builder, sig, args):
            w = builder.and_(args[0], ir.Constant(ir.IntType(16), 0x7FFF))
            return builder.zext(w, ir.IntType(32))
    else:
        return None
    return types.int32(x), cg


def _splat(builder, x, n):
    """An n-lane vector of the scalar x."""
    vty = ir.VectorType(x.type, n)
    one = builder.insert_element(ir.Constant(vty, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vty, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), n), [0] * n))


@intrinsic
def _out16(typingctx, a, i, base, span, amask, bf):
    """Movemask of the 16 values ``a[i:i+16]`` (a contiguous 1-D array, no bounds check)
    whose order key is outside ``[base, base + span]``: bit j is set when value j, as
    float32 with its bits ``& amask`` (clears the sign for ``|v|``), is not ``_kdist``-
    inside the window. One vector load, key, subtract and unsigned compare; the lane
    mask is an ``i16`` (``vmovmskps``/``vpmovmskb``), so hits are found with ``_ctz``."""
    if not (isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C"
            and a.dtype in (types.float32, types.uint16)):
        return None
    lanes = 16

    def cg(context, builder, sig, args):
        i32 = ir.IntType(32)
        vi32 = ir.VectorType(i32, lanes)
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        elt = ptr.type.pointee
        raw = builder.load(builder.bitcast(ptr, ir.VectorType(elt, lanes).as_pointer()),
                           align=elt.width // 8 if isinstance(elt, ir.IntType) else 4)
        if sig.args[0].dtype == types.float32:
            bits = builder.bitcast(raw, vi32)
        else:  # 16-bit words: bfloat16 (shift) or IEEE half (fpext), as in _val
            bfv = builder.shl(builder.zext(raw, vi32), _splat(builder, ir.Constant(i32, 16), lanes))
            hv = builder.fpext(builder.bitcast(raw, ir.VectorType(ir.HalfType(), lanes)),
                               ir.VectorType(ir.FloatType(), lanes))
            flag = context.cast(builder, args[5], sig.args[5], types.boolean)
            bits = builder.select(flag, bfv, builder.bitcast(hv, vi32))
        bits = builder.and_(bits, _splat(builder, args[4], lanes))
        m = builder.lshr(builder.ashr(bits, _splat(builder, ir.Constant(i32, 31), lanes)),
                         _splat(builder, ir.Constant(i32, 1), lanes))
        d = builder.sub(builder.xor(bits, m), _splat(builder, args[2], lanes))
        out = builder.icmp_unsigned(">", d, _splat(builder, args[3], lanes))
        return builder.zext(builder.bitcast(out, ir.IntType(lanes)), i32)

    return types.uint32(a, types.intp, types.int32, types.uint32, types.int32, bf), cg


@intrinsic
def _ctz(typingctx, x):
    """Index of the lowest set bit of a non-zero unsigned integer (``tzcnt``/``bsf``)."""
    if not (isinstance(x, types.Integer) and not x.signed):
        return None

    def cg(context, builder, sig, args):
        tz = builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))
        return tz if x.bitwidth == 64 else builder.zext(tz, ir.IntType(64))

    return types.intp(x), cg


@intrinsic
def _grab(typingctx, counter, n):
    """Atomically ``counter[0] += n``; returns the old value (a shared task counter)."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64
            and isinstance(n, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        inc = context.cast(builder, args[1], sig.args[1], types.int64)
        return builder.atomic_rmw("add", ary.data, inc, "monotonic")

    return types.int64(counter, n), cg


@intrinsic
def _fma(typingctx, a, b, c):
    """Correctly rounded float32 ``a * b + c`` (``llvm.fma``: FMA instruction or libm)."""
    if not all(t == types.float32 for t in (a, b, c)):
        return None

    def cg(context, builder, sig, args):
        return builder.fma(*args)

    return types.float32(a, b, c), cg


# ------------------------------------------------------------------ task hand-out
# Every parallel kernel runs ``nw`` workers (``prange(nw)``, nw = numba's threads) that
# take runs of ``chunk`` consecutive tasks from a shared atomic counter until none are
# left, as the native pool does, instead of prange's static split of the tasks: a worker
# the OS delays on a busy machine then does not hold the others back, and tasks of
# uneven cost balance out. Each task writes its own output slots (merged afterwards in a
# fixed order, so results do not depend on which worker ran what). The loop skeleton is
#
#     nw, chunk, nxt = _share(nt, threads)
#     for _ in numba.prange(nw):
#         t0, t1 = _take(nxt, chunk, nt)
#         while t0 < t1:
#             for t in range(t0, t1):
#                 _x_task(t, ...)
#             t0, t1 = _take(nxt, chunk, nt)
#
# written out in each kernel: a shared parallel driver taking the task function as an
# argument compiles and runs as fast, but numba does not reuse its on-disk cache for
# functions with function-typed arguments (it recompiles and writes a new cache entry on
# every process start).


@_jit
def _share(nt, threads):
    """``(workers, chunk, counter)`` for ``nt`` tasks on ``threads`` threads: runs of
    about nt / (8 x workers) tasks, as the native pool."""
    nw = max(1, min(threads, nt))
    return nw, max(1, nt // (8 * nw)), np.zeros(1, np.int64)


@_jit
def _take(nxt, chunk, nt):
    """The next run ``[t0, t1)`` of tasks from the counter (empty when all are taken)."""
    t0 = _grab(nxt, chunk)
    if t0 >= nt:
        return nt, nt
    return t0, min(t0 + chunk, nt)


# -------------------------------------------------------------------------- walking


@_jit
def _run_offset(o, rshape, rstrides):
    """Element offset of the o-th innermost run of the box (row-major over dims[:-1])."""
    nd = rshape.shape[0]
    if nd == 1:
        return o * rstrides[0]
    off = 0
    for d in range(nd - 2, -1, -1):
        i = o % rshape[d]
        o //= rshape[d]
        off += i * rstrides[d]
    return off


@_jit
def _task(t, splits, rshape, rstrides):
    """Task ``t`` = (kept index, part of dim 0): ``(k, o0, o1, n, s)``, runs ``[o0, o1)``
    of ``n`` elements at stride ``s`` (with one dim, the run is the part itself)."""
    k = t // splits
    j = t % splits
    d0 = rshape[0]
    lo = d0 * j // splits
    hi = d0 * (j + 1) // splits
    if rshape.shape[0] == 1:
        return k, lo, lo + (1 if hi > lo else 0), hi - lo, rstrides[0]
    per = 1
    for d in range(1, rshape.shape[0] - 1):
        per *= rshape[d]
    return k, lo * per, hi * per, rshape[-1], rstrides[-1]


@_jit
def _sview(a, base, n, s):
    """The n elements ``a[base + i*s]`` as a (strided) view; any stride, even 0 or < 0."""
    if n <= 1:
        return a[base:base + n:1]
    if s > 0:
        return a[base:base + (n - 1) * s + 1:s]
    if s < 0:
        lo = base + (n - 1) * s
        return a[lo:base + 1:-s][::-1]
    return np.full(n, a[base])[::1]


def _splits(rshape: np.ndarray, k: int) -> int:
    """Parts of dim 0 per kept index (as the native backend: split when K is small)."""
    nt = numba.get_num_threads()
    r = int(np.prod(rshape, dtype=np.int64))
    if nt <= 1 or k >= 4 * nt or r < (1 << 15):
        return 1
    return max(1, min(4 * nt, int(rshape[0])))


def _raw(x: np.ndarray) -> tuple[np.ndarray, bool, int, int]:
    """``(data, bf, absmask, finite_limit)``: float32 data, or the 16-bit words."""
    if x.dtype == np.float32:
        return x, False, 0x7FFFFFFF, 0x7F800000
    if x.dtype == np.float16:
        return x.view(np.uint16), False, 0x7FFF, 0x7C00
    if is_bfloat16(x.dtype):
        return x.view(np.uint16), True, 0x7FFF, 0x7F80
    return _raw(x.astype(np.float32))


def _unkey(keys: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Inverse of the order key (:func:`_key`): float32 values of ``dtype`` keys."""
    if dtype == np.float32:
        bits = np.where(keys < 0, keys ^ 0x7FFFFFFF, keys).astype(np.int32)
        return bits.view(np.float32)
    bits = np.where(keys < 0, keys ^ 0x7FFF, keys).astype(np.int16)
    return bits.view(dtype).astype(np.float32)


_KMAX = np.int32(2**31 - 1)
_KMIN = np.int32(-(2**31))
_INF32 = np.float32(np.inf)
_KEY_POS_MAX = np.int32(0x7F7FFFFF)  # key of the largest finite float32
_KEY_NEG_MAX = np.int32(-0x7F800000)  # key of -FLT_MAX (bits 0xff7fffff)


# ----------------------------------------------------------------------- min / max


@_jit
def _mm_seg(seg, mn, mx, ab):
    for i in range(seg.shape[0]):
        key = _key(seg[i])
        mn = key if key < mn else mn
        mx = key if key > mx else mx
        a = _absbits(seg[i])
        ab = a if a > ab else ab
    return mn, mx, ab


@_jit
def _mm_task(t, a, koff, rshape, rstrides, splits, mn, mx, ab):
    k, o0, o1, n, s = _task(t, splits, rshape, rstrides)
    m0 = _KMAX
    m1 = _KMIN
    m2 = np.int32(0)
    for o in range(o0, o1):
        base = koff[k] + _run_offset(o, rshape, rstrides)
        if s == 1:
            m0, m1, m2 = _mm_seg(a[base:base + n], m0, m1, m2)
        else:
            m0, m1, m2 = _mm_seg(_sview(a, base, n, s), m0, m1, m2)
    mn[t] = m0
    mx[t] = m1
    ab[t] = m2


@_pjit
def _minmax_k(a, koff, rshape, rstrides, splits, threads):
    nt = koff.shape[0] * splits
    mn = np.empty(nt, np.int32)
    mx = np.empty(nt, np.int32)
    ab = np.empty(nt, np.int32)
    nw, chunk, nxt = _share(nt, threads)
    for _ in numba.prange(nw):
        t0, t1 = _take(nxt, chunk, nt)
        while t0 < t1:
            for t in range(t0, t1):
                _mm_task(t, a, koff, rshape, rstrides, splits, mn, mx, ab)
            t0, t1 = _take(nxt, chunk, nt)
    return mn, mx, ab


# ------------------------------------------------------------------------- moments


@numba.njit(cache=True, nogil=True, fastmath={"reassoc"})
def _mom_seg(seg, bf, mn, mx, ab, s0, q0):
    for i in range(seg.shape[0]):
        e = seg[i]
        key = _key(e)
        mn = key if key < mn else mn
        mx = key if key > mx else mx
        a = _absbits(e)
        ab = a if a > ab else ab
        d = np.float64(_val(e, bf))
        s0 += d
        q0 += d * d
    return mn, mx, ab, s0, q0


@_jit
def _mom_task(t, a, bf, koff, rshape, rstrides, splits, mn, mx, ab, sm, sq):
    k, o0, o1, n, s = _task(t, splits, rshape, rstrides)
    m0 = _KMAX
    m1 = _KMIN
    m2 = np.int32(0)
    s0 = 0.0
    q0 = 0.0
    for o in range(o0, o1):
        base = koff[k] + _run_offset(o, rshape, rstrides)
        if s == 1:
            m0, m1, m2, s0, q0 = _mom_seg(a[base:base + n], bf, m0, m1, m2, s0, q0)
        else:
            m0, m1, m2, s0, q0 = _mom_seg(_sview(a, base, n, s), bf, m0, m1, m2, s0, q0)
    mn[t] = m0
    mx[t] = m1
    ab[t] = m2
    sm[t] = s0
    sq[t] = q0


@_pjit
def _moments_k(a, bf, koff, rshape, rstrides, splits, threads):
    nt = koff.shape[0] * splits
    mn = np.empty(nt, np.int32)
    mx = np.empty(nt, np.int32)
    ab = np.empty(nt, np.int32)
    sm = np.empty(nt)
    sq = np.empty(nt)
    nw, chunk, nxt = _share(nt, threads)
    for _ in numba.prange(nw):
        t0, t1 = _take(nxt, chunk, nt)
        while t0 < t1:
            for t in range(t0, t1):
                _mom_task(t, a, bf, koff, rshape, rstrides, splits, mn, mx, ab, sm, sq)
            t0, t1 = _take(nxt, chunk, nt)
    return mn, mx, ab, sm, sq


# ------------------------------------------------------------------------ quantile
# Extreme ranks (all within min(n/16, 4096) of an end): one filtering pass per task that
# keeps candidates for the m smallest (largest) values behind a bound that tightens
# whenever the buffer fills (exact: a dropped value is dominated by m kept ones); the
# union over a kept index's tasks holds its m smallest (largest) values. Other ranks:
# gather a copy and select with np.partition.


@_jit
def _select(a, lo, hi, kth):
    """Reorder a[lo:hi] in place so a[kth] holds its kth value (ascending), smaller ones
    before it and larger ones after (Hoare partitioning; terminates with NaNs too)."""
    while hi - lo > 16:
        x, y, z = a[lo], a[(lo + hi - 1) // 2], a[hi - 1]
        piv = max(min(x, y), min(max(x, y), z))
        i = lo
        j = hi - 1
        while i <= j:
            while i <= j and a[i] < piv:
                i += 1
            while i <= j and a[j] > piv:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        # a[lo:j+1] <= piv, a[i:hi] >= piv, anything between equals piv.
        if kth <= j:
            hi = j + 1
        elif kth >= i:
            lo = i
        else:
            return
    for i in range(lo + 1, hi):  # insertion sort of a short range
        v = a[i]
        j = i - 1
        while j >= lo and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v


@_jit
def _compact(buf, cnt, m, low):
    """Keep the m best of buf[:cnt] in buf[:m]; returns the new bound (the m-th best)."""
    if low:
        _select(buf, 0, cnt, m - 1)
        return buf[m - 1]
    _select(buf, 0, cnt, cnt - m)
    buf[:m] = buf[cnt - m:cnt].copy()
    return buf[0]


@_jit
def _offer(v, lb, lc, lt, m_lo, hb, hc, ht, m_hi):
    """Offer v to both keepers (a side takes it if it is beyond that side's bound)."""
    if v < lt:
        lb[lc] = v
        lc += 1
        if lc == lb.shape[0]:
            lt = _compact(lb, lc, m_lo, True)
            lc = m_lo
    if v > ht:
        hb[hc] = v
        hc += 1
        if hc == hb.shape[0]:
            ht = _compact(hb, hc, m_hi, False)
            hc = m_hi
    return lc, lt, hc, ht


@_jit
def _window(lt, ht):
    """``(base, span, ok)``: a value whose key lies in ``[base, base + span]`` is within
    both bounds and finite (the window is clipped to the finite keys); ``ok`` is False
    when no value can pass (a side still at its initial bound)."""
    lo = max(_key(lt), _KEY_NEG_MAX)
    hi = min(_key(ht), _KEY_POS_MAX)
    if lo > hi:
        return lo, np.uint32(0), False
    return lo, np.uint32(hi - lo), True


@_jit
def _seed_small(seg, bf, absolute, p, m, low, buf):
    """The m best (smallest if ``low``, else largest) of the first p values, kept sorted
    best-first in buf[:m] by insertion (cheap for small m: few values beat the m-th);
    returns the m-th best, the side's bound."""
    for j in range(p):
        v = _val(seg[j], bf)
        v = abs(v) if absolute else v
        if j >= m and not (v < buf[m - 1] if low else v > buf[m - 1]):
            continue
        k = j if j < m else m - 1
        while k > 0 and (buf[k - 1] > v if low else buf[k - 1] < v):
            buf[k] = buf[k - 1]
            k -= 1
        buf[k] = v
    return buf[m - 1]


@_jit
def _keep_seg(seg, bf, absolute, lb, lc, lt, m_lo, hb, hc, ht, m_hi, bad):
    n = seg.shape[0]
    start = 0
    fresh = (m_lo == 0 or lt == _INF32) and (m_hi == 0 or ht == -_INF32)
    p = min(n, 1024)
    if fresh and p >= max(m_lo, m_hi):
        # Seed both sides from the first p values in bulk, so the bounds start tight
        # instead of at +-Inf and the scan below rarely stops.
        if max(m_lo, m_hi) <= 64:
            for j in range(p):
                bad |= not (abs(_val(seg[j], bf)) < _INF32)
            if m_lo > 0:
                lt = _seed_small(seg, bf, absolute, p, m_lo, True, lb)
                lc = m_lo
            if m_hi > 0:
                ht = _seed_small(seg, bf, absolute, p, m_hi, False, hb)
                hc = m_hi
        else:
            vals = np.empty(p, np.float32)
            for j in range(p):
                v = _val(seg[j], bf)
                v = abs(v) if absolute else v
                bad |= not (abs(v) < _INF32)
                vals[j] = v
            if m_lo > 0:
                _select(vals, 0, p, m_lo - 1)
                lb[:m_lo] = vals[:m_lo]
                lt = vals[m_lo - 1]
                lc = m_lo
            if m_hi > 0:
                _select(vals, 0, p, p - m_hi)
                hb[:m_hi] = vals[p - m_hi:]
                ht = vals[p - m_hi]
                hc = m_hi
        start = p
    base, span, ok = _window(lt, ht)
    for i in range(start, n, 64):
        e = min(i + 64, n)
        # Branch-free test of a block (vectorizes: one unsigned max of key distances). A
        # block with a value beyond a bound, or a NaN/Inf, is replayed element by element
        # with the float comparisons. (Keys order -0 below +0: at worst a needless replay.)
        far = np.uint32(0)
        for j in range(i, e):
            v = _val(seg[j], bf)
            v = abs(v) if absolute else v
            d = _kdist(v, base)
            far = d if d > far else far
        if not ok or far > span:
            for j in range(i, e):
                v = _val(seg[j], bf)
                v = abs(v) if absolute else v
                if not (abs(v) < _INF32):
                    bad = True
                if v < lt or v > ht:
                    lc, lt, hc, ht = _offer(v, lb, lc, lt, m_lo, hb, hc, ht, m_hi)
                    base, span, ok = _window(lt, ht)
    return lc, lt, hc, ht, bad


@_jit
def _keep_run(a, base, n, s, bf, absolute, lb, lc, lt, m_lo, hb, hc, ht, m_hi, bad):
    """Offer the run ``a[base + i*s]``, i < n, to both keepers (see :func:`_keep_seg`).

    A contiguous run is tested 16 values per step through :func:`_out16` and only the
    lanes it flags (outside the bounds' key window, or NaN/Inf) are looked at, one by
    one, as the native scan does with a movemask; the head (seeding) and the tail go
    through :func:`_keep_seg`, other strides entirely."""
    if s != 1:
        return _keep_seg(_sview(a, base, n, s), bf, absolute, lb, lc, lt, m_lo, hb, hc, ht,
                         m_hi, bad)
    i = 0
    if (m_lo == 0 or lt == _INF32) and (m_hi == 0 or ht == -_INF32):
        i = min(n, 1024)  # seed the bounds from the head
        lc, lt, hc, ht, bad = _keep_seg(a[base:base + i], bf, absolute, lb, lc, lt, m_lo, hb,
                                        hc, ht, m_hi, bad)
    amask = np.int32(0x7FFFFFFF) if absolute else np.int32(-1)
    while True:
        kb, span, ok = _window(lt, ht)
        every = np.uint32(0) if ok else np.uint32(0xFFFF)  # no window: look at all lanes
        mk = np.uint32(0)
        while i + 16 <= n:  # tight scan, the window fixed (its splats stay in registers)
            mk = _out16(a, base + i, kb, span, amask, bf) | every
            if mk != 0:
                break
            i += 16
        if mk == 0:
            break
        while mk != 0:
            j = base + i + _ctz(mk)
            mk &= mk - np.uint32(1)
            v = _val(a[j], bf)
            v = abs(v) if absolute else v
            if not (abs(v) < _INF32):
                bad = True
            if v < lt or v > ht:
                lc, lt, hc, ht = _offer(v, lb, lc, lt, m_lo, hb, hc, ht, m_hi)
        i += 16
    return _keep_seg(a[base + i:base + n], bf, absolute, lb, lc, lt, m_lo, hb, hc, ht, m_hi,
                     bad)


@_jit
def _keep_task(t, a, bf, koff, rshape, rstrides, splits, absolute, m_lo, m_hi, lbuf, lcnt,
               hbuf, hcnt, bads):
    k, o0, o1, n, s = _task(t, splits, rshape, rstrides)
    lb = lbuf[t]
    hb = hbuf[t]
    lc = 0
    hc = 0
    # An inactive side (m == 0) accepts nothing; an active one all until it fills.
    lt = _INF32 if m_lo > 0 else -_INF32
    ht = -_INF32 if m_hi > 0 else _INF32
    bad = False
    for o in range(o0, o1):
        base = koff[k] + _run_offset(o, rshape, rstrides)
        lc, lt, hc, ht, bad = _keep_run(a, base, n, s, bf, absolute, lb, lc, lt, m_lo, hb, hc,
                                        ht, m_hi, bad)
    lcnt[t] = lc
    hcnt[t] = hc
    bads[t] = bad


@_pjit
def _keep_k(a, bf, koff, rshape, rstrides, splits, absolute, m_lo, m_hi, threads):
    nt = koff.shape[0] * splits
    lbuf = np.empty((nt, 2 * m_lo + 32), np.float32)
    hbuf = np.empty((nt, 2 * m_hi + 32), np.float32)
    lcnt = np.zeros(nt, np.int64)
    hcnt = np.zeros(nt, np.int64)
    bads = np.zeros(nt, np.bool_)
    nw, chunk, nxt = _share(nt, threads)  # the scan's cost per task varies
    for _ in numba.prange(nw):
        t0, t1 = _take(nxt, chunk, nt)
        while t0 < t1:
            for t in range(t0, t1):
                _keep_task(t, a, bf, koff, rshape, rstrides, splits, absolute, m_lo, m_hi,
                           lbuf, lcnt, hbuf, hcnt, bads)
            t0, t1 = _take(nxt, chunk, nt)
    return lbuf, lcnt, hbuf, hcnt, bads


@_jit
def _interp(vals_at_i, vals_at_j, h, i):
    return vals_at_i + (h - i) * (vals_at_j - vals_at_i)


@_jit
def _extreme_finish(lbuf, lcnt, hbuf, hcnt, k, splits, r, q, m_lo):
    out = np.empty((q.shape[0], k))
    for kk in range(k):
        nl = 0
        nh = 0
        for j in range(splits):
            nl += lcnt[kk * splits + j]
            nh += hcnt[kk * splits + j]
        lv = np.empty(nl, np.float32)
        hv = np.empty(nh, np.float32)
        pl = 0
        ph = 0
        for j in range(splits):
            t = kk * splits + j
            lv[pl:pl + lcnt[t]] = lbuf[t, :lcnt[t]]
            pl += lcnt[t]
            hv[ph:ph + hcnt[t]] = hbuf[t, :hcnt[t]]
            ph += hcnt[t]
        lv = np.sort(lv)          # lv[i] = v[i] for i < m_lo
        hv = -np.sort(-hv)        # hv[i] = v[r - 1 - i]
        for qi in range(q.shape[0]):
            h = (r - 1) * q[qi]
            i = int(np.floor(h))
            j = min(i + 1, r - 1)
            vi = np.float64(lv[i]) if i < m_lo else np.float64(hv[r - 1 - i])
            vj = vi
            if j != i:
                vj = np.float64(lv[j]) if j < m_lo else np.float64(hv[r - 1 - j])
            out[qi, kk] = _interp(vi, vj, h, i)
    return out


@_jit
def _gather_seg(seg, bf, absolute, buf, w, bad):
    for i in range(seg.shape[0]):
        v = _val(seg[i], bf)
        if not (abs(v) < np.inf):
            bad = True
        buf[w + i] = abs(v) if absolute else v
    return bad


@_jit
def _quantile_task(kk, a, bf, koff, rshape, rstrides, q, absolute, out, bads):
    _, o0, o1, n, s = _task(kk, 1, rshape, rstrides)
    buf = np.empty((o1 - o0) * n, np.float32)
    bad = False
    w = 0
    for o in range(o0, o1):
        base = koff[kk] + _run_offset(o, rshape, rstrides)
        if s == 1:
            bad = _gather_seg(a[base:base + n], bf, absolute, buf, w, bad)
        else:
            bad = _gather_seg(_sview(a, base, n, s), bf, absolute, buf, w, bad)
        w += n
    bads[kk] = bad
    if bad:
        return
    m = buf.shape[0]
    for qi in range(q.shape[0]):
        h = (m - 1) * q[qi]
        i = int(np.floor(h))
        j = min(i + 1, m - 1)
        vi = np.float64(np.partition(buf, i)[i])
        vj = vi if j == i else np.float64(np.partition(buf, j)[j])
        out[qi, kk] = _interp(vi, vj, h, i)


@_pjit
def _quantile_k(a, bf, koff, rshape, rstrides, q, absolute, threads):
    k = koff.shape[0]
    out = np.empty((q.shape[0], k))
    bads = np.zeros(k, np.bool_)
    nw, chunk, nxt = _share(k, threads)
    for _ in numba.prange(nw):
        t0, t1 = _take(nxt, chunk, k)
        while t0 < t1:
            for kk in range(t0, t1):
                _quantile_task(kk, a, bf, koff, rshape, rstrides, q, absolute, out, bads)
            t0, t1 = _take(nxt, chunk, k)
    return out, bads


# ----------------------------------------------------------------------- histogram


@_jit
def _hist_seg(seg, bf, absolute, l, h, scale, bins, cnt, bad, slots):
    # Slots of a block are computed branch-free (vectorizes), then counted. Inside
    # [l, h] the product is >= 0, so truncation is floor; out-of-range values are
    # clamped first so it stays small. A NaN (reported, result discarded) lands in range.
    # Two details keep the vector loop lean: the block is a slice indexed from 0 (a
    # signed ``range(i0, e)`` index makes LLVM emit wraparound selects and scalar
    # gathers), and slots are stored minus one so every select stays int32 (numba
    # widens ``int32 + 1`` to int64); the +1 is folded into the counting address.
    n = seg.shape[0]
    nb = slots.shape[0]
    last = np.int32(bins - 1)
    over = np.int32(bins)
    under = np.int32(-1)
    for i0 in range(0, n, nb):
        blk = seg[i0:min(i0 + nb, n)]
        for j in range(blk.shape[0]):
            f = _val(blk[j], bf)
            bad |= not (abs(f) < _INF32)
            v = abs(np.float64(f)) if absolute else np.float64(f)
            c = v if v > l else l
            c = c if c < h else h
            b = np.int32((c - l) * scale)
            b = b if b < last else last
            slots[j] = under if v < l else (over if v > h else b)
        for j in range(blk.shape[0]):
            cnt[np.uint32(np.int64(slots[j]) + 1)] += 1  # unsigned: no wraparound check
    return bad


@_jit
def _hist_task(t, a, bf, koff, rshape, rstrides, splits, lo, hi, bins, absolute, part, bads,
               slots):
    k, o0, o1, n, s = _task(t, splits, rshape, rstrides)
    l = lo[k]
    h = hi[k]
    scale = bins / (h - l)
    cnt = part[t]
    bad = False
    for o in range(o0, o1):
        base = koff[k] + _run_offset(o, rshape, rstrides)
        if s == 1:
            bad = _hist_seg(a[base:base + n], bf, absolute, l, h, scale, bins, cnt, bad, slots)
        else:
            bad = _hist_seg(_sview(a, base, n, s), bf, absolute, l, h, scale, bins, cnt, bad,
                            slots)
    bads[t] = bad


@_pjit
def _histogram_k(a, bf, koff, rshape, rstrides, splits, lo, hi, bins, absolute, threads):
    nt = koff.shape[0] * splits
    part = np.zeros((nt, bins + 2), np.int64)
    bads = np.zeros(nt, np.bool_)
    nw, chunk, nxt = _share(nt, threads)
    for _ in numba.prange(nw):
        slots = np.empty(256, np.int32)
        t0, t1 = _take(nxt, chunk, nt)
        while t0 < t1:
            for t in range(t0, t1):
                _hist_task(t, a, bf, koff, rshape, rstrides, splits, lo, hi, bins, absolute,
                           part, bads, slots)
            t0, t1 = _take(nxt, chunk, nt)
    return part, bads


# ---------------------------------------------------------------- quantization error


@_jit
def _qerr_seg(xs, ys, bf, e, s2):
    for i in range(xs.shape[0]):
        a = np.float64(_val(xs[i], bf))
        b = np.float64(_val(ys[i], bf))
        d = a - b
        e += d * d
        s2 += a * a
    return e, s2


@_jit
def _qerr_task(t, xa, xk, xs, ya, yk, ys, bf, rshape, splits, sse, ssx):
    k, o0, o1, n, s = _task(t, splits, rshape, xs)
    sy = ys[-1] if rshape.shape[0] > 1 else ys[0]
    e = 0.0
    s2 = 0.0
    for o in range(o0, o1):
        bx = xk[k] + _run_offset(o, rshape, xs)
        by = yk[k] + _run_offset(o, rshape, ys)
        if s == 1 and sy == 1:
            e, s2 = _qerr_seg(xa[bx:bx + n], ya[by:by + n], bf, e, s2)
        else:
            e, s2 = _qerr_seg(_sview(xa, bx, n, s), _sview(ya, by, n, sy), bf, e, s2)
    sse[t] = e
    ssx[t] = s2


@_pjit
def _qerr_k(xa, xk, xs, ya, yk, ys, bf, rshape, splits, threads):
    nt = xk.shape[0] * splits
    sse = np.empty(nt)
    ssx = np.empty(nt)
    nw, chunk, nxt = _share(nt, threads)
    for _ in numba.prange(nw):
        t0, t1 = _take(nxt, chunk, nt)
        while t0 < t1:
            for t in range(t0, t1):
                _qerr_task(t, xa, xk, xs, ya, yk, ys, bf, rshape, splits, sse, ssx)
            t0, t1 = _take(nxt, chunk, nt)
    return sse, ssx


# -------------------------------------------------------------------- FakeQuantize


@_jit
def _fq_seg(xs, os, bf, cl, ch, isc, ish, osc, osh, flavor):
    if flavor == 1:
        for i in range(xs.shape[0]):
            x = _val(xs[i], bf)
            v = x if x < ch else ch
            v = v if v > cl else cl
            t = np.rint(_fma(v, isc, ish))
            os[i] = _fma(t, osc, osh)
    else:
        for i in range(xs.shape[0]):
            x = _val(xs[i], bf)
            v = x if x > cl else cl
            v = v if v < ch else ch
            t = np.rint(v * isc - ish)
            os[i] = _fma(t, osc, osh)


@_jit
def _fq_task(t, xa, xk, xs, of, ok_, os_, bf, rshape, splits, c, flavor):
    k, o0, o1, n, s = _task(t, splits, rshape, xs)
    so = os_[-1] if rshape.shape[0] > 1 else os_[0]
    ci = k if c.shape[1] != 1 else 0
    cl, ch, isc, ish, osc, osh = c[0, ci], c[1, ci], c[2, ci], c[3, ci], c[4, ci], c[5, ci]
    for o in range(o0, o1):
        bx = xk[k] + _run_offset(o, rshape, xs)
        bo = ok_[k] + _run_offset(o, rshape, os_)
        if s == 1 and so == 1:
            _fq_seg(xa[bx:bx + n], of[bo:bo + n], bf, cl, ch, isc, ish, osc, osh, flavor)
        else:
            _fq_seg(_sview(xa, bx, n, s), _sview(of, bo, n, so), bf, cl, ch, isc, ish, osc,
                    osh, flavor)


@_pjit
def _fq_k(xa, xk, xs, of, ok_, os_, bf, rshape, splits, c, flavor, threads):
    nt = xk.shape[0] * splits
    nw, chunk, nxt = _share(nt, threads)
    for _ in numba.prange(nw):
        t0, t1 = _take(nxt, chunk, nt)
        while t0 < t1:
            for t in range(t0, t1):
                _fq_task(t, xa, xk, xs, of, ok_, os_, bf, rshape, splits, c, flavor)
            t0, t1 = _take(nxt, chunk, nt)


@_jit
def _quant_seg(xs, os, bf, cl, ch, isc, ish, top, off, bad):
    for i in range(xs.shape[0]):
        x = _val(xs[i], bf)
        bad |= not (abs(x) < np.inf)
        v = x if x < ch else ch
        v = v if v > cl else cl
        t = np.rint(_fma(v, isc, ish))
        # max(t, 0) first: a NaN t (only from non-finite input, which is reported) -> 0.
        t = t if t > 0 else np.float32(0)
        t = t if t < top else top
        os[i] = np.int32(t + off)
    return bad


@_jit
def _quant_task(t, xa, xk, xs, of, ok_, os_, bf, rshape, splits, c, top, off, bads):
    k, o0, o1, n, s = _task(t, splits, rshape, xs)
    so = os_[-1] if rshape.shape[0] > 1 else os_[0]
    ci = k if c.shape[1] != 1 else 0
    cl, ch, isc, ish = c[0, ci], c[1, ci], c[2, ci], c[3, ci]
    bad = False
    for o in range(o0, o1):
        bx = xk[k] + _run_offset(o, rshape, xs)
        bo = ok_[k] + _run_offset(o, rshape, os_)
        if s == 1 and so == 1:
            bad = _quant_seg(xa[bx:bx + n], of[bo:bo + n], bf, cl, ch, isc, ish, top, off, bad)
        else:
            bad = _quant_seg(_sview(xa, bx, n, s), _sview(of, bo, n, so), bf, cl, ch, isc, ish,
                             top, off, bad)
    bads[t] = bad


@_pjit
def _quantize_k(xa, xk, xs, of, ok_, os_, bf, rshape, splits, c, top, off, threads):
    nt = xk.shape[0] * splits
    bads = np.zeros(nt, np.bool_)
    nw, chunk, nxt = _share(nt, threads)
    for _ in numba.prange(nw):
        t0, t1 = _take(nxt, chunk, nt)
        while t0 < t1:
            for t in range(t0, t1):
                _quant_task(t, xa, xk, xs, of, ok_, os_, bf, rshape, splits, c, top, off,
                            bads)
            t0, t1 = _take(nxt, chunk, nt)
    return bads


@_jit
def _deq_seg(qs, os, sc, zp):
    for i in range(qs.shape[0]):
        os[i] = np.float32(np.float32(qs[i]) - zp) * sc


@_jit
def _deq_task(t, qa, qk, qs, of, ok_, os_, rshape, splits, s, z):
    k, o0, o1, n, st = _task(t, splits, rshape, qs)
    so = os_[-1] if rshape.shape[0] > 1 else os_[0]
    ci = k if s.shape[0] != 1 else 0
    sc = s[ci]
    zp = z[ci]
    for o in range(o0, o1):
        bq = qk[k] + _run_offset(o, rshape, qs)
        bo = ok_[k] + _run_offset(o, rshape, os_)
        if st == 1 and so == 1:
            _deq_seg(qa[bq:bq + n], of[bo:bo + n], sc, zp)
        else:
            _deq_seg(_sview(qa, bq, n, st), _sview(of, bo, n, so), sc, zp)


@_pjit
def _deq_k(qa, qk, qs, of, ok_, os_, rshape, splits, s, z, threads):
    nt = qk.shape[0] * splits
    nw, chunk, nxt = _share(nt, threads)
    for _ in numba.prange(nw):
        t0, t1 = _take(nxt, chunk, nt)
        while t0 < t1:
            for t in range(t0, t1):
                _deq_task(t, qa, qk, qs, of, ok_, os_, rshape, splits, s, z)
            t0, t1 = _take(nxt, chunk, nt)


# ------------------------------------------------------------------------ wrappers


def minmax(x, axis=(), *, name="tensor"):
    x = np.asarray(x)
    kshape = tuple(x.shape[a] for a in axis)
    if x.size == 0:
        return _ref.minmax(x, axis, name=name)
    a, _, _, lim = _raw(x)
    p = plan([a], axis)
    sp = _splits(p.rshape, p.k)
    mn, mx, ab = _minmax_k(p.flats[0], p.koffs[0], p.rshape, p.rstrides[0], sp,
                            numba.get_num_threads())
    if ab.max() >= lim:
        raise NonFiniteError(name)
    dt = np.dtype(np.float32) if a.dtype == np.float32 else x.dtype
    mn = _unkey(mn.reshape(-1, sp).min(axis=1), dt)
    mx = _unkey(mx.reshape(-1, sp).max(axis=1), dt)
    return mn.reshape(kshape), mx.reshape(kshape)


def moments(x, axis=(), *, name="tensor"):
    x = np.asarray(x)
    kshape = tuple(x.shape[a] for a in axis)
    if x.size == 0:
        return _ref.moments(x, axis, name=name)
    a, bf, _, lim = _raw(x)
    p = plan([a], axis)
    sp = _splits(p.rshape, p.k)
    mn, mx, ab, s, q = _moments_k(p.flats[0], bf, p.koffs[0], p.rshape, p.rstrides[0], sp,
                                   numba.get_num_threads())
    if ab.max() >= lim:
        raise NonFiniteError(name)
    dt = np.dtype(np.float32) if a.dtype == np.float32 else x.dtype
    mn = _unkey(mn.reshape(-1, sp).min(axis=1), dt)
    mx = _unkey(mx.reshape(-1, sp).max(axis=1), dt)
    s = s.reshape(-1, sp).sum(axis=1)
    q = q.reshape(-1, sp).sum(axis=1)
    return (np.full(kshape, p.r, np.int64), mn.reshape(kshape), mx.reshape(kshape),
            s.reshape(kshape), q.reshape(kshape))


def _extreme_counts(r: int, q: np.ndarray) -> tuple[int, int] | None:
    """(m_lo, m_hi) if every rank pair lies within min(r/16, 4096) of an end, else None."""
    lim = min(r // 16, 4096)
    if lim < 1:
        return None
    m_lo = m_hi = 0
    for p in q:
        h = (r - 1) * float(p)
        i = int(np.floor(h))
        j = min(i + 1, r - 1)
        if j < lim:
            m_lo = max(m_lo, j + 1)
        elif i >= r - lim:
            m_hi = max(m_hi, r - i)
        else:
            return None
    return m_lo, m_hi


def quantile(x, q, axis=(), *, absolute=False, name="tensor"):
    x = np.asarray(x)
    q = np.asarray(q, np.float64).reshape(-1)
    kshape = tuple(x.shape[a] for a in axis)
    if x.size == 0:
        return _ref.quantile(x, q, axis, absolute=absolute, name=name)
    a, bf, _, _ = _raw(x)
    p = plan([a], axis)
    ext = _extreme_counts(p.r, q)
    if ext is not None:
        sp = _splits(p.rshape, p.k)
        lb, lc, hb, hc, bad = _keep_k(p.flats[0], bf, p.koffs[0], p.rshape, p.rstrides[0], sp,
                                      bool(absolute), ext[0], ext[1], numba.get_num_threads())
        if bad.any():
            raise NonFiniteError(name)
        out = _extreme_finish(lb, lc, hb, hc, p.k, sp, p.r, q, ext[0])
    else:
        out, bad = _quantile_k(p.flats[0], bf, p.koffs[0], p.rshape, p.rstrides[0], q,
                               bool(absolute), numba.get_num_threads())
        if bad.any():
            raise NonFiniteError(name)
    return out.reshape((q.size, *kshape))


def histogram(x, lo, hi, bins, axis=(), *, absolute=False, name="tensor"):
    x = np.asarray(x)
    kshape = tuple(x.shape[a] for a in axis)
    if x.size == 0:
        return np.zeros((*kshape, bins + 2), np.int64)
    a, bf, _, _ = _raw(x)
    p = plan([a], axis)
    sp = _splits(p.rshape, p.k)
    lo = np.ascontiguousarray(np.broadcast_to(np.asarray(lo, np.float64), kshape).reshape(-1))
    hi = np.ascontiguousarray(np.broadcast_to(np.asarray(hi, np.float64), kshape).reshape(-1))
    part, bad = _histogram_k(p.flats[0], bf, p.koffs[0], p.rshape, p.rstrides[0], sp, lo, hi,
                             int(bins), bool(absolute), numba.get_num_threads())
    if bad.any():
        raise NonFiniteError(name)
    out = part.reshape(-1, sp, bins + 2).sum(axis=1)
    return out.reshape((*kshape, bins + 2))


def quantization_error(x, y, axis=(), *, name="tensor"):
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != y.dtype:  # mixed precisions: compare in float32
        x, y = _ref._f32(x), _ref._f32(y)
    kshape = tuple(x.shape[a] for a in axis)
    if x.size == 0:
        return np.zeros(kshape), np.zeros(kshape)
    (xa, bf, _, _), (ya, _, _, _) = _raw(x), _raw(y)
    p = plan([xa, ya], axis)
    sp = _splits(p.rshape, p.k)
    sse, ssx = _qerr_k(p.flats[0], p.koffs[0], p.rstrides[0], p.flats[1], p.koffs[1],
                       p.rstrides[1], bf, p.rshape, sp, numba.get_num_threads())
    sse = sse.reshape(-1, sp).sum(axis=1)
    ssx = ssx.reshape(-1, sp).sum(axis=1)
    if not (np.isfinite(sse).all() and np.isfinite(ssx).all()):
        return _ref.quantization_error(x, y, axis, name=name)
    return sse.reshape(kshape), ssx.reshape(kshape)


def fake_quantize(x, input_low, input_high, output_low, output_high, levels, *,
                  flavor="snippets"):
    x = np.asarray(x)
    prep = range_constants(x.shape, (input_low, input_high, output_low, output_high), levels,
                           flavor)
    if prep is None or x.size == 0:
        return _ref.fake_quantize(x, input_low, input_high, output_low, output_high, levels,
                                  flavor=flavor)
    axis, c = prep
    a, bf, _, _ = _raw(x)
    out = np.empty(x.shape, np.float32)
    p = plan([a, out], axis)
    _fq_k(p.flats[0], p.koffs[0], p.rstrides[0], p.flats[1], p.koffs[1], p.rstrides[1], bf,
          p.rshape, _splits(p.rshape, p.k), c, 1 if flavor == "node" else 0,
          numba.get_num_threads())
    return out


def quantize(x, input_low, input_high, levels, axis=None, *, offset=0, dtype=np.int8,
             name="tensor"):
    x = np.asarray(x)
    if x.size == 0:
        return _ref.quantize(x, input_low, input_high, levels, axis, offset=offset, dtype=dtype)
    il = np.asarray(input_low, np.float32).reshape(-1)
    ih = np.asarray(input_high, np.float32).reshape(-1)
    il_, ih_, isc, ish, _, _ = _ref.fq_constants(il, ih, 0.0, 1.0, levels, "node")
    c = np.ascontiguousarray(np.stack(np.broadcast_arrays(il_, ih_, isc, ish)), np.float32)
    kept = (axis,) if axis is not None else ()
    if axis is None or c.shape[1] == 1:
        c = np.ascontiguousarray(c[:, :1])
    a, bf, _, _ = _raw(x)
    out = np.empty(x.shape, np.dtype(dtype))
    p = plan([a, out], kept)
    bad = _quantize_k(p.flats[0], p.koffs[0], p.rstrides[0], p.flats[1], p.koffs[1],
                      p.rstrides[1], bf, p.rshape, _splits(p.rshape, p.k), c,
                      np.float32(levels - 1), np.float32(offset), numba.get_num_threads())
    if bad.any():
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
    out = np.empty(q.shape, np.float32)
    p = plan([q, out], kept)
    _deq_k(p.flats[0], p.koffs[0], p.rstrides[0], p.flats[1], p.koffs[1], p.rstrides[1],
           p.rshape, _splits(p.rshape, p.k), s, z, numba.get_num_threads())
    return out


# ------------------------------------------------------------ INT8 pair saturation


@_pjit
def _pair_saturation(a, w, err_sq, saturated):
    rows, k = a.shape
    # per-column code bounds: weight rows no pair of which can leave int16 skip the rows
    amin = np.full(k, 255, np.int32)
    amax = np.zeros(k, np.int32)
    for p in range(rows):
        for j in range(k):
            amin[j] = min(amin[j], np.int32(a[p, j]))
            amax[j] = max(amax[j], np.int32(a[p, j]))
    for o in numba.prange(w.shape[0]):
        sq = 0.0
        cnt = 0
        possible = False
        for j in range(0, k, 2):
            top = 0
            bottom = 0
            for i in range(j, j + 2):
                lo = amin[i] * np.int32(w[o, i])
                hi = amax[i] * np.int32(w[o, i])
                top += max(lo, hi)
                bottom += min(lo, hi)
            if top > 32767 or bottom < -32768:
                possible = True
                break
        if not possible:
            err_sq[o] = 0.0
            saturated[o] = 0
            continue
        for p in range(rows):
            e = 0
            for j in range(0, k, 2):
                s = np.int32(a[p, j]) * np.int32(w[o, j]) + np.int32(a[p, j + 1]) * np.int32(w[o, j + 1])
                c = min(max(s, -32768), 32767)
                e += s - c
                cnt += s != c
            sq += float(e) * float(e)
        err_sq[o] = sq
        saturated[o] = cnt


def pair_saturation(a, w):
    a = np.ascontiguousarray(a, np.uint8)
    w = np.ascontiguousarray(w, np.int8)
    err_sq = np.zeros(w.shape[0], np.float64)
    saturated = np.zeros(w.shape[0], np.int64)
    if a.shape[0] and w.shape[0] and a.shape[1]:
        _pair_saturation(a, w, err_sq, saturated)
    return err_sq, saturated


# ------------------------------------------------------------------ weight compression
# One task per row (rows are independent); per group: min/max, the scale and zero point
# of reference.group_params, then the levels (true float32 division, np.rint = round
# half to even), packed two per byte when asked.

_EPS32 = np.float32(np.finfo(np.float32).eps)


@_jit
def _wc_params(mn, mx, bits, sym):
    if sym:
        half = np.float32(1 << (bits - 1))
        a = abs(mn)
        s = (a if a >= mx else -mx) / half
        if abs(s) < _EPS32:
            s = _EPS32
        return np.float32(s), np.float32(0.0), -half, half - np.float32(1.0)
    top = np.float32((1 << bits) - 1)
    lo = mn if mn < np.float32(0.0) else np.float32(0.0)
    hi = mx if mx > np.float32(0.0) else np.float32(0.0)
    s = np.float32((hi - lo) / top)
    if abs(s) < _EPS32:
        s = _EPS32
    z = -np.rint(np.float32(lo / s))
    z = np.float32(0.0) if z < 0 else (top if z > top else z)
    return s, np.float32(z), np.float32(0.0), top


@_jit
def _wc_minmax(a, base, n, bf):
    mn = np.float32(np.inf)
    mx = np.float32(-np.inf)
    nf = np.float32(0.0)
    for i in range(n):
        v = _val(a[base + i], bf)
        mn = min(mn, v)
        mx = max(mx, v)
        nf += v - v
    return mn, mx, nf == np.float32(0.0)


@_jit
def _wc_row(a, r, cols, bf, bits, sym, group, packed, q, scale, zp, lv):
    ng = cols // group
    ok = True
    for gi in range(ng):
        base = r * cols + gi * group
        mn, mx, fin = _wc_minmax(a, base, group, bf)
        if not fin:
            ok = False
            mn = np.float32(0.0)
            mx = np.float32(0.0)
        s, z, lo, hi = _wc_params(mn, mx, bits, sym)
        scale[r * ng + gi] = s
        if not sym:
            zp[r * ng + gi] = np.uint8(z)
        for i in range(group):
            t = np.rint(np.float32(_val(a[base + i], bf) / s) + z)
            t = lo if t < lo else (hi if t > hi else t)
            lv[gi * group + i] = np.int32(t)
    if packed:
        half = cols // 2
        for i in range(half):
            q[r * half + i] = np.uint8((lv[2 * i] & 15) | ((lv[2 * i + 1] & 15) << 4))
    else:
        for i in range(cols):
            q[r * cols + i] = np.uint8(lv[i] & 255)
    return ok


@_pjit
def _wc_k(a, rows, cols, bf, bits, sym, group, packed, q, scale, zp, threads):
    bad = np.zeros(rows, np.bool_)
    nw, chunk, nxt = _share(rows, threads)
    for _ in numba.prange(nw):
        lv = np.empty(cols, np.int32)
        t0, t1 = _take(nxt, chunk, rows)
        while t0 < t1:
            for t in range(t0, t1):
                bad[t] = not _wc_row(a, t, cols, bf, bits, sym, group, packed, q, scale, zp, lv)
            t0, t1 = _take(nxt, chunk, rows)
    return bad


@_jit
def _wc_err_row(a, r, cols, bf):
    base = r * cols
    mn, mx, fin = _wc_minmax(a, base, cols, bf)
    if not fin:
        return 0.0, False
    s, z, lo, hi = _wc_params(mn, mx, 8, False)
    acc = 0.0
    for i in range(cols):
        w = _val(a[base + i], bf)
        t = np.rint(np.float32(w / s) + z)
        t = lo if t < lo else (hi if t > hi else t)
        d = np.float32(np.float32(t - z) * s) - w
        acc += np.float64(d) * np.float64(d)
    return acc / cols, True


@_pjit
def _wc_err_k(a, rows, cols, bf, out, threads):
    bad = np.zeros(rows, np.bool_)
    nw, chunk, nxt = _share(rows, threads)
    for _ in numba.prange(nw):
        t0, t1 = _take(nxt, chunk, rows)
        while t0 < t1:
            for t in range(t0, t1):
                e, ok = _wc_err_row(a, t, cols, bf)
                out[t] = e
                bad[t] = not ok
            t0, t1 = _take(nxt, chunk, rows)
    return bad


def compress_groups(w, bits, sym, group, packed, *, name="tensor"):
    a, bf, _, _ = _raw(np.ascontiguousarray(w))
    r, c = a.shape
    q = np.empty((r, c // 2 if packed else c), np.uint8 if packed or not sym else np.int8)
    scale = np.empty((r, c // group), np.float32)
    zp = np.empty((r, c // group), np.uint8)
    if a.size:
        bad = _wc_k(a.reshape(-1), r, c, bf, int(bits), bool(sym), int(group), bool(packed),
                    q.reshape(-1).view(np.uint8), scale.reshape(-1), zp.reshape(-1),
                    numba.get_num_threads())
        if bad.any():
            raise NonFiniteError(name)
    return q, scale, None if sym else zp


def int8_asym_error(w, *, name="tensor"):
    a, bf, _, _ = _raw(np.ascontiguousarray(w))
    out = np.zeros(a.shape[0], np.float64)
    if a.size:
        bad = _wc_err_k(a.reshape(-1), a.shape[0], a.shape[1], bf, out, numba.get_num_threads())
        if bad.any():
            raise NonFiniteError(name)
    return out


pack_nibbles = _ref.pack_nibbles


# ------------------------------------------------------ data-aware weight compression
# awq_errors / group_output_error: see reference.py. Same float32 quantize-dequantize as
# _wc_params; the output error in float64 from the weight error.


@_jit
def _wc_deq(w, s, z, lo, hi):
    t = np.rint(np.float32(w / s) + z)
    t = lo if t < lo else (hi if t > hi else t)
    return np.float32(np.float32(t - z) * s)


@_pjit
def _awq_k(w, x, s, floor, alphas, bits, sym, out):
    rows, g = w.shape
    n = x.shape[1]
    for a in numba.prange(alphas.size):
        c = np.empty(g, np.float32)
        wc = np.empty(g, np.float32)
        y = np.empty(n, np.float64)
        for k in range(g):
            p = np.float32(s[k] ** alphas[a])
            c[k] = p if p > floor[k] else floor[k]
        acc = 0.0
        for o in range(rows):
            mn = np.float32(np.inf)
            mx = np.float32(-np.inf)
            for k in range(g):
                v = np.float32(w[o, k] * c[k])
                wc[k] = v
                mn = v if v < mn else mn
                mx = v if v > mx else mx
            sc, z, lo, hi = _wc_params(mn, mx, bits, sym)
            y[:] = 0.0
            for k in range(g):
                d = np.float32(w[o, k] - np.float32(_wc_deq(wc[k], sc, z, lo, hi) / c[k]))
                if d != 0:
                    dd = np.float64(d)
                    for j in range(n):
                        y[j] += dd * np.float64(x[k, j])
            for j in range(n):
                acc += abs(y[j])
        out[a] = acc / (rows * n)


@_pjit
def _goe_k(w, x, scale, zp, has_zp, bits, sym, out):
    rows, cols = w.shape
    groups = scale.shape[1]
    g = cols // groups
    n = x.shape[1]
    if sym:
        lo = np.float32(-(1 << (bits - 1)))
        hi = np.float32((1 << (bits - 1)) - 1)
    else:
        lo = np.float32(0)
        hi = np.float32((1 << bits) - 1)
    for o in numba.prange(rows):
        y = np.empty(n, np.float64)
        for gi in range(groups):
            sc = scale[o, gi]
            z = zp[o, gi] if has_zp else np.float32(0)
            y[:] = 0.0
            for k in range(gi * g, gi * g + g):
                d = np.float32(w[o, k] - _wc_deq(w[o, k], sc, z, lo, hi))
                if d != 0:
                    dd = np.float64(d)
                    for j in range(n):
                        y[j] += dd * np.float64(x[k, j])
            acc = 0.0
            for j in range(n):
                acc += y[j] * y[j]
            out[o, gi] = acc / n


def awq_errors(w, x, s, floor, alphas, bits, sym):
    out = np.empty(alphas.size, np.float64)
    _awq_k(w, x, s, floor, alphas, int(bits), bool(sym), out)
    return out


def group_output_error(w, x, scale, zero_point, bits, sym):
    out = np.empty(scale.shape, np.float64)
    zp = np.zeros((1, 1), np.float32) if zero_point is None else zero_point
    _goe_k(w, x, scale, zp, zero_point is not None, int(bits), bool(sym), out)
    return out
