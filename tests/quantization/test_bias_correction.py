"""The fast bias correction's closed-form convolution shift against OpenVINO itself.

:func:`conv_mean_shift` claims the spatial mean of ``conv(m̄, ΔW)`` for an input that
holds one constant per channel, padded borders included. Each case compiles that
convolution (f32 hint), feeds the constant input and compares the spatial mean.
"""

from __future__ import annotations

import numpy as np
import pytest

from ovq.quantization.bias_correction import FAST_THRESHOLD, FULL_THRESHOLD, conv_mean_shift, shift_ratio, tap_fractions

F32 = {"INFERENCE_PRECISION_HINT": "f32"}


def _csv(values: list[int]) -> str:
    return ",".join(str(v) for v in values)


def _openvino_mean(kind: str, weights: np.ndarray, mean: np.ndarray, in_shape: tuple[int, ...],
                   attrs: dict[str, str]) -> np.ndarray:
    """Spatial mean of the OpenVINO convolution of a constant-per-channel input."""
    import openvino as ov
    import openvino.opset13 as ops

    def ints(key: str) -> list[int]:
        return [int(v) for v in attrs[key].split(",")]

    p = ops.parameter(list(in_shape), np.float32)
    conv = ops.convolution if kind == "Convolution" else ops.group_convolution
    y = conv(p, ops.constant(weights), strides=ints("strides"), pads_begin=ints("pads_begin"),
             pads_end=ints("pads_end"), dilations=ints("dilations"), auto_pad=attrs["auto_pad"])
    spatial = ops.constant(np.arange(2, len(in_shape), dtype=np.int64))
    model = ov.Model([ops.result(ops.reduce_mean(y, spatial, keep_dims=False))], [p], "shift")
    compiled = ov.Core().compile_model(model, "CPU", F32)
    feed = np.broadcast_to(mean.astype(np.float32).reshape(1, -1, *([1] * (len(in_shape) - 2))), in_shape)
    return np.asarray(compiled.create_infer_request().infer([np.ascontiguousarray(feed)])[0], np.float64)[0]


CASES = [
    # (in spatial, kernel, strides, dilations, pads_begin, pads_end, auto_pad)
    ((9, 9), (1, 1), (1, 1), (1, 1), (0, 0), (0, 0), "explicit"),
    ((9, 9), (3, 3), (1, 1), (1, 1), (1, 1), (1, 1), "explicit"),
    ((10, 7), (3, 3), (2, 2), (1, 1), (1, 1), (1, 1), "explicit"),
    ((11, 12), (5, 3), (2, 1), (1, 1), (2, 0), (1, 2), "explicit"),
    ((12, 12), (3, 3), (1, 1), (2, 3), (2, 3), (2, 3), "explicit"),
    ((13, 9), (3, 3), (3, 2), (1, 1), (0, 0), (0, 0), "valid"),
    ((10, 11), (3, 5), (2, 2), (1, 1), (0, 0), (0, 0), "same_upper"),
    ((10, 11), (4, 3), (2, 3), (1, 1), (0, 0), (0, 0), "same_lower"),
    ((8, 9), (5, 5), (1, 2), (2, 1), (0, 0), (0, 0), "same_upper"),
    ((17,), (3,), (2,), (1,), (1,), (1,), "explicit"),
    ((5, 6, 7), (3, 3, 3), (2, 1, 2), (1, 1, 1), (1, 1, 1), (1, 1, 1), "explicit"),
]


