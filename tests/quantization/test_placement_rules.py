"""Placement rules on tiny graphs: one test per rule."""

from __future__ import annotations

import logging

import numpy as np
import openvino.opset13 as ops
import pytest
from models import conv, model, param, relu, w

import ovq
from ovq.quantization import (
    IgnoredScope,
    IgnoredScopeError,
    PlacementError,
    fill_ranges_minmax,
    place_fake_quantize,
    plan_placement,
    runtime_audit,
)


def fqs(g: ovq.Graph) -> dict[str, int]:
    return {g.op(n).name: n for n in g.nodes_of_type("FakeQuantize")}


def fq_input_name(g, fq):
    p = g.producer(fq, 0)
    return g.op(p[0]).name


def fq_consumers(g, fq):
    return sorted(g.op(c).name for c, _ in g.consumers(fq, 0))


def rng_range(g, fq):
    return (float(g.const_value(g.producer(fq, 1)[0]).ravel()[0]), float(g.const_value(g.producer(fq, 2)[0]).ravel()[0]))


def samples(shape, n=3, seed=1, shift=0.0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) + shift for _ in range(n)]


def simple_conv_model():
    x = param([1, 8, 10, 10])
    r = relu(conv(x, 16, 8, name="conv1"), "relu1")
    out = conv(r, 16, 16, name="conv2")
    return model([out], [x])


def test_conv_gets_weight_and_activation_fq_with_cpu_rules():
    g = place_fake_quantize(ovq.Graph.from_ov(simple_conv_model()), calibration_samples=samples([1, 8, 10, 10]))
    names = fqs(g)
    assert set(names) == {"conv1/fq_weights_1", "conv2/fq_weights_1", "input/fq_output_0", "relu1/fq_output_0"}
    wfq = names["conv1/fq_weights_1"]
    assert g.op(wfq).attrs["levels"] == "255" and g.op(wfq).attrs["auto_broadcast"] == "numpy"
    lo = g.const_value(g.producer(wfq, 1)[0])
    hi = g.const_value(g.producer(wfq, 2)[0])
    assert lo.shape == (16, 1, 1, 1) and np.allclose(lo, -hi)  # symmetric per output channel
    assert np.array_equal(lo, g.const_value(g.producer(wfq, 3)[0]))  # output range = input range
    # activation FQs sit directly on the conv inputs, per tensor, 256 levels
    a = names["relu1/fq_output_0"]
    assert g.op(a).attrs["levels"] == "256" and fq_consumers(g, a) == ["conv2"]
    assert rng_range(g, a)[0] == 0.0  # after ReLU: unsigned [0, max]
    lo_in, hi_in = rng_range(g, names["input/fq_output_0"])
    assert lo_in == pytest.approx(-hi_in * 128 / 127)  # signed symmetric: low = -high * L / (L - 2)
    report = runtime_audit(g)
    assert report.ok and report.int8_count == 2, report.format()


def test_propagates_up_through_maxpool_and_merges_branches():
    x = param([1, 8, 10, 10])
    r = relu(conv(x, 8, 8, name="conv1"), "relu1")
    mp = ops.max_pool(r, [2, 2], [1, 1], [0, 0], [0, 0], [2, 2])
    mp.set_friendly_name("pool")
    a = conv(mp.output(0), 8, 8, name="conv_a")
    b = conv(mp.output(0), 8, 8, k=1, name="conv_b")
    g = place_fake_quantize(ovq.Graph.from_ov(model([ops.add(a, b)], [x])), target="CPU",
                            calibration_samples=samples([1, 8, 10, 10]))
    names = fqs(g)
    # one FQ after relu1, above the pool, shared by both branches (pool is precision-preserving)
    assert "relu1/fq_output_0" in names and "pool/fq_output_0" not in names
    assert fq_consumers(g, names["relu1/fq_output_0"]) == ["pool"]
    # the residual Add has two activation inputs: both quantized (after the bias Adds)
    assert {"conv_a/bias/fq_output_0", "conv_b/bias/fq_output_0"} <= set(names)
    assert runtime_audit(g).ok


