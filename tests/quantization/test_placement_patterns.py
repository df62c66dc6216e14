"""Ignored patterns (POT IgnoredPatterns.md / NNCF): one tiny graph per pattern, kept float."""

from __future__ import annotations

import numpy as np
import openvino.opset13 as ops
import pytest
from models import conv, model, param, relu, w

import ovq
from ovq.quantization import place_fake_quantize, plan_placement, runtime_audit


def samples(shape, n=3):
    rng = np.random.default_rng(1)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


def placed(m, shape, **kw):
    g = place_fake_quantize(ovq.Graph.from_ov(m), calibration_samples=samples(shape), **kw)
    report = runtime_audit(g)  # compiles and runs the quantized layers in INT8 on CPU
    assert report.ok, report.format()
    return g


def fq_sites(g):
    """(producer name, sorted consumer names) of every activation FQ."""
    out = set()
    for m in g.meta["ovq.quantizers"].values():
        if m.is_weight:
            continue
        fq = m.node
        p = g.producer(fq, 0)
        out.add((g.op(p[0]).name, tuple(sorted(g.op(c).name for c, _ in g.consumers(fq, 0)))))
    return out


def plan_of(m, **kw):
    g = ovq.Graph.from_ov(m)
    g.infer_shapes()
    return g, plan_placement(g, **kw)


def named(node, name):
    node.set_friendly_name(name)
    return node


def head(x, cin, name="head"):
    return conv(x, 8, cin, k=1, name=name)


def test_swish_is_kept_float():
    x = param([1, 4, 6, 6])
    c = conv(x, 8, 4, name="c1")
    sig = named(ops.sigmoid(c), "sig")
    sw = named(ops.multiply(c, sig), "swish")
    m = model([head(sw, 8)], [x])
    g, plan = plan_of(m)
    assert plan.ignored_patterns["swish"] == ["sig", "swish"]
    g = placed(m, [1, 4, 6, 6])
    # no FQ on the Multiply inputs; only the network input and the swish output for the head conv
    assert fq_sites(g) == {("input", ("c1",)), ("swish", ("head",))}


@pytest.mark.parametrize("variant", ["div_after", "mul_inside", "hsigmoid_op"])
def test_hswish_is_kept_float(variant):
    x = param([1, 4, 6, 6])
    c = conv(x, 8, 4, name="c1")
    if variant == "hsigmoid_op":
        gate = named(ops.hsigmoid(c), "hsig")
        out = named(ops.multiply(c, gate), "hswish")
        expect = {"hsig", "hswish"}
    else:
        add = named(ops.add(c, ops.constant(np.float32(3.0))), "plus3")
        clamp = named(ops.clamp(add, 0.0, 6.0), "relu6")
        if variant == "mul_inside":
            gate = named(ops.multiply(clamp, ops.constant(np.float32(1 / 6))), "div6")
            out = named(ops.multiply(c, gate), "hswish")
        else:
            mul = named(ops.multiply(c, clamp), "hswish")
            out = named(ops.divide(mul, ops.constant(np.float32(6.0))), "div6")
        expect = {"plus3", "relu6", "hswish", "div6"}
    m = model([head(out, 8)], [x])
    _g, plan = plan_of(m)
    assert set(plan.ignored_patterns["hswish"]) == expect
    assert not [a for a in plan.activations if a.producer in expect]
    placed(m, [1, 4, 6, 6])


@pytest.mark.parametrize("linear", ["conv", "matmul"])
def test_se_block_is_kept_float(linear):
    x = param([1, 8, 6, 6])
    feat = relu(conv(x, 16, 8, name="c1"), "feat")
    pool = named(ops.reduce_mean(feat, ops.constant(np.array([2, 3], np.int64)), True), "squeeze")
    if linear == "conv":
        s1 = relu(conv(pool, 4, 16, k=1, name="se_reduce"), "se_relu")
        s2 = conv(s1, 16, 4, k=1, name="se_expand")
    else:
        flat = ops.reshape(pool, ops.constant(np.array([1, 16], np.int64)), False)
        s1 = relu(ops.matmul(flat, ops.constant(w(4, 16)), False, True), "se_relu")
        s2 = ops.reshape(ops.matmul(s1, ops.constant(w(16, 4)), False, True),
                         ops.constant(np.array([1, 16, 1, 1], np.int64)), False)
    gate = named(ops.sigmoid(s2), "se_gate")
    scaled = named(ops.multiply(feat, gate), "se_scale")
    m = model([head(scaled, 16)], [x])
    _g, plan = plan_of(m)
    kept = set(plan.ignored_patterns["se_block"])
    assert {"squeeze", "se_relu", "se_gate", "se_scale"} <= kept
    g = placed(m, [1, 8, 6, 6])
    assert g.meta["ovq.quantized_ops"] == ["c1", "head"]  # the SE linear layers stay float
    assert fq_sites(g) == {("input", ("c1",)), ("se_scale", ("head",))}


