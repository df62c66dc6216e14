"""FakeQuantize ranges: every range rule of ovq, and the one place ranges are written.

Rules (POT's and NNCF's DefaultQuantization; each has one named constant or function here):

* **Narrow asymmetric ranges** are widened by :data:`NARROW_RANGE_WIDENING` at both
  ends when ``high - low <= NARROW_RANGE_WIDENING``, then made to contain 0.
* **Zero is a level** of an asymmetric range: :func:`tune_range` expands the range so
  the zero point is an integer (keeping the wider of the two candidates).
* **Zero filter** (symmetric weights and per-channel activations): a channel's
  abs-max is raised to ``max(ZERO_FILTER_FLOOR, ZERO_FILTER_RATIO · max_c)``, so a
  dead channel does not get a near-zero scale (the CPU plugin's INT8 kernels lose the
  whole tensor on one).
* **Signed symmetric bounds**: activations ``[h · level_low / level_high, h]`` (POT);
  weights ``[-h, h]`` on an odd grid and ``[-h · L / (L - 2), h]`` on an even one.
* **Half range** (overflow fix): 8-bit weight bounds scaled by
  :func:`half_range_factor` (×2 for 255 levels), i.e. 7-bit effective weights.

Activation estimators (``activations_range``):

* ``"mean_minmax"`` (default; POT and NNCF): asymmetric ``[mean of per-sample min,
  mean of per-sample max]``; symmetric ``high = mean of per-sample abs-max``, signed
  when the mean of per-sample minima is below zero (NNCF's rule: a tensor that only
  dips below zero in a few samples keeps the unsigned grid, which CPU INT8 kernels
  without VNNI run without the signed-input penalty);
* ``"minmax"``: the global min and max over all samples;
* ``"quantile"``: like ``mean_minmax`` on the per-sample ``p`` and ``1 - p`` quantiles
  (outlier probability ``p``, default 1e-4), the sign from the mean low quantile.

Per-channel activation quantizers (e.g. depthwise convolution inputs on targets with
``q8_a_ch``) use the global min and max of every channel over all samples (abs-max for
symmetric), with the sign decided for the whole tensor and the zero filter.
Members of a unified-scale group (Concat inputs, recurrent port pairs) get one range
from the min of their lows and the max of their highs.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ovq.errors import GraphError, OptionError
from ovq.ir.graph import Graph
from ovq.quantization.consts import set_const_input
from ovq.quantization.records import QConfig, Quantizer
from ovq.quantization.statistics import TensorStats

ESTIMATORS = ("mean_minmax", "minmax", "quantile")

NARROW_RANGE_WIDENING = 8e-4
"""An asymmetric range at most this wide is widened by this much at both ends."""
ZERO_FILTER_FLOOR = 8e-5
"""The smallest abs-max a symmetric weight or per-channel activation channel gets."""
ZERO_FILTER_RATIO = 0.01
"""A channel's abs-max is at least this fraction of the tensor's largest one."""
SYMMETRIC_FLOOR = 1e-8
"""The smallest ``high`` of a symmetric activation range."""


# ------------------------------------------------------------------------------ rules
def tune_range(lo: np.ndarray, hi: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Expand ``[lo, hi]`` (containing 0) so 0 is exactly a level; keep the wider option.

    ``L = levels - 1``; ``qz = round(-lo * L / (hi - lo))``; A keeps ``hi``:
    ``lo' = qz * hi / (qz - L)``; B keeps ``lo``: ``hi' = (qz - L) * lo / qz``.
    """
    lo = np.asarray(lo, np.float64)
    hi = np.asarray(hi, np.float64)
    L = levels - 1
    qz = np.rint(-lo * L / (hi - lo))
    with np.errstate(invalid="ignore", divide="ignore"):
        lo_a = np.where(qz != L, qz * hi / (qz - L), -np.inf)
        hi_b = np.where(qz != 0, (qz - L) * lo / qz, np.inf)
    wid_a = hi - lo_a
    wid_b = hi_b - lo
    use_a = np.isfinite(lo_a) & (~np.isfinite(hi_b) | (wid_a >= wid_b))
    return np.where(use_a, lo_a, lo), np.where(use_a, hi, hi_b)


