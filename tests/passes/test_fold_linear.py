"""fold-linear: each matched form and each refused condition on tiny opset13 graphs.

Numerics: OpenVINO CPU at the f32 hint, before vs after, ``rtol=1e-5, atol=1e-5``
(folding rounds the new weights once, so results are allclose, not bitwise).
"""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as op
import pytest

import ovq
from ovq import runtime
from ovq.passes.fusion.fold_linear import (
    FoldInputAddIntoLinear,
    FoldInputMultiplyIntoLinear,
    FoldMultiplyIntoBiasedLinear,
    FoldMultiplyIntoLinear,
    MergeBiasAdds,
    fold_linear_rules,
)
from ovq.passes.fusion.linear_ops import channel_vector
from ovq.pipeline import get_pass
from ovq.rewrite import MatchTracer, apply_rules

RTOL = ATOL = 1e-5
RNG = np.random.default_rng(0)


def const(*shape, low=0.5, high=2.0, name=None):
    return op.constant(RNG.uniform(low, high, shape).astype(np.float32), name=name)


def linear(kind: str, x, *, pads=1, transpose_b=False, name="lin"):
    """A linear op on a [1, 4, 6, 6] (conv) or [2, 3, 4] (MatMul) input with 6 output features."""
    if kind == "conv":
        return op.convolution(x, const(6, 4, 3, 3, low=-1, high=1), [1, 1], [pads, pads], [pads, pads], [1, 1],
                              name=name)
    if kind == "gconv":
        return op.group_convolution(x, const(2, 3, 2, 3, 3, low=-1, high=1), [1, 1], [pads, pads], [pads, pads],
                                    [1, 1], name=name)
    w = const(6, 4, low=-1, high=1) if transpose_b else const(4, 6, low=-1, high=1)
    return op.matmul(x, w, False, transpose_b, name=name)


def data(kind: str):
    return op.parameter([1, 4, 6, 6] if kind != "matmul" else [2, 3, 4], np.float32, name="x")


def out_channel_shape(kind: str) -> tuple[int, ...]:
    return (1, 6, 1, 1) if kind != "matmul" else (6,)


def in_channel_shape(kind: str) -> tuple[int, ...]:
    return (1, 4, 1, 1) if kind != "matmul" else (1, 1, 4)


def check_numerics(model: ov.Model, graph: ovq.Graph) -> float:
    inputs = runtime.random_inputs(model)
    before = runtime.infer(runtime.compile_model(model), inputs)
    after = runtime.infer(runtime.compile_model(graph), inputs)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_allclose(b, a, rtol=RTOL, atol=ATOL)
    return runtime.max_abs_diff(before, after)


def run_fold(model: ov.Model) -> ovq.Graph:
    graph = ovq.Graph.from_ov(model)
    assert get_pass("fold-linear")()(graph).modified
    graph.verify()
    check_numerics(model, graph)
    assert not get_pass("fold-linear")()(graph).modified, "second run must change nothing"
    return graph


def trace(model: ov.Model, rules=None) -> tuple[ovq.Graph, MatchTracer]:
    graph = ovq.Graph.from_ov(model)
    graph.infer_shapes()
    tracer = MatchTracer()
    apply_rules(graph, rules or fold_linear_rules(), tracer=tracer)
    return graph, tracer


def stamps(graph: ovq.Graph) -> set[str]:
    return {a.get("value") for _, o in graph.ops() if o.rt_info is not None for a in o.rt_info
            if a.get("name") == "ovq_rule"}


KINDS = ["conv", "gconv", "matmul"]


# ------------------------------------------------------------------------- output side


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scalar", [False, True], ids=["per-channel", "scalar"])
def test_multiply_after_linear_folds_into_weights(kind, scalar):
    x = data(kind)
    y = op.multiply(const(*(() if scalar else out_channel_shape(kind))), linear(kind, x), name="scale")
    model = ov.Model([op.relu(y, name="out")], [x], "m")
    graph = run_fold(model)
    hist = graph.op_histogram()
    assert "Multiply" not in hist and "Add" not in hist
    lin = graph.find("lin")
    assert graph.producer(lin, 0)[0] == graph.parameters()[0]
    assert graph.op(graph.producer(lin, 1)[0]).is_const
    assert stamps(graph) == {"fold-multiply-into-linear"}


