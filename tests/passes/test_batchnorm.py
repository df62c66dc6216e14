"""fuse-batchnorm: BatchNormInference-1 and -5 after Conv/GroupConv/MatMul, with and without bias.

Numerics: OpenVINO CPU at the f32 hint, before vs after, ``rtol=1e-5, atol=1e-5``.
"""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset1 as op1
import openvino.opset5 as op5
import openvino.opset13 as op
import pytest

import ovq
from ovq import runtime
from ovq.passes.fusion.batchnorm import RULES
from ovq.pipeline import get_pass
from ovq.rewrite import MatchTracer, apply_rules

RTOL = ATOL = 1e-5
RNG = np.random.default_rng(1)


def const(*shape, low=-1.0, high=1.0):
    return op.constant(RNG.uniform(low, high, shape).astype(np.float32))


def bn_params(channels: int, *, variance=None):
    gamma, beta, mean = const(channels, low=0.5, high=2), const(channels), const(channels)
    var = const(channels, low=0.1, high=2) if variance is None else op.constant(variance)
    return gamma, beta, mean, var


def batch_norm(opset: str, y, channels: int, **kw):
    gamma, beta, mean, var = bn_params(channels, **kw)
    if opset == "opset5":
        return op5.batch_norm_inference(y, gamma, beta, mean, var, 1e-3, name="bn")
    return op1.batch_norm_inference(y, gamma, beta, mean, var, 1e-3, name="bn")


def linear(kind: str, x):
    if kind == "conv":
        return op.convolution(x, const(6, 4, 3, 3), [1, 1], [1, 1], [1, 1], [1, 1], name="lin")
    if kind == "gconv":
        return op.group_convolution(x, const(2, 3, 2, 3, 3), [2, 2], [1, 1], [1, 1], [1, 1], name="lin")
    if kind == "dwconv":
        return op.group_convolution(x, const(4, 1, 1, 3, 3), [1, 1], [1, 1], [1, 1], [1, 1], name="lin")
    if kind == "matmul_t":
        return op.matmul(x, const(6, 4), False, True, name="lin")
    return op.matmul(x, const(4, 6), False, False, name="lin")


def data(kind: str):
    return op.parameter([2, 4] if kind.startswith("matmul") else [1, 4, 6, 6], np.float32, name="x")


def channels(kind: str) -> int:
    return 4 if kind == "dwconv" else 6


def bias_shape(kind: str) -> tuple[int, ...]:
    return (1, channels(kind)) if kind.startswith("matmul") else (1, channels(kind), 1, 1)


