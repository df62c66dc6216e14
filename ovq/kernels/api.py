"""High-level kernel API over one backend: validation, states, weight and bias rules.

:class:`Kernels` binds a backend module (``reference``, ``numba_impl`` or ``native``;
all expose the same primitive functions) and adds what is shared by all of them:
argument checks, the mergeable :class:`ReduceState`, :class:`Histogram` and
:class:`RunningAggregator`, the weight range rules of quantization-algorithms.md §5, and
the bias-correction shift of §7. Get one with :func:`ovq.kernels.get_kernels`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Sequence

import numpy as np

from ovq.errors import KernelError

Axis = int | Sequence[int] | None


def _axes(ndim: int, axis: Axis) -> tuple[int, ...]:
    if axis is None:
        return ()
    seq = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in seq:
        a = int(a)
        if not -ndim <= a < ndim:
            raise KernelError(f"axis {a} is out of range for a {ndim}-d tensor")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise KernelError(f"repeated axis in {axis!r}")
    return tuple(out)


def _as_float(x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype == np.float32 or x.dtype == np.float16 or x.dtype.name == "bfloat16":
        return x
    if x.dtype.kind in "fiub":
        return x.astype(np.float32)
    raise KernelError(f"unsupported dtype {x.dtype}; expected float32, float16 or bfloat16")


# ----------------------------------------------------------------------------- states


@dataclass(frozen=True)
class ReduceState:
    """Mergeable per-channel statistics: ``count``, ``min``, ``max``, ``sum``, ``sumsq``.

    ``a.merge(b)`` equals the state of the concatenated data (sums up to float64
    rounding). The empty state (count 0, min +Inf, max -Inf) is the merge identity.
    """

    count: np.ndarray
    min: np.ndarray
    max: np.ndarray
    sum: np.ndarray
    sumsq: np.ndarray

    def merge(self, other: ReduceState) -> ReduceState:
        if np.shape(self.count) != np.shape(other.count):
            raise KernelError("cannot merge reducer states of different shapes")
        return ReduceState(self.count + other.count, np.minimum(self.min, other.min),
                           np.maximum(self.max, other.max), self.sum + other.sum,
                           self.sumsq + other.sumsq)

    @property
    def absmax(self) -> np.ndarray:
        return np.maximum(-self.min, self.max)

    @property
    def mean(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sum / self.count

    @property
    def var(self) -> np.ndarray:
        """Population variance ``sumsq/n - mean²`` (clipped at 0)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.maximum(self.sumsq / self.count - self.mean**2, 0.0)


@dataclass
class Histogram:
    """Per-channel fixed-edge histogram accumulated across batches; mergeable.

    ``counts`` has shape ``(*channels, bins + 2)``: underflow, bins, overflow.
    """

    lo: np.ndarray
    hi: np.ndarray
    bins: int
    absolute: bool = False
    counts: np.ndarray | None = None

    def merge(self, other: Histogram) -> Histogram:
        if (self.bins != other.bins or self.absolute != other.absolute
                or not np.array_equal(self.lo, other.lo) or not np.array_equal(self.hi, other.hi)):
            raise KernelError("histograms with different edges cannot be merged")
        if self.counts is None or other.counts is None:
            counts = self.counts if other.counts is None else other.counts
        else:
            counts = self.counts + other.counts
        return Histogram(self.lo, self.hi, self.bins, self.absolute,
                         None if counts is None else counts.copy())

    def edges(self) -> np.ndarray:
        """Bin edges, shape ``(*channels, bins + 1)``."""
        t = np.linspace(0.0, 1.0, self.bins + 1)
        lo, hi = np.asarray(self.lo)[..., None], np.asarray(self.hi)[..., None]
        return lo + (hi - lo) * t

    def percentile(self, q: float) -> np.ndarray:
        """Value below which a fraction ``q`` of the counted data lies (linear in a bin).

        Under/overflow counts are placed at ``lo``/``hi``.
        """
        if self.counts is None:
            raise KernelError("empty histogram")
        c = self.counts.astype(np.float64)
        cum = np.cumsum(c, axis=-1)
        total = cum[..., -1:]
        target = q * total
        idx = np.argmax(cum >= target, axis=-1)[..., None]
        before = np.take_along_axis(cum, idx, -1) - np.take_along_axis(c, idx, -1)
        inbin = np.take_along_axis(c, idx, -1)
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(inbin > 0, (target - before) / inbin, 0.0)
        lo = np.broadcast_to(np.asarray(self.lo, np.float64), c.shape[:-1])[..., None]
        hi = np.broadcast_to(np.asarray(self.hi, np.float64), c.shape[:-1])[..., None]
        width = (hi - lo) / self.bins
        b = np.clip(idx - 1, 0, self.bins - 1)
        left = lo + b * width
        val = np.where(idx == 0, lo, np.where(idx == self.bins + 1, hi, left + frac * width))
        return val[..., 0]