def test_fc_bn_hswish_chain_is_kept_float():
    x = param([2, 16])
    fc = named(ops.matmul(x, ops.constant(w(32, 16)), False, True), "fc")
    un = named(ops.unsqueeze(fc, ops.constant(np.array([2], np.int64))), "bn_unsqueeze")
    mul = named(ops.multiply(un, ops.constant(w(1, 32, 1) + 1.0)), "bn_mul")
    add = named(ops.add(mul, ops.constant(w(1, 32, 1))), "bn_add")
    sq = named(ops.squeeze(add, ops.constant(np.array([2], np.int64))), "bn_squeeze")
    out = ops.matmul(ops.hswish(sq), ops.constant(w(8, 32)), False, True)
    m = model([out], [x])
    _g, plan = plan_of(m)
    assert set(plan.ignored_patterns["fc_bn_hswish_activation"]) == {"bn_unsqueeze", "bn_mul", "bn_add", "bn_squeeze"}
    placed(m, [2, 16])


def test_equal_logicalnot_is_kept_float():
    x = param([1, 8])
    a = ops.matmul(x, ops.constant(w(8, 8)), False, True)
    b = ops.matmul(x, ops.constant(w(8, 8)), False, True)
    eq = named(ops.equal(a, b), "eq")
    notq = named(ops.logical_not(eq), "not")
    m = model([notq, a], [x])
    _g, plan = plan_of(m)
    assert set(plan.ignored_patterns["equal_logicalnot"]) == {"eq", "not"}
    assert [p for p in plan.activations if any(c in plan.ignored_patterns for c, _ in p.consumers)] == []
    g = placed(m, [1, 8])
    assert {s[0] for s in fq_sites(g)} == {"input"}  # nothing on the Equal inputs


def attention(x):
    q = named(ops.matmul(x, ops.constant(w(8, 8)), False, True), "q")
    k = named(ops.matmul(x, ops.constant(w(8, 8)), False, True), "k")
    v = named(ops.matmul(x, ops.constant(w(8, 8)), False, True), "v")
    probs = ops.softmax(named(ops.matmul(q, k, False, True), "scores"), -1)
    return named(ops.matmul(probs, v, False, False), "context")


@pytest.mark.parametrize("target, quantized", [("CPU", False), ("CPU_SPR", True)])
def test_multihead_attention_output_for_transformers(target, quantized):
    x = param([1, 4, 8])
    m = model([attention(x)], [x])
    _g, plan = plan_of(m, target=target, model_type="transformer")
    assert ("multihead_attention_output" in plan.ignored_patterns) is not quantized
    g = placed(m, [1, 4, 8], target=target, model_type="transformer")
    assert ("context" in g.meta["ovq.quantized_ops"]) is quantized
    assert "scores" in g.meta["ovq.quantized_ops"]  # act x act Q x K^T stays quantized


def test_softmax_matmul_kept_float_for_cnns_too():
    x = param([1, 4, 8])
    _g, plan = plan_of(model([attention(x)], [x]))
    assert plan.ignored_patterns["softmax_reshape_matmul"] == ["context"]


def test_patterns_come_from_the_descriptor(tmp_path):
    x = param([1, 4, 6, 6])
    c = conv(x, 8, 4, name="c1")
    sw = named(ops.multiply(c, ops.sigmoid(c)), "swish")
    m = model([head(sw, 8)], [x])
    path = tmp_path / "nopat.toml"
    path.write_text('schema_version = 1\ntarget = "nopat"\nextends = "cpu"\nremove_ignored_patterns = ["swish"]\n')
    _g, plan = plan_of(m, target=str(path))
    assert "swish" not in plan.ignored_patterns
    assert any(g_c == "swish" for a in plan.activations for g_c in [_g.op(c).name for c, _ in a.consumers])
