"""Shared pieces of the fusions around linear ops (``fold-linear``, ``fuse-batchnorm``).

Notation: ``L`` is a linear op with constant weights ``W`` — Convolution (``W[o, c, k...]``),
GroupConvolution (``W[g, o', c', k...]``, output channel ``o = g·O' + o'``, input
channel ``c = g·C' + c'``) or MatMul (``B[..., K, N]``, or ``B[..., N, K]`` with
``transpose_b``). Its output features lie on axis 1 of a convolution's output and on
the last axis of a MatMul's.

This module holds the patterns (``L`` with float Const weights; ``Multiply``/``Add``
with a float Const operand on either side), the per-channel weight arithmetic (done in
float64), and the two rewrites every fusion here ends with: rebuild ``L`` with new
weights (:func:`rebuild_linear`) and append a bias ``Add`` (:func:`add_bias`). It
registers no pass.
"""

from __future__ import annotations

import numpy as np

from ovq.rewrite import AnyInput, ConstInput, Match, OpPattern, Rewriter

LINEAR_TYPES = ("Convolution", "GroupConvolution", "MatMul")
FLOAT_TYPES = ("f32", "f16", "f64")


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


def rebuild_linear(rw: Rewriter, match: Match, weights: np.ndarray) -> int:
    """A copy of the matched linear op reading the same data and new ``weights``.

    ``match`` binds ``lin`` (the linear op), ``w`` (its weights Const) and ``x`` (its
    data input), as :func:`linear_pattern` does. The copy keeps ``lin``'s friendly name
    and attributes; the weights are stored in the old weights' element type, under the
    old Const's name. Returns the copy, whose consumers the caller connects.
    """
    g = rw.graph
    lin, w_node = match["lin"], match["w"]
    old = g.const_data(w_node)
    new_w = rw.add_const(weights.astype(g.const_value(w_node).dtype), g.op(w_node).name,
                         element_type=old.element_type.name)
    new = rw.clone_op(lin)
    g.connect(*match.outputs["x"], new, 0)
    g.connect(new_w, 0, new, 1)
    return new


def add_bias(rw: Rewriter, src: int, bias: np.ndarray, name: str, dtype, like: tuple[int, int]) -> int:
    """``Add(src, Const(bias))`` named ``name`` (the Const ``name/bias``, of ``dtype``); returns the Add.

    The Add's output takes the element type and shape of output ``like`` (the output it
    is about to replace).
    """
    g = rw.graph
    const = rw.add_const(np.asarray(bias).astype(dtype), f"{name}/bias")
    add = rw.add_op("Add", name, attrs={"auto_broadcast": "numpy"}, num_inputs=2, like=like)
    g.connect(src, 0, add, 0)
    g.connect(const, 0, add, 1)
    return add