@dataclass
class RunningAggregator:
    """Aggregates per-sample statistics over batches: mean, min, max, median.

    Keeps every per-sample value (they are small: one per sample and channel), so the
    median is exact; ``merge`` concatenates.
    """

    values: list[np.ndarray] = field(default_factory=list)

    def update(self, per_sample: np.ndarray) -> None:
        """Add values of shape ``(N, *channels)`` (N samples)."""
        self.values.append(np.asarray(per_sample, np.float64))

    def merge(self, other: RunningAggregator) -> RunningAggregator:
        return RunningAggregator(self.values + other.values)

    def _all(self) -> np.ndarray:
        if not self.values:
            raise KernelError("no samples aggregated")
        return np.concatenate(self.values, axis=0)

    def mean(self) -> np.ndarray:
        return self._all().mean(axis=0)

    def min(self) -> np.ndarray:
        return self._all().min(axis=0)

    def max(self) -> np.ndarray:
        return self._all().max(axis=0)

    def median(self) -> np.ndarray:
        return np.median(self._all(), axis=0)


@dataclass(frozen=True)
class QuantizedWeights:
    """Integer weights with their FakeQuantize range and affine parameters.

    ``data`` holds ``level + offset`` (``int4`` packed two per byte, low nibble first,
    when ``packed``); ``scale``/``zero_point`` dequantize ``data`` as
    ``(data - zero_point) * scale``; ``input_low``/``input_high`` are the FQ range.
    """

    data: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    input_low: np.ndarray
    input_high: np.ndarray
    levels: int
    axis: int | None
    shape: tuple[int, ...]
    packed: bool = False


def pack_int4(q: np.ndarray) -> np.ndarray:
    """Pack int8/uint8 values in [-8, 15] two per byte, low nibble first (C order)."""
    flat = np.asarray(q).reshape(-1).astype(np.uint8) & 0x0F
    if flat.size % 2:
        flat = np.concatenate([flat, np.zeros(1, np.uint8)])
    return (flat[0::2] | (flat[1::2] << 4)).astype(np.uint8)


def unpack_int4(packed: np.ndarray, count: int, signed: bool = True) -> np.ndarray:
    """Inverse of :func:`pack_int4`: ``count`` values as int8 (sign-extended) or uint8."""
    p = np.asarray(packed, np.uint8)
    out = np.empty(p.size * 2, np.uint8)
    out[0::2] = p & 0x0F
    out[1::2] = p >> 4
    out = out[:count]
    if signed:
        return ((out.astype(np.int16) ^ 8) - 8).astype(np.int8)
    return out


# --------------------------------------------------------------------------- kernels