def asymmetric_bounds(lo: Any, hi: Any, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """An asymmetric range from observed ``[lo, hi]`` (float64, scalars or arrays):
    narrow ranges widened, 0 included, 0 made a level."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    narrow = hi - lo <= NARROW_RANGE_WIDENING
    lo = np.where(narrow, lo - NARROW_RANGE_WIDENING, lo)
    hi = np.where(narrow, hi + NARROW_RANGE_WIDENING, hi)
    return tune_range(np.minimum(lo, 0.0), np.maximum(hi, 0.0), levels)


def zero_filter(absmax: np.ndarray) -> np.ndarray:
    """Per-channel abs-max raised to ``max(ZERO_FILTER_FLOOR, ZERO_FILTER_RATIO · max)``
    (a 0-d abs-max only to the floor)."""
    if absmax.ndim:
        return np.maximum(absmax, max(ZERO_FILTER_FLOOR, ZERO_FILTER_RATIO * float(absmax.max(initial=0.0))))
    return np.maximum(absmax, ZERO_FILTER_FLOOR)


def half_range_factor(levels: int) -> float:
    """The factor the overflow fix scales 8-bit weight bounds by (2.0 for 255 levels):
    half of the grid is used, i.e. 7-bit effective weights."""
    return (levels - 1) / ((levels + 1) // 2 - 1)


def activation_range(mn: float, mx: float, config: QConfig) -> tuple[float, float]:
    """FQ range of a per-tensor activation with observed ``[mn, mx]`` on the grid of ``config``."""
    if config.symmetric:
        h = max(abs(mn), abs(mx), SYMMETRIC_FLOOR)
        if mn >= 0:
            return 0.0, h
        return h * config.level_low / config.level_high, h
    # Python floats, not asymmetric_bounds' numpy: min(-0.0, 0.0) keeps -0.0 where
    # np.minimum gives 0.0, and the sign of a zero bound reaches the written model.
    lo, hi = float(mn), float(mx)
    if hi - lo <= NARROW_RANGE_WIDENING:
        lo, hi = lo - NARROW_RANGE_WIDENING, hi + NARROW_RANGE_WIDENING
    tl, th = tune_range(np.array(min(lo, 0.0)), np.array(max(hi, 0.0)), config.levels)
    return float(tl), float(th)


def weight_range(w: np.ndarray, axes: tuple[int, ...], config: QConfig,
                 per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Weight FQ range (float32, shaped to broadcast against ``w``), per output channel
    (``axes``) or per tensor.

    Symmetric: ``h = absmax`` after the zero filter, signed bounds of the weight grid.
    Asymmetric: ``[min, max]`` through :func:`asymmetric_bounds`.
    """
    from ovq.kernels import get_kernels

    k = get_kernels()
    shape = [1] * w.ndim
    if per_channel and axes:
        rest = [a for a in range(w.ndim) if a not in axes]
        moved = np.transpose(w, (*axes, *rest))
        channels = int(np.prod([w.shape[a] for a in axes]))
        flat = np.ascontiguousarray(moved.reshape(channels, -1))
        mn, mx = (np.asarray(v, np.float64) for v in k.minmax(flat, 0, name="weights"))
        for a in axes:
            shape[a] = w.shape[a]
    else:
        mn, mx = (np.asarray(v, np.float64) for v in k.minmax(np.ascontiguousarray(w.reshape(-1)), None,
                                                                name="weights"))
    levels = config.levels
    if config.symmetric:
        h = zero_filter(np.maximum(-mn, mx))
        lo, hi = (-h, h) if levels % 2 else (-h * levels / (levels - 2), h)
    else:
        lo, hi = asymmetric_bounds(mn, mx, levels)
    return np.asarray(lo, np.float32).reshape(shape), np.asarray(hi, np.float32).reshape(shape)


# ------------------------------------------------------------------ from statistics
@dataclass(frozen=True)
class ObservedRange:
    """The statistic one FQ's range is computed from."""

    low: float  # asymmetric: low statistic; symmetric: unused (0)
    high: float  # asymmetric: high statistic; symmetric: abs-max statistic
    signed: bool  # data went below zero


def check_estimator(estimator: str) -> None:
    """Raise :class:`OptionError` unless ``estimator`` is one of :data:`ESTIMATORS`."""
    if estimator not in ESTIMATORS:
        raise OptionError(f"unknown activations_range {estimator!r}; choose one of {', '.join(ESTIMATORS)}")


def observed_range(stats: TensorStats, *, mode: str, estimator: str = "mean_minmax") -> ObservedRange:
    """Reduce per-sample statistics to the numbers the FQ range is computed from."""
    check_estimator(estimator)
    mins, maxs = stats.mins, stats.maxs
    if estimator == "quantile":
        lows, highs = stats.q_low, stats.q_high
    else:
        lows, highs = mins, maxs
    if estimator == "minmax":
        lo, hi = float(lows.min()), float(highs.max())
        absmax = max(abs(lo), abs(hi))
    else:
        lo, hi = float(lows.mean()), float(highs.mean())
        absmax = float(np.maximum(np.abs(lows), np.abs(highs)).mean())
    signed = lo < 0  # the low statistic, as NNCF: a small negative tail in some samples stays unsigned
    if mode == "symmetric":
        return ObservedRange(0.0, absmax, signed)
    return ObservedRange(lo, hi, signed)


def per_channel_fq_range(stats: TensorStats, config: QConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel FakeQuantize ``(low, high)`` arrays of shape ``(C,)``."""
    mn, mx = stats.channel_min, stats.channel_max
    if config.symmetric:
        h = zero_filter(np.maximum(np.abs(mn), np.abs(mx)))
        if mn.min() >= 0:
            return np.zeros_like(h), h
        return h * config.level_low / config.level_high, h
    return asymmetric_bounds(mn.copy(), mx.copy(), config.levels)


def include(obs: ObservedRange, interval: tuple[float, float] | None, mode: str, *,
            signed: bool = False) -> ObservedRange:
    """Widen ``obs`` to cover ``interval`` (a quantizer's ``range_include``); with
    ``signed`` (a recurrent X/H range that also carries the hidden state, whose values are
    as often negative as positive) make it signed: symmetric ranges use the signed grid,
    asymmetric ones reach as far below zero as above."""
    if signed:
        if mode == "symmetric":
            obs = ObservedRange(obs.low, obs.high, True)
        else:
            reach = max(abs(obs.low), abs(obs.high))
            obs = ObservedRange(min(obs.low, -reach), max(obs.high, reach), True)
    if not interval:
        return obs
    lo, hi = float(interval[0]), float(interval[1])
    if mode == "symmetric":
        return ObservedRange(0.0, max(obs.high, abs(lo), abs(hi)), obs.signed or lo < 0)
    return ObservedRange(min(obs.low, lo), max(obs.high, hi), obs.signed or lo < 0)


def fq_range(obs: ObservedRange, config: QConfig) -> tuple[float, float]:
    """FakeQuantize ``(low, high)`` on the grid of ``config`` for an observed range."""
    if config.symmetric:
        h = obs.high
        return activation_range(-h if obs.signed else 0.0, h, config)
    return activation_range(obs.low, obs.high, config)


def unify(ranges: Mapping[Hashable, ObservedRange], groups: Mapping[Hashable, int | None]) -> dict[Hashable, ObservedRange]:
    """Give every member of a unified group the group's widest statistic."""
    merged: dict[int, ObservedRange] = {}
    for key, r in ranges.items():
        g = groups.get(key)
        if g is None:
            continue
        cur = merged.get(g)
        merged[g] = r if cur is None else ObservedRange(min(cur.low, r.low), max(cur.high, r.high),
                                                       cur.signed or r.signed)
    return {k: (merged[groups[k]] if groups.get(k) is not None else r) for k, r in ranges.items()}


# ---------------------------------------------------------------------------- writing
def set_fq_range(graph: Graph, quantizer: Quantizer | int, low: np.ndarray | float, high: np.ndarray | float) -> None:
    """Write ``low``/``high`` into the four range inputs of a FakeQuantize (out = in).

    ``quantizer`` is a record (whose :attr:`~Quantizer.low`/``high`` are updated too) or
    a FakeQuantize node id.
    """
    fq = quantizer.node if isinstance(quantizer, Quantizer) else quantizer
    lo = np.asarray(low, np.float32)
    hi = np.asarray(high, np.float32)
    for port, value in ((1, lo), (2, hi), (3, lo), (4, hi)):
        src = graph.producer(fq, port)
        if src is None or graph.op(src[0]).type != "Const":
            raise GraphError(f"FakeQuantize {graph.op(fq).name!r}: input {port} is not a constant")
        old_shape = graph.const_value(src[0]).shape
        if value.ndim and value.size == int(np.prod(old_shape)):  # keep a per-channel range's broadcast shape
            value = value.reshape(old_shape)
        set_const_input(graph, fq, port, value, f"{graph.op(fq).name}/range_{port}")
    if isinstance(quantizer, Quantizer):
        quantizer.low, quantizer.high = lo, hi


def set_activation_ranges(graph: Graph, quantizers: Iterable[Quantizer], stats: Mapping[Hashable, TensorStats],
                          sources: Mapping[str, Hashable], *, estimator: str = "mean_minmax") -> int:
    """Set every activation quantizer's range from its statistics; return how many.

    ``sources`` maps a quantizer's name to the key of its statistics in ``stats``.
    Per-tensor ranges go through the estimator, ``range_include`` and unification;
    per-channel ones through :func:`per_channel_fq_range`.
    """
    quantizers = list(quantizers)
    per_tensor = [q for q in quantizers if q.per_channel_axis is None]
    observed = {q.name: include(observed_range(stats[sources[q.name]], mode=q.mode, estimator=estimator),
                                q.range_include, q.mode, signed=q.hidden_state)
                for q in per_tensor}
    observed = unify(observed, {q.name: q.unified for q in per_tensor})
    for q in quantizers:
        if q.per_channel_axis is None:
            lo, hi = fq_range(observed[q.name], q.config)
        else:
            lo, hi = per_channel_fq_range(stats[sources[q.name]], q.config)
        set_fq_range(graph, q, lo, hi)
    return len(quantizers)


def halve_weight_range(graph: Graph, quantizer: Quantizer, channels: np.ndarray | None = None) -> bool:
    """The overflow fix on one weight quantizer: bounds × :func:`half_range_factor`, on
    every output channel or on those ``channels`` marks (a boolean mask in the order of
    the flattened per-channel bounds; a per-tensor range is halved if any is marked).

    16-bit weights (GNA) cannot saturate an 8-bit multiply and are left alone.
    Returns whether the range changed.
    """
    levels = quantizer.levels
    if levels > 256 or (channels is not None and not np.any(channels)):
        return False
    f = half_range_factor(levels)
    fq = quantizer.node
    lo = np.asarray(graph.const_value(graph.producer(fq, 1)[0]), np.float32)
    hi = np.asarray(graph.const_value(graph.producer(fq, 2)[0]), np.float32)
    factor: np.ndarray | float = f
    if channels is not None and lo.size > 1:
        mask = np.asarray(channels, bool)
        if mask.size != lo.size:
            raise GraphError(f"{graph.op(fq).name}: {mask.size} channel flags for {lo.size} channel ranges")
        factor = np.where(mask.reshape(lo.shape), np.float32(f), np.float32(1.0))
    set_fq_range(graph, quantizer, lo * factor, hi * factor)
    return True
