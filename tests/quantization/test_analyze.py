"""ovq.analyze: per-layer quantization error in one streamed pass."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

import ovq
from ovq.errors import CalibrationDataError, IRError, OvqError
from ovq.quantization.analyze import (
    LayerError,
    LayerErrorTable,
    ModelMismatchError,
    NotQuantizedError,
    analyze,
)

RNG = np.random.default_rng(7)


def _cnn(prefix: str = "") -> ov.Model:
    """input -> conv1 -> relu -> conv2 -> relu -> conv3 -> relu -> avgpool -> fc (MatMul)."""
    x = ops.parameter([1, 3, 16, 16], np.float32, name="input")
    x.output(0).set_names({"input"})

    def conv(inp, cout, cin, name):
        c = ops.convolution(inp, ops.constant((RNG.standard_normal((cout, cin, 3, 3)) * 0.3).astype(np.float32)),
                            [1, 1], [1, 1], [1, 1], [1, 1])
        c.set_friendly_name(prefix + name)
        b = ops.add(c, ops.constant((RNG.standard_normal((1, cout, 1, 1)) * 0.1).astype(np.float32)))
        b.set_friendly_name(prefix + name + "/bias")
        r = ops.relu(b)
        r.set_friendly_name(prefix + name + "/relu")
        return r

    h = conv(conv(conv(x, 8, 3, "conv1"), 8, 8, "conv2"), 8, 8, "conv3")
    pooled = ops.reshape(ops.reduce_mean(h, ops.constant(np.array([2, 3], np.int64)), keep_dims=False),
                         ops.constant(np.array([1, 8], np.int64)), special_zero=False)
    fc = ops.matmul(pooled, ops.constant((RNG.standard_normal((8, 4)) * 0.3).astype(np.float32)), False, False)
    fc.set_friendly_name(prefix + "fc")
    return ov.Model([fc], [x], "tiny_cnn")


DATA = [RNG.standard_normal((1, 3, 16, 16)).astype(np.float32) for _ in range(24)]


@pytest.fixture(scope="module")
def fp_model() -> ov.Model:
    return _cnn()


@pytest.fixture(scope="module")
def int8_model(fp_model: ov.Model) -> ov.Model:
    return ovq.quantize(fp_model, DATA, subset_size=24, progress=False)


@pytest.fixture(scope="module")
def table(fp_model: ov.Model, int8_model: ov.Model) -> LayerErrorTable:
    return analyze(fp_model, int8_model, DATA, progress=False)


@pytest.fixture(scope="module")
def fq_weights_model(fp_model: ov.Model) -> ov.Model:
    """Weights as FakeQuantize on float constants (the NNCF / POT form without compression)."""
    return ovq.quantize(fp_model, DATA, subset_size=24, progress=False, compress_weights=False)


def _squeeze_weight_range(model: ov.Model, layer: str, factor: float) -> ov.Model:
    """A copy of ``model`` whose ``layer`` weight FakeQuantize range is ``factor`` times its own."""
    model = model.clone()
    conv = next(op for op in model.get_ops() if op.get_friendly_name() == layer)
    fq = conv.input_value(1).get_node()
    assert fq.get_type_name() == "FakeQuantize"
    for k in range(1, 5):
        value = fq.input_value(k).get_node().get_data() * factor
        fq.set_argument(k, ops.constant(value.astype(np.float32)).output(0))
    return model


def test_every_quantized_layer_is_analysed(table):
    assert set(table.names()) >= {"conv1", "conv2", "conv3", "fc"}
    assert table.unmatched == []
    assert table.samples == len(DATA)
    for row in table:
        assert 0 <= row.nmse < 1e-2, row
        assert row.sqnr_db == pytest.approx(-10 * math.log10(row.nmse))
        assert 0.0 <= row.saturation <= 1.0
    conv1 = table["conv1"]
    assert conv1.type == "Convolution" and conv1.with_bias
    assert conv1.act_levels == 256 and conv1.act_low < 0 < conv1.act_high
    assert conv1.weight_levels == 256 and conv1.weight_granularity == "per-channel" and conv1.weight_dtype == "i8"
    assert conv1.weight_nmse is not None and 0 < conv1.weight_nmse < 1e-3
    assert conv1.worst_channel_nmse >= conv1.nmse
    assert conv1.runtime_precision is not None
    inp = conv1.inputs[0]
    assert inp.seen_min < 0 < inp.seen_max and inp.nmse > 0
    # rows are worst first by the output error with only that layer quantized (2 samples)
    assert table.impact_samples == 2 and table.rank_by == "output_nmse"
    assert all(r.output_nmse is not None and 0 < r.output_nmse < 1e-2 for r in table)
    assert [r.output_nmse for r in table] == sorted((r.output_nmse for r in table), reverse=True)
    assert [r.nmse for r in table.worst(by="nmse")] == sorted((r.nmse for r in table), reverse=True)


def test_error_matches_a_model_with_that_layer_alone_quantized(fp_model, int8_model, table):
    """The shadow error of conv2 equals the error of conv2's output in an FP model where
    only conv2's input FakeQuantize and weights are quantized, computed by hand."""
    q = {op.get_friendly_name(): op for op in int8_model.get_ops()}
    f = {op.get_friendly_name(): op for op in fp_model.get_ops()}
    # FP conv1 relu output, through conv2's activation FQ, into conv2 with INT8 weights, plus bias
    fq = q["conv2"].input_value(0).get_node()
    assert fq.get_type_name() == "FakeQuantize"
    x = f["conv1/relu"].output(0)
    fq_new = ops.fake_quantize(x, *[fq.input_value(k) for k in range(1, 5)], fq.get_attributes()["levels"])
    conv = ops.convolution(fq_new, q["conv2"].input_value(1), [1, 1], [1, 1], [1, 1], [1, 1])
    y_q = ops.add(conv, q["conv2/bias"].input_value(1))
    probe = ov.Model([y_q.output(0), f["conv2/bias"].output(0)], fp_model.get_parameters())
    compiled = ov.Core().compile_model(probe, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    err = power = 0.0
    for s in DATA:
        out = compiled(s)
        a, b = out[0].astype(np.float64), out[1].astype(np.float64)
        err += ((a - b) ** 2).sum()
        power += (b ** 2).sum()
    assert table["conv2"].nmse == pytest.approx(err / power, rel=1e-3)


def test_output_impact_matches_the_model_with_that_layer_alone_quantized(fp_model, int8_model, table):
    """output_nmse of conv2: the FP model's output with conv2 alone quantized, on the first 2 samples."""
    q = {op.get_friendly_name(): op for op in int8_model.clone().get_ops()}
    fp = fp_model.clone()
    f = {op.get_friendly_name(): op for op in fp.get_ops()}
    fq = q["conv2"].input_value(0).get_node()
    fq_new = ops.fake_quantize(f["conv1/relu"].output(0), *[fq.input_value(k) for k in range(1, 5)],
                               fq.get_attributes()["levels"])
    conv = ops.convolution(fq_new, q["conv2"].input_value(1), [1, 1], [1, 1], [1, 1], [1, 1])
    y_q = ops.add(conv, q["conv2/bias"].input_value(1))
    f["conv2/relu"].set_argument(0, y_q.output(0))
    core = ov.Core()
    only = core.compile_model(ov.Model(fp.get_results(), fp.get_parameters()), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ref = core.compile_model(fp_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    err = power = 0.0
    for s in DATA[:2]:
        a, b = only(s)[0].astype(np.float64), ref(s)[0].astype(np.float64)
        err += ((a - b) ** 2).sum()
        power += (b ** 2).sum()
    assert table["conv2"].output_nmse == pytest.approx(err / power, rel=1e-3)


def test_without_impact_runs_the_local_error_ranks(fp_model, int8_model):
    table = analyze(fp_model, int8_model, DATA, progress=False, subset_size=6, impact_samples=0)
    assert table.impact_samples == 0 and table.rank_by == "nmse" and "impact" not in table.timings
    assert all(r.output_nmse is None for r in table)
    assert [r.nmse for r in table] == sorted((r.nmse for r in table), reverse=True)


def test_planted_bad_weight_range_is_ranked_worst(fp_model, fq_weights_model):
    bad = _squeeze_weight_range(fq_weights_model, "conv2", 0.15)
    table = analyze(fp_model, bad, DATA, progress=False, subset_size=8)
    assert table.worst(1)[0].name == "conv2"
    assert table.worst(1, by="nmse")[0].name == "conv2"
    assert table.worst(1, by="weight_nmse")[0].name == "conv2"
    assert table["conv2"].weight_dtype == "f32"  # FakeQuantize on float weights
    assert table["conv2"].sqnr_db < table["conv1"].sqnr_db - 10


def test_planted_narrow_activation_range_shows_saturation(fp_model, int8_model):
    model = int8_model.clone()
    conv3 = next(op for op in model.get_ops() if op.get_friendly_name() == "conv3")
    fq = conv3.input_value(0).get_node()
    for k in range(1, 5):
        fq.set_argument(k, ops.constant((fq.input_value(k).get_node().get_data() * 0.2).astype(np.float32)).output(0))
    table = analyze(fp_model, model, DATA, progress=False, subset_size=8)
    assert table.worst(1, by="saturation")[0].name == "conv3"
    assert table["conv3"].saturation > 0.05
    assert table.worst(1)[0].name == "conv3"
    assert table.worst(1, by="nmse")[0].name == "conv3"


def test_ir_files_from_disk_without_ovq_metadata(tmp_path, fp_model, int8_model, fq_weights_model, table):
    ov.save_model(fp_model, tmp_path / "fp.xml", compress_to_fp16=False)
    ov.save_model(int8_model, tmp_path / "int8.xml", compress_to_fp16=False)
    ov.save_model(fq_weights_model, tmp_path / "fq.xml")  # FP16-compressed FQ weights (NNCF/POT style)
    from_disk = analyze(tmp_path / "fp.xml", str(tmp_path / "int8.xml"), DATA, progress=False)
    in_memory = table
    assert from_disk.names() == in_memory.names()
    assert from_disk["conv2"].nmse == pytest.approx(in_memory["conv2"].nmse, rel=1e-4)
    assert from_disk.fp_model.endswith("fp.xml")
    fq_table = analyze(ovq.read_model(tmp_path / "fp.xml"), tmp_path / "fq.xml", DATA, progress=False, subset_size=4)
    assert set(fq_table.names()) >= {"conv1", "conv2", "conv3", "fc"}
    assert fq_table["conv1"].weight_levels in (255, 256)
    assert fq_table["conv1"].weight_granularity == "per-channel"


def test_hand_built_fake_quantize_model():
    """A model quantized by hand, NNCF style: FQ on the activation and on the float weights."""
    x = ops.parameter([-1, 16], np.float32, name="x")  # a dynamic batch
    wv = RNG.standard_normal((16, 8)).astype(np.float32)

    def build(quantized: bool) -> ov.Model:
        a = x.output(0)
        wt = ops.constant(wv).output(0)
        if quantized:
            a = ops.fake_quantize(a, *(ops.constant(np.float32(v)) for v in (-3, 3, -3, 3)), 256).output(0)
            m = np.abs(wv).max(0, keepdims=True)
            wt = ops.fake_quantize(wt, ops.constant(-m), ops.constant(m), ops.constant(-m), ops.constant(m), 255).output(0)
        mm = ops.matmul(a, wt, False, False)
        mm.set_friendly_name("dense")
        return ov.Model([mm], [x])

    data = [RNG.standard_normal((1, 16)).astype(np.float32) * 2 for _ in range(8)]
    table = analyze(build(False), build(True), data, progress=False)
    row = table["dense"]
    assert row.type == "MatMul" and row.act_levels == 256 and row.weight_levels == 255
    assert row.act_low == -3 and row.act_high == 3
    assert 0 < row.saturation < 0.3  # N(0, 4) values beyond ±3
    assert row.weight_granularity == "per-channel"


def test_padding_positions_are_not_counted_at_the_output():
    from ovq.quantization.analyze import _attention_mask_input, _masked

    out = np.arange(24, dtype=np.float64).reshape(1, 4, 6)
    mask = np.array([[1, 1, 0, 0]])
    masked = _masked(out, mask)
    assert np.all(masked[0, :2] == out[0, :2]) and np.all(masked[0, 2:] == 0)
    assert _masked(out[:, 0], mask) is not None and np.all(_masked(out[:, 0], mask) == out[:, 0])  # [1, 6]: kept
    ids = ops.parameter([1, 4], np.int64, name="input_ids")
    ids.output(0).set_names({"input_ids"})
    am = ops.parameter([1, 4], np.int64, name="attention_mask")
    am.output(0).set_names({"attention_mask"})
    model = ov.Model([ops.add(ids, am)], [ids, am])
    assert _attention_mask_input(model) == 1
    assert _attention_mask_input(_cnn()) is None


def test_json_round_trip(tmp_path, table):
    text = table.to_json(tmp_path / "t.json")
    assert json.loads(text)["format"] == "ovq.layer_errors/1"
    for back in (LayerErrorTable.from_json(text), LayerErrorTable.from_json(tmp_path / "t.json")):
        assert back.names() == table.names()
        assert back.samples == table.samples and back.timings == table.timings
        for a, b in zip(back, table):
            assert a == b
    # infinite SQNR (a zero error) survives JSON
    t = LayerErrorTable(rows=[LayerError("a", "MatMul", 0.0, math.inf)])
    assert LayerErrorTable.from_json(t.to_json()).rows[0].sqnr_db == math.inf
    with pytest.raises(OvqError, match="not a layer-error table"):
        LayerErrorTable.from_json('{"layers": []}')


def test_format_and_worst(table):
    text = table.format(2)
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["#", "layer", "type", "out", "SQNR"]
    assert len(lines) == 4 and "2 of" in lines[-1]
    assert [r.name for r in table.worst(2)] == table.names()[:2]
    with pytest.raises(ValueError):
        table.worst(1, by="colour")


def test_not_quantized(fp_model):
    with pytest.raises(NotQuantizedError, match="no quantized layer"):
        analyze(fp_model, fp_model, DATA, progress=False)


def test_mismatched_models(int8_model):
    other = _cnn(prefix="other_")
    with pytest.raises(ModelMismatchError, match="share no quantized layer"):
        analyze(other, int8_model, DATA, progress=False)


def test_empty_data_and_missing_file(tmp_path, fp_model, int8_model):
    with pytest.raises(CalibrationDataError, match="empty"):
        analyze(fp_model, int8_model, [], progress=False)
    with pytest.raises(CalibrationDataError, match="empty"):
        analyze(fp_model, int8_model, iter([]), progress=False)
    with pytest.raises(IRError, match="no such file"):
        analyze(fp_model, tmp_path / "missing.xml", DATA, progress=False)
    with pytest.raises(CalibrationDataError, match="expects shape"):
        analyze(fp_model, int8_model, [np.zeros((1, 3, 8, 8), np.float32)], progress=False)


def test_partially_matching_models_name_the_unmatched(fp_model, int8_model):
    renamed = int8_model.clone()
    next(op for op in renamed.get_ops() if op.get_friendly_name() == "conv3").set_friendly_name("conv3_new")
    table = analyze(fp_model, renamed, DATA, progress=False, subset_size=4)
    assert "conv3" not in table and "conv2" in table
    assert [n for n, _ in table.unmatched] == ["conv3_new"]
    assert "no op of this name" in table.unmatched[0][1]


def test_cli(tmp_path, fp_model, int8_model):
    from ovq.cli import main

    ov.save_model(fp_model, tmp_path / "fp.xml", compress_to_fp16=False)
    ov.save_model(int8_model, tmp_path / "int8.xml", compress_to_fp16=False)
    np.save(tmp_path / "data.npy", np.concatenate(DATA[:6]))
    out = tmp_path / "errors.json"
    assert main(["analyze", str(tmp_path / "fp.xml"), str(tmp_path / "int8.xml"), "--data",
                 str(tmp_path / "data.npy"), "--json", str(out), "--top", "2", "-q"]) == 0
    table = LayerErrorTable.from_json(out)
    assert table.samples == 6 and len(table) >= 4
    assert main(["analyze", str(tmp_path / "fp.xml"), str(tmp_path / "fp.xml"), "--data",
                 str(tmp_path / "data.npy"), "-q"]) == 2  # not quantized: one error line, exit 2


@pytest.mark.zoo
def test_efficientnet_lite0():
    from ovq_testing.assets import AssetUnavailable, asset_path, efficientnet_crops

    try:
        path = asset_path("efficientnet_lite0")
        crops = efficientnet_crops(600)
    except AssetUnavailable as exc:
        pytest.skip(str(exc))
    fp = ov.Core().read_model(str(path))
    calib = [np.array(crops[i:i + 1]) for i in range(40)]
    q = ovq.quantize(fp, calib, subset_size=40, progress=False)
    t0 = time.perf_counter()
    table = analyze(fp, q, calib, subset_size=20, impact_samples=1, progress=False)
    seconds = time.perf_counter() - t0
    assert seconds < 300  # about 40 s on an idle 2-core machine
    assert table.unmatched == [] and table.rank_by == "output_nmse"
    convs = [op for op in q.get_ops() if op.get_type_name() in ("Convolution", "GroupConvolution")]
    analysed = {r.name for r in table if r.type in ("Convolution", "GroupConvolution")}
    assert len(analysed) == len(convs)
    assert all(10 < r.sqnr_db < 80 and r.output_nmse is not None for r in table)
    assert sum(r.runtime_precision in ("u8", "i8") for r in table) >= len(convs) // 2
    # the layer whose quantization hurts the output most on its own is a weighted layer (not the
    # pooling): with overflow_fix="auto" on an AVX2 CPU, the classifier MatMul
    assert table.worst(1)[0].type in ("Convolution", "GroupConvolution", "MatMul")