@pytest.mark.parametrize("transpose_b", [False, True])
def test_matmul_transpose_b_scales_the_output_feature_axis(transpose_b):
    x = data("matmul")
    y = op.multiply(linear("matmul", x, transpose_b=transpose_b), const(1, 1, 6), name="scale")
    model = ov.Model([y], [x], "m")
    graph = run_fold(model)
    assert "Multiply" not in graph.op_histogram()


@pytest.mark.parametrize("kind", KINDS)
def test_multiply_after_bias_scales_weights_and_bias(kind):
    x = data(kind)
    y = op.add(linear(kind, x), const(*out_channel_shape(kind), low=-1, high=1), name="bias")
    y = op.multiply(y, const(*out_channel_shape(kind), low=-2, high=2), name="scale")
    y.output(0).get_tensor().set_names({"scaled"})
    model = ov.Model([y], [x], "m")
    graph = run_fold(model)
    hist = graph.op_histogram()
    assert "Multiply" not in hist and hist["Add"] == 1
    (add,) = graph.nodes_of_type("Add")
    assert graph.op(add).name == "scale" and "scaled" in graph.op(add).outputs[0].names
    assert graph.op(graph.producer(add, 0)[0]).name == "lin"


@pytest.mark.parametrize("kind", KINDS)
def test_two_bias_adds_merge(kind):
    x = data(kind)
    y = op.add(linear(kind, x), const(*out_channel_shape(kind)), name="b1")
    y = op.add(const(*out_channel_shape(kind)), y, name="b2")  # constant on the left
    model = ov.Model([y], [x], "m")
    graph = run_fold(model)
    assert graph.op_histogram()["Add"] == 1
    assert graph.find("b2") in graph.nodes_of_type("Add")


def test_bn_decomposed_into_multiply_add_folds_after_merge_linear_chains():
    x = data("conv")
    y = linear("conv", x)
    for i in range(2):  # the legacy MO decomposition: Mul → Add → Mul → Add
        y = op.multiply(y, const(1, 6, 1, 1), name=f"m{i}")
        y = op.add(y, const(1, 6, 1, 1, low=-1, high=1), name=f"a{i}")
    model = ov.Model([y], [x], "m")
    graph = ovq.Graph.from_ov(model)
    ovq.run_pipeline(graph, "merge-linear-chains,fold-linear,eliminate-dead-code")
    hist = graph.op_histogram()
    assert "Multiply" not in hist and hist["Add"] == 1 and hist["Convolution"] == 1
    check_numerics(model, graph)


# -------------------------------------------------------------------------- input side


@pytest.mark.parametrize("kind", KINDS)
def test_input_multiply_folds_even_with_zero_padding(kind):
    x = data(kind)
    y = linear(kind, op.multiply(x, const(*in_channel_shape(kind), low=-2, high=2), name="pre"), pads=2)
    model = ov.Model([y], [x], "m")
    graph = run_fold(model)
    assert "Multiply" not in graph.op_histogram()
    assert stamps(graph) == {"fold-input-multiply-into-linear"}


def test_input_multiply_matmul_transpose_a_uses_the_k_axis():
    x = op.parameter([2, 4, 3], np.float32, name="x")  # A^T: K on axis -2
    y = op.matmul(op.multiply(x, const(1, 4, 1), name="pre"), const(4, 6), True, False, name="lin")
    model = ov.Model([y], [x], "m")
    run_fold(model)


@pytest.mark.parametrize("kind", KINDS)
def test_input_add_folds_into_bias_without_padding(kind):
    x = data(kind)
    y = linear(kind, op.add(x, const(*in_channel_shape(kind), low=-1, high=1), name="pre"), pads=0)
    model = ov.Model([y], [x], "m")
    graph = run_fold(model)
    hist = graph.op_histogram()
    assert hist["Add"] == 1
    (add,) = graph.nodes_of_type("Add")
    assert graph.op(graph.producer(add, 0)[0]).name == "lin"
    assert graph.producer(graph.find("lin"), 0)[0] == graph.parameters()[0]


