"""High-level kernel API over one backend: validation and mergeable states.

:class:`Kernels` binds a backend module (``reference``, ``numba_impl`` or ``native``;
all expose the same primitive functions) and adds what is shared by all of them:
argument checks, the mergeable :class:`ReduceState` and the per-channel
:class:`Histogram`. Range and bias rules belong to the quantization algorithms
(:mod:`ovq.quantization.ranges`, :mod:`ovq.quantization.bias_correction`), not to the
kernels. Get one with :func:`ovq.kernels.get_kernels`.
"""

from __future__ import annotations

from dataclasses import dataclass
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

    def edges(self) -> np.ndarray:
        """Bin edges, shape ``(*channels, bins + 1)``."""
        t = np.linspace(0.0, 1.0, self.bins + 1)
        lo, hi = np.asarray(self.lo)[..., None], np.asarray(self.hi)[..., None]
        return lo + (hi - lo) * t

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

    def reduce_state(self, x, axis: Axis = None, *, name: str = "tensor") -> ReduceState:
        """Mergeable :class:`ReduceState` (count, min, max, sum, sumsq) per kept index."""
        x = _as_float(x)
        return ReduceState(*self._m.moments(x, _axes(x.ndim, axis), name=name))

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

    def quantize(self, x, input_low, input_high, levels: int, axis: int | None = None, *,
                 offset: int = 0, dtype=np.int8, name: str = "tensor"):
        """Integer level of each value of ``x`` on the FakeQuantize grid ``[input_low,
        input_high]`` (as the CPU FakeQuantize node rounds), plus ``offset``, as ``dtype``.

        ``input_low``/``input_high`` are scalars or 1-D arrays along ``axis``.
        """
        if not 2 <= int(levels) <= 65536:
            raise KernelError(f"levels must be in [2, 65536], got {levels}")
        x = _as_float(x)
        ax = None if axis is None else _axes(x.ndim, axis)[0]
        return self._m.quantize(x, input_low, input_high, int(levels), ax, offset=offset, dtype=dtype, name=name)

    def dequantize(self, q, scale, zero_point, axis: int | None = None):
        """``float32(q - zero_point) * scale`` (per channel along ``axis``)."""
        q = np.asarray(q)
        ax = None if axis is None else _axes(q.ndim, axis)[0]
        return self._m.dequantize(q, scale, zero_point, ax)

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

    # --------------------------------------------------------------- saturation
    def pair_saturation(self, a, w):
        """INT8 pair saturation of ``a @ w.T`` on x86 without VNNI (see
        :func:`ovq.kernels.reference.pair_saturation`): per row of ``w``, the sum over
        rows of ``a`` of the squared error and the number of saturating pairs.

        ``a``: rows × K uint8 activation codes; ``w``: outs × K int8 weight codes; K even.
        """
        a, w = np.asarray(a), np.asarray(w)
        if a.ndim != 2 or w.ndim != 2:
            raise KernelError(f"pair_saturation needs 2-D operands, got {a.ndim}-D and {w.ndim}-D")
        if a.dtype != np.uint8 or w.dtype != np.int8:
            raise KernelError(f"pair_saturation needs uint8 activations and int8 weights, got {a.dtype} and {w.dtype}")
        if a.shape[1] != w.shape[1]:
            raise KernelError(f"pair_saturation: {a.shape[1]} activation columns vs {w.shape[1]} weight columns")
        if a.shape[1] % 2:
            raise KernelError("pair_saturation needs an even number of columns (pad with a zero column)")
        return self._m.pair_saturation(a, w)


    # ------------------------------------------------------- weight compression
    def compress_groups(self, w, bits: int, *, sym: bool, group_size: int = -1, pack: bool = True,
                        name: str = "tensor"):
        """Weight-only integer quantization of the rows of a 2-D weight ``(R, C)``.

        Each row is cut into groups of ``group_size`` columns (``-1``: the whole row) and
        each group gets a float32 scale (and, asym, a zero point): see
        :func:`ovq.kernels.reference.compress_groups`. ``bits`` is 4 or 8.

        Returns:
            ``(q, scale, zero_point)``: ``q`` int8 (sym) / uint8 (asym) ``(R, C)``, or for
            4 bits with ``pack`` and an even ``C`` the packed ``(R, C // 2)`` uint8 bytes
            (low nibble first); ``scale`` float32 and ``zero_point`` uint8 (or ``None``)
            of shape ``(R, C // group_size)``.

        Raises:
            KernelError: not 2-D, ``bits`` not 4/8, a group size not dividing ``C``.
            NonFiniteError: a NaN or ±Inf weight.
        """
        w = _as_float(w)
        if w.ndim != 2:
            raise KernelError(f"{name}: compress_groups needs a 2-D weight, got shape {w.shape}")
        if bits not in (4, 8):
            raise KernelError(f"{name}: bits must be 4 or 8, got {bits}")
        cols = w.shape[1]
        group = cols if group_size in (-1, None) else int(group_size)
        if group < 1 or cols == 0 or cols % group:
            raise KernelError(f"{name}: group size {group_size} does not divide the {cols} columns")
        packed = bool(pack) and bits == 4 and cols % 2 == 0
        q, s, zp = self._m.compress_groups(np.ascontiguousarray(w), int(bits), bool(sym), group, packed,
                                           name=name)
        return q, s, zp

    def pack_nibbles(self, q):
        """Two 4-bit values per byte, low nibble first (OpenVINO's u4/i4 order)."""
        q = np.asarray(q)
        if q.dtype not in (np.int8, np.uint8):
            raise KernelError(f"pack_nibbles needs int8 or uint8 levels, got {q.dtype}")
        return self._m.pack_nibbles(q)

    def int8_asym_error(self, w, *, name: str = "tensor"):
        """Per-row MSE of per-row INT8_ASYM quantization of a 2-D weight (float64 ``(R,)``)."""
        w = _as_float(w)
        if w.ndim != 2 or w.shape[1] == 0:
            raise KernelError(f"{name}: int8_asym_error needs a non-empty 2-D weight, got shape {w.shape}")
        return self._m.int8_asym_error(np.ascontiguousarray(w), name=name)

    # ------------------------------------------ data-aware weight compression
    def awq_errors(self, w, x, s, alphas, *, bits: int, sym: bool, floor=None, name: str = "tensor"):
        """AWQ's grid-search errors of one group (see :func:`ovq.kernels.reference.awq_errors`).

        ``w`` ``(O, g)``, ``x`` ``(g, n)``, ``s`` and ``floor`` ``(g,)``, ``alphas`` ``(A,)``;
        returns float64 ``(A,)``: for each alpha, the mean absolute MatMul output error
        of the group quantized per row after scaling its channels by ``max(s^alpha, floor)``.

        Raises:
            KernelError: shapes that do not match, ``bits`` not 4 or 8.
        """
        w = np.ascontiguousarray(w, np.float32)
        x = np.ascontiguousarray(x, np.float32)
        s = np.ascontiguousarray(s, np.float32).reshape(-1)
        floor = np.zeros_like(s) if floor is None else np.ascontiguousarray(floor, np.float32).reshape(-1)
        alphas = np.ascontiguousarray(alphas, np.float32).reshape(-1)
        if w.ndim != 2 or x.ndim != 2 or w.shape[1] != x.shape[0] or s.size != w.shape[1] or floor.size != s.size:
            raise KernelError(f"{name}: awq_errors needs w (O, g), x (g, n), s and floor (g,); got "
                              f"{w.shape}, {x.shape}, {s.shape}, {floor.shape}")
        if bits not in (4, 8):
            raise KernelError(f"{name}: bits must be 4 or 8, got {bits}")
        if w.size == 0 or x.shape[1] == 0:
            raise KernelError(f"{name}: awq_errors needs a non-empty weight and at least one sample")
        return self._m.awq_errors(w, x, s, floor, alphas, int(bits), bool(sym))

    def group_output_error(self, w, x, scale, zero_point, *, bits: int, sym: bool, name: str = "tensor"):
        """Per-row, per-group MatMul output MSE of ``w`` quantized with the given scales
        (see :func:`ovq.kernels.reference.group_output_error`); float64 ``(O, G)``.

        Raises:
            KernelError: shapes that do not match, ``bits`` not 4 or 8.
        """
        w = np.ascontiguousarray(w, np.float32)
        x = np.ascontiguousarray(x, np.float32)
        scale = np.ascontiguousarray(scale, np.float32)
        zp = None if zero_point is None else np.ascontiguousarray(zero_point, np.float32)
        if w.ndim != 2 or x.ndim != 2 or w.shape[1] != x.shape[0] or scale.ndim != 2 or scale.shape[0] != w.shape[0]:
            raise KernelError(f"{name}: group_output_error needs w (O, C), x (C, n), scale (O, G); got "
                              f"{w.shape}, {x.shape}, {scale.shape}")
        if scale.shape[1] < 1 or w.shape[1] % scale.shape[1] or (zp is not None and zp.shape != scale.shape):
            raise KernelError(f"{name}: {scale.shape[1]} groups do not divide {w.shape[1]} columns, or the zero "
                              "point does not match the scale")
        if bits not in (4, 8):
            raise KernelError(f"{name}: bits must be 4 or 8, got {bits}")
        if x.shape[1] == 0:
            raise KernelError(f"{name}: group_output_error needs at least one sample")
        return self._m.group_output_error(w, x, scale, zp, int(bits), bool(sym))
