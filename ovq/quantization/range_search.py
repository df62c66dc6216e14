"""Clipping-range search: per layer, the activation range and the per-channel weight
ranges that minimise the error of the layer's quantized output on a few calibration
samples (``range_search="activations" | "weights" | "all"``).

The statistics give each range from extremes (mean of per-sample min/max, or quantiles),
which keeps every outlier representable at the price of a coarser grid for everything
else. The search trades the two directly, on sampled rows or convolution patches of the
layer's FP input on the first :data:`SEARCH_SAMPLES` calibration samples: for an
activation range it keeps the candidate with the smallest estimated output error
Σ_k ‖W[:, k]‖² Σ_r (fq(x_rk) − x_rk)², relative to the output energy and summed over the
layers the activation feeds; weight ranges are searched afterwards, per output channel
o, against the chosen activation grid, by Σ_k Σ_r xq_rk² (w_ok − fq(w_ok))². Both take
the errors of different inputs as uncorrelated, so no matrix product is needed.

Candidates are fractions of the range the statistics gave (:data:`ACTIVATION_GRID`,
:data:`WEIGHT_GRID`); the unclipped range is always one of them, so the search never
makes the estimated error worse. Asymmetric activation ranges search the high and the
low bound in turn.

Matches: the layers :func:`ovq.quantization.saturation.find_layers` finds (Convolution,
GroupConvolution including depthwise, MatMul with a constant 2-D weight, each with an
8-bit symmetric weight FakeQuantize and an 8-bit activation FakeQuantize on its data
input). Activation quantizers in a unified-scales group (Concat) and per-channel
activation quantizers keep their ranges. Emits: new FakeQuantize ranges and one
:class:`RangeSearchDecision` per searched quantizer. Preserves: the graph's structure,
every other range.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ovq.ir.graph import Graph
from ovq.quantization.records import Quantizer
from ovq.quantization.saturation import SaturationLayer

SEARCH_SAMPLES = 4
"""Calibration samples the search reads (the first ones)."""

SEARCH_ROWS = 2048
"""Output positions (convolutions) or rows (MatMul) sampled per layer."""

ACTIVATION_GRID = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2)
"""Fractions of the statistics' activation bound tried."""

WEIGHT_GRID = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5)
"""Fractions of a weight channel's abs-max tried."""

MODES = ("none", "activations", "weights", "all")

_SEED = 0x2A9


@dataclass(frozen=True)
class RangeSearchDecision:
    """What the search chose for one quantizer.

    Attributes:
        quantizer: The FakeQuantize's name.
        kind: ``"activation"`` or ``"weight"``.
        layers: Names of the layers whose output error was measured.
        before_nmse: Σ output error² / Σ output² with the statistics' range.
        after_nmse: The same with the chosen range.
        low, high: The chosen activation bounds (weights: NaN).
        clipped_channels: Weight channels given a narrower range (activations: 0).
    """

    quantizer: str
    kind: str
    layers: tuple[str, ...]
    before_nmse: float
    after_nmse: float
    low: float = float("nan")
    high: float = float("nan")
    clipped_channels: int = 0


def check_mode(mode: Any) -> str:
    """``mode`` as one of :data:`MODES` (``None``/``False`` → ``"none"``, ``True`` → ``"all"``)."""
    from ovq.errors import OptionError

    if mode is None or mode is False:
        return "none"
    if mode is True:
        return "all"
    if mode not in MODES:
        raise OptionError(f"unknown range_search {mode!r}; choose one of {', '.join(MODES)}")
    return str(mode)


def fake_quantize(x: np.ndarray, lo: Any, hi: Any, levels: int) -> np.ndarray:
    """``x`` through a FakeQuantize with input range = output range ``[lo, hi]``
    (broadcasting) and ``levels`` levels, as the CPU plugin computes it (the native
    :meth:`~ovq.kernels.api.Kernels.fake_quantize` kernel)."""
    from ovq.kernels import get_kernels

    lo, hi = np.asarray(lo, np.float32), np.asarray(hi, np.float32)
    return get_kernels().fake_quantize(x, lo, hi, lo, hi, levels)


@dataclass
class _Operand:
    """One layer in the form the search evaluates: sampled rows of its FP input and its
    FP weights, grouped."""

    layer: SaturationLayer
    rows: np.ndarray  # (G, R, K): R sampled rows (output positions) per group, K = taps × channels
    weight: np.ndarray  # (G, O, K)
    taps: int  # K = taps × input channels per group (taps major)
    column_energy: np.ndarray = None  # type: ignore[assignment]  # (G, K): Σ_o w², what an input error costs
    energy: float = 1.0  # the output energy, estimated as Σ_k column_energy_k Σ_r x_rk²


