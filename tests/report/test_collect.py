"""``ovq.report.collect`` on the digits CNN: rows, ranges, runtime, histograms, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from ovq.report import ModelMismatchError, NothingQuantizedError, collect
from ovq.report.structure import fq_range

COMPUTE = {"Convolution", "GroupConvolution", "MatMul"}


@pytest.fixture(scope="module")
def report(digits_int8, digits_samples):
    fp, graph, qreport = digits_int8
    return collect(graph, fp_model=fp, samples=digits_samples, quantize_report=qreport,
                   options={"target_device": "ANY"}, measure_latency=True)


def test_one_row_per_compute_layer(report, digits_int8):
    q = digits_int8[1].to_ov()
    names = [op.get_friendly_name() for op in q.get_ordered_ops() if op.get_type_name() in COMPUTE]
    rows = [r.name for r in report.layers if r.type in COMPUTE]
    assert rows == names  # execution order, every Conv/MatMul once
    assert [r.index for r in report.layers] == list(range(len(report.layers)))
    assert report.summary.compute_layers == len(report.layers)
    assert all(r.quantized for r in report.layers)  # the demo model quantizes every layer it has


def test_ranges_read_from_the_model(report, digits_int8):
    q = digits_int8[1].to_ov()
    fqs = {op.get_friendly_name(): op for op in q.get_ops() if op.get_type_name() == "FakeQuantize"}
    for row in report.layers:
        if row.act_fq is None:
            continue
        low, high, levels = fq_range(fqs[row.act_fq])
        assert row.act_low == pytest.approx(float(np.min(low))) and row.act_high == pytest.approx(float(np.max(high)))
        assert row.act_levels == levels == 256
    convs = [r for r in report.layers if r.type in COMPUTE]
    assert all(r.weight_dtype == "i8" and r.weight_granularity == "per-channel" for r in convs)
    assert all(r.weight_low < 0 < r.weight_high for r in convs)
    ranges = {w.layer: w for w in report.weight_ranges}
    assert ranges and all(len(w.low) == len(w.high) > 1 and all(a < b for a, b in zip(w.low, w.high))
                          for w in ranges.values())


def test_runtime_and_summary(report, digits_int8):
    convs = [r for r in report.layers if r.type in COMPUTE]
    assert all(r.runtime_precision in ("u8", "i8") and r.int8 and r.runtime_kernel.upper().endswith("_I8")
               for r in convs)
    s = report.summary
    assert s.runtime_int8 == s.runtime_audited == len(convs)
    assert s.fp_bytes > 3 * s.int8_bytes  # int8 weights
    assert s.fp32_latency_ms > 0 and s.int8_latency_ms > 0
    assert "statistics" in s.phases and s.target == "ANY"
    qreport = digits_int8[2]
    assert sum(r.bias_note == "applied" for r in report.layers) == qreport.bias_corrected > 0
    assert all(r.bias_shift > 0 for r in report.layers if r.bias_note == "applied")


def test_input_saturation_matches_the_data(report, digits_samples):
    first = report.layers[0]
    hist = next(h for h in report.histograms if h.layer == first.name)
    x = np.concatenate(digits_samples[:hist.samples])
    expected = np.mean((x < first.act_low) | (x > first.act_high))
    assert first.saturation == pytest.approx(expected, abs=1e-9)
    assert sum(hist.counts) == x.size and hist.low == first.act_low
    assert report.rank_by == "saturation"
    assert 1 <= len(report.histograms) <= 6


def test_fake_quantized_weights(digits_samples):
    import ovq
    from ovq.data import demo_model_path

    q = ovq.quantize(str(demo_model_path()), digits_samples, subset_size=16, compress_weights=False, progress=False)
    rep = collect(q, measure_latency=False)
    convs = [r for r in rep.layers if r.type in COMPUTE]
    assert all(r.weight_dtype == "f32" and r.weight_levels in (255, 256) for r in convs)
    assert all(r.weight_low < 0 < r.weight_high for r in convs)
    assert any("no FP model" in n for n in rep.notes) and rep.histograms == []


def test_nothing_quantized(digits_int8):
    with pytest.raises(NothingQuantizedError, match="nothing quantized"):
        collect(digits_int8[0], measure_latency=False)


def test_fp_model_must_match(digits_int8):
    fp = digits_int8[0].clone()
    fp.reshape([2, 1, 8, 8])
    with pytest.raises(ModelMismatchError, match=r"inputs .*\[2,1,8,8\]"):
        collect(digits_int8[1], fp_model=fp, measure_latency=False)


def test_fp_model_must_hold_the_layers(digits_int8):
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter(ov.PartialShape([-1, 1, 8, 8]), np.float32, name="input")  # the same input as the demo model
    x.output(0).set_names({"input"})
    other = ov.Model([ops.result(ops.relu(x))], [x], "other")
    with pytest.raises(ModelMismatchError, match="none of its 6 compute layers"):
        collect(digits_int8[1], fp_model=other, measure_latency=False)


def test_float_layers_say_why(digits_samples):
    import ovq
    from ovq.data import demo_model_path

    graph = ovq.read_model(demo_model_path())
    conv = next(op.name for _n, op in graph.ops() if op.type == "Convolution")
    q = ovq.quantize(str(demo_model_path()), digits_samples, subset_size=16, progress=False,
                     ignored_scope={"names": [conv]})
    rep = collect(q, measure_latency=False)
    row = next(r for r in rep.layers if r.name == conv)
    assert not row.quantized and row.reason and row.act_fq is None and row.weight_levels is None
    assert row.runtime_precision not in ("u8", "i8") and not row.int8
