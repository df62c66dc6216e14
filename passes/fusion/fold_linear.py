"""``fold-linear``: fold constant Multiply/Add into the weights and bias of Conv/MatMul.

Notation: ``L`` is a linear op with constant weights ``W`` — Convolution (``W[o, c, k...]``),
GroupConvolution (``W[g, o', c', k...]``, output channel ``o = g·O' + o'``, input
channel ``c = g·C' + c'``) or MatMul (``B[..., K, N]``, or ``B[..., N, K]`` with
``transpose_b``). ``s``, ``b``, ``c`` are constants that vary along one channel axis
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
  (the mean-subtraction case of preprocessing-and-fusion.md §4). Always exact for
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

import copy
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

from ovq.ir.graph import Port
from ovq.pipeline import Pass, PassContext, register_pass
from ovq.rewrite import AnyInput, ConstInput, Match, OpPattern, Rewriter, RewriteRule, apply_rules

LINEAR_TYPES = ("Convolution", "GroupConvolution", "MatMul")
FLOAT_TYPES = ("f32", "f16", "f64")
_MAX_ROUNDS = 10


# ----------------------------------------------------------------------------- helpers
# Shared with fuse-batchnorm (passes/fusion/batchnorm.py).


def float_const(graph, node) -> bool:
    """ConstInput predicate: a floating-point Const (f32/f16/f64)."""
    return graph.const_data(node).element_type.name in FLOAT_TYPES


def numpy_broadcast(graph, node) -> bool:
    """OpPattern predicate: an elementwise op with numpy broadcasting."""
    return (graph.op(node).attrs or {}).get("auto_broadcast", "numpy") == "numpy"


def matrix_weights(graph, node) -> bool:
    """OpPattern predicate: not a MatMul with 1-D weights (whose output has no feature axis)."""
    if graph.op(node).type != "MatMul":
        return True
    producer = graph.producer(node, 1)
    if producer is None or not graph.op(producer[0]).is_const:
        return True  # the ConstInput reports it
    return len(graph.const_data(producer[0]).shape) >= 2


def linear_pattern(bind: str = "lin", *, consumers: int | None = None) -> OpPattern:
    """Conv/GroupConv/MatMul whose weights (input 1) are a float Const (MatMul: at least 2-D)."""
    return OpPattern(LINEAR_TYPES, [AnyInput("x"), ConstInput("w", float_const)], bind=bind, consumers=consumers,
                     predicate=matrix_weights)


def affine_pattern(op_type: str, inner: OpPattern | AnyInput, const: str, bind: str) -> OpPattern:
    """``op_type(inner, Const)`` with the constant on either side."""
    return OpPattern(op_type, [inner, ConstInput(const, float_const)], bind=bind, commutative=True,
                     predicate=numpy_broadcast)


def out_rank(graph, node: int, out_index: int = 0) -> int | None:
    """Rank of an output port, if known."""
    shape = graph.op(node).outputs[out_index].shape
    return None if shape is None else len(shape)


def channel_vector(value: np.ndarray, rank: int, axis: int, channels: int) -> np.ndarray | None:
    """``value`` as a float64 vector of ``channels`` if it varies only along ``axis``.

    ``value`` broadcasts (numpy rules) against a tensor of rank ``rank``; it qualifies when
    it has no more dims than the tensor and every dim other than ``axis`` is 1 and
    ``axis`` is 1 or ``channels`` — so it neither broadcasts the tensor to a bigger shape
    nor varies along any other axis. Returns ``None`` otherwise.
    """
    if value.ndim > rank:
        return None
    shape = (1,) * (rank - value.ndim) + tuple(value.shape)
    axis %= rank
    if any(d != 1 for i, d in enumerate(shape) if i != axis) or shape[axis] not in (1, channels):
        return None
    flat = np.asarray(value, dtype=np.float64).reshape(-1)
    return np.broadcast_to(flat, (channels,)).copy()


def transpose_flag(graph, node: int, key: str) -> bool:
    """A MatMul ``transpose_a``/``transpose_b`` attribute."""
    return (graph.op(node).attrs or {}).get(key, "false").lower() == "true"


def out_channels(graph, lin: int, w: np.ndarray) -> int:
    """Number of output features of a linear op with weights ``w``."""
    kind = graph.op(lin).type
    if kind == "Convolution":
        return w.shape[0]
    if kind == "GroupConvolution":
        return w.shape[0] * w.shape[1]
    return w.shape[-2] if transpose_flag(graph, lin, "transpose_b") else w.shape[-1]


def in_channels(graph, lin: int, w: np.ndarray) -> int:
    """Number of input features of a linear op with weights ``w``."""
    kind = graph.op(lin).type
    if kind == "Convolution":
        return w.shape[1]
    if kind == "GroupConvolution":
        return w.shape[0] * w.shape[2]
    return w.shape[-1] if transpose_flag(graph, lin, "transpose_b") else w.shape[-2]


def out_axis(graph, lin: int) -> int:
    """Axis of the linear op's output that holds its output features."""
    return -1 if graph.op(lin).type == "MatMul" else 1