@pytest.mark.parametrize("kind", ["Convolution", "GroupConvolution"])
@pytest.mark.parametrize(("spatial", "kernel", "strides", "dilations", "pads_begin", "pads_end", "auto_pad"), CASES)
def test_closed_form_matches_openvino(kind, spatial, kernel, strides, dilations, pads_begin, pads_end, auto_pad):
    rng = np.random.default_rng(len(spatial) * 100 + sum(kernel) + sum(strides))
    channels = 6
    if kind == "Convolution":
        weights = rng.standard_normal((4, channels, *kernel)).astype(np.float32)
    else:  # depthwise: one group per channel
        weights = rng.standard_normal((channels, 1, 1, *kernel)).astype(np.float32)
    mean = rng.uniform(-2.0, 3.0, channels)
    in_shape = (1, channels, *spatial)
    attrs = {"strides": _csv(strides), "dilations": _csv(dilations), "pads_begin": _csv(pads_begin),
             "pads_end": _csv(pads_end), "auto_pad": auto_pad}
    got = conv_mean_shift(kind, weights, mean, in_shape, attrs)
    want = _openvino_mean(kind, weights, mean, in_shape, attrs)
    assert got is not None and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_grouped_convolution_with_several_channels_per_group():
    rng = np.random.default_rng(7)
    weights = rng.standard_normal((2, 3, 4, 3, 3)).astype(np.float32)  # G=2, O/G=3, C/G=4
    mean = rng.uniform(-1.0, 1.0, 8)
    attrs = {"strides": "2,2", "dilations": "1,1", "pads_begin": "1,1", "pads_end": "0,0", "auto_pad": "explicit"}
    got = conv_mean_shift("GroupConvolution", weights, mean, (1, 8, 9, 10), attrs)
    want = _openvino_mean("GroupConvolution", weights, mean, (1, 8, 9, 10), attrs)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_tap_fractions_interior_and_border():
    # 3 taps over 4 outputs with one zero pad each side: the outer taps miss one output each
    frac = tap_fractions((4,), (3,), {"pads_begin": "1", "pads_end": "1"})
    np.testing.assert_array_equal(frac, [0.75, 1.0, 0.75])
    # unpadded kernels read inside the input everywhere
    np.testing.assert_array_equal(tap_fractions((5, 6), (3, 2), {}), np.ones((3, 2)))


def test_mismatched_shapes_give_none():
    weights = np.zeros((4, 3, 3, 3), np.float32)
    assert conv_mean_shift("Convolution", weights, np.zeros(5), (1, 5, 8, 8), {}) is None
    assert conv_mean_shift("Convolution", weights, np.zeros(3), (1, 3, 8), {}) is None


def test_bias_shift_rules():
    shift = np.ones(3)
    assert shift_ratio(shift, [1.0, 1.0, 1.0]) < FAST_THRESHOLD
    assert not shift_ratio(shift, [0.4, 1.0, 1.0]) < FAST_THRESHOLD  # ratio 2.5 >= 2
    assert not shift_ratio(shift, [0.0, 1.0, 1.0]) < FULL_THRESHOLD  # zero bias: never
    assert shift_ratio(np.zeros(3), [0.0, 1.0, 1.0]) == np.inf  # 0/0 too
    assert shift_ratio(shift, [0.4, 1.0, 1.0]) < FULL_THRESHOLD


# ---------------------------------------------------------------- full correction


def _chain(depth: int = 6, channels: int = 8, seed: int = 3):
    """1x1 conv + bias (+ ReLU) ``depth`` times. One weight of 1.0 per output channel
    among weights of about 0.05 makes the 8-bit grid coarse, so every layer has a
    weight-quantization mean error that propagates to the next."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(seed)
    x = ops.parameter([1, channels, 6, 6], np.float32, name="x")
    h = x
    for i in range(depth):
        w = (rng.standard_normal((channels, channels, 1, 1)) * 0.05).astype(np.float32)
        w[np.arange(channels), rng.integers(0, channels, channels)] = 1.0
        h = ops.convolution(h, ops.constant(w), [1, 1], [0, 0], [0, 0], [1, 1])
        h.set_friendly_name(f"conv{i}")
        h = ops.add(h, ops.constant(rng.uniform(0.2, 0.5, (1, channels, 1, 1)).astype(np.float32)))
        h.set_friendly_name(f"conv{i}/bias")
        if i < depth - 1:
            h = ops.relu(h)
            h.set_friendly_name(f"relu{i}")
    return ov.Model([h], [x], "chain")


def _chain_samples(n: int = 40) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(rng.random((1, 8, 6, 6)) * 2 + 1).astype(np.float32) for _ in range(n)]


def _channel_means(model, samples, names: list[str], config: dict | None = None) -> list[np.ndarray]:
    """Per-channel means of the named ops' outputs over ``samples`` (f32 hint)."""
    import openvino as ov

    by_name = {o.get_friendly_name(): o for o in model.get_ops()}
    probe = ov.Model([by_name[n].output(0) for n in names], model.get_parameters(), "probe")
    compiled = ov.Core().compile_model(probe, "CPU", {**F32, **(config or {})})
    request = compiled.create_infer_request()
    outs = [request.infer([s]) for s in samples]
    return [np.mean([np.asarray(o[port], np.float64).mean(axis=(0, 2, 3)) for o in outs], axis=0)
            for port in compiled.outputs]


