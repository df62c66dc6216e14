"""Small OpenVINO models for the weight-compression tests (built with opset ops), and the
runtime check of FullyConnected weight precisions."""

from __future__ import annotations

import numpy as np


def tiny_lm(vocab: int = 512, hidden: int = 256, ffn: int = 512, layers: int = 2, *, seed: int = 0,
            weight_type=np.float32, transpose_b: bool = True, tied: bool = False, conv: bool = False):
    """A decoder-like stack: Gather embedding, per layer two MatMuls with a ReLU between
    and a residual Add, then an lm-head MatMul (tied to the embedding when ``tied``).

    Input ``ids`` ``[?, ?]`` int64; output ``logits`` ``[?, ?, vocab]``. Weights are
    ``weight_type`` constants (f16 weights sit behind a Convert to f32).
    """
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(seed)

    def const(shape, scale=0.05):
        w = (rng.standard_normal(shape) * scale).astype(np.float32)
        c = ops.constant(w.astype(weight_type))
        return ops.convert(c, ov.Type.f32) if weight_type != np.float32 else c

    def linear(x, cin, cout):
        shape = (cout, cin) if transpose_b else (cin, cout)
        return ops.matmul(x, const(shape), transpose_a=False, transpose_b=transpose_b)

    ids = ops.parameter([-1, -1], ov.Type.i64, name="ids")
    table = const((vocab, hidden), 1.0)
    x = ops.gather(table, ids, ops.constant(np.int64(0)))
    if conv:
        y = ops.transpose(x, ops.constant(np.array([0, 2, 1], np.int64)))
        w = const((hidden, hidden, 3))
        y = ops.convolution(y, w, [1], [1], [1], [1])
        x = ops.add(x, ops.transpose(y, ops.constant(np.array([0, 2, 1], np.int64))))
    for _ in range(layers):
        h = ops.relu(linear(x, hidden, ffn))
        x = ops.add(x, linear(h, ffn, hidden))
    if tied:
        logits = ops.matmul(x, table, transpose_a=False, transpose_b=True)
    else:
        logits = linear(x, hidden, vocab)
    logits.output(0).get_tensor().set_names({"logits"})
    return ov.Model([logits], [ids], "tiny_lm")


def fc_precisions(compiled) -> list[str]:
    """runtimePrecision of every FullyConnected of a compiled model, in execution order."""
    out = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        if rt["layerType"].astype(str) == "FullyConnected":
            out.append(rt["runtimePrecision"].astype(str))
    return out


def outlier_linear(hidden: int = 128, out: int = 64, tokens: int = 8, *, seed: int = 0):
    """``ReLU(x) -> MatMul`` (NNCF's ``Act -> MatMul`` AWQ pattern); input ``x`` ``[1, tokens, hidden]``."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((out, hidden)) * 0.05).astype(np.float32)
    x = ops.parameter([1, tokens, hidden], ov.Type.f32, name="x")
    y = ops.matmul(ops.relu(x), ops.constant(w), False, True)
    return ov.Model([y], [x], "outlier_linear")


def outlier_data(hidden: int = 128, tokens: int = 8, count: int = 16, *, channels=(5, 77), factor: float = 50.0,
                 seed: int = 1) -> list[np.ndarray]:
    """Non-negative samples ``[1, tokens, hidden]`` whose ``channels`` are ``factor`` times larger."""
    rng = np.random.default_rng(seed)
    scale = np.ones(hidden, np.float32)
    scale[list(channels)] = factor
    return [np.abs(rng.standard_normal((1, tokens, hidden))).astype(np.float32) * scale for _ in range(count)]


def gated_mlp(hidden: int = 64, ffn: int = 128, tokens: int = 8, *, seed: int = 0, loud_up: float = 1.0):
    """``Swish(x W_g) * (x W_u) -> W_d -> W_o``: NNCF's ``MatMul -> Multiply -> MatMul`` AWQ
    pattern (``W_u`` merges the scale of ``W_d``); ``loud_up`` multiplies four output
    channels of ``W_u`` (outliers in ``W_d``'s input)."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(seed)

    def w(o, i):
        return (rng.standard_normal((o, i)) * 0.05).astype(np.float32)

    wu = w(ffn, hidden)
    wu[:4] *= loud_up
    x = ops.parameter([1, tokens, hidden], ov.Type.f32, name="x")
    g = ops.matmul(x, ops.constant(w(ffn, hidden)), False, True)
    u = ops.matmul(x, ops.constant(wu), False, True)
    d = ops.matmul(ops.multiply(ops.swish(g), u), ops.constant(w(hidden, ffn)), False, True)
    y = ops.matmul(d, ops.constant(w(32, hidden)), False, True)
    return ov.Model([y], [x], "gated_mlp")


def three_linears(hidden: int = 64, tokens: int = 8, *, seed: int = 0, loud: float = 1000.0):
    """``x -> A -> B -> C -> head``, all ``hidden x hidden`` but the head: B's input is scaled
    by ``loud`` and its output by ``1 / loud`` (constant Multiplies), and B's weight is
    twice as large as A's and C's."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(seed)

    def lin(x, name, scale=0.05, o=hidden):
        node = ops.matmul(x, ops.constant((rng.standard_normal((o, hidden)) * scale).astype(np.float32)), False, True)
        node.set_friendly_name(name)
        return node

    x = ops.parameter([1, tokens, hidden], ov.Type.f32, name="x")
    a = lin(x, "A")
    b = lin(ops.multiply(a, ops.constant(np.float32(loud))), "B", 0.1)
    c = lin(ops.multiply(b, ops.constant(np.float32(1.0 / loud))), "C")
    return ov.Model([lin(c, "head", o=16)], [x], "three_linears")
