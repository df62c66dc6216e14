"""AWQ: per-input-channel scales that move quantization error away from salient channels.

Matches NNCF 3.4's ``AWQ`` on the OpenVINO backend. Targets are the MatMuls whose weight
goes to a 4-bit precision and whose input comes from one of NNCF's patterns:

* ``MatMul -> Multiply -> MatMul`` (the first MatMul has a constant weight: the scale is
  *merged* into that weight's output channels, e.g. ``up_proj`` before ``down_proj``);
* ``Act -> Multiply -> MatMul`` and ``Act -> MatMul`` (``Act`` one of NNCF's atomic
  activations): the inverse scale becomes a new ``Multiply`` on the MatMul's input edge
  (NNCF puts it after ``Act``; on the edge it changes only this MatMul's input).

For each target the weight becomes ``W · s`` (per input channel) and its input ``x / s``:
the float model computes the same function, and the 4-bit rounding of ``W · s`` favours the
scaled-up channels.

* **Data-aware** (with statistics): channels ranked by ``s_c = max over samples |mean_c|``;
  only groups holding the top 0.2 % channels are searched. Per group, ``alpha`` runs over
  0, 0.01, ..., 0.99 with ``scale = clip(s, q10(s), 100) ** alpha`` and the scale with the
  smallest mean ``|W X - Q(W·scale)(X / scale)|`` on the calibration means (at most 32 of
  them) is kept, if it beats ``max |W X|``. The grid search is the kernel
  :meth:`~ovq.kernels.api.Kernels.awq_errors`. When merging into a previous MatMul, the
  scale is floored so that the previous MatMul's outputs stay below ``0.25 · 65504`` (f16).
* **Data-free** (no dataset): ``s = 1 / max(mean over outputs |W|, eps)`` on every channel.

Afterwards the target's activation statistics are rescaled (``mean · 1/s``) for scale
estimation, as NNCF's ``update_statistics``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ovq.compression.activations import LayerActivations
from ovq.compression.layers import LayerPlan, WeightSite
from ovq.ir import Graph

log = logging.getLogger("ovq.compression")

from ovq.ir.graph import canonical_ir_type

ATOMIC_ACTIVATIONS = tuple(canonical_ir_type(t) for t in (
    "Relu", "Clamp", "Elu", "PRelu", "Sigmoid", "HSigmoid", "HardSigmoid", "Swish", "HSwish", "Selu"))
"""NNCF's ``ATOMIC_ACTIVATIONS_OPERATIONS`` (op types in IR spelling: ``ReLU``, ``PReLU``)."""

SUBSET_SIZE = 32
PERCENT_TO_APPLY = 0.002
ALPHA_MIN, ALPHA_MAX, STEPS = 0.0, 1.0, 100
FP16_MAX, FP16_MARGIN = 65504.0, 0.25


@dataclass(frozen=True)
class AWQTarget:
    """One MatMul AWQ rescales.

    Attributes:
        plan: The target's weight and its 4-bit precision.
        merge: The earlier MatMul's weight site whose output channels take ``1 / s``
            (``MatMul -> Multiply -> MatMul``), or None: a Multiply goes on the input edge.
    """

    plan: LayerPlan
    merge: WeightSite | None


def find_targets(graph: Graph, plans: list[LayerPlan]) -> list[AWQTarget]:
    """The AWQ targets among ``plans`` (4-bit MatMuls matching NNCF's patterns), in order."""
    by_op = {p.site.op: p.site for p in plans if p.site.op_type == "MatMul"}
    out = []
    for plan in plans:
        site, p = plan.site, plan.precision
        if site.op_type != "MatMul" or p is None or p.bits > 4:
            continue
        src = graph.producer(site.op, 0)
        if src is None:
            continue
        prod = graph.op(src[0])
        if prod.type == "Multiply":
            ins = [graph.producer(src[0], i) for i in range(2)]
            first = next((by_op[i[0]] for i in ins if i is not None and i[0] in by_op), None)
            if first is not None:
                single = (len(graph.consumers(first.op, 0)) == 1 and len(graph.consumers(*src)) == 1
                          and first.const != site.const)
                out.append(AWQTarget(plan, first if single else None))
                continue
            if any(i is not None and graph.op(i[0]).type in ATOMIC_ACTIVATIONS for i in ins):
                out.append(AWQTarget(plan, None))
            continue
        if prod.type in ATOMIC_ACTIVATIONS:
            out.append(AWQTarget(plan, None))
    return out


def weight_matrix(graph: Graph, site: WeightSite) -> np.ndarray:
    """``site``'s weight as a float32 ``(out, in)`` matrix (a copy)."""
    w = np.asarray(graph.const_value(site.const))
    if site.element_type == "bf16":
        from ovq.kernels._layout import bfloat16

        w = w.view(bfloat16())
    w = w.astype(np.float32)
    return np.ascontiguousarray(w.T if site.transposed else w.reshape(site.matrix))


def set_weight_matrix(graph: Graph, site: WeightSite, w: np.ndarray) -> None:
    """Store ``w`` ``(out, in)`` as ``site``'s weight, in its layout and element type."""
    from ovq.kernels._layout import bfloat16

    dt = np.dtype(bfloat16()) if site.element_type == "bf16" else np.dtype(
        {"f32": np.float32, "f16": np.float16}[site.element_type])
    values = (w.T if site.transposed else w).reshape(site.shape).astype(dt)
    graph.set_const_value(site.const, values if site.element_type != "bf16" else values.view(np.uint16),
                          element_type=site.element_type)


