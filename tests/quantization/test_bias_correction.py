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
