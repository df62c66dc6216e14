"""Accuracy of ``ovq.quantize`` with its defaults on the real models (zoo), on every CPU
kind: each INT8 model is evaluated under ``ONEDNN_MAX_CPU_ISA=AVX2`` (u8 x s8 pairs
summed in saturating int16, whatever the CPU) and, where the CPU has VNNI or AMX, under
its own ISA (int32 accumulation).

The thresholds are the accuracy issue's goals where met, else just under the measured
figure (same data split as ``bench/accuracy.py``; NNCF's figures on the same split in the
comments): a change that loses accuracy on a real model fails here, not only in a bench
run someone may not make.
"""

from __future__ import annotations

import numpy as np
import openvino as ov
import pytest

import ovq
from ovq_testing import assets
from ovq_testing.isa import isas_to_check, run_under_isa

pytestmark = pytest.mark.zoo


def _model(name: str):
    try:
        return ov.Core().read_model(str(assets.asset_path(name)))
    except assets.AssetUnavailable as exc:
        pytest.skip(str(exc))


def _per_isa(tmp_path, fp: ov.Model, q: ov.Model, batches) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{isa: (FP32 outputs, INT8 outputs)}`` for every ISA to check."""
    paths = {"fp": tmp_path / "fp.xml", "int8": tmp_path / "int8.xml"}
    ov.save_model(fp, paths["fp"], compress_to_fp16=False)
    ov.save_model(q, paths["int8"], compress_to_fp16=False)
    out = {}
    for isa in isas_to_check():
        got = run_under_isa(paths, batches, isa)
        out[isa] = (got["fp"], got["int8"])
    return out


def test_digits_accuracy_equals_fp32(tmp_path):
    model = _model("digits")
    calib, _ = assets.digits_data("calib")
    x, labels = assets.digits_data("test")
    q = ovq.quantize(model, [calib[i:i + 1] for i in range(len(calib))], progress=False)
    for isa, (fp, int8) in _per_isa(tmp_path, model, q, [[x]]).items():
        # measured 0.9844 -> 0.9844 on AVX2 (NNCF 0.9889)
        assert (int8.argmax(1) == labels).mean() >= (fp.argmax(1) == labels).mean(), isa


def test_efficientnet_lite0_top1_agreement(tmp_path):
    model = _model("efficientnet_lite0")
    crops = assets.efficientnet_crops(600)
    q = ovq.quantize(model, [np.array(crops[i:i + 1]) for i in range(300)], progress=False)
    held_out = [[np.array(crops[i:i + 50])] for i in range(300, 600, 50)]
    for isa, (fp, int8) in _per_isa(tmp_path, model, q, held_out).items():
        agreement = (fp.argmax(1) == int8.argmax(1)).mean()
        # measured 0.940 under AVX2 (NNCF 0.837 with its defaults); the goal is 0.90 on every ISA
        assert agreement >= 0.90, (isa, agreement)


def test_minilm_embedding_cosine_with_transformer_defaults(tmp_path):
    model = _model("minilm")
    inputs = assets.minilm_inputs()
    calib = [{k: v[i:i + 1] for k, v in inputs.items()} for i in range(0, 71, 2)]
    q = ovq.quantize(model, calib, model_type="transformer", progress=False)
    for isa, (fp, int8) in _per_isa(tmp_path, model, q, [inputs]).items():
        e_fp = assets.mean_pool_normalize(fp, inputs["attention_mask"])
        e_q = assets.mean_pool_normalize(int8, inputs["attention_mask"])
        cos = (e_fp * e_q).sum(1)
        # measured 0.9970 / min 0.99 under AVX2 (NNCF 0.9946); the goal, 0.998, is not met
        assert cos.mean() >= 0.996 and cos.min() >= 0.985, (isa, cos.mean(), cos.min())


def test_resnet_like_logits_sqnr(tmp_path):
    model = _model("resnet_like")
    q = ovq.quantize(model, assets.random_inputs(n=300, seed=1), progress=False)
    xs = [[x] for x in assets.random_inputs(n=50, seed=2)]
    for isa, (a, b) in _per_isa(tmp_path, model, q, xs).items():
        sqnr = 10 * np.log10((a ** 2).sum() / ((a - b) ** 2).sum())
        assert (a.argmax(1) == b.argmax(1)).all() and sqnr >= 90, (isa, sqnr)  # measured 105.8 dB (NNCF 105.8)


def test_dynamically_quantized_recogniser_keeps_its_own_quantization(tmp_path):
    """ddddocr's ``common_old`` quantizes its activations itself at run time (reduce,
    scale, round, clamp): ovq adds no FakeQuantize inside that arithmetic, only on the
    float eltwise ops around it (236 activation FQs and about 8 dB without the rule)."""
    model = _model("ddddocr/common_old")
    rng = np.random.default_rng(0)
    calibration = [rng.random((1, 1, 64, 160), np.float32) for _ in range(32)]
    q = ovq.quantize(model, calibration, progress=False)
    activation_fqs = [op for op in q.get_ordered_ops() if op.get_type_name() == "FakeQuantize"
                      and op.input_value(0).get_node().get_type_name() != "Constant"]
    assert len(activation_fqs) <= 16
    xs = [[rng.random((1, 1, 64, 160), np.float32)] for _ in range(8)]
    for isa, (a, b) in _per_isa(tmp_path, model, q, xs).items():
        sqnr = 10 * np.log10((a ** 2).sum() / ((a - b) ** 2).sum())
        assert sqnr >= 25, (isa, sqnr)  # measured 30.7 dB on AVX2
