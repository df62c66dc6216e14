"""SmoothQuant: move activation outliers into the weights (quantization-algorithms.md §9).

Matches: an activation FakeQuantize whose every consumer is a ``MatMul`` reading it on
port 0 and a weight FakeQuantize (over a constant) on port 1 — the projections of a
transformer. FQs on the same producer output form one **group** (e.g. the Q, K and V
projections of one LayerNorm output) and share one scale vector ``s`` over the
activation's channel (contraction) axis.

Emits: a ``Multiply`` by ``1/s`` on the edges from the producer to the group's FQs (the
producer's other readers, e.g. a residual ``Add``, keep the unscaled tensor); every
member's weights multiplied by ``s`` along their input-channel axis (a private copy if
the constant is shared) and their weight FQ ranges recomputed.

Preserves: the FP function (``(x / s) @ (s · W) = x @ W`` up to rounding); the FQ
metadata and every node id placement returned.

Scales follow NNCF: per input channel, ``act`` = abs-max of the activation over all
samples, ``w`` = abs-max of the weights over the output channels, both floored at
1e-5; ``s = act^α / w^(1-α)`` clipped to ``[10th percentile of s, 100]``; in a group
the member whose ``s`` has the best ``min/max`` ratio gives the scales. ``α`` is 0.95
for MatMul (NNCF's transformer default).

Statistics come from the **same** single calibration pass as everything else: the
observation records each sample's per-channel min and max of the unscaled tensor, so
after choosing ``s`` the per-sample min/max of the smoothed tensor is exact
(``min_c(min_c / s_c)``, ``s > 0``) without running the model again — NNCF spends a
second statistics pass on this.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

import numpy as np

from ovq.ir.graph import Graph, Port
from ovq.quantization.consts import const_source, set_const_input
from ovq.quantization.statistics import Observation, TensorStats

DEFAULT_ALPHA = 0.95
STAT_FLOOR = 1e-5
SCALE_MAX = 100.0
SCALE_LOW_QUANTILE = 0.1


@dataclass(frozen=True)
class SmoothMember:
    """One MatMul of a group."""

    op: int
    name: str
    weight_fq: int
    weight_axis: int  # input-channel (contraction) axis of the weights


@dataclass(frozen=True)
class SmoothGroup:
    """Activation FQs on one producer output whose MatMul consumers share one scale."""

    source: tuple[int, int]
    source_name: str
    fqs: tuple[int, ...]
    members: tuple[SmoothMember, ...]
    act_axis: int  # channel (contraction) axis of the activation, negative
    channels: int

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.source_name, self.source[1], "smooth")


@dataclass(frozen=True)
class Smoothed:
    """What smoothing did to one group."""

    group: SmoothGroup
    scales: np.ndarray  # (C,) the weights were multiplied by these, the activation divided
    chosen: str  # member whose scales won


def _static_dim(graph: Graph, node: int, out: int, axis: int) -> int | None:
    shape = graph.op(node).outputs[out].shape
    if not shape or len(shape) < 2:
        return None
    d = shape[axis]
    return d if isinstance(d, int) and d > 0 else None


def _member(graph: Graph, op: int, port: int, weight_fqs: set[int]) -> tuple[SmoothMember, int] | None:
    """The MatMul ``op`` as a member (with its activation axis), or None if it cannot be smoothed."""
    o = graph.op(op)
    if o.type != "MatMul" or port != 0:
        return None
    attrs = o.attrs or {}
    wsrc = graph.producer(op, 1)
    if wsrc is None or wsrc[0] not in weight_fqs or len(graph.consumers(*wsrc)) != 1:
        return None
    found = const_source(graph, wsrc[0], 0)
    if found is None or found[1].ndim < 2:
        return None
    act_axis = -2 if attrs.get("transpose_a") == "true" else -1
    w_axis = -1 if attrs.get("transpose_b") == "true" else -2
    return SmoothMember(op, o.name, wsrc[0], w_axis), act_axis


def find_groups(graph: Graph, meta: Mapping[str, Mapping[str, Any]]) -> list[SmoothGroup]:
    """Every smoothable group among the FQs placement inserted (``meta``)."""
    weight_fqs = {m["node"] for m in meta.values() if m["kind"] == "weights" and m["node"] in graph}
    by_source: dict[tuple[int, int], list[tuple[int, list[SmoothMember], int]]] = {}
    for m in meta.values():
        fq = m["node"]
        if m["kind"] == "weights" or fq not in graph or m.get("per_channel_axis") is not None \
                or m.get("unified") is not None:
            continue
        users = graph.consumers(fq, 0)
        found = [_member(graph, op, port, weight_fqs) for op, port in users]
        if not users or any(f is None for f in found):
            continue
        axes = {axis for _m, axis in found}
        if len(axes) != 1:
            continue
        src = graph.producer(fq, 0)
        by_source.setdefault(src, []).append((fq, [mem for mem, _a in found], axes.pop()))
    groups = []
    for src, entries in by_source.items():
        axes = {axis for _fq, _mem, axis in entries}
        if len(axes) != 1:
            continue
        axis = axes.pop()
        channels = _static_dim(graph, src[0], src[1], axis)
        members = tuple(mem for _fq, mems, _a in entries for mem in mems)
        if channels is None or any(const_source(graph, m.weight_fq, 0)[1].shape[m.weight_axis] != channels
                                   for m in members):
            continue
        groups.append(SmoothGroup(src, graph.op(src[0]).name, tuple(fq for fq, _m, _a in entries), members,
                                  axis, channels))
    return groups


def observations_for(groups: Iterable[SmoothGroup]) -> list[Observation]:
    """Per-sample per-channel min/max of every group's (unscaled) activation."""
    return [Observation(g.key, g.source_name, g.source[1], minmax=False, sample_channel_axis=g.act_axis)
            for g in groups]