def scale_output_channels(graph, lin: int, w: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``W`` with output feature ``o`` multiplied by ``s[o]`` (float64)."""
    w = np.asarray(w, dtype=np.float64)
    kind = graph.op(lin).type
    if kind == "Convolution":
        return w * s.reshape((-1,) + (1,) * (w.ndim - 1))
    if kind == "GroupConvolution":
        return w * s.reshape((w.shape[0], w.shape[1]) + (1,) * (w.ndim - 2))
    return w * (s[:, None] if transpose_flag(graph, lin, "transpose_b") else s)


def scale_input_channels(graph, lin: int, w: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``W`` with input feature ``c`` multiplied by ``s[c]`` (float64)."""
    w = np.asarray(w, dtype=np.float64)
    kind = graph.op(lin).type
    if kind == "Convolution":
        return w * s.reshape((1, -1) + (1,) * (w.ndim - 2))
    if kind == "GroupConvolution":
        return w * s.reshape((w.shape[0], 1, w.shape[2]) + (1,) * (w.ndim - 3))
    return w * (s if transpose_flag(graph, lin, "transpose_b") else s[:, None])


def input_shift_bias(graph, lin: int, w: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``Σ_{c,k} W[o, c, k]·c[c]`` per output feature (float64): what ``L(c)`` adds."""
    w = np.asarray(w, dtype=np.float64)
    kind = graph.op(lin).type
    if kind == "Convolution":
        return (w * c.reshape((1, -1) + (1,) * (w.ndim - 2))).sum(axis=tuple(range(1, w.ndim)))
    if kind == "GroupConvolution":
        grouped = w * c.reshape((w.shape[0], 1, w.shape[2]) + (1,) * (w.ndim - 3))
        return grouped.sum(axis=tuple(range(2, w.ndim))).reshape(-1)
    return w @ c if transpose_flag(graph, lin, "transpose_b") else c @ w


def bias_shape(rank: int, axis: int, channels: int) -> tuple[int, ...]:
    """Shape of a per-channel constant for a rank-``rank`` tensor (all 1 but ``axis``)."""
    shape = [1] * rank
    shape[axis % rank] = channels
    return tuple(shape)


def finite_problem(*named: tuple[str, np.ndarray]) -> str | None:
    """Reason to refuse if a folded constant holds inf or NaN."""
    for name, value in named:
        if not np.all(np.isfinite(value)):
            return f"{name} holds non-finite values"
    return None


def _inherited_rt_info(op) -> ET.Element | None:
    """The op's rt_info without earlier ``ovq_rule`` stamps (the rewriter adds its own)."""
    if op.rt_info is None:
        return None
    rt = copy.deepcopy(op.rt_info)
    for attr in [a for a in rt if a.get("name") == "ovq_rule"]:
        rt.remove(attr)
    return rt


def clone_op(rw: Rewriter, node: int, *, name: str | None = None, attrs: dict[str, str] | None = None) -> int:
    """A new, unconnected copy of ``node`` (type, opset, attributes, rt_info, port shapes).

    Stamped with the rule through ``rw``; output tensor names are not copied (they move
    with :meth:`Rewriter.replace_output`).
    """
    op = rw.graph.op(node)
    outputs = [Port(id=0, precision=p.precision, shape=None if p.shape is None else list(p.shape))
               for p in op.outputs]
    new_attrs = dict(op.attrs or {})
    new_attrs.update(attrs or {})
    return rw.add_op(op.type, op.name if name is None else name, version=op.version,
                     attrs=new_attrs if op.attrs is not None or attrs else None,
                     num_inputs=len(op.inputs), outputs=outputs, rt_info=_inherited_rt_info(op))


def rebuild_linear(rw: Rewriter, match: Match, weights: np.ndarray) -> int:
    """A copy of the matched linear op reading the same data and new ``weights``.

    The weights are stored in the old weights' element type, under the old Const's name.
    """
    g = rw.graph
    lin, w_node = match["lin"], match["w"]
    old = g.const_data(w_node)
    new_w = rw.add_const(weights.astype(g.const_value(w_node).dtype), g.op(w_node).name,
                         element_type=old.element_type.name)
    new = clone_op(rw, lin)
    g.connect(*match.outputs["x"], new, 0)
    g.connect(new_w, 0, new, 1)
    return new


def add_bias(rw: Rewriter, src: int, bias: np.ndarray, name: str, dtype, like: tuple[int, int]) -> int:
    """``Add(src, Const(bias))`` named ``name``; returns the Add."""
    g = rw.graph
    const = rw.add_const(np.asarray(bias).astype(dtype), f"{name}/bias")
    add = rw.add_op("Add", name, attrs={"auto_broadcast": "numpy"}, num_inputs=2, like=like)
    g.connect(src, 0, add, 0)
    g.connect(const, 0, add, 1)
    return add


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
    """L(x; W) · s → L(x; W·s) (s per output channel or scalar)."""

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
    """(L(x; W) + b) · s → L(x; W·s) + b·s."""

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
    """(L(x; W) + b1) + b2 → L(x; W) + (b1 + b2) (both per output channel)."""

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
    """L(x · s; W) → L(x; W·s) (s per input channel or scalar; exact with zero padding)."""

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
    """L(x + c; W) → L(x; W) + Σ W·c (unpadded convolutions and 2-D MatMul only)."""

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


def ensure_shapes(graph) -> None:
    """Run OpenVINO shape inference unless every op output already records a shape.

    A model read from IR records every port's shape, and rewrites made through
    :func:`clone_op` / ``Rewriter.add_op(like=...)`` keep them; ops added without a
    shape (``None``) trigger a full ``infer_shapes`` (a round trip through OpenVINO,
    the dominant cost of these passes on large models).
    """
    for _, op in graph.ops():
        if any(port.shape is None for port in op.outputs):
            graph.infer_shapes()
            return


def has_neighbour(graph, anchors: tuple[str, ...], neighbours: tuple[str, ...]) -> bool:
    """True if some ``anchors`` op reads from, or feeds, a ``neighbours`` op (cheap pre-scan)."""
    wanted = set(neighbours)
    for node in graph.nodes_of_type(*anchors):
        producer = graph.producer(node, 0)
        if producer is not None and graph.op(producer[0]).type in wanted:
            return True
        if any(graph.op(c).type in wanted for c, _ in graph.consumers(node, 0)):
            return True
    return False


def apply_until_stable(graph, rules: list[RewriteRule], tracer=None) -> int:
    """Run :func:`apply_rules` until a round rewrites nothing; total rewrites."""
    total = 0
    for _ in range(_MAX_ROUNDS):
        count = apply_rules(graph, rules, tracer=tracer)
        total += count
        if not count:
            break
    return total


@register_pass
@dataclass(frozen=True)
class FoldLinearPass(Pass):
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

    def run(self, graph, ctx: PassContext) -> None:
        if not has_neighbour(graph, LINEAR_TYPES, ("Multiply", "Add")):
            return
        ensure_shapes(graph)
        apply_until_stable(graph, fold_linear_rules(self.input_side))