def test_full_correction_goes_layer_by_layer():
    # The full correction used to correct every layer at once from one run of the quantized
    # model (twice): an error a layer inherits was corrected in the layer and again in
    # its corrected predecessors, and this 6-layer chain ended further from its FP output
    # mean (0.24) than with no correction (0.15). overflow_fix="enable" keeps every product
    # clear of the int16 saturation of CPUs without VNNI, so this holds on any CPU.
    import ovq

    model, samples = _chain(), _chain_samples()
    fp = _channel_means(model, samples, ["conv5/bias"])[0]
    err = {}
    for mode in (None, True, False):
        q = ovq.quantize(model, samples, fast_bias_correction=mode, overflow_fix="enable", progress=False)
        err[mode] = np.abs(_channel_means(q, samples, ["conv5/bias"])[0] - fp).max()
    assert err[None] > 0.05, err  # measured 0.147 (fast 0.0001, full 0.0025)
    assert err[False] < err[None] / 20, err


def test_full_correction_matches_fp_means_with_quantized_weights():
    # The definition (NNCF's BiasCorrection): with the quantized weights, activation
    # FakeQuantize ops bypassed and every earlier layer corrected, each corrected layer's
    # output mean over the correction's samples is the FP one.
    import openvino as ov

    import ovq

    model, samples = _chain(), _chain_samples(20)
    q, report = ovq.quantize(model, samples, fast_bias_correction=False, compress_weights=False, progress=False,
                             subset_size=100, return_report=True)
    assert report.bias_corrected == 6
    kept = samples[: max(int(0.2 * len(samples)), 1)]
    for op in q.get_ops():  # activation FQs read a non-constant input
        if op.get_type_name() == "FakeQuantize" and op.input_value(0).get_node().get_type_name() != "Constant":
            for reader in list(op.output(0).get_target_inputs()):
                reader.replace_source_output(op.input_value(0))
    q = ov.Model(q.get_results(), q.get_parameters(), "weights_only")
    names = [f"conv{i}/bias" for i in range(6)]
    for name, a, b in zip(names, _channel_means(model, kept, names), _channel_means(q, kept, names), strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5 * np.abs(a).max(), err_msg=name)


def test_full_correction_does_not_depend_on_int8_kernels():
    # u8 inputs near 255 and 8-bit weights near 127 in adjacent input channels: without
    # VNNI, the CPU's u8 x s8 convolution saturates their pair sums in int16. The full
    # correction used to measure the quantized model on those kernels and moved the bias
    # by the saturation error. Measured on the quantized weights in f32, the shift of a
    # single 1x1 layer is exactly the fast correction's ΔW · mean(x).
    import openvino as ov
    import openvino.opset13 as ops

    import ovq
    from ovq.kernels import get_kernels

    rng = np.random.default_rng(5)
    w = (0.95 + 0.05 * rng.random((4, 8, 1, 1))).astype(np.float32)
    w[1] *= -1
    bias = np.array([0.5, -0.4, 0.3, 0.2], np.float32)
    samples = [(rng.random((1, 8, 4, 4)) * 0.5 + 3.5).astype(np.float32) for _ in range(20)]
    x = ops.parameter([1, 8, 4, 4], np.float32, name="x")
    conv = ops.convolution(x, ops.constant(w), [1, 1], [0, 0], [0, 0], [1, 1])
    conv.set_friendly_name("conv")
    add = ops.add(conv, ops.constant(bias.reshape(1, 4, 1, 1)))
    add.set_friendly_name("conv/bias")
    model = ov.Model([add], [x], "saturating_conv")
    q = ovq.quantize(model, samples, fast_bias_correction=False, compress_weights=False, overflow_fix="disable",
                     progress=False)
    fq = next(o for o in q.get_ops() if o.get_friendly_name() == "conv/fq_weights_1")
    il, ih = (fq.input_value(i).get_node().get_data() for i in (1, 2))
    wq = get_kernels().fake_quantize(w, il, ih, il, ih, 255, flavor="node")
    kept = samples[: max(int(0.2 * len(samples)), 1)]
    expected = bias + (w - wq)[:, :, 0, 0].astype(np.float64) @ np.mean([s.mean(axis=(0, 2, 3)) for s in kept], axis=0)
    got = next(o for o in q.get_ops() if o.get_friendly_name() == "conv/bias").input_value(1).get_node().get_data()
    np.testing.assert_allclose(got.reshape(-1), expected, rtol=1e-5, atol=1e-5)