def test_no_fq_inside_conv_bias_and_none_on_const_eltwise():
    x = param([1, 4, 6, 6])
    c = conv(x, 8, 4, name="conv1")  # conv -> bias Add
    m = ops.multiply(c, ops.constant(np.float32(0.5)))
    m.set_friendly_name("scale")
    g = ovq.Graph.from_ov(model([m], [x]))
    g.infer_shapes()
    plan = plan_placement(g, "CPU")
    places = {(g.op(a.producer).name, tuple(g.op(c).name for c, _ in a.consumers)) for a in plan.activations}
    assert places == {("input", ("conv1",))}


def test_a_bias_reshaped_by_a_run_time_shape_is_a_constant():
    """ONNX imports reshape a Conv bias to a shape computed from ShapeOf of the conv's
    output: the Add still adds a constant, so no quantizer goes on it or before it."""
    x = param([1, 4, 16])
    rng = np.random.default_rng(0)
    c = ops.convolution(x, ops.constant(rng.standard_normal((8, 4, 3)).astype(np.float32)), [1], [1], [1], [1])
    c.set_friendly_name("conv1")
    channels = ops.gather(ops.shape_of(c), ops.constant(np.array([1], np.int64)), ops.constant(np.int64(0)))
    one = ops.constant(np.array([1], np.int64))
    bias = ops.reshape(ops.constant(rng.standard_normal(8).astype(np.float32)), ops.concat([one, channels, one], 0),
                       False)
    add = ops.add(c, bias)
    add.set_friendly_name("bias")
    out = relu(add, "relu1")
    g = ovq.Graph.from_ov(model([out], [x]))
    g.infer_shapes()
    plan = plan_placement(g, "CPU")
    places = {(g.op(a.producer).name, tuple(g.op(c).name for c, _ in a.consumers)) for a in plan.activations}
    assert places == {("input", ("conv1",))}


def test_partial_consumers_quantize_only_the_conv_edge():
    x = param([1, 4, 6, 6])
    r = relu(conv(x, 8, 4, name="conv1"), "relu1")
    out = conv(r, 8, 8, name="conv2")
    g = place_fake_quantize(ovq.Graph.from_ov(model([out, r], [x])), calibration_samples=samples([1, 4, 6, 6]))
    fq = fqs(g)["relu1/fq_output_0"]
    assert fq_consumers(g, fq) == ["conv2"]  # the model output stays float
    result_inputs = [fq_input_name(g, n) for n in g.results()]
    assert "relu1" in result_inputs


def test_concat_inputs_share_unified_range():
    x = param([1, 4, 6, 6])
    a = relu(conv(x, 4, 4, name="ca"), "ra")
    b = ops.multiply(relu(conv(x, 4, 4, name="cb"), "rb"), ops.constant(np.float32(5.0)))
    b.set_friendly_name("big")
    cat = ops.concat([a, b], 1)
    cat.set_friendly_name("cat")
    out = conv(cat, 8, 8, name="head")
    g = place_fake_quantize(ovq.Graph.from_ov(model([out], [x])), calibration_samples=samples([1, 4, 6, 6]))
    names = fqs(g)
    assert "cat/fq_output_0" not in names
    fa, fb = names["ra/fq_output_0"], names["big/fq_output_0"]
    assert rng_range(g, fa) == rng_range(g, fb)
    meta = g.meta["ovq.quantizers"]
    assert meta["ra/fq_output_0"].unified is not None
    assert meta["ra/fq_output_0"].unified == meta["big/fq_output_0"].unified
    assert runtime_audit(g).ok