def _alphas() -> np.ndarray:
    """``alpha_min`` plus ``step`` added ``STEPS - 1`` times, in float64 as NNCF's loop does."""
    step = (ALPHA_MAX - ALPHA_MIN) / STEPS
    out, a = [], ALPHA_MIN
    for _ in range(STEPS):
        out.append(a)
        a += step
    return np.array(out, np.float64)


def data_aware_scale(w: np.ndarray, acts: LayerActivations, group_size: int, bits: int, sym: bool, kernels,
                     prev: tuple[np.ndarray, float, int] | None = None, name: str = "weight") -> np.ndarray:
    """NNCF's data-aware AWQ scale ``(C,)`` of weight ``w`` ``(O, C)``.

    ``prev``: for a merge into an earlier MatMul, ``(mean |W_prev| per output channel,
    max over channels of its input's s, its input channels)``, which bound the scale.
    """
    s, x = acts.process(SUBSET_SIZE)
    c = w.shape[1]
    top_k = max(int(c * PERCENT_TO_APPLY), 1)
    top = np.argsort(-s)[:top_k]
    g = c if group_size == -1 else group_size
    groups = sorted({int(i) // g for i in top})
    scale = np.ones(c, np.float32)
    alphas = _alphas()
    alphas32 = alphas.astype(np.float32)
    for gi in groups:
        sl = slice(gi * g, gi * g + g)
        gs = s[sl]
        a_min = np.float32(np.quantile(gs, 0.1))
        gs = np.clip(gs, a_min, np.float32(100.0)).astype(np.float32)
        floor = np.zeros_like(gs)
        if prev is not None:
            prev_w, prev_s, n_in = prev
            k = (prev_w[sl] * prev_s * n_in).astype(np.float32)
            floor = (k / np.float32(FP16_MARGIN * FP16_MAX)).astype(np.float32)
        gw, gx = w[:, sl], x[sl]
        errors = kernels.awq_errors(gw, gx, gs, alphas32, bits=bits, sym=sym, floor=floor, name=name)
        best = float(np.max(np.abs(gw.astype(np.float64) @ gx.astype(np.float64))))
        pick = None
        for a, e in enumerate(errors):
            if e < best:
                best, pick = e, a
        if pick is not None:
            scale[sl] = np.maximum(np.power(gs, alphas32[pick]), floor)
    return scale


def data_free_scale(w: np.ndarray) -> np.ndarray:
    """NNCF's data-free AWQ scale: ``1 / max(mean over outputs |W|, eps)`` per input channel."""
    m = np.maximum(np.mean(np.abs(w), axis=0), np.finfo(np.float32).eps)
    return (1.0 / m).astype(np.float32)


def _insert_multiply(graph: Graph, site: WeightSite, inv: np.ndarray, axis: int) -> None:
    """A ``Multiply`` by ``inv`` (per channel on ``axis``) on ``site``'s MatMul input edge."""
    src = graph.producer(site.op, 0)
    port = graph.op(src[0]).outputs[src[1]]
    rank = len(port.shape) if port.shape else 2
    shape = [1] * rank
    shape[axis % rank] = inv.size
    dt = np.float16 if "16" in str(port.precision).lower() and "bf" not in str(port.precision).lower() else np.float32
    const = graph.add_const(inv.reshape(shape).astype(dt), f"{graph.op(src[0]).name}/awq_mul/scale")
    mul = graph.add_op("Multiply", f"{graph.op(src[0]).name}/awq_mul", attrs={"auto_broadcast": "numpy"},
                       num_inputs=2)
    graph.connect(const, 0, mul, 1)
    out = graph.op(mul).outputs[0]
    out.shape = list(port.shape) if port.shape else []
    out.precision = port.precision
    graph.insert_on_edge(src[0], src[1], site.op, 0, mul, new_in=0)


def apply_awq(graph: Graph, targets: list[AWQTarget], acts: dict[int, LayerActivations] | None, kernels, *,
              progress=None) -> list[str]:
    """Rescale every target (data-aware with ``acts``, data-free without) in place.

    Updates ``acts`` of each target to the rescaled input. Returns the names of the
    MatMuls whose scale is not all ones.
    """
    from ovq.compression.activations import activation_axis

    changed: list[str] = []
    for t in targets:
        site, p = t.plan.site, t.plan.precision
        w = weight_matrix(graph, site)
        if acts is None:
            scale = data_free_scale(w)
        else:
            a = acts.get(site.const)
            if a is None:
                continue
            prev = None
            if t.merge is not None and t.merge.const in acts:
                pw = weight_matrix(graph, t.merge)
                ps, _ = acts[t.merge.const].process(SUBSET_SIZE)
                prev = (np.mean(np.abs(pw), axis=1).astype(np.float32), float(np.max(ps)), pw.shape[1])
            scale = data_aware_scale(w, a, p.group_size, p.bits, p.sym, kernels, prev, name=site.name)
        if progress is not None:
            progress.update(1)
        if np.all(scale == 1.0):
            continue
        changed.append(site.op_name)
        inv = (1.0 / scale).astype(np.float32)
        set_weight_matrix(graph, site, w * scale[None, :])
        if t.merge is not None:
            mw = weight_matrix(graph, t.merge)
            set_weight_matrix(graph, t.merge, mw * inv[:, None])
        else:
            _insert_multiply(graph, site, inv, activation_axis(graph, site))
        if acts is not None and site.const in acts:
            acts[site.const] = acts[site.const].scaled(inv)
        log.debug("AWQ on %s (%s)", site.op_name, "merged" if t.merge is not None else "multiply")
    return changed