def _operand(layer: SaturationLayer, graph: Graph, xs: Sequence[np.ndarray], rng: np.random.Generator) -> _Operand:
    """The sampled FP input rows and the FP weight of ``layer``."""
    from ovq.quantization.saturation import _conv_patches

    w = np.asarray(graph.const_value(graph.producer(layer.weight.node, 0)[0]), np.float32)
    if layer.kind == "matmul":
        x = np.concatenate([v.reshape(-1, v.shape[-1]) for v in xs])
        if x.shape[0] > SEARCH_ROWS:
            x = x[np.sort(rng.choice(x.shape[0], SEARCH_ROWS, replace=False))]
        if (graph.op(layer.op).attrs or {}).get("transpose_b") != "true":
            w = w.T
        op = _Operand(layer, np.ascontiguousarray(x[None], np.float32), np.ascontiguousarray(w[None]), 1)
    else:
        x = np.concatenate(xs).astype(np.float32)
        if layer.kind == "conv":
            w = w[None]  # (1, O, C, *k)
        groups, cg = w.shape[0], w.shape[2]
        patches = _conv_patches(x, w.shape[3:], graph.op(layer.op).attrs or {}, rng, SEARCH_ROWS)  # (P, T, C)
        taps = patches.shape[1]
        rows = patches.reshape(patches.shape[0], taps, groups, cg).transpose(2, 0, 1, 3)  # (G, P, T, Cg)
        weight = w.reshape(groups, w.shape[1], cg, taps).transpose(0, 1, 3, 2)  # (G, O, T, Cg)
        op = _Operand(layer, np.ascontiguousarray(rows.reshape(groups, rows.shape[1], -1)),
                      np.ascontiguousarray(weight.reshape(groups, w.shape[1], -1)), taps)
    op.column_energy = (op.weight.astype(np.float64) ** 2).sum(1)
    op.energy = float(((op.rows.astype(np.float64) ** 2).sum(1) * op.column_energy).sum()) or 1.0
    return op


def _weight_bounds(q: Quantizer, op: _Operand) -> np.ndarray:
    """The weight FakeQuantize's ``high`` per output channel, shaped (G, O, 1) to
    broadcast against the operand's weight (or (1, 1, 1) per tensor)."""
    hi = np.abs(np.asarray(q.high, np.float32)).reshape(-1)
    if hi.size > 1:
        return hi.reshape(op.weight.shape[0], op.weight.shape[1], 1)
    return hi.reshape(1, 1, 1)


def _quantized_weight(op: _Operand, high: np.ndarray) -> np.ndarray:
    """``op``'s weight on the symmetric grid ``[-high, high]`` of its quantizer."""
    levels = op.layer.weight.levels
    low = -high if levels % 2 else -high * levels / (levels - 2)
    return fake_quantize(op.weight, low, high, levels)


def _activation_error(ops: Sequence[_Operand], lo: float, hi: float, levels: int) -> float:
    """Σ over ``ops`` of the output error the activation grid ``[lo, hi]`` adds, relative
    to the output energy: Σ_k ‖W[:, k]‖² Σ_r (fq(x_rk) − x_rk)² (errors of different
    inputs taken as uncorrelated)."""
    total = 0.0
    for op in ops:
        e2 = ((fake_quantize(op.rows, lo, hi, levels) - op.rows).astype(np.float64) ** 2).sum(1)
        total += float((e2 * op.column_energy).sum()) / op.energy
    return total


def _activation_candidates(q: Quantizer, lo: float, hi: float, side: str) -> list[tuple[float, float]]:
    """FakeQuantize bounds to try for ``q``: the statistics' bounds scaled on ``side``
    (``"high"``, ``"low"`` or ``"both"``), each made valid for its grid."""
    from ovq.quantization.ranges import activation_range

    out = []
    for t in ACTIVATION_GRID:
        if q.config.symmetric:
            h = hi * t
            out.append(activation_range(-h if lo < 0 else 0.0, h, q.config))
        elif side == "high":
            out.append(activation_range(lo, hi * t, q.config))
        else:
            out.append(activation_range(lo * t, hi, q.config))
    return list(dict.fromkeys(out))