def test_group_convolution_weights_per_output_channel():
    x = param([1, 8, 6, 6])
    r = relu(conv(x, 8, 8, name="c0"), "r0")
    gc = ops.group_convolution(r, ops.constant(w(8, 1, 1, 3, 3)), [1, 1], [1, 1], [1, 1], [1, 1])
    gc.set_friendly_name("dw")
    g = place_fake_quantize(ovq.Graph.from_ov(model([gc], [x])), calibration_samples=samples([1, 8, 6, 6]))
    wfq = fqs(g)["dw/fq_weights_1"]
    assert g.const_value(g.producer(wfq, 1)[0]).shape == (8, 1, 1, 1, 1)
    assert runtime_audit(g).ok


def test_matmul_weights_per_row_and_column():
    x = param([2, 16])
    a = ops.matmul(x, ops.constant(w(32, 16)), False, True)
    a.set_friendly_name("fc_t")
    b = ops.matmul(ops.relu(a), ops.constant(w(32, 8)), False, False)
    b.set_friendly_name("fc")
    g = place_fake_quantize(ovq.Graph.from_ov(model([b], [x])), calibration_samples=samples([2, 16]))
    n = fqs(g)
    assert g.const_value(g.producer(n["fc_t/fq_weights_1"], 1)[0]).shape == (32, 1)
    assert g.const_value(g.producer(n["fc/fq_weights_1"], 1)[0]).shape == (1, 8)
    assert runtime_audit(g).ok


def test_mixed_preset_asymmetric_activations_with_zero_representable():
    g = place_fake_quantize(ovq.Graph.from_ov(simple_conv_model()), preset="mixed",
                            calibration_samples=samples([1, 8, 10, 10], shift=0.7))
    meta = g.meta["ovq.quantizers"]
    assert meta["input/fq_output_0"].mode == "asymmetric"
    assert meta["conv1/fq_weights_1"].mode == "symmetric"
    lo, hi = rng_range(g, fqs(g)["input/fq_output_0"])
    zp = -lo / (hi - lo) * 255
    assert abs(zp - round(zp)) < 1e-3 and lo < 0 < hi
    assert runtime_audit(g).ok


def test_bad_preset_and_model_type():
    g = ovq.Graph.from_ov(simple_conv_model())
    with pytest.raises(PlacementError, match="preset"):
        plan_placement(g, preset="fast")
    with pytest.raises(PlacementError, match="model_type"):
        plan_placement(g, model_type="cnn")


def test_postprocessing_feeding_topk_is_not_quantized():
    x = param([1, 4, 6, 6])
    r = relu(conv(x, 8, 4, name="conv1"), "relu1")
    rm = ops.reduce_mean(r, ops.constant(np.array([2, 3], np.int64)), False)
    rm.set_friendly_name("gap")
    topk = ops.topk(rm, ops.constant(np.int64(3)), 1, "max", "value")
    g = ovq.Graph.from_ov(model([topk.output(0)], [x]))
    g.infer_shapes()
    plan = plan_placement(g)
    assert [g.op(a.producer).name for a in plan.activations] == ["input"]  # nothing on the gap input


def test_transformer_symmetric_act_x_act_matmul_and_ignored_types():
    x = param([1, 4, 8])
    q = ops.matmul(x, ops.constant(w(8, 8)), False, True)
    q.set_friendly_name("q")
    k = ops.matmul(x, ops.constant(w(8, 8)), False, True)
    k.set_friendly_name("k")
    s = ops.matmul(q, k, False, True)
    s.set_friendly_name("scores")
    out = ops.add(s, ops.constant(np.float32(1.0)))
    g = place_fake_quantize(ovq.Graph.from_ov(model([out], [x])), model_type="transformer",
                            calibration_samples=samples([1, 4, 8]))
    meta = g.meta["ovq.quantizers"]
    assert meta["input/fq_output_0"].mode == "asymmetric"  # mixed is the transformer default
    assert meta["q/fq_output_0"].mode == "symmetric" and meta["k/fq_output_0"].mode == "symmetric"
    assert runtime_audit(g).ok


