"""SmoothQuant on tiny transformer-like graphs: grouping, scale math, exactness, accuracy gain."""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

import ovq
from ovq.errors import OvqError
from ovq.ir import read_model
from ovq.quantization import smooth_quant as sq
from ovq.quantization.placement import apply_plan, plan_placement
from ovq.quantization.statistics import TensorStats

RNG = np.random.default_rng(11)
C = 16


def _model(outlier: float = 40.0) -> ov.Model:
    """x [1,8,C] → Multiply (a LayerNorm stand-in) → q, k projections and a residual Add."""
    x = ops.parameter([1, 8, C], np.float32, name="x")
    x.output(0).set_names({"x"})
    gain = np.ones(C, np.float32)
    gain[3] = outlier  # one outlier channel, as in transformer LayerNorm outputs
    src = ops.multiply(x, ops.constant(gain))
    src.set_friendly_name("norm")
    outs = []
    for name in ("q", "k"):
        w = (RNG.standard_normal((C, C)) * 0.2).astype(np.float32)
        m = ops.matmul(src, ops.constant(w), transpose_a=False, transpose_b=True)
        m.set_friendly_name(name)
        outs.append(m)
    res = ops.add(ops.add(outs[0], outs[1]), src)
    return ov.Model([res], [x], "tiny_attention_inputs")


def _samples(n: int = 16) -> list[np.ndarray]:
    return [RNG.standard_normal((1, 8, C)).astype(np.float32) for _ in range(n)]


def _run(model: ov.Model, xs: list[np.ndarray]) -> np.ndarray:
    c = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return np.concatenate([c(x)[0] for x in xs])


def _placed():
    g = read_model(_model())
    g.infer_shapes()
    meta = apply_plan(g, plan_placement(g, "CPU", model_type="transformer"))
    return g, meta


def test_projections_sharing_a_source_form_one_group():
    g, meta = _placed()
    groups = sq.find_groups(g, meta)
    assert len(groups) == 1
    assert sorted(m.name for m in groups[0].members) == ["k", "q"]
    assert groups[0].source_name == "norm" and groups[0].channels == C and groups[0].act_axis == -1


def test_scales_follow_nncf_formula_and_clipping():
    act = np.array([1.0, 2.0, 1e-9, 1e4])
    w = np.array([[0.5, 1.0, 2.0, 1.0], [0.25, 4.0, 1.0, 1.0]])  # [out, in]; in-channel axis -1
    s = sq.smoothing_scales(act, w, -1, 0.5)
    raw = np.maximum(act, 1e-5) ** 0.5 / np.abs(w).max(0) ** 0.5
    assert s == pytest.approx(np.clip(raw, np.quantile(raw, 0.1), 100.0))
    assert s.max() == 100.0  # the 1e4 outlier channel is clipped


def test_smoothing_rewrites_weights_and_keeps_the_function():
    g, meta = _placed()
    groups = sq.find_groups(g, meta)
    w_before = {m.name: sq.const_source(g, m.weight_fq, 0)[1].copy() for m in groups[0].members}
    x = np.abs(RNG.standard_normal((4, C))) + 0.1
    x[:, 3] *= 40
    stats = {groups[0].key: TensorStats(sample_channel_min=-x, sample_channel_max=x)}
    (done,) = sq.smooth(g, groups, stats, meta, alpha=0.95)
    mul = g.find("norm/smooth_quant")
    inv = g.const_value(g.producer(mul, 1)[0]).reshape(-1)
    assert inv == pytest.approx(1.0 / done.scales, rel=1e-6)
    assert done.scales[3] == done.scales.max()  # the outlier channel is scaled down most
    for m in groups[0].members:
        w = sq.const_source(g, m.weight_fq, 0)[1]
        assert w == pytest.approx(w_before[m.name] * done.scales[None, :], rel=1e-5)
        # the weight FQ range follows the new weights (per output channel abs-max)
        hi = g.const_value(g.producer(m.weight_fq, 2)[0]).reshape(-1)
        assert hi == pytest.approx(np.abs(w).max(1), rel=1e-5)
    # the residual Add still reads the unscaled source; only the FQ reads the Multiply
    norm = g.find("norm")
    assert {g.op(d).type for d, _ in g.consumers(norm, 0)} == {"Multiply", "Add"}
    assert [g.op(d).type for d, _ in g.consumers(mul, 0)] == ["FakeQuantize"]


