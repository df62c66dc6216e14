"""Scale estimation: per-group scales that minimize the MatMul output error on calibration data.

Matches NNCF 3.4's ``ScaleEstimation`` (advanced defaults: 64 samples, 5 initial steps,
5 scale steps, no weight penalty) for a 4-bit MatMul weight ``W`` ``(O, C)`` in groups
of ``g`` input channels, with ``s, X`` from :meth:`LayerActivations.process`:

1. The data-free scales and zero points of ``W``; levels ``q``, ``target = q - zp``.
2. Importance of each weight: ``s`` of its channel, 0 where ``target == 0``, normalized
   to sum 1 over each group.
3. Baseline error per row and group: ``mean_n((W_g X_g - deq(W_g) X_g)²)``.
4. Five refinement passes: candidate ``Σ importance · |w| / (|target| + 0.001·[target=0])``
   (signed like the scale), kept per row and group where its error is lower; levels are
   recomputed from the kept scales between passes.
5. Five grid passes with factors 1.0, 0.95, ...: levels from ``factor · initial scale``,
   a candidate from them as in 4, kept where better.

The zero points stay those of step 1. Errors come from the kernel
:meth:`~ovq.kernels.api.Kernels.group_output_error`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ovq.compression.activations import LayerActivations
from ovq.compression.options import Precision

SUBSET_SIZE = 64
INITIAL_STEPS = 5
SCALE_STEPS = 5
ZERO_SCALE = 0.001


@dataclass(frozen=True)
class EstimatedParams:
    """Scales (and zero points) of one weight, ``(O, groups)`` float32 / uint8 levels."""

    scale: np.ndarray
    zero_point: np.ndarray | None


def _target(levels: np.ndarray, zp: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``q - zp`` and where it is 0 (NNCF's ``isclose(target, 0)``: the same on integer levels)."""
    target = levels if zp is None else levels - zp[:, :, None]
    return target, target == 0


def _estimate(abs_wg: np.ndarray, target: np.ndarray, zero_mask: np.ndarray, importance: np.ndarray,
              sign: np.ndarray) -> np.ndarray:
    """``Σ importance · |w| / (|target| + 0.001·[target = 0])`` per row and group, signed
    like the scale (float32 throughout, in place on one temporary)."""
    t = np.abs(target)
    np.add(t, np.float32(ZERO_SCALE), out=t, where=zero_mask)
    np.divide(abs_wg, t, out=t)
    t *= importance
    return (np.sum(t, axis=-1) * sign).astype(np.float32)


def estimate_scales(w: np.ndarray, acts: LayerActivations, precision: Precision, kernels,
                    name: str = "weight") -> EstimatedParams:
    """NNCF's scale estimation of ``w`` ``(O, C)`` float32 in ``precision`` (4-bit)."""
    from ovq.kernels.reference import quantize_with

    bits, sym = precision.bits, precision.sym
    o, c = w.shape
    g = c if precision.group_size == -1 else precision.group_size
    groups = c // g
    s, x = acts.process(SUBSET_SIZE)
    _, scale, zp8 = kernels.compress_groups(w, bits, sym=sym, group_size=g, pack=False, name=name)
    scale = scale.astype(np.float32)
    zp = None if zp8 is None else zp8.astype(np.float32)
    wg = w.reshape(o, groups, g)
    abs_wg = np.abs(wg)
    eps = np.float32(np.finfo(np.float32).eps)

    target, zero_mask = _target(quantize_with(w, scale, zp, bits, sym), zp)
    importance = np.where(zero_mask, np.float32(0), np.broadcast_to(s.reshape(1, groups, g), wg.shape))
    importance = (importance / (importance.sum(axis=-1, keepdims=True) + eps)).astype(np.float32)

    def error(sc: np.ndarray) -> np.ndarray:
        return kernels.group_output_error(w, x, sc, zp, bits=bits, sym=sym, name=name)

    best = error(scale)
    result = scale.copy()
    sign = np.sign(scale).astype(np.float32)
    for i in range(INITIAL_STEPS):
        cand = _estimate(abs_wg, target, zero_mask, importance, sign)
        e = error(cand)
        better = e <= best
        best = np.where(better, e, best)
        result = np.where(better, cand, result)
        if i < INITIAL_STEPS - 1:
            target, zero_mask = _target(quantize_with(w, result, zp, bits, sym), zp)
    for step in range(SCALE_STEPS):
        factor = np.float32(1.0 - 0.05 * step)
        target, zero_mask = _target(quantize_with(w, (factor * scale).astype(np.float32), zp, bits, sym), zp)
        cand = _estimate(abs_wg, target, zero_mask, importance, sign)
        e = error(cand)
        better = e <= best
        best = np.where(better, e, best)
        result = np.where(better, cand, result)
    return EstimatedParams(result.astype(np.float32), zp8)
