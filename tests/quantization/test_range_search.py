"""range_search: the clipping-range search only narrows ranges, never raises the error it
measures, leaves unified and per-channel activation ranges alone, and its models run."""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

import ovq
from ovq.errors import OptionError
from ovq.quantization.range_search import RangeSearchDecision, check_mode, fake_quantize
from ovq.runtime import compile_model

K = 64


def _model() -> ov.Model:
    """x → MatMul → ReLU → Conv 3×3 → GroupConv (depthwise 3×3). The MatMul's largest
    weights sit on input channel 0, which the samples keep near zero (:func:`_samples`):
    clipping them costs little and refines every other weight's grid."""
    rng = np.random.default_rng(3)
    x = ops.parameter([1, 16, K], np.float32, name="x")
    w = (rng.standard_normal((K, 64)) * 0.1).astype(np.float32)
    w[0] = 3.0 * np.sign(rng.standard_normal(64))
    mm = ops.matmul(x, ops.constant(w), False, False)
    mm.set_friendly_name("mm")
    relu = ops.relu(mm)
    relu.set_friendly_name("relu")
    img = ops.reshape(relu, ops.constant(np.array([1, 16, 8, 8], np.int64)), False)
    wc = (rng.standard_normal((8, 16, 3, 3)) * 0.2).astype(np.float32)
    conv = ops.convolution(img, ops.constant(wc), [1, 1], [1, 1], [1, 1], [1, 1])
    conv.set_friendly_name("conv")
    wd = (rng.standard_normal((8, 1, 1, 3, 3)) * 0.3).astype(np.float32)
    dw = ops.group_convolution(conv, ops.constant(wd), [1, 1], [1, 1], [1, 1], [1, 1])
    dw.set_friendly_name("dw")
    return ov.Model([dw], [x], "range_search")


def _samples(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = np.ones(K, np.float32)
    scale[0] = 0.01
    return [rng.standard_normal((1, 16, K)).astype(np.float32) * scale for _ in range(n)]


def _fq_ranges(model: ov.Model) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {o.get_friendly_name(): (np.asarray(o.input_value(1).get_node().get_data()).copy(),
                                    np.asarray(o.input_value(2).get_node().get_data()).copy())
            for o in model.get_ops() if o.get_type_name() == "FakeQuantize"}


def test_search_narrows_only_and_never_raises_its_error():
    samples = _samples(8, 1)
    base = ovq.quantize(_model(), samples, compress_weights=False, fast_bias_correction=None, overflow_fix="disable")
    searched, report = ovq.quantize(_model(), samples, compress_weights=False, fast_bias_correction=None,
                                    overflow_fix="disable", range_search="all", return_report=True)
    decisions = report.range_search
    assert all(isinstance(d, RangeSearchDecision) for d in decisions)
    assert {d.kind for d in decisions} == {"activation", "weight"}
    assert {d.layers[0] for d in decisions if d.kind == "weight"} == {"mm", "conv", "dw"}  # depthwise included
    for d in decisions:
        assert d.after_nmse <= d.before_nmse + 1e-12, d
    before, after = _fq_ranges(base), _fq_ranges(searched)
    assert before.keys() == after.keys()
    narrowed = 0
    for name, (lo, hi) in before.items():
        lo2, hi2 = after[name]
        assert np.all(hi2 <= hi * (1 + 1e-6)) and np.all(lo2 >= lo * (1 + 1e-6)), name
        narrowed += int(np.sum(hi2 < hi * (1 - 1e-6)))
    # heavy-tailed MatMul weights: some channels are clipped, and the report says how many
    clipped = sum(d.clipped_channels for d in decisions)
    assert narrowed >= clipped > 0
    assert "range search:" in report.format()
    # the searched model runs and stays close to FP32 on held-out data
    fp, q = compile_model(_model()), compile_model(searched)
    for x in _samples(4, 2):
        ref, got = fp(x)[0], q(x)[0]
        assert 10 * np.log10((ref**2).sum() / ((ref - got) ** 2).sum()) > 15


def _sqnr(model: ov.Model, layer: str, xs: list[np.ndarray]) -> float:
    """SQNR (dB) of ``layer``'s output in ``model`` vs the FP model, on ``xs``."""
    def run(m: ov.Model) -> np.ndarray:
        node = next(o for o in m.get_ops() if o.get_friendly_name() == layer)
        c = compile_model(ov.Model([ops.result(node.output(0))], m.get_parameters()))
        return np.concatenate([c(x)[0] for x in xs])

    ref, got = run(_model()), run(model)
    return float(10 * np.log10((ref**2).sum() / ((ref - got) ** 2).sum()))


def test_weight_search_clips_cheap_outliers_and_the_layer_gets_closer_to_fp32():
    samples = _samples(8, 5)
    kw = dict(compress_weights=False, fast_bias_correction=None, overflow_fix="disable")
    plain = ovq.quantize(_model(), samples, **kw)
    searched, report = ovq.quantize(_model(), samples, range_search="weights", return_report=True, **kw)
    mm = next(d for d in report.range_search if d.layers == ("mm",))
    assert mm.clipped_channels == 64 and mm.after_nmse < 0.5 * mm.before_nmse
    held_out = _samples(8, 6)
    assert _sqnr(searched, "mm", held_out) > _sqnr(plain, "mm", held_out) + 3.0


def test_unified_activation_ranges_are_left_alone():
    """Two branches concatenated into a Conv share one (unified) range: not searched."""
    rng = np.random.default_rng(0)
    x = ops.parameter([1, 4, 8, 8], np.float32, name="x")
    a = ops.convolution(x, ops.constant(rng.standard_normal((4, 4, 1, 1)).astype(np.float32)), [1, 1], [0, 0],
                        [0, 0], [1, 1])
    b = ops.convolution(x, ops.constant(rng.standard_normal((4, 4, 1, 1)).astype(np.float32)), [1, 1], [0, 0],
                        [0, 0], [1, 1])
    cat = ops.concat([ops.relu(a), ops.relu(b)], 1)
    c = ops.convolution(cat, ops.constant(rng.standard_normal((4, 8, 3, 3)).astype(np.float32)), [1, 1], [1, 1],
                        [1, 1], [1, 1])
    c.set_friendly_name("c")
    model = ov.Model([c], [x], "unified")
    samples = [rng.standard_t(2.0, (1, 4, 8, 8)).astype(np.float32) for _ in range(4)]
    _, report = ovq.quantize(model, samples, range_search="activations", return_report=True)
    searched = {layer for d in report.range_search for layer in d.layers}
    assert "c" not in searched


def test_fake_quantize_matches_openvino():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 50)).astype(np.float32) * 3
    p = ops.parameter([3, 50], np.float32)
    fq = ops.fake_quantize(p, ops.constant(np.float32(-2.5)), ops.constant(np.float32(4.0)),
                           ops.constant(np.float32(-2.5)), ops.constant(np.float32(4.0)), 256)
    got = compile_model(ov.Model([fq], [p]))(x)[0]
    np.testing.assert_allclose(fake_quantize(x, -2.5, 4.0, 256), got, atol=1e-5)


@pytest.mark.parametrize("value, expected", [(None, "none"), (False, "none"), (True, "all"), ("weights", "weights")])
def test_mode_values(value, expected):
    assert check_mode(value) == expected


def test_unknown_mode_is_an_option_error():
    with pytest.raises(OptionError, match="range_search.*activations"):
        ovq.quantize(_model(), _samples(2, 0), range_search="mse")