def test_input_add_before_padded_convolution_is_refused():
    x = data("conv")
    y = linear("conv", op.add(x, const(1, 4, 1, 1), name="pre"), pads=1)
    graph, tracer = trace(ov.Model([y], [x], "m"), [FoldInputAddIntoLinear()])
    assert "an additive constant cannot cross zero padding" in tracer.explain("fold-input-add-into-linear")
    assert "pre" in {o.name for _, o in graph.ops()}


def test_input_add_before_same_padded_convolution_is_refused():
    x = data("conv")
    w = const(6, 4, 3, 3)
    y = op.convolution(op.add(x, const(1, 4, 1, 1), name="pre"), w, [1, 1], [0, 0], [0, 0], [1, 1],
                       auto_pad="same_upper", name="lin")
    _, tracer = trace(ov.Model([y], [x], "m"), [FoldInputAddIntoLinear()])
    assert "auto_pad=same_upper" in tracer.explain("fold-input-add-into-linear")


def test_input_side_can_be_switched_off():
    x = data("conv")
    y = linear("conv", op.multiply(x, const(1, 4, 1, 1), name="pre"))
    graph = ovq.Graph.from_ov(ov.Model([y], [x], "m"))
    assert not get_pass("fold-linear")(input_side=False)(graph).modified


# ----------------------------------------------------------------------------- refusals


def test_spatially_varying_multiply_is_refused():
    x = data("conv")
    y = op.multiply(linear("conv", x), const(1, 6, 6, 6), name="scale")
    graph, tracer = trace(ov.Model([y], [x], "m"), [FoldMultiplyIntoLinear()])
    assert "is not per-output-channel" in tracer.explain("fold-multiply-into-linear")
    assert "scale" in {o.name for _, o in graph.ops()}


def test_broadcasting_multiply_is_refused():
    x = data("conv")
    y = op.multiply(linear("conv", x), const(2, 1, 6, 1, 1), name="scale")  # adds a leading axis
    _, tracer = trace(ov.Model([y], [x], "m"), [FoldMultiplyIntoLinear()])
    assert "is not per-output-channel" in tracer.explain("fold-multiply-into-linear")


def test_input_channel_constant_on_the_output_side_is_refused():
    x = data("matmul")
    y = op.multiply(linear("matmul", x), const(1, 3, 1), name="scale")  # varies along M, not N
    _, tracer = trace(ov.Model([y], [x], "m"), [FoldMultiplyIntoLinear()])
    assert "is not per-output-channel" in tracer.explain("fold-multiply-into-linear")


def test_shared_linear_output_is_refused():
    x = data("conv")
    lin = linear("conv", x)
    model = ov.Model([op.multiply(lin, const(1, 6, 1, 1), name="scale"), op.relu(lin, name="other")], [x], "m")
    graph, tracer = trace(model, [FoldMultiplyIntoLinear()])
    assert "'lin' is also used by 'other' outside the match" in tracer.explain("fold-multiply-into-linear")
    assert "scale" in {o.name for _, o in graph.ops()}


def test_shared_bias_add_is_refused():
    x = data("conv")
    b1 = op.add(linear("conv", x), const(1, 6, 1, 1), name="b1")
    model = ov.Model([op.add(b1, const(1, 6, 1, 1), name="b2"), op.result(b1)], [x], "m")
    graph, tracer = trace(model, [MergeBiasAdds()])
    assert "'b1' is also used outside the match" in tracer.explain("merge-bias-adds")


def test_shared_input_multiply_is_refused():
    x = data("conv")
    pre = op.multiply(x, const(1, 4, 1, 1), name="pre")
    model = ov.Model([linear("conv", pre), op.relu(pre, name="other")], [x], "m")
    _, tracer = trace(model, [FoldInputMultiplyIntoLinear()])
    assert "'pre' is also used by 'other'" in tracer.explain("fold-input-multiply-into-linear")


