"""Pair spreading: a saturating convolution with few input channels reads each channel
beside a zero (no 7-bit weights), with the FP function and the 8-bit grid unchanged."""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as ops

import ovq
from ovq.quantization import pair_spread
from ovq_testing.isa import run_under_isa

EMULATED = {"INFERENCE_PRECISION_HINT": "f32", "LP_TRANSFORMS_MODE": False}


def _stem(cin: int = 3, share: bool = False) -> ov.Model:
    """An image stem: ``cin`` correlated positive channels, a 3x3 convolution whose
    weights on channels 0 and 1 are large and of one sign (their pair saturates int16),
    then ReLU and a 1x1 convolution that cannot saturate. With ``share``, a second convolution reads the same
    input (its FakeQuantize is shared: not spread)."""
    rng = np.random.default_rng(4)
    x = ops.parameter([1, cin, 12, 12], np.float32, name="image")
    w = (rng.standard_normal((8, cin, 3, 3)) * 0.05).astype(np.float32)
    w[:, 0] = w[:, 1] = 1.0
    stem = ops.convolution(x, ops.constant(w), [1, 1], [1, 1], [1, 1], [1, 1])
    stem.set_friendly_name("stem")
    wh = (rng.standard_normal((4, 8, 1, 1)) * 0.3).astype(np.float32)
    wh[:, 1::2] = 0.0  # one zero in every pair: the head never saturates
    head = ops.convolution(ops.relu(stem), ops.constant(wh), [1, 1], [0, 0], [0, 0], [1, 1])
    head.set_friendly_name("head")
    outputs = [head]
    if share:
        other = ops.convolution(x, ops.constant(w[:4]), [1, 1], [1, 1], [1, 1], [1, 1])
        other.set_friendly_name("other")
        outputs.append(other)
    return ov.Model(outputs, [x], "stem")


def _images(n: int, seed: int, cin: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.7, 1.0, (n, 1, 1, 12, 12))
    return [(b + rng.uniform(0, 0.05, (1, cin, 12, 12))).astype(np.float32) for b in base]


def test_the_saturating_stem_is_spread_not_halved():
    q, report = ovq.quantize(_stem(), _images(8, 1), return_report=True)
    stem = next(d for d in report.overflow_decisions if d.layer == "stem")
    assert stem.spread and stem.halved == 0 and stem.saturated > 0
    gathers = [op for op in q.get_ordered_ops() if op.get_friendly_name() == "stem/spread_channels"]
    assert len(gathers) == 1
    np.testing.assert_array_equal(gathers[0].input_value(1).get_node().get_data(), [0, 0, 1, 1, 2, 2])
    assert "spread beside zeros in 1 layers" in report.format()


def test_spreading_keeps_the_function_and_the_grid():
    """Emulated in float, the spread model computes what the 8-bit model without any fix
    does: the copies meet zero weights and every range is the same."""
    images = _images(8, 1)
    spread = ovq.quantize(_stem(), images)
    plain = ovq.quantize(_stem(), images, overflow_fix="disable")
    core = ov.Core()
    a, b = core.compile_model(spread, "CPU", EMULATED), core.compile_model(plain, "CPU", EMULATED)
    for x in _images(3, 2):
        np.testing.assert_allclose(a([x])[0], b([x])[0], rtol=1e-5, atol=1e-5)


def test_the_spread_model_does_not_saturate_on_avx2(tmp_path):
    images = _images(8, 1)
    fp = _stem()
    paths = {"fp": tmp_path / "fp.xml", "spread": tmp_path / "spread.xml", "disable": tmp_path / "disable.xml"}
    ov.save_model(fp, paths["fp"], compress_to_fp16=False)
    ov.save_model(ovq.quantize(_stem(), images), paths["spread"], compress_to_fp16=False)
    ov.save_model(ovq.quantize(_stem(), images, overflow_fix="disable"), paths["disable"], compress_to_fp16=False)
    out = run_under_isa({k: str(v) for k, v in paths.items()}, [[x] for x in _images(4, 2)], "AVX2")
    ref = out["fp"]

    def sqnr(y: np.ndarray) -> float:
        return float(10 * np.log10((ref ** 2).sum() / ((ref - y) ** 2).sum()))

    assert sqnr(out["spread"]) > sqnr(out["disable"]) + 10


def test_only_small_unshared_plain_convolutions_are_spread():
    """Eight input channels, or a FakeQuantize that also feeds another layer: the
    saturating channels get 7-bit weights instead."""
    for model, images in ((_stem(cin=8), _images(8, 1, cin=8)), (_stem(share=True), _images(8, 1))):
        _, report = ovq.quantize(model, images, return_report=True)
        stem = next(d for d in report.overflow_decisions if d.layer == "stem")
        assert not stem.spread and stem.halved > 0
    assert pair_spread.MAX_SPREAD_CHANNELS == 4


def test_analyze_folds_the_spread_weights_back():
    """``ovq analyze`` compares the spread layer's weights with the FP ones (the zero
    copies summed back onto their channels)."""
    images = _images(8, 1)
    fp = _stem()
    table = ovq.analyze(fp, ovq.quantize(_stem(), images), _images(2, 2))
    stem = next(row for row in table.rows if row.name == "stem")
    assert stem.weight_nmse is not None and stem.weight_nmse < 1e-3
