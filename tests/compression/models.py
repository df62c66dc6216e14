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