class TestIgnoredScope:
    def graph(self):
        return ovq.Graph.from_ov(simple_conv_model())

    def quantized(self, scope, **kw):
        g = place_fake_quantize(self.graph(), ignored_scope=scope, **kw)
        return set(fqs(g))

    def test_by_name_type_pattern(self):
        assert self.quantized(IgnoredScope(names=["conv2"])) == {"conv1/fq_weights_1", "input/fq_output_0"}
        assert self.quantized({"types": ["Convolution"]}) == set()
        assert self.quantized(IgnoredScope(patterns=[r"conv\d"])) == set()

    def test_pattern_is_a_prefix_match_as_nncf(self):
        # NNCF 3.4 filters node names with re.compile(p).match: "conv" ignores conv1 and conv2
        assert self.quantized(IgnoredScope(patterns=["conv"])) == set()
        assert self.quantized(IgnoredScope(patterns=["conv2"])) == {"conv1/fq_weights_1", "input/fq_output_0"}
        # no search, and $ anchors the end: these match nothing (validate=False: not an error)
        assert self.quantized(IgnoredScope(patterns=["onv2"], validate=False)) == self.quantized(None)
        assert self.quantized(IgnoredScope(patterns=["conv$"], validate=False)) == self.quantized(None)

    def test_subgraph(self):
        scope = IgnoredScope(subgraphs=[(["relu1"], ["conv2"])])
        assert self.quantized(scope) == {"conv1/fq_weights_1", "input/fq_output_0"}

    def test_unmatched_warns_naming_it_with_validate_false(self, caplog):
        with caplog.at_level(logging.WARNING, logger="ovq.quantization"):
            self.quantized(IgnoredScope(names=["nope"], patterns=["zzz.*"], validate=False))
        assert "'nope'" in caplog.text and "'zzz.*'" in caplog.text

    def test_unmatched_is_an_error_by_default_as_nncf_validate(self):
        with pytest.raises(IgnoredScopeError, match="'nope'.*validate=False"):
            self.quantized(IgnoredScope(names=["nope"]))
        with pytest.raises(IgnoredScopeError, match="'Erf'"):
            self.quantized({"types": ["Erf"]})
        assert self.quantized({"types": ["Erf"], "validate": False}) == self.quantized(None)

    def test_unmatched_strict_raises(self):
        with pytest.raises(IgnoredScopeError, match="'nope'") as info:
            self.quantized(IgnoredScope(names=["nope"]), strict=True)
        assert isinstance(info.value, ovq.OvqError)

    def test_operations_by_type_and_attributes_as_pot(self):
        x = param([1, 8, 10, 10])
        g = ovq.Graph.from_ov(model([conv(relu(conv(x, 16, 8, k=3, name="conv1"), "relu1"), 16, 16, k=1,
                                          name="conv2")], [x]))

        def quantized(scope):
            return set(fqs(place_fake_quantize(g.copy(), ignored_scope=scope)))

        everything = quantized(None)
        assert quantized({"operations": [{"type": "Convolution", "attributes": {"strides": [1, 1]}}]}) == set()
        only_1x1 = quantized({"operations": [{"type": "Convolution", "attributes": {"pads_begin": [0, 0]}}]})
        assert only_1x1 == quantized(IgnoredScope(names=["conv2"])) != everything
        with pytest.raises(IgnoredScopeError, match=r"operation 'Convolution' with \{'strides': \[9, 9\]\}"):
            quantized({"operations": [{"type": "Convolution", "attributes": {"strides": [9, 9]}}]})

    def test_bad_regex(self):
        with pytest.raises(IgnoredScopeError, match="regular expression"):
            IgnoredScope(patterns=["(unclosed"])


def test_placeholder_ranges_then_fill(tmp_path):
    g = ovq.Graph.from_ov(simple_conv_model())
    place_fake_quantize(g)
    fq = fqs(g)["input/fq_output_0"]
    assert rng_range(g, fq) == (0.0, 1.0)
    assert fill_ranges_minmax(g, samples([1, 8, 10, 10])) == 2
    assert rng_range(g, fq)[0] < 0