def check_numerics(model, graph):
    inputs = runtime.random_inputs(model)
    before = runtime.infer(runtime.compile_model(model), inputs)
    after = runtime.infer(runtime.compile_model(graph), inputs)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_allclose(b, a, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("opset", ["opset5", "opset1"])
@pytest.mark.parametrize("kind", ["conv", "gconv", "dwconv", "matmul", "matmul_t"])
@pytest.mark.parametrize("with_bias", [False, True], ids=["no-bias", "bias"])
def test_batchnorm_folds_into_weights_and_one_bias(opset, kind, with_bias):
    x = data(kind)
    y = linear(kind, x)
    if with_bias:
        y = op.add(y, const(*bias_shape(kind)), name="bias")
    y = batch_norm(opset, y, channels(kind))
    y.output(0).get_tensor().set_names({"normalized"})
    model = ov.Model([op.relu(y, name="out")], [x], "m")
    graph = ovq.Graph.from_ov(model)
    assert graph.op(graph.find("bn")).version == opset
    assert get_pass("fuse-batchnorm")()(graph).modified
    graph.verify()
    hist = graph.op_histogram()
    assert "BatchNormInference" not in hist and hist["Add"] == 1
    (add,) = graph.nodes_of_type("Add")
    assert graph.op(add).name == "bn" and "normalized" in graph.op(add).outputs[0].names
    lin = graph.producer(add, 0)[0]
    assert graph.op(lin).name == "lin" and graph.producer(lin, 0)[0] == graph.parameters()[0]
    rules = {a.get("value") for a in graph.op(add).rt_info if a.get("name") == "ovq_rule"}
    assert rules == {f"fuse-batchnorm{opset[5:]}{'-after-bias' if with_bias else ''}"}
    check_numerics(model, graph)
    assert not get_pass("fuse-batchnorm")()(graph).modified


def test_batchnorm_weights_math():
    """W' = W·γ/√(σ²+ε) per output channel; b' = (b − μ)·γ/√(σ²+ε) + β."""
    x = data("conv")
    w = RNG.uniform(-1, 1, (6, 4, 3, 3)).astype(np.float32)
    b = RNG.uniform(-1, 1, (1, 6, 1, 1)).astype(np.float32)
    g, be, mu, var = (RNG.uniform(0.5, 2, 6).astype(np.float32) for _ in range(4))
    conv = op.convolution(x, op.constant(w), [1, 1], [1, 1], [1, 1], [1, 1], name="lin")
    y = op5.batch_norm_inference(op.add(conv, op.constant(b)), op.constant(g), op.constant(be), op.constant(mu),
                                 op.constant(var), 1e-3, name="bn")
    graph = ovq.Graph.from_ov(ov.Model([y], [x], "m"))
    get_pass("fuse-batchnorm")()(graph)
    lin = graph.find("lin")
    k = g.astype(np.float64) / np.sqrt(var.astype(np.float64) + 1e-3)
    np.testing.assert_allclose(graph.const_value(graph.producer(lin, 1)[0]), w * k[:, None, None, None], rtol=1e-6)
    bias = graph.const_value(graph.producer(graph.find("bn"), 1)[0])
    np.testing.assert_allclose(bias.reshape(-1), (b.reshape(-1) - mu) * k + be, rtol=1e-6, atol=1e-7)


def trace(model):
    graph = ovq.Graph.from_ov(model)
    graph.infer_shapes()
    tracer = MatchTracer()
    apply_rules(graph, [cls() for cls in RULES], tracer=tracer)
    return graph, tracer


def test_batchnorm_after_3d_matmul_is_refused():
    x = op.parameter([2, 6, 4], np.float32, name="x")
    y = op.matmul(x, const(4, 6), False, False, name="lin")  # BN axis 1 is the sequence axis here
    graph, tracer = trace(ov.Model([batch_norm("opset5", y, 6)], [x], "m"))
    assert "only for 2-D outputs" in tracer.explain("fuse-batchnorm5")
    assert "BatchNormInference" in graph.op_histogram()


def test_batchnorm_with_shared_conv_output_is_refused():
    x = data("conv")
    lin = linear("conv", x)
    model = ov.Model([batch_norm("opset5", lin, 6), op.relu(lin, name="other")], [x], "m")
    _, tracer = trace(model)
    assert "'lin' is also used by 'other' outside the match" in tracer.explain("fuse-batchnorm5")


def test_batchnorm_with_non_positive_variance_is_refused():
    x = data("conv")
    var = np.ones(6, np.float32)
    var[3] = -1.0
    _, tracer = trace(ov.Model([batch_norm("opset5", linear("conv", x), 6, variance=var)], [x], "m"))
    assert "variance + epsilon is not positive" in tracer.explain("fuse-batchnorm5")


def test_batchnorm_with_spatial_bias_is_refused():
    x = data("conv")
    y = op.add(linear("conv", x), const(1, 6, 6, 6), name="bias")
    _, tracer = trace(ov.Model([batch_norm("opset5", y, 6)], [x], "m"))
    assert "bias Add's constant is not per-output-channel" in tracer.explain("fuse-batchnorm5-after-bias")


def test_batchnorm_after_non_linear_op_stays():
    x = data("conv")
    y = batch_norm("opset5", op.relu(x), 4)
    graph = ovq.Graph.from_ov(ov.Model([y], [x], "m"))
    assert not get_pass("fuse-batchnorm")()(graph).modified


def test_batchnorm_with_fake_quantized_weights_stays():
    x = data("conv")
    lo, hi = op.constant(np.float32(-1)), op.constant(np.float32(1))
    wq = op.fake_quantize(const(6, 4, 3, 3), lo, hi, lo, hi, 255)
    conv = op.convolution(x, wq, [1, 1], [1, 1], [1, 1], [1, 1], name="lin")
    graph = ovq.Graph.from_ov(ov.Model([batch_norm("opset5", conv, 6)], [x], "m"))
    assert not get_pass("fuse-batchnorm")()(graph).modified
