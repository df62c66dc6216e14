"""Weight paths: constant subgraphs feeding weights are folded before placement, nothing else."""

from __future__ import annotations

import numpy as np
import pytest
import openvino.opset13 as ops
from models import param, tflite_like

import ovq
from ovq.quantization.audit import runtime_audit
from ovq.quantization.placement.weight_paths import fold_weight_paths, weight_subgraphs
from ovq.runtime import compile_model, infer

def _samples(n: int = 6, seed: int = 11) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, 4, 8, 8)).astype(np.float32) for _ in range(n)]


def test_fold_only_the_weight_paths():
    g = ovq.Graph.from_ov(tflite_like())
    assert sorted(n for names in weight_subgraphs(g).values() for n in names) == ["conv1", "conv2", "dw", "fc"]
    before = infer(compile_model(g.to_ov()), [_samples(1)[0]])[0]
    folding = fold_weight_paths(g)
    assert folding.ops == ["conv1", "conv2", "dw", "fc"] and folding.outputs == 4
    assert weight_subgraphs(g) == {}
    hist = g.op_histogram()
    assert "Transpose" not in hist and hist["ShapeOf"] == 1 and hist["Reshape"] == 1  # activation path as given
    x = _samples(1)[0]
    assert np.allclose(infer(compile_model(g.to_ov()), [x])[0], infer(compile_model(tflite_like()), [x])[0])
    assert before.shape == (1, 5)


def test_quantize_reaches_full_int8_coverage_on_weight_subgraphs():
    fp = tflite_like()
    xs = _samples()
    # 7-bit weights everywhere: u8 x s8 pairs cannot saturate on AVX2 CPUs without VNNI
    q, report = ovq.quantize(fp, xs, overflow_fix="enable", return_report=True)
    assert report.weights_folded == ["conv1", "conv2", "dw", "fc"]
    assert report.quantized_ops == 4 and report.skipped == [] and report.bias_corrected == 4
    assert "weight paths: 4 layers" in report.format()
    audit = runtime_audit(q)
    assert audit.int8_count == 4 and not audit.fallbacks, audit.format()
    ref_c, got_c = compile_model(fp), compile_model(q)
    held_out = _samples(16, seed=12)
    ref = np.concatenate([infer(ref_c, [x])[0] for x in held_out])
    got = np.concatenate([infer(got_c, [x])[0] for x in held_out])
    cosine = float((ref * got).sum() / np.linalg.norm(ref) / np.linalg.norm(got))
    assert cosine > 0.98  # measured 0.995 (random 4-layer net, 6 calibration samples)

def test_int8_compressed_weights_are_requantized_and_a_fake_quantize_path_says_why():
    import openvino as ov

    x = param([1, 4, 8, 8], "x")
    q = ops.constant(np.random.default_rng(0).integers(-127, 128, (8, 4, 3, 3)).astype(np.int8))
    scale = np.full((8, 1, 1, 1), 0.01, np.float32)
    wq = ops.multiply(ops.convert(q, "f32"), ops.constant(scale))  # TFLite int8 / compress_weights form
    c = ops.convolution(x, wq, [1, 1], [1, 1], [1, 1], [1, 1])
    c.set_friendly_name("conv")
    fq_w = ops.fake_quantize(ops.constant(np.random.default_rng(1).standard_normal((8, 8, 1, 1)).astype(np.float32)),
                             *(ops.constant(np.float32(v)) for v in (-1, 1, -1, 1)), 255)
    c2 = ops.convolution(ops.relu(c), ops.multiply(fq_w, ops.constant(np.float32(0.5))), [1, 1], [0, 0], [0, 0],
                         [1, 1])
    c2.set_friendly_name("conv2")
    fp = ov.Model([c2.output(0)], [x], "compressed")
    xs = _samples()
    qm, report = ovq.quantize(fp, xs, return_report=True)
    assert report.weights_folded == ["conv"]
    assert report.skipped == [("conv2", "weights are a constant subgraph that does not fold (FakeQuantize or "
                                        "4-bit/fp8 weights)")]
    assert runtime_audit(qm).int8_count == 1
    ref, got = infer(compile_model(fp), [xs[0]])[0], infer(compile_model(qm), [xs[0]])[0]
    assert np.linalg.norm(got - ref) < 0.05 * np.linalg.norm(ref)


@pytest.mark.zoo
@pytest.mark.parametrize(("name", "layers"), [("squeezenet", 26), ("shufflenet", 50)])
def test_onnx_light_zoo_weights_from_broadcast_run_int8(name, layers):
    """The onnx package's light zoo stores every weight as ConstantOfShape -> Broadcast:
    without weight-path folding no layer is quantized (0/26, 0/50 measured)."""
    import os

    import openvino as ov

    onnx = pytest.importorskip("onnx")
    path = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light", f"light_{name}.onnx")
    if not os.path.exists(path):
        pytest.skip(f"{path} is not in this onnx package")
    fp = ov.Core().read_model(path)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((1, 3, 224, 224)).astype(np.float32) for _ in range(3)]
    q, report = ovq.quantize(fp, xs, return_report=True)
    assert len(report.weights_folded) == layers and report.skipped == []
    audit = runtime_audit(q)
    assert audit.int8_count == layers and not audit.fallbacks, audit.format()
    ref, got = infer(compile_model(fp), [xs[0]])[0], infer(compile_model(q), [xs[0]])[0]
    assert np.linalg.norm(got - ref) < 0.05 * np.linalg.norm(ref)


@pytest.mark.zoo
def test_tflite_int8_model_weights_are_requantized():
    """fer's emotion classifier (TFLite, int8 weights dequantized by Convert -> Multiply, some
    then Transposed/Reshaped into GroupConvolutions): 23/23 layers INT8 (14/23 without
    weight-path folding, the other 9 left float)."""
    import openvino as ov

    from ovq_testing.assets import AssetUnavailable, asset_path

    try:
        fp = ov.Core().read_model(str(asset_path("fer")))
    except AssetUnavailable as exc:
        pytest.skip(str(exc))
    rng = np.random.default_rng(0)
    q, report = ovq.quantize(fp, [rng.uniform(0, 1, (1, 64, 64, 1)).astype(np.float32) for _ in range(4)],
                             return_report=True)
    assert len(report.weights_folded) == 9 and report.skipped == []
    audit = runtime_audit(q)
    assert audit.int8_count == 23 and not audit.fallbacks, audit.format()


def test_4bit_weights_are_kept_and_say_why():
    import openvino as ov

    x = param([1, 4, 8, 8], "x")
    q4 = ov.op.Constant(ov.Type.i4, ov.Shape([8, 4, 3, 3]),
                        np.random.default_rng(0).integers(-7, 8, 8 * 4 * 9).astype(np.int8).tolist())
    w4 = ops.multiply(ops.convert(q4, "f32"), ops.constant(np.full((8, 1, 1, 1), 0.05, np.float32)))
    c = ops.convolution(x, w4, [1, 1], [1, 1], [1, 1], [1, 1])
    c.set_friendly_name("conv4")
    g = ovq.Graph.from_ov(ov.Model([c.output(0)], [x], "int4"))
    assert fold_weight_paths(g).ops == []
    assert any(op.type == "Const" and op.const.element_type.name == "i4" for _n, op in g.ops())
    _q, report = ovq.quantize(g, _samples(), return_report=True)
    assert report.skipped == [("conv4", "weights are a constant subgraph that does not fold (FakeQuantize or "
                                        "4-bit/fp8 weights)")]
