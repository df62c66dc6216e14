"""Activation FakeQuantize ranges from calibration statistics (quantization-algorithms.md §4–6).

Estimators (``activations_range``):

* ``"mean_minmax"`` (default; POT and NNCF): asymmetric ``[mean of per-sample min,
  mean of per-sample max]``; symmetric ``high = mean of per-sample abs-max``, signed
  when any sample went below zero (POT's ``min/min``);
* ``"minmax"``: the global min and max over all samples;
* ``"quantile"``: like ``mean_minmax`` on the per-sample ``p`` and ``1 - p`` quantiles
  (outlier probability ``p``, default 1e-4); the sign still comes from the true minimum.

Per-channel activation FQs (placement meta ``per_channel_axis``, e.g. depthwise
convolution inputs on targets with ``q8_a_ch``) use POT's per-channel statistics: the
global min and max of every channel over all samples (abs-max for symmetric), with the
sign decided for the whole tensor and the weights' zero-filter fix on dead channels
(``h = max(h, 0.01 · max_c h)``).

Members of a unified-scale group (Concat inputs, recurrent port pairs) get one range
from the min of their lows and the max of their highs. The FQ math (signed low bound
``-high·L/(L-2)``, zero widening, ``tune_range``) is :func:`placement.activation_range`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ovq.errors import OvqError
from ovq.ir.graph import Graph
from ovq.quantization.consts import set_const_input
from ovq.quantization.placement import activation_range
from ovq.quantization.statistics import TensorStats

ESTIMATORS = ("mean_minmax", "minmax", "quantile")


@dataclass(frozen=True)
class ObservedRange:
    """The statistic one FQ's range is computed from."""

    low: float  # asymmetric: low statistic; symmetric: unused (0)
    high: float  # asymmetric: high statistic; symmetric: abs-max statistic
    signed: bool  # data went below zero


def observed_range(stats: TensorStats, *, mode: str, estimator: str = "mean_minmax") -> ObservedRange:
    """Reduce per-sample statistics to the numbers the FQ range is computed from."""
    if estimator not in ESTIMATORS:
        raise OvqError(f"unknown activations_range {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    mins, maxs = stats.mins, stats.maxs
    if estimator == "quantile":
        lows, highs = stats.q_low, stats.q_high
    else:
        lows, highs = mins, maxs
    signed = bool(mins.min() < 0)
    if estimator == "minmax":
        lo, hi = float(lows.min()), float(highs.max())
        absmax = max(abs(lo), abs(hi))
    else:
        lo, hi = float(lows.mean()), float(highs.mean())
        absmax = float(np.maximum(np.abs(lows), np.abs(highs)).mean())
    if mode == "symmetric":
        return ObservedRange(0.0, absmax, signed)
    return ObservedRange(lo, hi, signed)


def per_channel_fq_range(stats: TensorStats, meta: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel FakeQuantize ``(low, high)`` arrays of shape ``(C,)``."""
    from ovq.kernels.api import tune_range

    mn, mx = stats.channel_min, stats.channel_max
    if meta["mode"] == "symmetric":
        h = np.maximum(np.abs(mn), np.abs(mx))
        # dead channels: the zero-filter fix of weights (NNCF does the same); a near-zero
        # per-channel scale makes the CPU plugin's INT8 kernels lose the whole tensor
        h = np.maximum(h, max(8e-5, 0.01 * float(h.max(initial=0.0))))
        if mn.min() >= 0:
            return np.zeros_like(h), h
        return h * meta["level_low"] / meta["level_high"], h
    lo, hi = mn.copy(), mx.copy()
    small = hi - lo <= 8e-4
    lo, hi = np.where(small, lo - 8e-4, lo), np.where(small, hi + 8e-4, hi)
    lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    return tune_range(lo, hi, meta["levels"])


def include(obs: ObservedRange, interval: tuple[float, float] | None, mode: str) -> ObservedRange:
    """Widen ``obs`` to cover ``interval`` (placement's ``range_include``, e.g. LSTM/GRU
    hidden states in (-1, 1) that share the input's scale)."""
    if not interval:
        return obs
    lo, hi = float(interval[0]), float(interval[1])
    if mode == "symmetric":
        return ObservedRange(0.0, max(obs.high, abs(lo), abs(hi)), obs.signed or lo < 0)
    return ObservedRange(min(obs.low, lo), max(obs.high, hi), obs.signed or lo < 0)


def fq_range(obs: ObservedRange, meta: Mapping[str, Any]) -> tuple[float, float]:
    """FakeQuantize ``(low, high)`` for the FQ described by placement ``meta``."""
    kwargs = dict(mode=meta["mode"], levels=meta["levels"], level_low=meta["level_low"],
                  level_high=meta["level_high"])
    if meta["mode"] == "symmetric":
        h = obs.high
        return activation_range(-h if obs.signed else 0.0, h, **kwargs)
    return activation_range(obs.low, obs.high, **kwargs)


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


def set_fq_range(graph: Graph, fq: int, low: np.ndarray | float, high: np.ndarray | float) -> None:
    """Write ``low``/``high`` into the four range inputs of FakeQuantize ``fq`` (out = in)."""
    lo = np.asarray(low, np.float32)
    hi = np.asarray(high, np.float32)
    for port, value in ((1, lo), (2, hi), (3, lo), (4, hi)):
        src = graph.producer(fq, port)
        if src is None or graph.op(src[0]).type != "Const":
            raise OvqError(f"FakeQuantize {graph.op(fq).name!r}: input {port} is not a constant")
        old_shape = graph.const_value(src[0]).shape
        if value.ndim and value.size == int(np.prod(old_shape)):  # keep a per-channel range's broadcast shape
            value = value.reshape(old_shape)
        set_const_input(graph, fq, port, value, f"{graph.op(fq).name}/range_{port}")