def test_returns_same_kind_and_pass_registered():
    import openvino as ov

    m = simple_conv_model()
    out = place_fake_quantize(m)
    assert isinstance(out, ov.Model) and out is not m
    assert sum(op.get_type_name() == "FakeQuantize" for op in out.get_ops()) == 4
    assert not any(op.get_type_name() == "FakeQuantize" for op in m.get_ops())
    g = ovq.run_pipeline(ovq.Graph.from_ov(m), "place-fake-quantize{target=cpu;preset=mixed}")
    assert len(g.nodes_of_type("FakeQuantize")) == 4


def test_a_shared_weight_gets_one_fake_quantize_and_one_compressed_constant():
    from models import shared_weight

    from ovq.runtime import compile_model, infer

    fp = shared_weight()
    g = place_fake_quantize(ovq.Graph.from_ov(fp))
    weight_fqs = [n for name, n in fqs(g).items() if "fq_weights" in name]
    assert len(weight_fqs) == 1 and sorted(fq_consumers(g, weight_fqs[0])) == ["conv1", "conv2"]
    xs = samples([1, 4, 8, 8], n=6)
    q, report = ovq.quantize(fp, xs, overflow_fix="enable", return_report=True)
    assert report.weight_fqs == 1 and report.compressed == 1 and report.quantized_ops == 2
    assert report.bias_corrected + len(report.bias_skipped) == 2  # each reader's bias is considered
    assert sum(op.get_type_name() == "Constant" and op.get_element_type().get_type_name() == "i8"
               for op in q.get_ops()) == 1
    assert runtime_audit(q).int8_count == 2
    ref, got = infer(compile_model(fp), [xs[0]])[0], infer(compile_model(q), [xs[0]])[0]
    assert np.linalg.norm(got - ref) < 0.05 * np.linalg.norm(ref)


def test_every_compute_layer_left_float_has_a_reason(tmp_path):
    from models import if_on_scalar

    g = ovq.Graph.from_ov(simple_conv_model())
    g.infer_shapes()
    assert plan_placement(g, ignored_scope={"names": ["conv2"]}).skipped == [("conv2", "ignored scope")]
    assert plan_placement(g, ignored_scope={"patterns": ["conv"]}).skipped == [("conv1", "ignored scope"),
                                                                            ("conv2", "ignored scope")]
    path = tmp_path / "noconv.toml"
    path.write_text('schema_version = 1\ntarget = "noconv"\nextends = "cpu"\nremove_ops = ["Convolution"]\n')
    reasons = dict(plan_placement(g, str(path)).skipped)
    assert reasons == {"conv1": "no Convolution rule in the noconv descriptor",
                       "conv2": "no Convolution rule in the noconv descriptor"}
    g = ovq.Graph.from_ov(if_on_scalar())
    g.infer_shapes()
    plan = plan_placement(g)
    assert plan.skipped == [("branch/then_conv", "inside the then_body of If, not quantized"),
                            ("branch/else_conv", "inside the else_body of If, not quantized")]
    assert [g.op(n).name for n in plan.quantized_ops] == ["after"]


def test_a_tied_embedding_table_keeps_one_fake_quantize_per_reader():
    import openvino as ov

    table = ops.constant(w(16, 8))
    table.set_friendly_name("table")
    ids = ops.parameter([1, 4], np.int64, name="ids")
    emb = ops.gather(table, ids, ops.constant(np.int64(0)))
    emb.set_friendly_name("embed")
    head = ops.matmul(ops.relu(emb), table, False, True)
    head.set_friendly_name("head")
    g = place_fake_quantize(ovq.Graph.from_ov(ov.Model([head.output(0)], [ids], "tied")), target="CPU")
    weight_fqs = sorted(name for name in fqs(g) if "fq_weights" in name)
    assert weight_fqs == ["embed/fq_weights_0", "head/fq_weights_1"]