def test_smoothed_stats_are_the_per_sample_range_of_x_over_s():
    x = RNG.standard_normal((5, 7, C))  # 5 samples, per-channel stats over the 7 tokens
    s = np.abs(RNG.standard_normal(C)) + 0.5
    group = sq.SmoothGroup((0, 0), "src", (), (), -1, C)
    st = TensorStats(sample_channel_min=x.min(1), sample_channel_max=x.max(1))
    got = sq.smoothed_stats(sq.Smoothed(group, s, "m"), st)
    assert got.mins == pytest.approx((x / s).reshape(5, -1).min(1))
    assert got.maxs == pytest.approx((x / s).reshape(5, -1).max(1))


def test_transformer_default_smooths_and_is_more_accurate_on_outlier_channels():
    model, xs, held = _model(outlier=60.0), _samples(), _samples(8)
    fp = _run(model, held)
    smoothed, rep = ovq.quantize(model, xs, model_type="transformer", return_report=True, fast_bias_correction=None)
    plain, rep0 = ovq.quantize(model, xs, model_type="transformer", smooth_quant=False, return_report=True,
                               fast_bias_correction=None)
    assert rep.smoothed == 2 and rep0.smoothed == 0
    assert "SmoothQuant: 2 MatMuls smoothed, alpha" in rep.format()
    err = np.abs(_run(smoothed, held) - fp).mean()
    err0 = np.abs(_run(plain, held) - fp).mean()
    assert err < 0.7 * err0


def test_smooth_quant_off_for_cnn_default_and_alpha_is_validated():
    _, rep = ovq.quantize(_model(), _samples(4), return_report=True)
    assert rep.smoothed == 0
    _, rep = ovq.quantize(_model(), _samples(4), model_type="transformer", smooth_quant=0.5, return_report=True)
    assert rep.smoothed == 2
    with pytest.raises(OvqError, match="smooth_quant"):
        ovq.quantize(_model(), _samples(4), smooth_quant=1.5)


def test_bias_correction_sees_the_smoothed_means():
    """Fast bias correction on a smoothed layer uses mean(x / s) with the smoothed weights."""
    x = ops.parameter([1, 8, C], np.float32, name="x")
    gain = np.ones(C, np.float32)
    gain[5] = 50.0
    src = ops.add(ops.multiply(x, ops.constant(gain)), ops.constant(np.full(C, 0.5, np.float32)))
    src.set_friendly_name("norm")
    w = (RNG.standard_normal((C, C)) * 0.2).astype(np.float32)
    y = ops.add(ops.matmul(src, ops.constant(w), False, True), ops.constant(np.full(C, 0.3, np.float32)))
    model = ov.Model([y], [x], "biased")
    xs, held = _samples(), _samples(8)
    fp = _run(model, held)
    q = ovq.quantize(model, xs, model_type="transformer")
    q0 = ovq.quantize(model, xs, model_type="transformer", fast_bias_correction=None)
    mean_err = np.abs((_run(q, held) - fp).mean(axis=(0, 1))).mean()
    mean_err0 = np.abs((_run(q0, held) - fp).mean(axis=(0, 1))).mean()
    assert mean_err <= mean_err0 + 1e-6


def test_search_picks_the_alpha_with_the_smallest_reconstruction_error():
    g, meta = _placed()
    (group,) = sq.find_groups(g, meta)
    x = RNG.standard_normal((64, C))
    x[:, 3] *= 60
    st = TensorStats(sample_channel_min=x.reshape(8, 8, C).min(1), sample_channel_max=x.reshape(8, 8, C).max(1),
                     kept=x)
    best = sq.search_alpha(g, group, st, meta)
    assert best in sq.SEARCH_ALPHAS
    by_node = meta.by_node()
    xs = x.astype(np.float32)
    refs = {m.op: xs @ sq.const_source(g, m.weight_fq, 0)[1].T for m in group.members}
    act = np.abs(x).max(0)

    def err(a):
        s, _ = sq._group_scales(g, group, act, a)
        return sq.reconstruction_error(g, group, s, st, xs, refs, by_node[group.fqs[0]], by_node)

    assert all(err(best) <= err(a) for a in sq.SEARCH_ALPHAS)
    # smoothing beats no smoothing on an outlier channel
    assert err(best) < sq.reconstruction_error(g, group, np.ones(C), st, xs, refs, by_node[group.fqs[0]], by_node)


def test_searched_alpha_comes_from_the_grid_and_default_is_nncf():
    _, rep = ovq.quantize(_model(), _samples(), model_type="transformer", smooth_quant="search", return_report=True)
    assert rep.smooth_alphas and all(a in sq.SEARCH_ALPHAS for a in rep.smooth_alphas)
    _, rep = ovq.quantize(_model(), _samples(), model_type="transformer", return_report=True)
    assert rep.smooth_alphas == [0.95]
    assert "alpha 0.95" in rep.format()