def test_non_finite_scale_is_refused():
    x = data("conv")
    scale = np.ones((1, 6, 1, 1), np.float32)
    scale[0, 2] = np.inf
    y = op.multiply(linear("conv", x), op.constant(scale), name="scale")
    _, tracer = trace(ov.Model([y], [x], "m"), [FoldMultiplyIntoLinear()])
    assert "non-finite" in tracer.explain("fold-multiply-into-linear")


def test_fake_quantized_weights_are_not_touched():
    x = data("conv")
    w = const(6, 4, 3, 3, low=-1, high=1)
    lo, hi = op.constant(np.float32(-1)), op.constant(np.float32(1))
    conv = op.convolution(x, op.fake_quantize(w, lo, hi, lo, hi, 255), [1, 1], [1, 1], [1, 1], [1, 1], name="lin")
    y = op.multiply(conv, const(1, 6, 1, 1), name="scale")
    graph, tracer = trace(ov.Model([y], [x], "m"), [FoldMultiplyIntoLinear()])
    # The weights' producer is a FakeQuantize, so the pattern (Const weights) never matches.
    assert tracer.entries and {e.outcome for e in tracer.entries} == {"no-match"}
    assert "Multiply" in graph.op_histogram() and "FakeQuantize" in graph.op_histogram()


def test_int8_compressed_weights_are_not_touched():
    x = data("matmul")
    w8 = op.constant(RNG.integers(-8, 8, (4, 6)).astype(np.int8))
    w = op.multiply(op.convert(w8, np.float32), op.constant(np.float32(0.1)), name="dequant")
    y = op.multiply(op.matmul(x, w, False, False, name="lin"), const(6), name="scale")
    graph = ovq.Graph.from_ov(ov.Model([y], [x], "m"))
    assert not get_pass("fold-linear")()(graph).modified


def test_non_float_constant_is_refused():
    x = op.parameter([2, 4], np.int32, name="x")
    y = op.multiply(op.matmul(x, op.constant(np.ones((4, 6), np.int32)), False, False, name="lin"),
                    op.constant(np.full(6, 2, np.int32)), name="scale")
    graph = ovq.Graph.from_ov(ov.Model([y], [x], "m"))
    assert not get_pass("fold-linear")()(graph).modified


def test_model_output_between_is_refused():
    x = data("conv")
    lin = linear("conv", x)
    model = ov.Model([op.multiply(lin, const(1, 6, 1, 1), name="scale"), op.result(lin)], [x], "m")
    _, tracer = trace(model, [FoldMultiplyIntoLinear(), FoldMultiplyIntoBiasedLinear()])
    assert "'lin' is also used by a model output" in tracer.explain("fold-multiply-into-linear")


def test_matmul_with_vector_weights_is_refused():
    x = op.parameter([4, 4], np.float32, name="x")
    y = op.multiply(op.matmul(x, const(4), False, False, name="lin"), const(4), name="scale")  # output [4] is M
    graph, tracer = trace(ov.Model([y], [x], "m"), [FoldMultiplyIntoLinear()])
    assert {e.outcome for e in tracer.entries} == {"no-match"}  # the MatMul fails matrix_weights
    assert "Multiply" in graph.op_histogram()


def test_missing_port_shapes_are_inferred_first():
    x = data("conv")
    model = ov.Model([op.multiply(linear("conv", x), const(1, 6, 1, 1), name="scale")], [x], "m")
    graph = ovq.Graph.from_ov(model)
    graph.op(graph.find("lin")).outputs[0].shape = None
    assert get_pass("fold-linear")()(graph).modified
    assert graph.op(graph.find("lin")).outputs[0].shape == [1, 6, 6, 6]
    check_numerics(model, graph)


# ---------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("shape", "ok"),
    [((), True), ((6,), False), ((1, 6, 1, 1), True), ((6, 1, 1), True), ((1, 1, 1, 1), True),
     ((1, 6, 2, 1), False), ((2, 6, 1, 1), False), ((1, 1, 6, 1, 1), False), ((1, 3, 1, 1), False)],
)
def test_channel_vector_accepts_only_one_axis(shape, ok):
    value = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    vec = channel_vector(value, 4, 1, 6)
    assert (vec is not None) == ok
    if ok:
        assert vec.shape == (6,)
