"""Saturation-aware weights: which output channels lose accuracy to int16 pair saturation
on x86 CPUs without VNNI, and which of them to give 7-bit weights (``overflow_fix="auto"``).

Without VNNI, oneDNN's INT8 convolutions and matrix multiplications add the u8·s8
products of input channels ``(2j, 2j + 1)`` (same output channel, same kernel tap) into a
saturating int16 (``vpmaddubsw``); VNNI and AMX accumulate in int32. A model is quantized
once and runs on any CPU, so ``auto`` measures, on a few calibration samples, what
saturation would cost each output channel and what 7-bit weights would cost it instead,
and halves the weight range of exactly the channels where saturation costs more
(by :data:`HALVING_MARGIN`):

* saturation error of channel ``o``: Σ over sampled output positions of (exact integer
  dot product − the pair-saturated one)², from the :meth:`~ovq.kernels.api.Kernels.pair_saturation`
  kernel on the u8 activation codes and s8 weight codes;
* halving cost: the expected Σ of (output error with 7-bit weights)² − (with 8-bit
  weights)², the extra rounding error of the coarser grid: Σ_k (Σ_rows a_k²)·(e7_ok² −
  e8_ok²) with a the centred activation codes and e the weight rounding errors (errors of
  different inputs uncorrelated, so no matrix product is needed).

Both are in units of (activation step × weight step) of that channel, so they compare
directly. The integer codes are the CPU's: an activation code is its level index on the
FakeQuantize grid (a signed range runs as u8 with a zero point too).

Matches: Convolution; GroupConvolution with more than one input channel per group
(depthwise convolutions are computed exactly: no pairs); MatMul with a constant 2-D
weight. Each needs an 8-bit symmetric weight FakeQuantize and an 8-bit activation
FakeQuantize on its data input. Emits: one :class:`SaturationDecision` per analysed layer
and the halved weight ranges (:func:`ovq.quantization.ranges.halve_weight_range`).
Preserves: every other range, the graph's structure.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ovq.ir.graph import Graph
from ovq.quantization.records import Quantizer

PROBE_SAMPLES = 2
"""Calibration samples whose activations the analysis reads (the first ones)."""

MAX_ROWS = 2048
"""Output positions (convolutions) or rows (MatMul) sampled per layer."""

HALVING_MARGIN = 2.0
"""A channel is halved when its measured saturation error exceeds this many times the
extra rounding error of 7-bit weights. Saturation is rare and heavy-tailed: on two
samples a channel's estimate rests on a handful of events, while the rounding error is
smooth, so a tie goes to 8 bits (resnet_like on AVX2: 105.61 dB with a margin of 1,
105.91 dB with 2; 106.10 dB with no fix, NNCF 105.64)."""

SIGNAL_ROWS = 64
"""Rows the output energy (the normalizer of the reported errors) is estimated on."""

_SEED = 0x5A7

MOVING_OPS = {"Reshape", "Squeeze", "Unsqueeze", "Transpose", "Gather", "StridedSlice", "Slice"}
"""Ops that only move or select values: a layer behind them multiplies the codes of the
activation FakeQuantize before them."""


@dataclass(frozen=True)
class SaturationLayer:
    """One layer the analysis looks at."""

    op: int
    name: str
    kind: str  # "conv", "group_conv" or "matmul"
    weight: Quantizer
    activation: Quantizer
    source: tuple[str, int]  # the FP tensor the layer reads, as (op name, output)
    direct: bool = True  # the activation FakeQuantize feeds the layer itself (not through a Reshape...)


@dataclass(frozen=True)
class SaturationDecision:
    """What the analysis measured on one layer and what it decided.

    Attributes:
        layer: The layer's name.
        pair_sums: (position, pair) sums analysed, over all output channels.
        saturated: How many of them leave int16.
        channels: Output channels.
        halved: Output channels given 7-bit weights.
        saturation_nmse: Σ saturation error² / Σ output², over all channels.
        residual_nmse: The same after the decision (halved channels no longer saturate;
            their extra rounding error counted instead; 0 for a spread layer).
        spread: The layer's input channels were spread beside zeros instead
            (:mod:`.pair_spread`): no pair can saturate, no channel is halved.
    """

    layer: str
    pair_sums: int
    saturated: int
    channels: int
    halved: int
    saturation_nmse: float
    residual_nmse: float
    spread: bool = False

    @property
    def share(self) -> float:
        """Fraction of pair sums that saturate."""
        return self.saturated / self.pair_sums if self.pair_sums else 0.0


def find_layers(graph: Graph, weights: Iterable[Quantizer], activations: Iterable[Quantizer],
                sources: Mapping[str, Hashable], *, depthwise: bool = False) -> list[SaturationLayer]:
    """The layers whose INT8 kernels could saturate (see the module docstring); with
    ``depthwise`` also depthwise convolutions (as ``group_conv``), which cannot."""
    act_by_node = {q.node: q for q in activations}
    layers = []
    for w in weights:
        if w.levels > 256 or not w.config.symmetric:
            continue
        users = graph.consumers(w.node, 0)
        if len(users) != 1 or users[0][1] != 1:
            continue
        op = users[0][0]
        o = graph.op(op)
        src = graph.producer(op, 0)
        if src is None:
            continue
        node, direct = src, True
        while node is not None and node[0] not in act_by_node and graph.op(node[0]).type in MOVING_OPS:
            node, direct = graph.producer(node[0], 0), False
        a = act_by_node.get(node[0]) if node is not None else None
        if a is None or a.levels > 256 or a.name not in sources:
            continue
        if not direct and np.asarray(a.low).size > 1:
            continue  # a per-channel range moved by a Reshape or Transpose: channels no longer known
        if o.type == "Convolution":
            kind = "conv"
        elif o.type == "GroupConvolution":
            shape = graph.const_value(graph.producer(w.node, 0)[0]).shape
            if len(shape) < 3 or (shape[2] < 2 and not depthwise):
                continue  # depthwise: computed exactly
            kind = "group_conv"
        elif o.type == "MatMul":
            attrs = o.attrs or {}
            if attrs.get("transpose_a") == "true" or graph.const_value(graph.producer(w.node, 0)[0]).ndim != 2:
                continue
            kind = "matmul"
        else:
            continue
        key = sources[a.name] if direct else (graph.op(src[0]).name, src[1])
        layers.append(SaturationLayer(op, o.name, kind, w, a, (str(key[0]), int(key[1])), direct))
    return layers


INLINE_PROBE_ELEMENTS = 4 << 20
"""The statistics pass keeps the probed tensors whole when one sample's add up to at
most this many elements (16 MiB of f32) ..."""
INLINE_PROBE_TOTAL = 64 << 20
"""... and over every calibration sample at most this many (the statistics model then
outputs them for each sample: measured, EfficientNet-Lite0's 300 samples cost 3.2 s
more that way, MiniLM's 36 nothing). Else :func:`probe_activations` runs them."""


def probe_key(source: tuple[str, int]) -> tuple[str, int, str]:
    """The statistics key of a probed tensor kept by the statistics pass."""
    return (source[0], source[1], "saturation_probe")


def inline_probe(fp_model: Any, layers: Sequence[SaturationLayer], first_sample: Any = None,
                 samples: int | None = None) -> list[Any]:
    """Observations that make the statistics pass keep the layers' FP inputs of the first
    :data:`PROBE_SAMPLES` samples (saving :func:`probe_activations`' compile), or none
    when those tensors are large, of unknown size, or the number of ``samples`` the pass
    runs is unknown. Dynamic shapes are sized on a copy of the model reshaped to
    ``first_sample``'s inputs."""
    from ovq.quantization.statistics import Observation

    wanted = sorted({layer.source for layer in layers})
    if not wanted or fp_model is None or not samples:
        return []
    model = fp_model
    if not all(op.get_output_partial_shape(0).is_static for op in fp_model.get_parameters()):
        if first_sample is None:
            return []
        from ovq.quantization.dataset import InputSpec

        try:
            arrays = InputSpec(fp_model).arrays(first_sample, 0)
            model = fp_model.clone()
            model.reshape({p.output(0): list(a.shape) for p, a in zip(model.get_parameters(), arrays)})
        except Exception:  # noqa: BLE001 - unknown sizes: the separate probe reads them
            return []
    by_name = {op.get_friendly_name(): op for op in model.get_ops()}
    total = 0
    for name, port in wanted:
        op = by_name.get(name)
        if op is None or port >= op.get_output_size() or not op.output(port).get_partial_shape().is_static:
            return []
        total += int(np.prod(op.output(port).get_shape()))
    if total > INLINE_PROBE_ELEMENTS or total * samples > INLINE_PROBE_TOTAL:
        return []
    return [Observation(probe_key(source), source[0], source[1], minmax=False, whole_samples=PROBE_SAMPLES)
            for source in wanted]


def probe_activations(fp_model: Any, layers: Sequence[SaturationLayer], samples: Sequence[Any]
                      ) -> dict[tuple[str, int], list[np.ndarray]]:
    """The FP tensors the layers' activation FakeQuantize ops read, for ``samples``:
    one compile of ``fp_model`` with those tensors as outputs (at f32), one inference per
    sample."""
    import openvino as ov
    import openvino.opset13 as ops

    from ovq.quantization.dataset import InputSpec
    from ovq.runtime import compile_model

    wanted = sorted({layer.source for layer in layers})
    by_name = {op.get_friendly_name(): op for op in fp_model.get_ops()}
    results = [ops.result(by_name[name].output(port)) for name, port in wanted]
    probe = ov.Model(results, fp_model.get_parameters(), "ovq_saturation_probe")
    compiled = compile_model(probe)
    request = compiled.create_infer_request()
    spec = InputSpec(fp_model)
    out: dict[tuple[str, int], list[np.ndarray]] = {key: [] for key in wanted}
    for index, sample in enumerate(samples):
        got = request.infer(spec.arrays(sample, index))
        for k, key in enumerate(wanted):
            out[key].append(np.array(got[compiled.output(k)], np.float32))
    return out


def _activation_codes(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, levels: int, axis: int = -1
                      ) -> tuple[np.ndarray, np.ndarray]:
    """u8 level indices of ``x`` on the grid ``[lo, hi]`` (per-tensor, or per channel on
    ``axis`` of ``x``) and the code of 0.0 per channel (one value per tensor)."""
    lo = np.asarray(lo, np.float64).reshape(-1)
    hi = np.asarray(hi, np.float64).reshape(-1)
    step = (hi - lo) / (levels - 1)
    zero = _zero_code(lo, hi, levels)
    if lo.size > 1 and axis % x.ndim != x.ndim - 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        lo, hi, step = lo.reshape(shape), hi.reshape(shape), step.reshape(shape)
    codes = np.rint((np.clip(x, lo, hi) - lo) / step)
    return codes.astype(np.uint8), zero


def _zero_code(lo: np.ndarray, hi: np.ndarray, levels: int) -> np.ndarray:
    """The code of 0.0 on the grid ``[lo, hi]`` (per channel or one value)."""
    lo = np.asarray(lo, np.float64).reshape(-1)
    return np.rint(-lo / ((np.asarray(hi, np.float64).reshape(-1) - lo) / (levels - 1)))


def _weight_grids(w: np.ndarray, q: Quantizer) -> tuple[np.ndarray, np.ndarray]:
    """``w`` in weight steps (clipped to the range) and its 8-bit codes, both shaped like
    ``w`` (the 7-bit codes, :func:`_halved_codes`, are only needed where pairs saturate)."""
    lo = np.asarray(q.low, np.float32)
    hi = np.asarray(q.high, np.float32)
    if lo.size > 1:
        lo, hi = lo.reshape(lo.shape + (1,) * (w.ndim - lo.ndim)), hi.reshape(hi.shape + (1,) * (w.ndim - hi.ndim))
    step = (hi - lo) / (q.levels - 1)
    u = np.clip(w, lo, hi) / step
    base = np.rint(lo / step)
    code8 = np.rint(u - base) + base
    return u, code8


def _halved_codes(u: np.ndarray) -> np.ndarray:
    """Codes on the halved (7-bit) grid, in 8-bit steps, of weights ``u`` in weight steps."""
    return 2.0 * np.rint(u / 2.0)


def _pad_even(m: np.ndarray) -> np.ndarray:
    """``m`` with a zero last column appended when it has an odd number of columns."""
    if m.shape[-1] % 2 == 0:
        return m
    return np.concatenate([m, np.zeros(m.shape[:-1] + (1,), m.dtype)], axis=-1)


def _conv_patches(x: np.ndarray, kernel: Sequence[int], attrs: Mapping[str, str], rng: np.random.Generator,
                  rows: int, encode: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Sampled input patches of a convolution, ``(positions, taps, channels)``, zero
    outside the input (the padding). ``encode`` maps the padded input (``N, C, *spatial``)
    elementwise before the patches are gathered: each value is encoded once, not once
    per tap that reads it."""
    from ovq.quantization.bias_correction import conv_windows

    n, c = x.shape[:2]
    spatial = x.shape[2:]
    windows = conv_windows(spatial, kernel, attrs)
    pad = []
    for size, k, (stride, dilation, begin, outputs) in zip(spatial, kernel, windows):
        last = (outputs - 1) * stride + (int(k) - 1) * dilation - begin
        pad.append((begin, max(0, last - (int(size) - 1))))
    xp = np.pad(x, [(0, 0), (0, 0), *pad])
    if encode is not None:
        xp = encode(xp)
    padded = xp.shape[2:]
    total = int(np.prod([w[3] for w in windows]))
    per_sample = max(1, min(total, rows // max(n, 1)))
    # linear index of each (position, tap) in the padded spatial block
    taps = np.stack(np.meshgrid(*[np.arange(int(k)) for k in kernel], indexing="ij"), -1).reshape(-1, len(kernel))
    strides_pad = np.array([int(np.prod(padded[d + 1:])) for d in range(len(padded))], np.int64)
    out = []
    flat = xp.reshape(n, c, -1)
    for i in range(n):
        pos = rng.choice(total, per_sample, replace=False) if per_sample < total else np.arange(total)
        coords = np.stack(np.unravel_index(pos, [w[3] for w in windows]), -1)  # (P, nd)
        steps = np.array([w[0] for w in windows]), np.array([w[1] for w in windows])
        idx = (coords[:, None, :] * steps[0] + taps[None, :, :] * steps[1]) @ strides_pad  # (P, T)
        out.append(np.moveaxis(flat[i][:, idx], 0, -1))  # (P, T, C)
    return np.concatenate(out)


Operands = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _layer_operands(layer: SaturationLayer, graph: Graph, xs: Sequence[np.ndarray],
                    rng: np.random.Generator) -> list[Operands]:
    """Per group of output channels (one unless grouped): activation codes ``A`` (rows ×
    K, uint8), the code of 0.0 per column, and the weights in weight steps and as 8-bit
    codes (channels × K); K in the kernels' pair order (tap major, input channels minor,
    padded to even)."""
    w = np.asarray(graph.const_value(graph.producer(layer.weight.node, 0)[0]), np.float32)
    u, c8 = _weight_grids(w, layer.weight)
    a_q = layer.activation
    lo, hi = np.asarray(a_q.low).reshape(-1), np.asarray(a_q.high).reshape(-1)
    if layer.kind == "matmul":
        x = np.concatenate([v.reshape(-1, v.shape[-1]) for v in xs])
        if x.shape[0] > MAX_ROWS:
            x = x[np.sort(rng.choice(x.shape[0], MAX_ROWS, replace=False))]
        codes, zero = _activation_codes(x, lo, hi, a_q.levels)
        if (graph.op(layer.op).attrs or {}).get("transpose_b") != "true":
            u, c8 = u.T, c8.T
        zero = np.broadcast_to(zero, (x.shape[1],))
        return [(_pad_even(codes), _pad_even(zero), *(_pad_even(m) for m in (u, c8)))]
    attrs = graph.op(layer.op).attrs or {}
    x = np.concatenate(xs)
    if layer.kind == "conv":
        parts = [(x, u, c8, lo, hi)]
    else:
        cg = w.shape[2]
        per_channel = lo.size > 1
        parts = [(x[:, k * cg:(k + 1) * cg], u[k], c8[k],
                  lo[k * cg:(k + 1) * cg] if per_channel else lo, hi[k * cg:(k + 1) * cg] if per_channel else hi)
                 for k in range(w.shape[0])]
    out = []
    for xg, ug, c8g, lo_g, hi_g in parts:
        cin = ug.shape[1]
        zero = _zero_code(lo_g, hi_g, a_q.levels)

        def encode(xp: np.ndarray, lo_g: np.ndarray = lo_g, hi_g: np.ndarray = hi_g) -> np.ndarray:
            return _activation_codes(xp, lo_g, hi_g, a_q.levels, axis=1)[0]

        codes = _conv_patches(xg, ug.shape[2:], attrs, rng, MAX_ROWS, encode)  # (P, T, C) u8, 0.0's code in the padding
        zero = np.broadcast_to(zero, (codes.shape[1], cin))

        def tap_major(m: np.ndarray, cin: int = cin) -> np.ndarray:  # (O, C, *k) -> (O, T, C)
            return np.moveaxis(m.reshape(m.shape[0], cin, -1), 1, 2)

        out.append((_pad_even(codes).reshape(codes.shape[0], -1), _pad_even(zero).reshape(-1),
                    *(_pad_even(tap_major(m)).reshape(m.shape[0], -1) for m in (ug, c8g))))
    return out


def analyse_layer(layer: SaturationLayer, graph: Graph, xs: Sequence[np.ndarray], kernels: Any
                  ) -> tuple[SaturationDecision, np.ndarray]:
    """Measure ``layer`` on its probed FP inputs ``xs``; return the decision and the
    per-output-channel mask of channels to halve (flattened in weight order)."""
    rng = np.random.default_rng(_SEED)
    sat_err, halve_cost, signal, counts, pairs, masks = [], [], [], [], 0, []
    for a, zeros, u, c8 in _layer_operands(layer, graph, xs, rng):
        err_sq, saturated = kernels.pair_saturation(np.ascontiguousarray(a), np.ascontiguousarray(c8, np.int8))
        centred = a.astype(np.float32) - zeros.astype(np.float32)
        # the output energy only normalizes the reported errors: a few rows suffice
        few = np.ascontiguousarray(centred[:: max(1, centred.shape[0] // SIGNAL_ROWS)])
        out = few @ u.astype(np.float32, copy=False).T
        cost = np.zeros_like(err_sq)
        hot = np.nonzero(saturated)[0]
        if hot.size:
            energy = np.einsum("rk,rk->k", centred, centred)  # Σ_rows a_k²
            uh, c8h = (u, c8) if hot.size == u.shape[0] else (u[hot], c8[hot])
            c7h = _halved_codes(uh)
            # (u - c7)² - (u - c8)² = (c8 - c7)(2u - c7 - c8): the 7-bit grid's extra squared error
            extra = (c8h - c7h) * (2.0 * uh - c7h - c8h)
            cost[hot] = extra.astype(np.float32) @ energy.astype(np.float32)
        sat_err.append(err_sq)
        halve_cost.append(cost)
        signal.append((out.astype(np.float64) ** 2).sum(0) * (centred.shape[0] / few.shape[0]))
        counts.append(saturated)
        pairs += a.shape[0] * (a.shape[1] // 2) * c8.shape[0]
        masks.append((saturated > 0) & (err_sq > HALVING_MARGIN * cost))
    err, cost, sig, cnt, mask = (np.concatenate(v) for v in (sat_err, halve_cost, signal, counts, masks))
    total = float(sig.sum()) or 1.0
    residual = float(np.where(mask, cost, err).sum())
    decision = SaturationDecision(layer.name, int(pairs), int(cnt.sum()), int(mask.size), int(mask.sum()),
                                  float(err.sum()) / total, max(residual, 0.0) / total)
    return decision, mask