class Kernels:
    """The kernel API over one backend (see module docstring)."""

    def __init__(self, backend: str, module: ModuleType) -> None:
        self.backend = backend
        self._m = module

    def __repr__(self) -> str:
        return f"Kernels(backend={self.backend!r})"

    # --------------------------------------------------------------- reducers
    def minmax(self, x, axis: Axis = None, *, name: str = "tensor"):
        """Per-tensor (``axis=None``) or per-channel ``(min, max)`` as float32.

        ``axis`` is the kept axis (or axes). Raises NonFiniteError / EmptyTensorError.
        """
        x = _as_float(x)
        return self._m.minmax(x, _axes(x.ndim, axis), name=name)

    def reduce_min(self, x, axis: Axis = None, *, name: str = "tensor"):
        return self.minmax(x, axis, name=name)[0]

    def reduce_max(self, x, axis: Axis = None, *, name: str = "tensor"):
        return self.minmax(x, axis, name=name)[1]

    def reduce_absmax(self, x, axis: Axis = None, *, name: str = "tensor"):
        mn, mx = self.minmax(x, axis, name=name)
        return np.maximum(-mn, mx)

    def reduce_state(self, x, axis: Axis = None, *, name: str = "tensor") -> ReduceState:
        """Mergeable :class:`ReduceState` (count, min, max, sum, sumsq) per kept index."""
        x = _as_float(x)
        return ReduceState(*self._m.moments(x, _axes(x.ndim, axis), name=name))

    def reduce_sum(self, x, axis: Axis = None, *, name: str = "tensor"):
        return self.reduce_state(x, axis, name=name).sum

    def reduce_sumsq(self, x, axis: Axis = None, *, name: str = "tensor"):
        return self.reduce_state(x, axis, name=name).sumsq

    def reduce_mean(self, x, axis: Axis = None, *, name: str = "tensor"):
        st = self.reduce_state(x, axis, name=name)
        if np.any(st.count == 0):
            from ovq.errors import EmptyTensorError

            raise EmptyTensorError(name, "mean over zero elements")
        return st.mean

    def per_sample(self, x, stat: str = "minmax", sample_axis: int = 0,
                   channel_axis: int | None = None, *, name: str = "tensor"):
        """Per-sample statistic: one value per sample (and channel).

        ``stat`` is ``min``, ``max``, ``absmax``, ``mean`` or ``minmax`` (a pair).
        Output shape ``(N,)`` or ``(N, C)``.
        """
        axis = (sample_axis,) if channel_axis is None else (sample_axis, channel_axis)
        if stat == "mean":
            return self.reduce_mean(x, axis, name=name)
        mn, mx = self.minmax(x, axis, name=name)
        return {"min": mn, "max": mx, "absmax": np.maximum(-mn, mx),
                "minmax": (mn, mx)}[stat]

    def quantile(self, x, q, axis: Axis = None, *, absolute: bool = False,
                 name: str = "tensor"):
        """Quantiles by selection (linear interpolation), shape ``(len(q), *kept)``.

        A scalar ``q`` drops the leading axis.
        """
        x = _as_float(x)
        qa = np.asarray(q, np.float64)
        if np.any(~((qa >= 0) & (qa <= 1))):
            raise KernelError("quantile probabilities must be in [0, 1]")
        out = self._m.quantile(x, qa.reshape(-1), _axes(x.ndim, axis), absolute=absolute,
                               name=name)
        return out[0] if qa.ndim == 0 else out

    def histogram(self, x, hist: Histogram, axis: Axis = None, *,
                  name: str = "tensor") -> Histogram:
        """Accumulate ``x`` into ``hist`` (in place; also returned)."""
        x = _as_float(x)
        ax = _axes(x.ndim, axis)
        kshape = tuple(x.shape[a] for a in ax)
        lo = np.broadcast_to(np.asarray(hist.lo, np.float64), kshape)
        hi = np.broadcast_to(np.asarray(hist.hi, np.float64), kshape)
        if np.any(~(hi > lo)):
            raise KernelError("histogram needs hi > lo in every channel")
        if hist.bins < 1:
            raise KernelError("histogram needs at least one bin")
        c = self._m.histogram(x, lo, hi, int(hist.bins), ax, absolute=hist.absolute, name=name)
        hist.counts = c if hist.counts is None else hist.counts + c
        return hist

    # ------------------------------------------------------------ quantization
    def fake_quantize(self, x, input_low, input_high, output_low, output_high, levels: int,
                      *, flavor: str = "snippets"):
        """FakeQuantize-1 as OpenVINO's CPU plugin computes it at f32 (bit-exact).

        ``flavor="snippets"`` is what a standalone FQ compiles to; ``"node"`` is the CPU
        FakeQuantize node (e.g. with snippets disabled). See reference.fake_quantize.
        """
        if flavor not in ("snippets", "node"):
            raise KernelError(f"unknown FakeQuantize flavor {flavor!r}")
        if not 2 <= int(levels) <= 65536:
            raise KernelError(f"levels must be in [2, 65536], got {levels}")
        return self._m.fake_quantize(_as_float(x), input_low, input_high, output_low,
                                     output_high, int(levels), flavor=flavor)

    def weight_ranges(self, w, levels: int = 255, mode: str = "symmetric", axis: int | None = 0,
                      *, signed: bool | None = True, zero_filter: bool = True,
                      half_range: bool = False, tune: bool = True, name: str = "weights"):
        """FakeQuantize ``(input_low, input_high)`` for weights (quantization-algorithms §5).

        * ``symmetric``: ``h = absmax`` (with ``zero_filter`` per channel:
          ``h = max(h, max(8e-5, 0.01 * max_c h))``). Signed, odd ``levels`` (narrow):
          ``[-h, h]``; signed, even levels: ``[-h * L / (L - 2), h]``; unsigned
          (``signed=False``, or ``None`` and all minima >= 0): ``[0, h]``.
        * ``asymmetric``: ``[min, max]``; widen both ends by 8e-4 if ``hi - lo <= 8e-4``;
          include 0; with ``tune`` expand so 0 is exactly a level (keep the wider of
          the two candidate ranges).
        * ``half_range`` (overflow fix): bounds ``× (L - 1) / ((L + 1) // 2 - 1)``
          (×2 for 255 levels), i.e. 7-bit effective weights.

        Returns:
            ``(input_low, input_high)`` float32 arrays of shape ``(C,)`` (``()`` if
            ``axis`` is None).
        """
        mn, mx = (np.asarray(v, np.float64) for v in self.minmax(w, axis, name=name))
        L = int(levels)
        if mode == "symmetric":
            h = np.maximum(-mn, mx)
            if zero_filter and h.ndim:
                h = np.maximum(h, max(8e-5, 0.01 * float(h.max(initial=0.0))))
            elif zero_filter:
                h = np.maximum(h, 8e-5)
            is_signed = bool(np.any(mn < 0)) if signed is None else signed
            if not is_signed:
                lo, hi = np.zeros_like(h), h
            elif L % 2:
                lo, hi = -h, h
            else:
                lo, hi = -h * L / (L - 2), h
        elif mode == "asymmetric":
            lo, hi = mn.copy(), mx.copy()
            small = hi - lo <= 8e-4
            lo, hi = np.where(small, lo - 8e-4, lo), np.where(small, hi + 8e-4, hi)
            lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
            if tune:
                lo, hi = tune_range(lo, hi, L)
        else:
            raise KernelError(f"unknown mode {mode!r}; use symmetric or asymmetric")
        if half_range:
            f = (L - 1) / ((L + 1) // 2 - 1)
            lo, hi = lo * f, hi * f
        return np.asarray(lo, np.float32), np.asarray(hi, np.float32)

    def quantize_weights(self, w, levels: int = 255, mode: str = "symmetric",
                         axis: int | None = 0, **range_options) -> QuantizedWeights:
        """Per-channel (``axis``) or per-tensor integer weights with scale/zero-point.

        Storage: signed grids (``input_low < 0`` everywhere) store ``level - L // 2``
        (255 → int8 [-127, 127], 16 → int4 [-8, 7], 65535 → int16); unsigned grids store
        the level (uint8 / uint16 / uint4). ``levels <= 16`` packs int4 (low nibble first).
        ``scale = (ih - il) / (L - 1)``, ``zero_point = -il / scale + offset`` in float.
        """
        w = _as_float(w)
        L = int(levels)
        il, ih = self.weight_ranges(w, L, mode, axis, **range_options)
        signed = bool(np.all(il < 0))
        offset = -(L // 2) if signed else 0
        if L <= 256:
            dtype = np.int8 if signed else np.uint8
        elif L <= 65536:
            dtype = np.int16 if signed else np.uint16
        else:
            raise KernelError("levels must be <= 65536")
        ax = None if axis is None else _axes(w.ndim, axis)[0]
        data = self._m.quantize(w, il, ih, L, ax, offset=offset, dtype=dtype, name="weights")
        scale = ((ih.astype(np.float64) - il) / (L - 1)).astype(np.float32)
        zp = (np.rint(-il.astype(np.float64) / scale) + offset).astype(np.float32)
        packed = L <= 16
        if packed:
            data = pack_int4(data)
        return QuantizedWeights(data, scale, zp, il, ih, L, ax, tuple(w.shape), packed)

    def dequantize(self, q, scale, zero_point, axis: int | None = None):
        """``float32(q - zero_point) * scale`` (per channel along ``axis``)."""
        q = np.asarray(q)
        ax = None if axis is None else _axes(q.ndim, axis)[0]
        return self._m.dequantize(q, scale, zero_point, ax)

    def dequantize_weights(self, qw: QuantizedWeights):
        data = qw.data
        if qw.packed:
            data = unpack_int4(data, int(np.prod(qw.shape)), signed=bool(np.all(qw.input_low < 0)))
        return self.dequantize(data.reshape(qw.shape), qw.scale, qw.zero_point, qw.axis)

    def quantization_error(self, x, y, axis: Axis = None, *, name: str = "tensor"):
        """Per-channel ``(mse, sqnr_db)``; SQNR = 10·log10(Σx² / Σ(x - y)²), +Inf if exact."""
        x, y = _as_float(x), _as_float(y)
        if x.shape != y.shape:
            raise KernelError(f"shape mismatch {x.shape} vs {y.shape}")
        ax = _axes(x.ndim, axis)
        sse, ssx = self._m.quantization_error(x, y, ax, name=name)
        n = max(1, x.size // max(1, int(np.prod([x.shape[a] for a in ax], dtype=np.int64))))
        with np.errstate(divide="ignore", invalid="ignore"):
            sqnr = np.where(sse == 0, np.inf, 10.0 * np.log10(ssx / sse))
        return sse / n, sqnr

    # ---------------------------------------------------------- bias correction
    def bias_shift(self, fp_out, q_out, bias, axis: int = 1, *, threshold: float = 2.0,
                   name: str = "output"):
        """FastBiasCorrection shift (quantization-algorithms.md §7).

        ``shift = mean_c(fp_out) - mean_c(q_out)`` per channel ``axis`` over all other
        axes (samples and spatial). The shift is applied only if
        ``max |shift / bias| < threshold`` (2.0 fast, 1000 full BiasCorrection); a zero
        bias element makes the ratio infinite, so the layer is skipped.

        Returns:
            ``(shift float32 (C,), apply: bool)``.
        """
        fp = self.reduce_state(fp_out, axis, name=name)
        qs = self.reduce_state(q_out, axis, name=name + " (quantized)")
        shift = (fp.mean - qs.mean).astype(np.float32)
        b = np.asarray(bias, np.float64).reshape(-1)
        if b.size != shift.size:
            raise KernelError(f"bias has {b.size} elements, output has {shift.size} channels")
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.abs(shift / b)
        ratio = np.where(np.isnan(ratio), np.inf, ratio)  # 0/0: zero bias is never corrected
        return shift, bool(ratio.size == 0 or ratio.max() < threshold)


def tune_range(lo: np.ndarray, hi: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Expand ``[lo, hi]`` (containing 0) so 0 is exactly a level; keep the wider option.

    ``L = levels - 1``; ``qz = round(-lo * L / (hi - lo))``; A keeps ``hi``:
    ``lo' = qz * hi / (qz - L)``; B keeps ``lo``: ``hi' = (qz - L) * lo / qz``.
    """
    lo = np.asarray(lo, np.float64)
    hi = np.asarray(hi, np.float64)
    L = levels - 1
    qz = np.rint(-lo * L / (hi - lo))
    with np.errstate(divide="ignore", invalid="ignore"):
        lo_a = np.where(qz != L, qz * hi / (qz - L), -np.inf)
        hi_b = np.where(qz != 0, (qz - L) * lo / qz, np.inf)
    wid_a = hi - lo_a
    wid_b = hi_b - lo
    use_a = np.isfinite(lo_a) & (~np.isfinite(hi_b) | (wid_a >= wid_b))
    return np.where(use_a, lo_a, lo), np.where(use_a, hi, hi_b)