def smoothing_scales(act_absmax: np.ndarray, weights: np.ndarray, weight_axis: int,
                     alpha: float) -> np.ndarray:
    """NNCF's ``s = act^α / w^(1-α)``, clipped to ``[10th percentile, 100]`` (float64)."""
    other = tuple(a for a in range(weights.ndim) if a != weight_axis % weights.ndim)
    w = np.maximum(np.abs(weights).max(axis=other).astype(np.float64), STAT_FLOOR)
    a = np.maximum(np.asarray(act_absmax, np.float64), STAT_FLOOR)
    s = a ** alpha / w ** (1.0 - alpha)
    return np.clip(s, np.quantile(s, SCALE_LOW_QUANTILE), SCALE_MAX)


def _broadcast(values: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = values.size
    return values.reshape(shape)


def _set_weights(graph: Graph, fq: int, value: np.ndarray) -> None:
    """Input 0 of weight FQ ``fq`` reads ``value`` (a new f32 Const replaces a Convert chain)."""
    src = graph.producer(fq, 0)
    if graph.op(src[0]).type == "Const":
        set_const_input(graph, fq, 0, value, f"{graph.op(fq).name}/smoothed")
        return
    c = graph.add_const(value, f"{graph.op(fq).name}/smoothed")
    graph.disconnect(fq, 0)
    graph.connect(c, 0, fq, 0)
    node = src[0]
    while node is not None and not any(graph.consumers(node, k) for k in range(len(graph.op(node).outputs))):
        up = graph.producer(node, 0) if graph.op(node).inputs else None
        graph.remove_node(node)
        node = up[0] if up is not None else None


def _requantize_weights(graph: Graph, fq: int, weights: np.ndarray, meta: Mapping[str, Any]) -> None:
    """Recompute weight FQ ``fq``'s range for new ``weights``, keeping its granularity."""
    from ovq.quantization.placement import weight_range
    from ovq.quantization.ranges import set_fq_range

    old = graph.const_value(graph.producer(fq, 1)[0])
    axes = tuple(a for a, d in enumerate(old.shape) if d != 1) if old.ndim == weights.ndim else ()
    config = SimpleNamespace(levels=meta["levels"], mode=meta["mode"])
    lo, hi = weight_range(weights, axes, config, per_channel=bool(axes))
    set_fq_range(graph, fq, lo, hi)


def smooth(graph: Graph, groups: Iterable[SmoothGroup], stats: Mapping[Hashable, TensorStats],
           meta: Mapping[str, Mapping[str, Any]], *, alpha: float = DEFAULT_ALPHA) -> list[Smoothed]:
    """Choose every group's scales from ``stats`` and rewrite ``graph`` (see the module doc)."""
    by_node = {m["node"]: m for m in meta.values()}
    done = []
    for g in groups:
        st = stats[g.key]
        act = np.maximum(np.abs(st.sample_channel_min).max(0), np.abs(st.sample_channel_max).max(0))
        best: tuple[float, np.ndarray, str] | None = None
        for m in g.members:
            w = const_source(graph, m.weight_fq, 0)[1]
            s = smoothing_scales(act, w, m.weight_axis, alpha)
            ratio = float(s.min() / s.max())
            if best is None or ratio > best[0]:
                best = (ratio, s, m.name)
        _, s, chosen = best
        rank = len(graph.op(g.source[0]).outputs[g.source[1]].shape)
        inv = graph.add_const(_broadcast((1.0 / s).astype(np.float32), rank, g.act_axis), f"{g.source_name}/smooth_scale")
        out = graph.op(g.source[0]).outputs[g.source[1]]
        mul = graph.add_op("Multiply", f"{g.source_name}/smooth_quant", version="opset1",
                           attrs={"auto_broadcast": "numpy"}, num_inputs=2,
                           outputs=[Port(id=0, precision=out.precision, shape=list(out.shape))])
        graph.connect(inv, 0, mul, 1)
        graph.connect(*g.source, mul, 0)
        for fq in g.fqs:
            graph.disconnect(fq, 0)
            graph.connect(mul, 0, fq, 0)
        for m in g.members:
            w = const_source(graph, m.weight_fq, 0)[1]
            scaled = (w.astype(np.float64) * _broadcast(s, w.ndim, m.weight_axis)).astype(np.float32)
            _set_weights(graph, m.weight_fq, scaled)
            _requantize_weights(graph, m.weight_fq, scaled, by_node[m.weight_fq])
        done.append(Smoothed(g, s, chosen))
    return done


def smoothed_stats(result: Smoothed, stats: TensorStats) -> TensorStats:
    """Per-sample min/max of the smoothed activation ``x / s`` from the unscaled per-channel ones."""
    inv = 1.0 / result.scales
    return TensorStats(mins=(stats.sample_channel_min * inv).min(1), maxs=(stats.sample_channel_max * inv).max(1))


def rescale_means(results: Iterable[Smoothed], layers: Iterable[Any],
                  stats: MutableMapping[Hashable, TensorStats]) -> None:
    """Bias-correction input means of smoothed layers, divided by their group's scales."""
    scale_of = {m.op: r.scales for r in results for m in r.group.members}
    for layer in layers:
        s = scale_of.get(layer.op)
        st = stats.get(layer.key)
        if s is None or st is None or st.channel_mean is None:
            continue
        stats[layer.key] = replace(st, channel_mean=st.channel_mean / s)
