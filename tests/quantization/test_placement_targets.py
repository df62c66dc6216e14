"""Target-specific placement rules: per-channel depthwise activations, GNA3 input priority,
CPU_SPR's one FQ per Add, ScaledDotProductAttention inputs."""

from __future__ import annotations

import numpy as np
import openvino.opset13 as ops
from models import conv, gna_speech, model, param, relu, sdpa_block, seven_bit_weights, w

import ovq
from ovq.quantization import fill_ranges_minmax, place_fake_quantize, plan_placement, runtime_audit
from ovq.runtime import compile_model, infer


def samples(shape, n=3, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


def quantizers(g):
    return g.meta["ovq.quantizers"]


def act_meta(g):
    return {k: v for k, v in quantizers(g).items() if not v.is_weight}


def depthwise_model():
    x = param([1, 8, 10, 10])
    r = relu(conv(x, 16, 8, k=1, name="expand"), "relu1")
    dw = ops.group_convolution(r, ops.constant(w(16, 1, 1, 3, 3)), [1, 1], [1, 1], [1, 1], [1, 1])
    dw.set_friendly_name("dw")
    out = conv(relu(dw, "relu2"), 8, 16, k=1, name="project")
    return model([out], [x])


def rel_rms(ref, out):
    return float(np.sqrt(np.mean((ref - out) ** 2) / np.mean(ref**2)))


def test_depthwise_activations_per_channel_on_cpu():
    m = depthwise_model()
    data = samples([1, 8, 10, 10], n=6)
    g = place_fake_quantize(ovq.Graph.from_ov(m), target="CPU", calibration_samples=data)
    meta = act_meta(g)
    dw_in = meta["relu1/fq_output_0"]
    assert dw_in.per_channel_axis == 1 and dw_in.config.space == "q8_a_ch" and dw_in.levels == 256
    assert meta["relu2/fq_output_0"].per_channel_axis is None  # the 1x1 Convolution input: per tensor
    lo = g.const_value(g.producer(dw_in.node, 1)[0])
    hi = g.const_value(g.producer(dw_in.node, 2)[0])
    assert lo.shape == hi.shape == (1, 16, 1, 1) and np.all(lo == 0) and len(np.unique(hi)) > 1  # after ReLU
    report = runtime_audit(g)
    assert report.ok and report.int8_count == 3, report.format()
    # per-channel FQ + INT8 depthwise stays close to FP32 (7-bit weights: no u8 x s8 saturation)
    seven_bit_weights(g)
    fp, q = compile_model(m), compile_model(g)
    for x in data[:2]:
        assert rel_rms(infer(fp, [x])[0], infer(q, [x])[0]) < 0.03


def test_per_channel_request_falls_back_to_per_tensor_when_shared():
    x = param([1, 8, 10, 10])
    r = relu(conv(x, 8, 8, k=1, name="c0"), "relu0")
    dw = ops.group_convolution(r, ops.constant(w(8, 1, 1, 3, 3)), [1, 1], [1, 1], [1, 1], [1, 1])
    dw.set_friendly_name("dw")
    other = conv(r, 8, 8, k=1, name="c1")  # a per-tensor consumer of the same tensor
    g = place_fake_quantize(ovq.Graph.from_ov(model([ops.add(dw, other)], [x])), target="CPU",
                            calibration_samples=samples([1, 8, 10, 10]))
    meta = act_meta(g)["relu0/fq_output_0"]
    assert meta.per_channel_axis is None and meta.config.space == "q8_a_ch"
    assert runtime_audit(g).ok


def test_npu_depthwise_symmetric_per_channel():
    g = ovq.Graph.from_ov(depthwise_model())
    g.infer_shapes()
    plan = plan_placement(g, "NPU")
    dw = g.find("dw")
    (req,) = [a for a in plan.activations if any(c == dw for c, _ in a.consumers)]
    assert req.per_channel_axis == 1 and req.config.space == "q8_ch" and req.config.mode == "symmetric"


def test_gna3_convolution_inputs_win_merges():
    # input Parameter: output FQ q16_o (priority 1) meets the Convolution input FQ (priority 2)
    perf = place_fake_quantize(ovq.Graph.from_ov(gna_speech()), target="gna3", preset="performance")
    assert act_meta(perf)["input/fq_output_0"].config.space == "q8_a"
    assert act_meta(perf)["input/fq_output_0"].levels == 255
    gna2 = place_fake_quantize(ovq.Graph.from_ov(gna_speech()), target="gna", preset="performance")
    assert act_meta(gna2)["input/fq_output_0"].config.space in ("q16_a", "q16_o")  # GNA 2: primary 16 bits win
    acc = place_fake_quantize(ovq.Graph.from_ov(gna_speech()), target="gna3", preset="mixed")
    assert act_meta(acc)["input/fq_output_0"].levels == 65536  # accuracy: the last config, q16_a
    fill_ranges_minmax(perf, samples([1, 16, 40]))
    out = infer(compile_model(perf), samples([1, 16, 40], n=1, seed=3))[0]
    assert np.isfinite(out).all()


def residual_model():
    x = param([1, 8, 8, 8])
    stem = relu(conv(x, 8, 8, name="stem"), "stem_relu")
    body = conv(relu(conv(stem, 8, 8, name="b1"), "b1_relu"), 8, 8, name="b2")
    add = ops.add(body, stem)
    add.set_friendly_name("residual")
    out = conv(relu(add, "out_relu"), 8, 8, name="head")
    return model([out], [x])


def test_cpu_spr_keeps_one_fq_per_add():
    cpu = place_fake_quantize(ovq.Graph.from_ov(residual_model()), target="CPU",
                              calibration_samples=samples([1, 8, 8, 8]))
    spr = place_fake_quantize(ovq.Graph.from_ov(residual_model()), target="CPU_SPR",
                              calibration_samples=samples([1, 8, 8, 8]))

    def add_inputs_quantized(g):
        add = g.find("residual")
        return sorted(g.op(g.producer(add, i)[0]).type == "FakeQuantize" for i in range(2))

    assert add_inputs_quantized(cpu) == [True, True]
    assert add_inputs_quantized(spr) == [False, True]
    # the non-branching input (b2's bias output) lost its FQ; the shortcut keeps the shared one
    assert "b2/bias/fq_output_0" in act_meta(cpu) and "b2/bias/fq_output_0" not in act_meta(spr)
    assert len(act_meta(spr)) == len(act_meta(cpu)) - 1
    assert runtime_audit(spr).ok


def test_cpu_spr_quantizes_transformer_multiply():
    x = param([1, 4, 8])
    a = ops.matmul(x, ops.constant(w(8, 8)), False, True)
    b = ops.matmul(x, ops.constant(w(8, 8)), False, True)
    mul = ops.multiply(a, b)
    mul.set_friendly_name("gate")
    m = model([mul], [x])
    for target, expect in (("CPU", False), ("CPU_SPR", True)):
        g = ovq.Graph.from_ov(m)
        g.infer_shapes()
        plan = plan_placement(g, target, model_type="transformer")
        gate = g.find("gate")
        assert any(c == gate for a_ in plan.activations for c, _ in a_.consumers) is expect


def test_sdpa_query_and_key_get_symmetric_fqs():
    m = sdpa_block()
    g = place_fake_quantize(ovq.Graph.from_ov(m), model_type="transformer",
                            calibration_samples=samples([1, 8, 32], n=8))
    sdpa = g.find("sdpa")
    fed = {}
    for name, meta in act_meta(g).items():
        for c, i in g.consumers(meta.node, 0):
            fed.setdefault(c, {})[i] = meta
    # FQs reach SDPA ports 0 and 1 through Reshape/Transpose (precision-preserving), not port 2 (value)
    sdpa_inputs = {}
    for i in range(3):
        p = g.producer(sdpa, i)
        while g.op(p[0]).type in ("Transpose", "Reshape"):
            p = g.producer(p[0], 0)
        sdpa_inputs[i] = g.op(p[0]).type
    assert sdpa_inputs[0] == sdpa_inputs[1] == "FakeQuantize" and sdpa_inputs[2] != "FakeQuantize"
    for i in (0, 1):
        p = g.producer(sdpa, i)
        while g.op(p[0]).type != "FakeQuantize":
            p = g.producer(p[0], 0)
        assert quantizers(g)[g.op(p[0]).name].mode == "symmetric"
    report = runtime_audit(g)
    assert report.ok, report.format()
    # the CPU plugin decomposes SDPA and runs Q x K^T in INT8
    assert report.int8_count > len(report.expected)
    seven_bit_weights(g)
    fp, q = compile_model(m), compile_model(g)
    x = samples([1, 8, 32], n=1, seed=9)[0]
    assert rel_rms(infer(fp, [x])[0], infer(q, [x])[0]) < 0.05