def search_activation(q: Quantizer, ops: Sequence[_Operand], graph: Graph) -> RangeSearchDecision:
    """Search ``q``'s range against the layers ``ops`` it feeds; write it if it is better."""
    from ovq.quantization.ranges import set_fq_range

    lo0, hi0 = float(np.asarray(q.low).reshape(-1)[0]), float(np.asarray(q.high).reshape(-1)[0])
    base = _activation_error(ops, lo0, hi0, q.levels)
    best = (base, lo0, hi0)
    sides = ("both",) if q.config.symmetric else ("high", "low")
    for side in sides:
        _, lo_s, hi_s = best
        for lo, hi in _activation_candidates(q, lo_s, hi_s, side):
            err = _activation_error(ops, lo, hi, q.levels)
            if err < best[0]:
                best = (err, lo, hi)
    err, lo, hi = best
    names = tuple(op.layer.name for op in ops)
    if (lo, hi) != (lo0, hi0):
        set_fq_range(graph, q, np.full(np.asarray(q.low).shape, lo, np.float32),
                     np.full(np.asarray(q.high).shape, hi, np.float32))
    return RangeSearchDecision(q.name, "activation", names, base / len(ops), err / len(ops), lo, hi)


def search_weight(op: _Operand, graph: Graph) -> RangeSearchDecision:
    """Search per output channel the weight range of ``op``'s layer against its
    quantized input (the activation quantizer's current range); write it."""
    from ovq.quantization.ranges import set_fq_range

    q, a = op.layer.weight, op.layer.activation
    a_lo, a_hi = np.asarray(a.low, np.float32).reshape(-1), np.asarray(a.high, np.float32).reshape(-1)
    if a_lo.size == 1:
        rows = fake_quantize(op.rows, a_lo[0], a_hi[0], a.levels)
    else:  # a per-channel activation range: the rows as (G, R, taps, channels per group)
        g, r, k = op.rows.shape
        shape = (g, 1, 1, k // op.taps)
        rows = fake_quantize(op.rows.reshape(g, r, op.taps, -1), a_lo.reshape(shape), a_hi.reshape(shape),
                             a.levels).reshape(op.rows.shape)
    high0 = _weight_bounds(q, op)
    per_channel = high0.size > 1
    hessian = (rows.astype(np.float64) ** 2).sum(1)[:, None, :]  # (G, 1, K): Σ_r xq²
    errors = []
    for t in WEIGHT_GRID:
        d2 = ((_quantized_weight(op, high0 * np.float32(t)) - op.weight).astype(np.float64) ** 2 * hessian).sum(-1)
        errors.append(d2.reshape(-1) if per_channel else np.array([d2.sum()]))
    err = np.stack(errors)  # (candidates, channels)
    choice = err.argmin(0)
    before = float(err[0].sum()) / op.energy
    after = float(err[choice, np.arange(err.shape[1])].sum()) / op.energy
    factors = np.asarray(WEIGHT_GRID, np.float32)[choice]
    clipped = int((choice > 0).sum())
    if clipped:
        lo, hi = np.asarray(q.low, np.float32), np.asarray(q.high, np.float32)
        scale = factors.reshape(lo.shape) if per_channel else np.float32(factors[0])
        set_fq_range(graph, q, lo * scale, hi * scale)
    return RangeSearchDecision(q.name, "weight", (op.layer.name,), before, after, clipped_channels=clipped)


def search_ranges(graph: Graph, layers: Sequence[SaturationLayer], inputs: Mapping[str, Sequence[np.ndarray]],
                  mode: str) -> list[RangeSearchDecision]:
    """Run the search of ``mode`` (``activations``, ``weights`` or ``all``) over ``layers``.

    ``inputs`` maps a layer's name to the tensors its activation FakeQuantize reads on the
    search samples (already divided by SmoothQuant scales where they apply); layers
    without an entry are skipped.
    """
    rng = np.random.default_rng(_SEED)
    ops = {layer.name: _operand(layer, graph, inputs[layer.name], rng) for layer in layers if layer.name in inputs}
    decisions: list[RangeSearchDecision] = []
    if mode in ("activations", "all"):
        by_fq: dict[int, list[_Operand]] = {}
        quantizer: dict[int, Quantizer] = {}
        for op in ops.values():
            a = op.layer.activation
            if a.unified is not None or a.per_channel_axis is not None or a.levels > 256:
                continue
            by_fq.setdefault(a.node, []).append(op)
            quantizer[a.node] = a
        decisions += [search_activation(quantizer[node], group, graph) for node, group in by_fq.items()]
    if mode in ("weights", "all"):
        decisions += [search_weight(op, graph) for op in ops.values() if op.layer.weight.levels <= 256]
    return decisions
