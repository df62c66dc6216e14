"""A model's own run-time (dynamic) quantization arithmetic gets no FakeQuantize."""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as ops
from models import conv, model, param

import ovq
from ovq.quantization import plan_placement
from ovq.quantization.placement.view import GraphView

F32 = {"INFERENCE_PRECISION_HINT": "f32"}


def _named(node, name):
    node.set_friendly_name(name)
    return node


def _dynamic_quantize(y, tag: str):
    """``y`` rounded to u8 on its own run-time range and back, as ONNX Runtime's
    ``DynamicQuantizeLinear`` reaches OpenVINO (reduce, scale, divide, round, clamp)."""
    axes = ops.constant(np.array([0, 1, 2, 3], np.int64))
    lo = _named(ops.minimum(ops.reduce_min(y, axes), ops.constant(np.float32(0))), f"{tag}_min")
    hi = _named(ops.maximum(ops.reduce_max(y, axes), ops.constant(np.float32(0))), f"{tag}_max")
    scale = _named(ops.divide(ops.subtract(hi, lo), ops.constant(np.float32(255))), f"{tag}_scale")
    zp = _named(ops.clamp(ops.round(ops.divide(ops.negative(lo), scale), "half_to_even"), 0, 255), f"{tag}_zp")
    rounded = _named(ops.round(_named(ops.divide(y, scale), f"{tag}_div"), "half_to_even"), f"{tag}_round")
    q = _named(ops.clamp(_named(ops.add(rounded, zp), f"{tag}_shift"), 0, 255), f"{tag}_clamp")
    q8 = ops.convert(ops.convert(q, "u8"), "f32")
    return _named(ops.multiply(_named(ops.subtract(q8, zp), f"{tag}_centre"), scale), f"{tag}_dequant")


def _dynamic_model() -> ov.Model:
    x = param([1, 4, 8, 8])
    a = conv(x, 8, 4, name="conv_a")
    b = conv(x, 8, 4, name="conv_b")
    d = _dynamic_quantize(a, "dq")
    s = _named(ops.add(d, b), "residual")  # an ordinary eltwise op of two float activations
    return model([conv(s, 4, 8, name="head")], [x])


def _samples(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, 4, 8, 8)).astype(np.float32) for _ in range(n)]


def _activation_fq_consumers(m: ov.Model) -> set[str]:
    """Names of the ops that read an activation FakeQuantize of ``m``."""
    names = set()
    for op in m.get_ordered_ops():
        if op.get_type_name() == "FakeQuantize" and op.input_value(0).get_node().get_type_name() != "Constant":
            names |= {t.get_node().get_friendly_name() for t in op.output(0).get_target_inputs()}
    return names


def test_the_arithmetic_is_found():
    g = ovq.Graph.from_ov(_dynamic_model())
    g.infer_shapes()
    view = GraphView(g)
    own = view.runtime_quantization
    name = {n: g.op(n).name for n in view.order}
    assert "dq_div" in {name[n] for n in own.rounding_inputs}
    assert {"dq_min", "dq_max", "dq_scale"} <= {name[n] for n in own.statistics}
    assert {"dq_round", "dq_shift", "dq_clamp", "dq_zp", "dq_centre"} <= {name[n] for n in own.integer}
    assert "dq_dequant" not in {name[n] for n in own.integer | own.statistics}


def test_no_quantizer_inside_the_models_own_quantization():
    m = _dynamic_model()
    g = ovq.Graph.from_ov(m)
    g.infer_shapes()
    plan = plan_placement(g)
    skipped = dict(plan.skipped)
    for name in ("dq_div", "dq_shift", "dq_scale", "dq_centre"):
        assert "own run-time quantization" in skipped.get(name, ""), name
    q = ovq.quantize(m, _samples(16, 1))
    consumers = _activation_fq_consumers(q)
    assert not consumers & {"dq_div", "dq_shift", "dq_scale", "dq_centre", "dq_dequant", "dq_min", "dq_max"}
    assert {"residual", "head", "conv_a"} <= consumers  # the float arithmetic around it is quantized


def test_the_quantized_model_stays_close_to_the_float_one():
    m = _dynamic_model()
    q = ovq.quantize(m, _samples(16, 1))
    core = ov.Core()
    fp, i8 = core.compile_model(m, "CPU", F32), core.compile_model(q, "CPU", F32)
    err = ref = 0.0
    for x in _samples(8, 2):
        want = fp([x])[0]
        err += float(np.square(i8([x])[0] - want).sum())
        ref += float(np.square(want).sum())
    assert 10 * np.log10(ref / err) > 25.0


def test_a_float_model_with_an_integer_input_is_not_affected():
    """An integer mask converted to float and multiplied in: no rounding, nothing marked."""
    x = param([1, 4, 8, 8])
    mask = ops.parameter([1, 4, 8, 8], np.int32, name="mask")
    a = conv(x, 4, 4, name="conv_a")
    gated = _named(ops.multiply(a, ops.convert(mask, "f32")), "gate")
    y = _named(ops.add(gated, conv(x, 4, 4, name="conv_b")), "sum")
    m = ov.Model([conv(y, 4, 4, name="head")], [x, mask], "masked")
    g = ovq.Graph.from_ov(m)
    g.infer_shapes()
    assert not GraphView(g).runtime_quantization.found
    assert not any("own run-time" in why for _n, why in plan_placement(g).skipped)
