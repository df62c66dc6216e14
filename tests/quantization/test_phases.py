"""The quantize flow as named phases: timing, dump_after, a pipeline before placement,
and requantize (later phases again from the calibrated state, some layers in float)."""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

import ovq
from ovq.errors import OptionError
from ovq.ir import read_model
from ovq.quantization.phases import PHASE_NAMES, QuantizeOptions, QuantizeSession

RNG = np.random.default_rng(11)


def _two_convs() -> ov.Model:
    x = ops.parameter([1, 4, 8, 8], np.float32, name="x")
    x.output(0).set_names({"x"})
    c1 = ops.convolution(x, ops.constant((RNG.standard_normal((8, 4, 3, 3)) * 0.3).astype(np.float32)),
                         [1, 1], [1, 1], [1, 1], [1, 1])
    c1.set_friendly_name("conv1")
    b1 = ops.add(c1, ops.constant((RNG.standard_normal((1, 8, 1, 1)) * 0.1 + 0.5).astype(np.float32)))
    b1.set_friendly_name("conv1/bias")
    r = ops.relu(b1)
    r.set_friendly_name("relu")
    c2 = ops.convolution(r, ops.constant((RNG.standard_normal((6, 8, 1, 1)) * 0.3).astype(np.float32)),
                         [1, 1], [0, 0], [0, 0], [1, 1])
    c2.set_friendly_name("conv2")
    b2 = ops.add(c2, ops.constant((RNG.standard_normal((1, 6, 1, 1)) * 0.1 + 0.5).astype(np.float32)))
    b2.set_friendly_name("conv2/bias")
    return ov.Model([b2], [x], "two_convs")


def _samples(n: int = 8) -> list[np.ndarray]:
    return [RNG.standard_normal((1, 4, 8, 8)).astype(np.float32) for _ in range(n)]


def _samples_like(n: int = 8, seed: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, 4, 8, 8)).astype(np.float32) for _ in range(n)]


def _run(model: ov.Model, x: np.ndarray) -> np.ndarray:
    compiled = ov.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled([x])[0]


def _fq_names(model: ov.Model) -> set[str]:
    return {op.get_friendly_name() for op in model.get_ops() if op.get_type_name() == "FakeQuantize"}


def test_report_times_every_phase_in_order():
    _, report = ovq.quantize(_two_convs(), _samples(), return_report=True)
    timed = [k for k in report.phases if k in PHASE_NAMES]
    # conv1 (4 input channels) saturates: overflow_fix spreads it, after bias correction
    assert timed == ["placement", "statistics", "ranges", "overflow_fix", "bias_correction", "pair_spread", "compress"]
    assert report.bias_corrected + len(report.bias_skipped) == 2


def test_dump_after_ranges_writes_an_ir_that_openvino_runs(tmp_path):
    q = ovq.quantize(_two_convs(), _samples(), dump_after=["ranges", "pair_spread"], dump_dir=tmp_path)
    (ranges,) = tmp_path.glob("*-ranges.xml")
    dumped = ov.Core().read_model(ranges)
    # after ranges, before compress: weights still float behind FakeQuantize, activation ranges set
    assert _fq_names(dumped) == {"x/fq_output_0", "relu/fq_output_0", "conv1/fq_weights_1", "conv2/fq_weights_1"}
    fq = next(op for op in dumped.get_ops() if op.get_friendly_name() == "x/fq_output_0")
    assert float(fq.input_value(1).get_node().get_data().reshape(-1)[0]) < 0  # not the [0, 1] placeholder
    assert np.isfinite(_run(dumped, _samples(1)[0])).all()
    # compress only folds the weight FakeQuantize ops: the last dump computes what the result does
    (corrected,) = tmp_path.glob("*-pair_spread.xml")
    x = _samples(1)[0]
    out = _run(q, x)
    assert np.abs(_run(ov.Core().read_model(corrected), x) - out).max() < 0.02 * np.abs(out).max()


def test_dump_after_an_unknown_phase_is_an_error_before_any_work(tmp_path):
    with pytest.raises(OptionError, match="no quantize phase"):
        ovq.quantize(_two_convs(), _samples(), dump_after=["rangez"], dump_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_pipeline_runs_before_placement_and_can_be_dumped(tmp_path):
    fp = _two_convs()
    q, report = ovq.quantize(fp, _samples_like(), pipeline="fold-constants,eliminate-dead-code",
                             dump_after=["fold-constants", "placement"], dump_dir=tmp_path, return_report=True)
    assert "pipeline" in report.phases
    assert sorted(p.name.split("-", 1)[1] for p in tmp_path.glob("*.xml")) == ["fold-constants.xml", "placement.xml"]
    plain = ovq.quantize(fp, _samples_like())
    x = _samples(1)[0]
    np.testing.assert_array_equal(_run(q, x), _run(plain, x))  # nothing to fold in this model


def test_requantize_reverts_named_layers_without_calibrating_again():
    fp = _two_convs()
    graph = read_model(fp)
    calls = []

    def counted():
        for s in _samples():
            calls.append(1)
            yield s

    options = QuantizeOptions.build(compress_weights=False, subset_size=8)
    session = QuantizeSession(graph, counted(), options)
    session.run()
    seen = len(calls)
    same, _ = session.requantize([])
    reverted, report = session.requantize(["conv2"])
    assert len(calls) == seen  # no second pass over the data
    x = _samples(1)[0]
    np.testing.assert_array_equal(_run(same.to_ov(), x), _run(graph.to_ov(), x))
    names = _fq_names(reverted.to_ov())
    assert names == {"x/fq_output_0", "conv1/fq_weights_1"}  # conv2's weight and input quantizers are gone
    assert report.weight_fqs == 1 and report.activation_fqs == 1
    assert "conv2" not in reverted.meta["ovq.quantized_ops"]
    err_all = np.abs(_run(graph.to_ov(), x) - _run(fp, x)).mean()
    err_reverted = np.abs(_run(reverted.to_ov(), x) - _run(fp, x)).mean()
    assert err_reverted < err_all
    with pytest.raises(OptionError, match="no op named"):
        session.requantize(["conv9"])


def test_bad_options_are_option_errors():
    for bad in ({"overflow_fix": "sometimes"}, {"outlier_prob": 0.7}, {"activations_range": "median"},
                {"smooth_quant": 3}):
        with pytest.raises(OptionError):
            ovq.quantize(_two_convs(), _samples(), **bad)
