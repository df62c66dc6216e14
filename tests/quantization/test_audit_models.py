"""The runtime audit on real models: every descriptor-quantized Conv/GroupConv/MatMul runs INT8."""

from __future__ import annotations

import pytest

import ovq
import ovq.runtime
from ovq.quantization import place_fake_quantize, runtime_audit
from ovq_testing.assets import ONNX_LIGHT_MODELS, AssetUnavailable, asset_path, example_inputs


def _quantize(name: str, **kw):
    try:
        g = ovq.read_model(asset_path(name))
        x = example_inputs(name, 4)
    except AssetUnavailable as exc:
        pytest.skip(str(exc))
    if name.startswith("onnx_light/"):
        g = ovq.run_pipeline(g, "fold-constants,fuse-batchnorm,eliminate-dead-code")
    return place_fake_quantize(g, calibration_samples=[x], **kw)


def _check(g, n_layers):
    report = runtime_audit(g)
    assert report.ok, report.format()
    assert len(report.expected) == n_layers and not report.missing()
    assert report.summary().startswith(f"INT8: {report.int8_count}/")
    return report


def test_digits_all_int8():
    g = _quantize("digits")
    report = _check(g, 5)
    assert report.int8_count == 5
    assert len(g.nodes_of_type("FakeQuantize")) == 11  # 6 activation (NNCF: 6) + 5 weight FQs


def test_resnet_like_all_int8_and_nncf_count():
    g = _quantize("resnet_like")
    _check(g, 21)
    kinds = [m.role.value for m in g.meta["ovq.quantizers"].values()]
    assert kinds.count("weights") == 21 and len(kinds) - 21 == 30  # NNCF: 30 activation + 21 weight FQs


@pytest.mark.zoo
def test_efficientnet_lite0_all_int8():
    _check(_quantize("efficientnet_lite0"), 49 + 1)


@pytest.mark.zoo
def test_minilm_transformer_all_int8():
    _check(_quantize("minilm", model_type="transformer"), 37)


@pytest.mark.zoo
def test_silero_vad_lstm_int8():
    try:
        g = ovq.run_pipeline(ovq.read_model(asset_path("silero_vad")), "fold-constants,eliminate-dead-code")
        x = example_inputs("silero_vad", 1)
    except AssetUnavailable as exc:
        pytest.skip(str(exc))
    fp = ovq.runtime.compile_model(g.to_ov())
    q = place_fake_quantize(g.copy(), calibration_samples=[x])
    report = _check(q, 7)  # 6 Convolutions + the LSTMSequence
    assert any(e.layer_type == "RNNSeq" and e.int8 for e in report.entries)
    ref, out = fp(x), ovq.runtime.compile_model(q)(x)
    assert abs(ref[1] - out[1]).max() < 0.2  # the new LSTM state (h in (-1, 1), c)


@pytest.mark.zoo
@pytest.mark.parametrize("name", ONNX_LIGHT_MODELS)
def test_onnx_light_zoo_all_int8(name):
    g = _quantize(f"onnx_light/{name}")
    report = runtime_audit(g)
    assert report.ok and report.expected, report.format()
