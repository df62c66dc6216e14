"""``fuse-batchnorm``: fold BatchNormInference into the preceding Conv/GroupConv/MatMul.

BatchNormInference normalizes along axis 1 of its data input::

    BN(y)[:, o] = γ[o] · (y[:, o] − μ[o]) / √(σ²[o] + ε) + β[o]

With ``k = γ / √(σ² + ε)`` and ``y = L(x; W) + b`` (``b = 0`` without a bias Add)::

    BN(L(x; W) + b) = L(x; W·k[o]) + ((b − μ)·k + β)

where ``W·k[o]`` scales the output-feature axis of the weights: axis 0 of Convolution
weights ``[Cout, Cin, kh, kw]``, axes 0-1 of GroupConvolution weights
``[G, Cout/G, Cin/G, kh, kw]`` (``o = g·Cout/G + j``), the N axis of MatMul weights
(the last axis of ``[K, N]``, or the first of ``[N, K]`` with ``transpose_b``).

Input order: BatchNormInference-5 takes ``(data, gamma, beta, mean, variance)``,
BatchNormInference-1 takes ``(gamma, beta, data, mean, variance)``; both are matched,
told apart by the layer's opset.

Conditions: γ, β, μ, σ² are float Consts holding one value per channel (or one value
for all); σ² + ε > 0 and k finite; the weights are a float Const (FakeQuantize'd or
compressed weights are left alone); the linear op (and the bias Add, if any) has the BN
as its only consumer; for MatMul the output is 2-D, so that BN's axis 1 is the MatMul's
output-feature axis. The bias Add's constant must be per-output-channel too.

Emits ``L(x; W·k) → Add(b')``, the new weights and bias computed in float64 and stored
in the weights' element type (allclose to the original, not bitwise). Convolution-1 has
no bias input, so the bias is always a separate Add (as OpenVINO's own fusion emits).

A BN that the exporter already decomposed into per-channel Multiply/Add (or a BN
decomposed by another tool) is not handled here: ``merge-linear-chains`` collapses the
chain and ``fold-linear`` folds the resulting Multiply/Add into the weights and bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ovq.pipeline import register_pass
from ovq.rewrite import ConstInput, Match, OpPattern, Rewriter, RewritePass, RewriteRule

from .linear_ops import (
    add_bias,
    affine_pattern,
    bias_shape,
    channel_vector,
    float_const,
    linear_pattern,
    out_axis,
    out_channels,
    out_rank,
    rebuild_linear,
    scale_output_channels,
)

#: Port of each BN parameter, by opset.
_PORTS = {
    "opset5": {"data": 0, "gamma": 1, "beta": 2, "mean": 3, "variance": 4},
    "opset1": {"gamma": 0, "beta": 1, "data": 2, "mean": 3, "variance": 4},
}
_PARAMS = ("gamma", "beta", "mean", "variance")


def _bn_pattern(opset: str, with_bias: bool) -> OpPattern:
    ports = _PORTS[opset]
    producer = affine_pattern("Add", linear_pattern(), "b", "add") if with_bias else linear_pattern()
    inputs = [None] * 5
    inputs[ports["data"]] = producer
    for param in _PARAMS:
        inputs[ports[param]] = ConstInput(param, float_const)
    return OpPattern("BatchNormInference", inputs, bind="bn",
                     predicate=lambda graph, node: graph.op(node).version == opset)


def _folded(graph, match: Match) -> tuple[np.ndarray, np.ndarray] | str:
    """``(k, b')`` per output channel, or the reason the BN cannot be folded."""
    lin = match["lin"]
    if graph.op(lin).type == "MatMul" and out_rank(graph, lin) != 2:
        return "BN normalizes axis 1, which is a MatMul output feature axis only for 2-D outputs"
    rank = out_rank(graph, lin)
    if rank is None:
        return "the linear op's output rank is unknown"
    channels = out_channels(graph, lin, graph.const_value(match["w"]))
    params = {}
    for name in _PARAMS:
        value = graph.const_value(match[name])
        if value.size not in (1, channels) or value.ndim > 1:
            return f"BN {name} has shape {list(value.shape)}, expected [{channels}] or a scalar"
        params[name] = np.broadcast_to(np.asarray(value, np.float64).reshape(-1), (channels,))
    eps = float((graph.op(match.root).attrs or {}).get("epsilon", "0"))
    denom = params["variance"] + eps
    if np.any(denom <= 0) or not np.all(np.isfinite(denom)):
        return "variance + epsilon is not positive and finite"
    k = params["gamma"] / np.sqrt(denom)
    b = np.zeros(channels)
    if "b" in match.nodes:
        vec = channel_vector(graph.const_value(match["b"]), rank, out_axis(graph, lin), channels)
        if vec is None:
            return "the bias Add's constant is not per-output-channel"
        b = vec
    bias = (b - params["mean"]) * k + params["beta"]
    if not (np.all(np.isfinite(k)) and np.all(np.isfinite(bias))):
        return "the folded scale or bias is not finite"
    return k, bias


class _FuseBatchNorm(RewriteRule):
    """``BN(L(x; W) [+ b]) → L(x; W·k) + b'`` (the four rules below differ in opset and bias).

    Matches: BatchNormInference whose data input is L (or ``Add(L, Const b)``) with
    float Const weights and constant per-channel parameters (conditions in the module
    docstring). Emits: a copy of L with scaled weights and a bias Add named like the BN,
    which takes over its consumers and tensor names. Preserves: values up to float
    rounding.
    """

    def check(self, graph, match):
        folded = _folded(graph, match)
        return folded if isinstance(folded, str) else None

    def rewrite(self, rw: Rewriter, match: Match) -> None:
        g = rw.graph
        k, bias = _folded(g, match)
        lin = match["lin"]
        w = g.const_value(match["w"])
        new = rebuild_linear(rw, match, scale_output_channels(g, lin, w, k))
        shaped = bias.reshape(bias_shape(out_rank(g, lin), out_axis(g, lin), bias.size))
        add = add_bias(rw, new, shaped, g.op(match.root).name, w.dtype, (match.root, 0))
        rw.replace_output(match.root, 0, add, 0)


def _rule(opset: str, with_bias: bool) -> type[_FuseBatchNorm]:
    suffix = "-after-bias" if with_bias else ""
    return type(
        f"FuseBatchNorm{opset[5:]}{'AfterBias' if with_bias else ''}",
        (_FuseBatchNorm,),
        {
            "name": f"fuse-batchnorm{opset[5:]}{suffix}",
            "pattern": _bn_pattern(opset, with_bias),
            "__doc__": f"BatchNormInference-{opset[5:]} after Conv/GroupConv/MatMul"
                       f"{' and its bias Add' if with_bias else ''}.",
        },
    )


FuseBatchNorm5AfterBias = _rule("opset5", True)
FuseBatchNorm5 = _rule("opset5", False)
FuseBatchNorm1AfterBias = _rule("opset1", True)
FuseBatchNorm1 = _rule("opset1", False)
RULES = (FuseBatchNorm5AfterBias, FuseBatchNorm5, FuseBatchNorm1AfterBias, FuseBatchNorm1)


@register_pass
@dataclass(frozen=True)
class FuseBatchNormPass(RewritePass):
    """Fold BatchNormInference (opset1 and opset5) into the weights and bias of the preceding Conv/GroupConv/MatMul.

    Matches: ``L(x; W) [→ Add(b)] → BatchNormInference`` with constant per-channel BN
    parameters, float Const weights and single-consumer intermediates (details and math
    in the module docstring).
    Emits: a copy of L with scaled weights (keeping L's friendly name) and one bias
    ``Add`` carrying the BN's friendly name and tensor names, stamped ``ovq_rule``.
    Preserves: values up to float rounding (allclose), model outputs and their names.
    BNs that follow anything else are left as they are. Follow with ``fold-linear``
    (merges the new bias with a following Add) and ``eliminate-dead-code``.
    """

    name = "fuse-batchnorm"
    rules = RULES
