"""ovq.quantize on tiny models: range math by hand, bias correction, weight folding, API shapes."""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

import ovq
from ovq import runtime
from ovq.errors import CalibrationDataError, NonFiniteError, OptionError, OvqError

RNG = np.random.default_rng(7)


def _conv_model(cin: int = 2, cout: int = 3, k: int = 1, relu_in: bool = False, bias=None, weights=None) -> ov.Model:
    x = ops.parameter([1, cin, 4, 4], np.float32, name="x")
    x.output(0).set_names({"x"})
    src = ops.relu(x) if relu_in else x
    if relu_in:
        src.set_friendly_name("relu")
    wv = weights if weights is not None else (RNG.standard_normal((cout, cin, k, k)) * 0.3).astype(np.float32)
    c = ops.convolution(src, ops.constant(wv), [1, 1], [k // 2] * 2, [k // 2] * 2, [1, 1])
    c.set_friendly_name("conv")
    if bias is not None:
        c = ops.add(c, ops.constant(np.asarray(bias, np.float32).reshape(1, cout, 1, 1)))
        c.set_friendly_name("conv/bias")
    return ov.Model([c], [x], "tiny_conv")


def _fq_range(model: ov.Model, name: str) -> tuple[float, float]:
    op = next(o for o in model.get_ops() if o.get_friendly_name() == name)
    lo, hi = (float(op.input_value(i).get_node().get_data().reshape(-1)[0]) for i in (1, 2))
    return lo, hi


def _fill(values_per_sample: list[tuple[float, float]], shape=(1, 2, 4, 4)) -> list[np.ndarray]:
    """Samples whose elements are half ``a`` and half ``b``: per-sample min/max known."""
    out = []
    for a, b in values_per_sample:
        s = np.full(shape, a, np.float32)
        s.reshape(-1)[::2] = b
        out.append(s)
    return out


def test_symmetric_range_is_mean_of_per_sample_absmax_unsigned_after_relu():
    samples = _fill([(0.0, 1.0), (0.0, 2.0), (0.0, 3.0), (0.0, 4.0)])
    q = ovq.quantize(_conv_model(relu_in=True), samples, compress_weights=False, fast_bias_correction=None)
    assert _fq_range(q, "relu/fq_output_0") == pytest.approx((0.0, 2.5))


def test_symmetric_signed_range_uses_minus_128_over_127():
    samples = _fill([(-1.0, 3.0), (-3.0, 5.0)])
    q = ovq.quantize(_conv_model(), samples, compress_weights=False, fast_bias_correction=None)
    lo, hi = _fq_range(q, "x/fq_output_0")
    assert hi == pytest.approx(4.0)  # mean(3, 5)
    assert lo == pytest.approx(-4.0 * 128 / 127)


def test_mixed_preset_asymmetric_range_is_mean_min_mean_max_tuned():
    samples = _fill([(-1.0, 3.0), (-3.0, 5.0)])
    q = ovq.quantize(_conv_model(), samples, preset="mixed", compress_weights=False, fast_bias_correction=None)
    # mean min -2, mean max 4; zero point 85 of 255 is exact, so tune_range keeps [-2, 4]
    assert _fq_range(q, "x/fq_output_0") == pytest.approx((-2.0, 4.0), abs=1e-6)


def test_minmax_and_quantile_estimators():
    samples = _fill([(-1.0, 3.0), (-3.0, 5.0)])
    q = ovq.quantize(_conv_model(), samples, preset="mixed", activations_range="minmax", compress_weights=False,
                     fast_bias_correction=None)
    lo, hi = _fq_range(q, "x/fq_output_0")
    assert lo <= -3.0 and hi >= 5.0
    q = ovq.quantize(_conv_model(), samples, preset="mixed", activations_range="quantile",
                     compress_weights=False, fast_bias_correction=None)
    assert _fq_range(q, "x/fq_output_0") == pytest.approx((-2.0, 4.0), abs=1e-3)
    with pytest.raises(OvqError, match="activations_range"):
        ovq.quantize(_conv_model(), samples, activations_range="median")


def _output_mean(model, samples) -> np.ndarray:
    c = runtime.compile_model(model)
    return np.mean([runtime.infer(c, [s])[0].mean(axis=(0, 2, 3)) for s in samples], axis=0)


def test_fast_bias_correction_matches_hand_computed_shift():
    w = (RNG.standard_normal((3, 2, 1, 1)) * 0.3).astype(np.float32)
    w[:, :, 0, 0] += np.array([[0.013, -0.021], [0.007, 0.0], [0.011, 0.019]], np.float32)
    bias = np.array([0.5, -0.4, 0.3], np.float32)
    model = _conv_model(bias=bias, weights=w)
    samples = [(RNG.standard_normal((1, 2, 4, 4)) + 3.0).astype(np.float32) for _ in range(16)]
    q = ovq.quantize(model, samples, compress_weights=False)
    # expected: shift = mean(x) per input channel @ (W - FQ(W)) — exact for a 1x1 conv
    fq = next(o for o in q.get_ops() if o.get_friendly_name() == "conv/fq_weights_1")
    il, ih = (fq.input_value(i).get_node().get_data() for i in (1, 2))
    wq = ovq.kernels.get_kernels().fake_quantize(w, il, ih, il, ih, 255, flavor="node")
    mean_in = np.mean([s.mean(axis=(0, 2, 3)) for s in samples], axis=0)
    expected = bias + (w - wq)[:, :, 0, 0].astype(np.float64) @ mean_in
    got = next(o for o in q.get_ops() if o.get_friendly_name() == "conv/bias").input_value(1).get_node().get_data()
    np.testing.assert_allclose(got.reshape(-1), expected, rtol=1e-5, atol=1e-6)


def test_bias_correction_removes_a_known_mean_shift():
    # one large weight per channel makes the 8-bit grid coarse: the small weights round badly
    w = np.full((4, 8, 1, 1), 0.0123, np.float32)
    w[:, 0] = 1.0
    bias = np.full(4, 0.1, np.float32)
    model = _conv_model(cin=8, cout=4, bias=bias, weights=w)
    samples = [(RNG.random((1, 8, 4, 4)) * 2 + 5).astype(np.float32) for _ in range(32)]
    fp_mean = _output_mean(model, samples)
    off = ovq.quantize(model, samples, fast_bias_correction=None)
    fast = ovq.quantize(model, samples)
    full = ovq.quantize(model, samples, fast_bias_correction=False)
    err_off = np.abs(_output_mean(off, samples) - fp_mean).max()
    err_fast = np.abs(_output_mean(fast, samples) - fp_mean).max()
    err_full = np.abs(_output_mean(full, samples) - fp_mean).max()
    assert err_off > 0.02
    assert err_fast < err_off / 4
    assert err_full < err_off / 4


def test_zero_bias_is_never_corrected():
    model = _conv_model(bias=[0.0, 0.5, 0.5])
    samples = [(RNG.standard_normal((1, 2, 4, 4)) + 3).astype(np.float32) for _ in range(4)]
    _, report = ovq.quantize(model, samples, compress_weights=False, return_report=True)
    assert report.bias_corrected == 0 and report.bias_skipped[0][1] == float("inf")


def test_compressed_weights_are_int8_and_match_fake_quantize():
    model = _conv_model(cin=4, cout=8, k=3, relu_in=True, bias=np.linspace(-1, 1, 8))
    samples = [RNG.standard_normal((1, 4, 4, 4)).astype(np.float32) for _ in range(8)]
    # without the overflow fix: a doubled range puts each channel's largest weight exactly
    # half-way between two levels, where OpenVINO's folding and ours may round differently
    with_fq = ovq.quantize(model, samples, compress_weights=False, overflow_fix="disable")
    folded, report = ovq.quantize(model, samples, return_report=True, overflow_fix="disable")
    consts = [o for o in folded.get_ops() if o.get_type_name() == "Constant" and o.get_element_type() == ov.Type.i8]
    assert len(consts) == 1 and report.compressed == 1
    assert report.weight_bytes_after < report.weight_bytes_before / 3
    assert not any(o.get_type_name() == "FakeQuantize" and o.get_friendly_name().endswith("fq_weights_1")
                   for o in folded.get_ops())
    a = runtime.infer(runtime.compile_model(with_fq), [samples[0]])[0]
    b = runtime.infer(runtime.compile_model(folded), [samples[0]])[0]
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert ovq.quantization.runtime_audit(folded).int8_count == 1


def test_result_kind_follows_input_and_input_is_untouched(tmp_path):
    model = _conv_model(relu_in=True, bias=[0.1, 0.2, 0.3])
    samples = [RNG.standard_normal((1, 2, 4, 4)).astype(np.float32) for _ in range(4)]
    assert isinstance(ovq.quantize(model, samples), ov.Model)
    assert not any(o.get_type_name() == "FakeQuantize" for o in model.get_ops())
    graph = ovq.Graph.from_ov(model)
    before = len(graph)
    q = ovq.quantize(graph, samples)
    assert isinstance(q, ovq.Graph) and q is not graph and len(graph) == before
    ov.save_model(model, tmp_path / "m.xml", compress_to_fp16=False)
    assert isinstance(ovq.quantize(tmp_path / "m.xml", samples), ovq.Graph)


def test_dataset_transform_dicts_generators_and_enums():
    model = _conv_model(relu_in=True, bias=[0.1, 0.2, 0.3])
    raw = [RNG.standard_normal((2, 4, 4)) for _ in range(6)]  # float64, no batch dim
    ds = ovq.Dataset(raw, lambda a: {"x": a[None].astype(np.float32)})
    a = ovq.quantize(model, ds, preset=ovq.QuantizationPreset.PERFORMANCE, target_device=ovq.TargetDevice.CPU)
    b = ovq.quantize(model, (r[None] for r in raw))  # generator, float64 cast to f32
    x = raw[0][None].astype(np.float32)
    np.testing.assert_array_equal(runtime.infer(runtime.compile_model(a), [x])[0],
                                  runtime.infer(runtime.compile_model(b), [x])[0])


def test_subset_is_seeded_and_deterministic():
    model = _conv_model(relu_in=True, bias=[0.1, 0.2, 0.3])
    samples = [RNG.standard_normal((1, 2, 4, 4)).astype(np.float32) * (1 + i) for i in range(40)]
    a = ovq.quantize(model, samples, subset_size=10, compress_weights=False)
    b = ovq.quantize(model, samples, subset_size=10, compress_weights=False)
    c = ovq.quantize(model, samples, subset_size=10, seed=1, compress_weights=False)
    assert _fq_range(a, "relu/fq_output_0") == _fq_range(b, "relu/fq_output_0")
    assert _fq_range(a, "relu/fq_output_0") != _fq_range(c, "relu/fq_output_0")


def test_subset_larger_than_data_warns_and_uses_all():
    model = _conv_model()
    with pytest.warns(UserWarning, match="larger than the calibration dataset"):
        _, report = ovq.quantize(model, [np.zeros((1, 2, 4, 4), np.float32) + 1] * 3, subset_size=10,
                                 return_report=True)
    assert report.samples == 3
    import warnings

    with warnings.catch_warnings():  # the default subset size (300) uses smaller data silently
        warnings.simplefilter("error")
        ovq.quantize(model, [np.zeros((1, 2, 4, 4), np.float32) + 1] * 3)


@pytest.mark.parametrize(("data", "match"), [
    ([], "empty"),
    (np.zeros((3, 1, 2, 4, 4), np.float32), "iterable of samples"),
    ([np.zeros((1, 2, 5, 4), np.float32)], r"input 'x' expects shape \[1, 2, 4, 4\], got \[1, 2, 5, 4\]"),
    ([{"y": np.zeros((1, 2, 4, 4), np.float32)}], "no model input is named 'y'"),
    ([(np.zeros((1, 2, 4, 4), np.float32),) * 2], "2 array"),
    ([np.array(["a"] * 32).reshape(1, 2, 4, 4)], "expects float32"),
    ([np.full((1, 2, 4, 4), np.nan, np.float32)], "NaN or Inf"),
])
def test_bad_calibration_data_is_a_clear_error(data, match):
    with pytest.raises(CalibrationDataError, match=match):
        ovq.quantize(_conv_model(), data)


def test_nan_inside_the_model_names_the_op():
    x = ops.parameter([1, 2, 4, 4], np.float32, name="x")
    lg = ops.log(x)
    lg.set_friendly_name("log")
    c = ops.convolution(lg, ops.constant(np.ones((3, 2, 1, 1), np.float32)), [1, 1], [0, 0], [0, 0], [1, 1])
    model = ov.Model([c], [x])
    samples = [np.full((1, 2, 4, 4), 2.0, np.float32), np.full((1, 2, 4, 4), -1.0, np.float32)]
    with pytest.raises(NonFiniteError, match=r"'log:0'.*calibration sample 1"):
        ovq.quantize(model, samples)


def test_calibration_data_error_is_one_class_exported_from_ovq():
    assert ovq.CalibrationDataError is CalibrationDataError and "CalibrationDataError" in ovq.__all__
    assert issubclass(CalibrationDataError, OvqError)


def test_unknown_target_preset_and_options():
    samples = [np.ones((1, 2, 4, 4), np.float32)]
    with pytest.raises(OvqError, match="valid targets: any, cpu"):
        ovq.quantize(_conv_model(), samples, target_device="TPU")
    with pytest.raises(OvqError, match="preset"):
        ovq.quantize(_conv_model(), samples, preset="fastest")
    with pytest.raises(OvqError, match="overflow_fix"):
        ovq.quantize(_conv_model(), samples, overflow_fix="sometimes")
    with pytest.raises(OptionError, match="subset_size must be positive, got 0"):
        ovq.quantize(_conv_model(), samples, subset_size=0)


@pytest.mark.parametrize("subset_size", [2.5, "300", True])
def test_a_subset_size_that_is_not_an_integer_is_an_option_error(subset_size):
    samples = [np.ones((1, 2, 4, 4), np.float32)]
    with pytest.raises(OptionError, match=rf"subset_size must be a positive integer or None, got {subset_size!r}"):
        ovq.quantize(_conv_model(), samples, subset_size=subset_size)


def test_overflow_fix_doubles_first_layer_weight_range():
    model = _conv_model(relu_in=True)
    samples = [RNG.standard_normal((1, 2, 4, 4)).astype(np.float32)]
    plain = ovq.quantize(model, samples, compress_weights=False, overflow_fix="disable")
    fixed = ovq.quantize(model, samples, compress_weights=False, overflow_fix="first_layer")
    lo_p, hi_p = _fq_range(plain, "conv/fq_weights_1")
    lo_f, hi_f = _fq_range(fixed, "conv/fq_weights_1")
    assert hi_f == pytest.approx(2 * hi_p) and lo_f == pytest.approx(2 * lo_p)


def _weight_fq_ranges(model: ov.Model) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for op in model.get_ops():
        if op.get_type_name() == "FakeQuantize" and op.input_value(0).get_node().get_type_name() == "Constant":
            lo, hi = (op.input_value(i).get_node().get_data() for i in (1, 2))
            out[op.get_friendly_name()] = (np.array(lo), np.array(hi))
    return out


def test_first_layer_overflow_fix_leaves_matmuls_alone():
    # NNCF's FIRST_LAYER touches plain Convolutions only: a transformer's first MatMuls
    # (and, through the residual stream, most of its MatMuls) keep 8-bit weights
    x = ops.parameter([1, 4, 8], np.float32, name="x")
    h = ops.relu(ops.matmul(x, ops.constant(RNG.standard_normal((8, 8)).astype(np.float32)), False, False))
    y = ops.matmul(ops.add(h, x), ops.constant(RNG.standard_normal((8, 8)).astype(np.float32)), False, False)
    model = ov.Model([y], [x], "mlp")
    samples = [RNG.standard_normal((1, 4, 8)).astype(np.float32) for _ in range(4)]
    runs = {mode: _weight_fq_ranges(ovq.quantize(model, samples, compress_weights=False, overflow_fix=mode))
            for mode in ("disable", "first_layer", "enable")}
    assert len(runs["disable"]) == 2
    for name, (lo, hi) in runs["disable"].items():
        np.testing.assert_array_equal(runs["first_layer"][name][1], hi)
        np.testing.assert_allclose(runs["enable"][name][1], 2 * hi, rtol=1e-6)


def test_ignored_scope_keeps_the_op_in_float_and_strict_refuses_unknown_names():
    model = _conv_model(relu_in=True, bias=[0.1, 0.2, 0.3])
    samples = [RNG.standard_normal((1, 2, 4, 4)).astype(np.float32) for _ in range(4)]
    q = ovq.quantize(model, samples, ignored_scope=ovq.IgnoredScope(names=["conv"]), compress_weights=False)
    assert not any(o.get_type_name() == "FakeQuantize" for o in q.get_ops())
    with pytest.raises(OvqError, match="nope"):
        ovq.quantize(model, samples, ignored_scope={"names": ["nope"]}, strict=True)


def test_a_small_negative_tail_keeps_the_unsigned_grid():
    """NNCF's rule: the sign comes from the mean of per-sample minima, so a tensor that
    dips to -0.15 in one sample keeps [0, h] (a signed grid would halve the resolution
    and, on CPUs without VNNI, run the signed input through the u8 path)."""
    rng = np.random.default_rng(3)
    samples = [np.abs(rng.standard_normal((1, 2, 4, 4))).astype(np.float32) + 0.2 for _ in range(8)]
    samples[0][0, 0, 0, 0] = -0.15
    q = ovq.quantize(_conv_model(), samples, compress_weights=False, fast_bias_correction=None)
    lo, hi = _fq_range(q, "x/fq_output_0")
    assert lo == 0.0 and hi > 0
    mostly_negative = [-s for s in samples]
    q = ovq.quantize(_conv_model(), mostly_negative, compress_weights=False, fast_bias_correction=None)
    assert _fq_range(q, "x/fq_output_0")[0] < 0


@pytest.mark.parametrize("compress_weights", [True, False])
def test_quantizing_an_int8_model_again_is_an_already_quantized_error(compress_weights):
    # the FakeQuantize on the weights (compress_weights=False) is not counted: weight-only
    # forms are accepted as inputs, an activation FakeQuantize is what makes a model INT8
    found = "1 FakeQuantize ops on activations"
    samples = [RNG.standard_normal((1, 2, 4, 4)).astype(np.float32) for _ in range(4)]
    q = ovq.quantize(_conv_model(), samples, compress_weights=compress_weights)
    with pytest.raises(ovq.AlreadyQuantizedError, match=rf"the model is already quantized \({found}\)"):
        ovq.quantize(q, samples)
