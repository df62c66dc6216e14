"""Tiny models for placement tests, built with openvino.opset13."""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as ops

RNG = np.random.default_rng(0)


def w(*shape: int, scale: float = 0.2) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def conv(x, cout: int, cin: int, k: int = 3, name: str | None = None, bias: bool = True):
    c = ops.convolution(x, ops.constant(w(cout, cin, k, k)), [1, 1], [k // 2] * 2, [k // 2] * 2, [1, 1])
    if name:
        c.set_friendly_name(name)
    if bias:
        c = ops.add(c, ops.constant(w(1, cout, 1, 1)))
        if name:
            c.set_friendly_name(name + "/bias")
    return c


def relu(x, name: str):
    r = ops.relu(x)
    r.set_friendly_name(name)
    return r


def param(shape, name: str = "input"):
    p = ops.parameter(shape, np.float32, name=name)
    p.set_friendly_name(name)
    p.output(0).set_names({name})
    return p


def model(outputs, params, name: str = "tiny") -> ov.Model:
    return ov.Model([o if isinstance(o, ov.Output) else o.output(0) for o in outputs], params, name)


def gna_speech(seed: int = 0) -> ov.Model:
    """Conv1D -> ReLU -> Conv1D -> Sigmoid -> MatMul -> Tanh -> MatMul: a small speech-style net."""
    rng = np.random.default_rng(seed)

    def wt(*shape, fan):
        return (rng.standard_normal(shape) / np.sqrt(fan)).astype(np.float32)

    x = param([1, 16, 40])
    c1 = ops.convolution(x, ops.constant(wt(32, 16, 3, fan=48)), [1], [1], [1], [1])
    c1.set_friendly_name("conv1")
    b1 = ops.add(c1, ops.constant(wt(1, 32, 1, fan=4)))
    r1 = relu(b1, "relu1")
    c2 = ops.convolution(r1, ops.constant(wt(24, 32, 1, fan=32)), [1], [0], [0], [1])
    c2.set_friendly_name("conv2")
    b2 = ops.add(c2, ops.constant(wt(1, 24, 1, fan=4)))
    s2 = ops.sigmoid(b2)
    s2.set_friendly_name("sigmoid2")
    t = ops.transpose(s2, ops.constant(np.array([0, 2, 1], np.int64)))
    fc1 = ops.matmul(t, ops.constant(wt(48, 24, fan=24)), False, True)
    fc1.set_friendly_name("fc1")
    fb1 = ops.add(fc1, ops.constant(wt(1, 1, 48, fan=4)))
    th = ops.tanh(fb1)
    th.set_friendly_name("tanh")
    fc2 = ops.matmul(th, ops.constant(wt(10, 48, fan=48)), False, True)
    fc2.set_friendly_name("fc2")
    out = ops.add(fc2, ops.constant(wt(1, 1, 10, fan=4)))
    out.set_friendly_name("logits")
    return model([out], [x], "gna_speech")


def recurrent(kind: str = "lstm", *, hidden: int = 32, inputs: int = 16, steps: int = 6, const_h: bool = False,
              linear_before_reset: bool = False, seed: int = 0) -> ov.Model:
    """x [1, steps, inputs] -> LSTMSequence / GRUSequence / RNNSequence -> Y (h, c are inputs or constants)."""
    rng = np.random.default_rng(seed)
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[kind]
    x = param([1, steps, inputs], "x")
    h = ops.constant(np.zeros((1, 1, hidden), np.float32)) if const_h else param([1, 1, hidden], "h")
    wt = (rng.standard_normal((1, gates * hidden, inputs)) * 0.2).astype(np.float32)
    rt = (rng.standard_normal((1, gates * hidden, hidden)) * 0.2).astype(np.float32)
    nb = (gates + 1 if linear_before_reset else gates) * hidden
    b = (rng.standard_normal((1, nb)) * 0.1).astype(np.float32)
    lengths = ops.constant(np.array([steps], np.int32))
    params = [x] if const_h else [x, h]
    if kind == "lstm":
        c = param([1, 1, hidden], "c")
        params.append(c)
        node = ops.lstm_sequence(x, h, c, lengths, ops.constant(wt), ops.constant(rt), ops.constant(b), hidden, "forward")
    elif kind == "gru":
        node = ops.gru_sequence(x, h, lengths, ops.constant(wt), ops.constant(rt), ops.constant(b), hidden, "forward",
                                linear_before_reset=linear_before_reset)
    else:
        node = ops.rnn_sequence(x, h, lengths, ops.constant(wt), ops.constant(rt), ops.constant(b), hidden, "forward")
    node.set_friendly_name(kind)
    return model([node.output(0)], params, kind)


def sdpa_block(seq: int = 8, dim: int = 32, heads: int = 4, seed: int = 0) -> ov.Model:
    """x -> q/k/v linear layers -> reshape/transpose -> ScaledDotProductAttention -> output linear."""
    rng = np.random.default_rng(seed)
    x = param([1, seq, dim], "x")

    def linear(src, name):
        m = ops.matmul(src, ops.constant((rng.standard_normal((dim, dim)) * 0.2).astype(np.float32)), False, True)
        m.set_friendly_name(name)
        return ops.add(m, ops.constant((rng.standard_normal((1, 1, dim)) * 0.1).astype(np.float32)))

    def heads_of(t):
        r = ops.reshape(t, ops.constant(np.array([1, seq, heads, dim // heads], np.int64)), False)
        return ops.transpose(r, ops.constant(np.array([0, 2, 1, 3], np.int64)))

    q, k, v = (heads_of(linear(x, n)) for n in ("q", "k", "v"))
    att = ops.scaled_dot_product_attention(q, k, v, causal=False)
    att.set_friendly_name("sdpa")
    merged = ops.reshape(ops.transpose(att, ops.constant(np.array([0, 2, 1, 3], np.int64))),
                         ops.constant(np.array([1, seq, dim], np.int64)), False)
    return model([linear(merged, "out")], [x], "sdpa_block")


def seven_bit_weights(g) -> None:
    """Put every ovq weight FQ on a 7-bit grid (range x2, 255 levels: POT/NNCF overflow fix).

    Pre-VNNI x86 CPUs (AVX2 ``pmaddubsw``) saturate pairs of u8 x s8 products in 16 bits,
    so numeric checks of INT8 kernels use 7-bit weights (quantization-algorithms.md §5).
    """
    for q in g.meta["ovq.quantizers"].values():
        if q.is_weight:
            for port in range(1, 5):
                const = g.producer(q.node, port)[0]
                g.set_const_value(const, g.const_value(const) * 2)


def stateful(seed: int = 0) -> ov.Model:
    """``x + ReadValue(state) -> Conv``, with ``Assign(state)`` as a sink (a stateful model)."""
    from openvino.op.util import Variable, VariableInfo

    rng = np.random.default_rng(seed)
    x = param([1, 4, 8, 8], "x")
    info = VariableInfo()
    info.data_shape, info.data_type, info.variable_id = ov.PartialShape([1, 4, 8, 8]), ov.Type.f32, "state"
    var = Variable(info)
    state = ops.read_value(ops.constant(np.full([1, 4, 8, 8], 0.5, np.float32)), var)
    state.set_friendly_name("state")
    s = ops.add(x, state)
    s.set_friendly_name("sum")
    c = ops.convolution(s, ops.constant((rng.standard_normal((8, 4, 3, 3)) * 0.2).astype(np.float32)),
                        [1, 1], [1, 1], [1, 1], [1, 1])
    c.set_friendly_name("conv")
    assign = ops.assign(s, var)
    return ov.Model([c.output(0)], [assign], [x], "stateful")


def if_on_scalar(seed: int = 0) -> ov.Model:
    """A 0-d boolean input selecting one of two convolution branches (``If``), then a conv."""
    rng = np.random.default_rng(seed)

    def body(name: str) -> ov.Model:
        xb = ops.parameter([1, 4, 8, 8], np.float32)
        cb = ops.convolution(xb, ops.constant((rng.standard_normal((8, 4, 3, 3)) * 0.2).astype(np.float32)),
                             [1, 1], [1, 1], [1, 1], [1, 1])
        cb.set_friendly_name(name)
        return ov.Model([ops.result(cb)], [xb], name)

    x = param([1, 4, 8, 8], "x")
    cond = ops.parameter([], ov.Type.boolean, name="cond")
    cond.output(0).set_names({"cond"})
    then_body, else_body = body("then_conv"), body("else_conv")
    branch = ops.if_op(cond)
    branch.set_friendly_name("branch")
    branch.set_then_body(then_body)
    branch.set_else_body(else_body)
    branch.set_input(x.output(0), then_body.get_parameters()[0], else_body.get_parameters()[0])
    out = branch.set_output(then_body.get_results()[0], else_body.get_results()[0])
    r = relu(out, "relu")
    c = ops.convolution(r, ops.constant((rng.standard_normal((8, 8, 3, 3)) * 0.2).astype(np.float32)),
                        [1, 1], [1, 1], [1, 1], [1, 1])
    c.set_friendly_name("after")
    return ov.Model([c.output(0)], [x, cond], "if_on_scalar")


def shared_weight(seed: int = 0) -> ov.Model:
    """Two convolutions (each with a bias) reading one weight constant."""
    rng = np.random.default_rng(seed)
    x = param([1, 4, 8, 8], "x")
    wc = ops.constant((rng.standard_normal((4, 4, 3, 3)) * 0.3).astype(np.float32))
    wc.set_friendly_name("shared_w")
    c1 = ops.convolution(x, wc, [1, 1], [1, 1], [1, 1], [1, 1])
    c1.set_friendly_name("conv1")
    r = relu(ops.add(c1, ops.constant((rng.standard_normal((1, 4, 1, 1)) * 0.1).astype(np.float32))), "relu1")
    c2 = ops.convolution(r, wc, [1, 1], [1, 1], [1, 1], [1, 1])
    c2.set_friendly_name("conv2")
    out = ops.add(c2, ops.constant((rng.standard_normal((1, 4, 1, 1)) * 0.1).astype(np.float32)))
    return ov.Model([out.output(0)], [x], "shared_weight")


def tflite_like(seed: int = 0) -> ov.Model:
    """Weights stored as constant subgraphs, as TFLite/ONNX frontends emit them.

    conv1: ``Const(OHWI) -> Transpose``; conv2: ``Const(f16, OHWI) -> Convert -> Transpose``
    (TFLite Dequantize of FP16 weights); dw: ``Const -> Reshape`` into a GroupConvolution;
    fc: ``Const(f16) -> Convert -> Transpose`` into a MatMul; a ``ShapeOf -> Reshape`` on the
    activation path (not a weight path: kept as given). Biases follow every layer.
    """
    rng = np.random.default_rng(seed)

    def wt(*shape):
        return (rng.standard_normal(shape) * 0.3).astype(np.float32)

    def bias(c, shape=(1, -1, 1, 1)):
        return ops.constant(wt(c).reshape(shape) * 0.3)

    ohwi_to_oihw = ops.constant(np.array([0, 3, 1, 2], np.int64))
    x = param([1, 4, 8, 8], "x")
    w1 = ops.transpose(ops.constant(wt(8, 3, 3, 4)), ohwi_to_oihw)
    w1.set_friendly_name("conv1/weights_transpose")
    c1 = ops.convolution(x, w1, [1, 1], [1, 1], [1, 1], [1, 1])
    c1.set_friendly_name("conv1")
    r1 = relu(ops.add(c1, bias(8)), "relu1")
    w2 = ops.transpose(ops.convert(ops.constant(wt(8, 3, 3, 8).astype(np.float16)), "f32"), ohwi_to_oihw)
    c2 = ops.convolution(r1, w2, [1, 1], [1, 1], [1, 1], [1, 1])
    c2.set_friendly_name("conv2")
    r2 = relu(ops.add(c2, bias(8)), "relu2")
    wd = ops.reshape(ops.constant(wt(8, 9)), ops.constant(np.array([8, 1, 1, 3, 3], np.int64)), False)
    dw = ops.group_convolution(r2, wd, [1, 1], [1, 1], [1, 1], [1, 1])
    dw.set_friendly_name("dw")
    r3 = relu(ops.add(dw, bias(8)), "relu3")
    gap = ops.reduce_mean(r3, ops.constant(np.array([2, 3], np.int64)), False)
    flat = ops.reshape(gap, ops.shape_of(gap), False)  # a shape subgraph on the activation path
    wf = ops.transpose(ops.convert(ops.constant(wt(5, 8).astype(np.float16)), "f32"),
                       ops.constant(np.array([1, 0], np.int64)))
    fc = ops.matmul(flat, wf, False, False)
    fc.set_friendly_name("fc")
    out = ops.add(fc, ops.constant(wt(1, 5) * 0.3))
    return ov.Model([out.output(0)], [x], "tflite_like")
