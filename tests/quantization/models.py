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
