"""``fold-linear``: fold constant Multiply/Add into the weights and bias of Conv/MatMul.

Notation (shared with :mod:`.linear_ops`): ``L`` is a linear op with constant weights
``W`` — Convolution (``W[o, c, k...]``), GroupConvolution (``W[g, o', c', k...]``, output
channel ``o = g·O' + o'``, input channel ``c = g·C' + c'``) or MatMul (``B[..., K, N]``,
or ``B[..., N, K]`` with ``transpose_b``). ``s``, ``b``, ``c`` are constants that vary along one channel axis
only (scalars allowed): the output-feature axis of ``L`` (axis 1 for convolutions, the
last axis for MatMul) on the output side, the input-feature axis of ``L``'s data input
(axis 1, or the K axis of MatMul's first input) on the input side.

Output side (always exact up to float rounding; ``L`` is linear in ``W``):

* ``L(x; W) · s            = L(x; W·s[o])``
* ``(L(x; W) + b) · s      = L(x; W·s[o]) + b·s``
* ``(L(x; W) + b1) + b2    = L(x; W) + (b1 + b2)``

Input side:

* ``L(x · s; W) = L(x; W·s[c])`` — exact for padded convolutions too, since the
  zero padding of ``x·s`` equals ``s`` times the zero padding of ``x`` (0·s = 0).
* ``L(x + c; W) = L(x; W) + Σ_{c,k} W[o, c, k]·c[c]`` — exact only when no output
  reads padding: the convolution must have zero ``pads_begin``/``pads_end`` (or
  ``auto_pad=valid``). With padding the border outputs would add ``W·c`` for padded
  taps that really read 0, so an Add in front of a padded convolution is left alone
  (the mean-subtraction case of input preprocessing). Always exact for
  MatMul (2-D weights only, so the bias is one vector).

Conditions for every rule: the weights are a float Const feeding ``L`` directly (never
FakeQuantize'd or int8/int4-compressed weights, whose producer is not a Const), the
folded constants are float and finite, their ``auto_broadcast`` is numpy, every
intermediate value has a single consumer and is not a model output (the framework's
interior check), and port shapes are known (the pass runs ``infer_shapes`` first when
an op output lacks a recorded shape).

New constants are computed in float64 and stored in the weights' element type, so the
result matches the unfused graph to float rounding (allclose, not bitwise).

BatchNormInference itself is handled by ``fuse-batchnorm``; a BN that an exporter
already decomposed into per-channel Multiply/Add lands here, usually after
``merge-linear-chains`` has collapsed it into one Multiply and one Add.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ovq.pipeline import register_pass
from ovq.rewrite import AnyInput, ConstInput, Match, OpPattern, Rewriter, RewritePass, RewriteRule

from .linear_ops import (
    LINEAR_TYPES,
    add_bias,
    affine_pattern,
    bias_shape,
    channel_vector,
    finite_problem,
    float_const,
    in_channels,
    input_shift_bias,
    linear_pattern,
    matrix_weights,
    out_axis,
    out_channels,
    out_rank,
    rebuild_linear,
    scale_input_channels,
    scale_output_channels,
    transpose_flag,
)

if TYPE_CHECKING:
    from ovq.ir.graph import Graph


def _output_vectors(graph, match: Match, *consts: str) -> tuple[list[np.ndarray], str | None]:
    """Per-output-channel vectors of the bound constants, or the reason they are not."""
    lin = match["lin"]
    rank = out_rank(graph, lin)
    if rank is None:
        return [], "the linear op's output rank is unknown"
    w = graph.const_value(match["w"])
    channels = out_channels(graph, lin, w)
    vectors = []
    for name in consts:
        value = graph.const_value(match[name])
        vec = channel_vector(value, rank, out_axis(graph, lin), channels)
        if vec is None:
            return [], (f"constant {graph.op(match[name]).name!r} of shape {list(value.shape)} is not "
                        f"per-output-channel ({channels} channels on axis {out_axis(graph, lin)} of rank {rank})")
        vectors.append(vec)
    problem = finite_problem(*zip(consts, vectors, strict=True))
    return vectors, problem


# ------------------------------------------------------------------------- output side


class FoldMultiplyIntoLinear(RewriteRule):
    """``L(x; W) · s → L(x; W·s[o])``.

    Matches: ``Multiply(L, Const s)`` (either operand order), ``s`` per output channel
    or a scalar. Emits: a copy of L with scaled weights, which takes over the Multiply's
    consumers and tensor names. Preserves: values up to float rounding.
    """

    name = "fold-multiply-into-linear"
    pattern = affine_pattern("Multiply", linear_pattern(), "s", "mul")

    def check(self, graph, match):
        _, problem = _output_vectors(graph, match, "s")
        return problem

    def rewrite(self, rw: Rewriter, match: Match) -> None:
        g = rw.graph
        (s,), _ = _output_vectors(g, match, "s")
        weights = scale_output_channels(g, match["lin"], g.const_value(match["w"]), s)
        new = rebuild_linear(rw, match, weights)
        rw.replace_output(match.root, 0, new, 0)


class FoldMultiplyIntoBiasedLinear(RewriteRule):
    """``(L(x; W) + b) · s → L(x; W·s[o]) + b·s``.

    Matches: ``Multiply(Add(L, Const b), Const s)``, ``b`` and ``s`` per output channel
    or scalars. Emits: a copy of L with scaled weights and a bias Add named like the
    Multiply, which takes over its consumers and tensor names. Preserves: values up to
    float rounding.
    """

    name = "fold-multiply-into-biased-linear"
    pattern = affine_pattern("Multiply", affine_pattern("Add", linear_pattern(), "b", "add"), "s", "mul")

    def check(self, graph, match):
        _, problem = _output_vectors(graph, match, "b", "s")
        return problem

    def rewrite(self, rw: Rewriter, match: Match) -> None:
        g = rw.graph
        (b, s), _ = _output_vectors(g, match, "b", "s")
        w = g.const_value(match["w"])
        new = rebuild_linear(rw, match, scale_output_channels(g, match["lin"], w, s))
        rank = out_rank(g, match["lin"])
        bias = (b * s).reshape(bias_shape(rank, out_axis(g, match["lin"]), b.size))
        add = add_bias(rw, new, bias, g.op(match.root).name, g.const_value(match["b"]).dtype, (match.root, 0))
        rw.replace_output(match.root, 0, add, 0)


class MergeBiasAdds(RewriteRule):
    """``(L(x; W) + b1) + b2 → L(x; W) + (b1 + b2)``.

    Matches: ``Add(Add(L, Const b1), Const b2)``, both per output channel or scalars; L
    may have other consumers (it stays), the inner Add may not. Emits: one bias Add after
    L, named like the outer Add, which takes over its consumers and tensor names.
    Preserves: L itself, values up to float rounding.
    """

    name = "merge-bias-adds"
    pattern = affine_pattern("Add", affine_pattern("Add", linear_pattern(), "b1", "add1"), "b2", "add2")
    allow_shared_interior = True  # the linear op is kept, so only the inner Add must be private

    def check(self, graph, match):
        inner = match["add1"]
        consumers = graph.consumers(inner, 0)
        if len(consumers) != 1 or consumers[0][0] != match.root:
            return f"{graph.op(inner).name!r} is also used outside the match"
        _, problem = _output_vectors(graph, match, "b1", "b2")
        return problem

    def rewrite(self, rw: Rewriter, match: Match) -> None:
        g = rw.graph
        (b1, b2), _ = _output_vectors(g, match, "b1", "b2")
        rank = out_rank(g, match["lin"])
        bias = (b1 + b2).reshape(bias_shape(rank, out_axis(g, match["lin"]), b1.size))
        add = add_bias(rw, match["lin"], bias, g.op(match.root).name, g.const_value(match["b1"]).dtype,
                       (match.root, 0))
        rw.replace_output(match.root, 0, add, 0)


# -------------------------------------------------------------------------- input side


def _input_vector(graph, match: Match, const: str) -> tuple[np.ndarray | None, str | None]:
    """The bound constant as a per-input-channel vector of the linear op, or a reason."""
    lin, inner = match["lin"], match["pre"]
    rank = out_rank(graph, inner)
    if rank is None:
        return None, "the data input's rank is unknown"
    w = graph.const_value(match["w"])
    axis = 1
    if graph.op(lin).type == "MatMul":
        axis = -2 if transpose_flag(graph, lin, "transpose_a") and rank >= 2 else -1
    channels = in_channels(graph, lin, w)
    value = graph.const_value(match[const])
    vec = channel_vector(value, rank, axis, channels)
    if vec is None:
        return None, (f"constant {graph.op(match[const]).name!r} of shape {list(value.shape)} is not "
                      f"per-input-channel ({channels} channels on axis {axis} of rank {rank})")
    return vec, finite_problem((const, vec))


def _input_side_pattern(op_type: str, const: str) -> OpPattern:
    pre = affine_pattern(op_type, AnyInput("x"), const, "pre")
    return OpPattern(LINEAR_TYPES, [pre, ConstInput("w", float_const)], bind="lin", predicate=matrix_weights)


class FoldInputMultiplyIntoLinear(RewriteRule):
    """``L(x · s; W) → L(x; W·s[c])``.

    Matches: L whose data input is ``Multiply(x, Const s)``, ``s`` per input channel of
    L or a scalar (exact with zero padding too: 0·s = 0). Emits: a copy of L reading
    ``x`` with scaled weights. Preserves: values up to float rounding.
    """

    name = "fold-input-multiply-into-linear"
    pattern = _input_side_pattern("Multiply", "s")

    def check(self, graph, match):
        return _input_vector(graph, match, "s")[1]

    def rewrite(self, rw: Rewriter, match: Match) -> None:
        g = rw.graph
        s, _ = _input_vector(g, match, "s")
        new = rebuild_linear(rw, match, scale_input_channels(g, match["lin"], g.const_value(match["w"]), s))
        rw.replace_output(match.root, 0, new, 0)


def padding_problem(graph, node: int) -> str | None:
    """Why a convolution may read padding (``None``: it never does)."""
    attrs = graph.op(node).attrs or {}
    auto_pad = attrs.get("auto_pad", "explicit").lower()
    if auto_pad == "valid":
        return None
    if auto_pad in ("same_upper", "same_lower"):
        return f"convolution {graph.op(node).name!r} pads automatically (auto_pad={auto_pad})"
    pads = [int(p) for key in ("pads_begin", "pads_end") for p in attrs.get(key, "").replace(" ", "").split(",") if p]
    if any(pads):
        return (f"convolution {graph.op(node).name!r} is padded (pads_begin={attrs.get('pads_begin')}, "
                f"pads_end={attrs.get('pads_end')}): an additive constant cannot cross zero padding")
    return None


class FoldInputAddIntoLinear(RewriteRule):
    """``L(x + c; W) → L(x; W) + Σ_{c,k} W·c``.

    Matches: L whose data input is ``Add(x, Const c)``, ``c`` per input channel or a
    scalar, L an unpadded convolution or a MatMul with 2-D weights. Emits: a copy of L
    reading ``x`` and a bias Add ``<L>/input_shift``, which takes over L's consumers and
    tensor names. Preserves: values up to float rounding.
    """

    name = "fold-input-add-into-linear"
    pattern = _input_side_pattern("Add", "c")

    def check(self, graph, match):
        lin = match["lin"]
        if graph.op(lin).type == "MatMul":
            if graph.const_value(match["w"]).ndim != 2:
                return "MatMul weights are not 2-D"
        else:
            problem = padding_problem(graph, lin)
            if problem:
                return problem
        if out_rank(graph, lin) is None:
            return "the linear op's output rank is unknown"
        return _input_vector(graph, match, "c")[1]

    def rewrite(self, rw: Rewriter, match: Match) -> None:
        g = rw.graph
        lin = match["lin"]
        c, _ = _input_vector(g, match, "c")
        w = g.const_value(match["w"])
        new = rebuild_linear(rw, match, np.asarray(w, dtype=np.float64))
        shift = input_shift_bias(g, lin, w, c)
        bias = shift.reshape(bias_shape(out_rank(g, lin), out_axis(g, lin), shift.size))
        add = add_bias(rw, new, bias, f"{g.op(lin).name}/input_shift", w.dtype, (lin, 0))
        rw.replace_output(match.root, 0, add, 0)


OUTPUT_RULES = (FoldMultiplyIntoBiasedLinear, FoldMultiplyIntoLinear, MergeBiasAdds)
INPUT_RULES = (FoldInputMultiplyIntoLinear, FoldInputAddIntoLinear)


def fold_linear_rules(input_side: bool = True) -> list[RewriteRule]:
    """The rules of ``fold-linear`` (output side first, so it wins where both apply)."""
    return [cls() for cls in OUTPUT_RULES + (INPUT_RULES if input_side else ())]


def _linear_next_to_affine(graph: Graph) -> bool:
    """True if some Conv/GroupConv/MatMul reads from, or feeds, a Multiply or Add (cheap pre-scan)."""
    wanted = {"Multiply", "Add"}
    for node in graph.nodes_of_type(*LINEAR_TYPES):
        producer = graph.producer(node, 0)
        if producer is not None and graph.op(producer[0]).type in wanted:
            return True
        if any(graph.op(c).type in wanted for c, _ in graph.consumers(node, 0)):
            return True
    return False


@register_pass
@dataclass(frozen=True)
class FoldLinearPass(RewritePass):
    """Fold constant per-channel Multiply/Add into neighbouring Conv/GroupConv/MatMul weights and bias.

    Matches (see the module docstring for the math): on the output side
    ``L → [Add(b)] → Multiply(s)`` and ``L → Add(b1) → Add(b2)``; on the input side
    ``Multiply(s) → L`` and ``Add(c) → L`` (the latter only for unpadded convolutions
    and 2-D MatMul), where L has float Const weights, the constants are finite, float
    and per-channel along the right axis, and every intermediate has one consumer.
    Emits: a copy of L with new weights (it keeps L's friendly name), followed where
    needed by one bias ``Add`` that takes the friendly name of the op it replaces; the
    replaced op's tensor names move to the new last op. New ops are stamped ``ovq_rule``.
    Preserves: values up to float rounding (allclose), model outputs and their names;
    FakeQuantize'd or compressed weights are never touched.
    ``input_side=false`` keeps the input-side rules off. Run after ``fuse-batchnorm``
    and ``merge-linear-chains``; follow with ``eliminate-dead-code``.
    """

    name = "fold-linear"
    input_side: bool = True

    def make_rules(self) -> list[RewriteRule]:
        return fold_linear_rules(self.input_side)

    def applies(self, graph: Graph, rules: list[RewriteRule]) -> bool:
        return _linear_next_to_affine(graph)
