"""Accuracy control: the search over the ranking, its bounds and its bad inputs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

import ovq
from ovq.errors import CalibrationDataError, OptionError
from ovq.quantization import accuracy_control as ac

RNG = np.random.default_rng(21)
C = 8


def _chain(bad: int | None = None) -> ov.Model:
    """Four 1x1 conv + ReLU layers; with ``bad``, the input of conv ``bad`` has one
    channel 300x larger than the others, so its per-tensor activation quantizer crushes
    the rest (a planted bad layer)."""
    x = ops.parameter([1, C, 6, 6], np.float32, name="x")
    x.output(0).set_names({"x"})
    y = x
    for i in range(4):
        w = (RNG.standard_normal((C, C, 1, 1)) * 0.4).astype(np.float32)
        if bad is not None and i == bad - 1:
            w[0] *= 300.0  # the previous layer's channel 0 explodes
        if bad is not None and i == bad:
            w[:, 0] /= 300.0  # ... and this layer undoes it: the FP function is unchanged
        y = ops.convolution(y, ops.constant(w), [1, 1], [0, 0], [0, 0], [1, 1])
        y.set_friendly_name(f"conv{i}")
        y = ops.relu(y)
        y.set_friendly_name(f"relu{i}")
    return ov.Model([y], [x], "chain")


def _samples(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.abs(rng.standard_normal((1, C, 6, 6))).astype(np.float32) for _ in range(n)]


def _metric(reference: ov.Model):
    """validation_fn: minus the relative error against the FP model (higher is better)."""
    fp = ov.compile_model(reference, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})

    def validation_fn(compiled, data):
        err = ref = 0.0
        for x in data:
            want = fp([x])[0]
            err += float(np.square(compiled([x])[0] - want).sum())
            ref += float(np.square(want).sum())
        return -err / ref

    return validation_fn


def test_nothing_to_revert_when_the_drop_is_already_small():
    m = _chain()
    q, report = ovq.quantize_with_accuracy_control(m, _samples(16, 1), _samples(4, 2), _metric(m), max_drop=1.0,
                                                   return_report=True)
    assert report.calls == 2 and report.met and report.float_layers == []
    assert isinstance(q, ov.Model)


def test_a_drop_equal_to_max_drop_meets_it_despite_rounding():
    """297 of 300 right is a drop of 0.01 from 1.0; ``1.0 - 0.99`` rounds above 0.01."""
    m = _chain()
    answers = iter([1.0, 0.99])
    q, report = ovq.quantize_with_accuracy_control(m, _samples(16, 1), _samples(4, 2),
                                                   lambda compiled, data: next(answers), max_drop=0.01,
                                                   return_report=True)
    assert 1.0 - 0.99 > 0.01  # the rounding this guards against
    assert report.calls == 2 and report.met and report.float_layers == []
    assert not ac.within_drop(0.0101, 0.01) and ac.within_drop(0.0099, 0.01)


def test_bisection_reverts_the_shortest_prefix_of_the_ranking(monkeypatch):
    m = _chain()
    order = ["conv3", "conv2", "conv1", "conv0"]
    monkeypatch.setattr(ac, "rank_layers", lambda *a, **k: list(order))
    _, full = ovq.quantize_with_accuracy_control(m, _samples(16, 1), _samples(4, 2), _metric(m),
                                                 max_drop=1e-9, return_report=True)
    # every layer in float: the FP model again, so the drop is met with all 4 reverted
    assert full.met and full.float_layers == order and full.metric == pytest.approx(0.0, abs=1e-9)
    target = full.int8_metric / 2  # a drop that some but not all prefixes meet
    _, part = ovq.quantize_with_accuracy_control(m, _samples(16, 1), _samples(4, 2), _metric(m),
                                                 max_drop=-target, return_report=True)
    k = len(part.float_layers)
    assert part.met and part.float_layers == order[:k]
    assert part.calls <= 2 + 1 + math.ceil(math.log2(len(order))) + 1
    tried = {v.float_layers: v.metric for v in part.validations[2:]}
    if k - 1 in tried:  # the prefix one shorter was tried and failed
        assert -tried[k - 1] > -target


def test_unreachable_drop_returns_the_best_model_with_a_warning(monkeypatch):
    m = _chain()
    monkeypatch.setattr(ac, "rank_layers", lambda fp, q, s, layers, **k: list(layers)[:1])  # only one may go
    with pytest.warns(ac.AccuracyControlWarning, match="returning the best model"):
        _, report = ovq.quantize_with_accuracy_control(m, _samples(16, 1), _samples(4, 2), _metric(m),
                                                       max_drop=0.0, return_report=True)
    assert not report.met and report.metric >= report.int8_metric
    assert "NOT met" in report.format()


def test_max_num_iterations_bounds_the_calls(monkeypatch):
    m = _chain()
    monkeypatch.setattr(ac, "rank_layers", lambda fp, q, s, layers, **k: list(layers))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ac.AccuracyControlWarning)
        _, report = ovq.quantize_with_accuracy_control(m, _samples(16, 1), _samples(4, 2), _metric(m),
                                                       max_drop=0.0, max_num_iterations=1, return_report=True)
    assert report.calls == 3


def test_bad_inputs_are_clear_errors_and_leave_the_model_untouched():
    m = _chain()
    graph = ovq.read_model(m)
    before = graph.revision
    data, val = _samples(8, 1), _samples(2, 2)
    with pytest.raises(OptionError, match="max_drop"):
        ovq.quantize_with_accuracy_control(graph, data, val, _metric(m), max_drop=-0.1)
    with pytest.raises(OptionError, match="drop_type"):
        ovq.quantize_with_accuracy_control(graph, data, val, _metric(m), drop_type="percent")
    with pytest.raises(CalibrationDataError, match="empty"):
        ovq.quantize_with_accuracy_control(graph, data, [], _metric(m))
    with pytest.raises(CalibrationDataError, match="re-iterable"):
        ovq.quantize_with_accuracy_control(graph, data, iter(val), _metric(m))
    with pytest.raises(ac.ValidationError, match="nan"):
        ovq.quantize_with_accuracy_control(graph, data, val, lambda c, d: float("nan"))
    with pytest.raises(ac.ValidationError, match="one number"):
        ovq.quantize_with_accuracy_control(graph, data, val, lambda c, d: [1.0, 2.0])

    def boom(compiled, d):
        raise KeyError("label")

    with pytest.raises(KeyError) as info:
        ovq.quantize_with_accuracy_control(graph, data, val, boom)
    assert "validation_fn on call 1 (the FP model)" in info.value.__notes__[0]
    assert graph.revision == before and not graph.nodes_of_type("FakeQuantize")


def test_nncf_style_tuple_metric_and_relative_drop():
    m = _chain()
    fn = _metric(m)
    _, report = ovq.quantize_with_accuracy_control(m, _samples(8, 1), _samples(2, 2),
                                                   lambda c, d: (1.0 + fn(c, d), [0.0]), max_drop=0.5,
                                                   drop_type=ovq.DropType.RELATIVE, return_report=True)
    assert report.fp_metric == pytest.approx(1.0) and report.drop_type == "relative" and report.met


def test_a_planted_bad_layer_is_ranked_first_and_reverted_alone():
    m = _chain(bad=2)
    fn = _metric(m)
    int8 = ovq.quantize(m, _samples(16, 1))
    compiled = ov.compile_model(int8, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    val = _samples(4, 2)
    quantized_error = -fn(compiled, val)
    _, report = ovq.quantize_with_accuracy_control(m, _samples(16, 1), val, fn, max_drop=quantized_error / 4,
                                                   return_report=True)
    assert report.ranking[0] == "conv2"
    assert report.met and report.float_layers == ["conv2"]
    assert report.calls <= 2 + 1 + 2  # FP, INT8, all in float, then a bisection over 4 layers
