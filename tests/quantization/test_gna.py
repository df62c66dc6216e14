"""GNA target: 16-bit levels per the descriptor, CPU emulation, SQNR >= 60 dB."""

from __future__ import annotations

import numpy as np
from models import gna_speech

import ovq
from ovq.quantization import place_fake_quantize
from ovq.runtime import compile_model, infer


def _data(seed, n):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, 16, 40)).astype(np.float32) for _ in range(n)]


def test_gna_levels_and_sqnr():
    m = gna_speech()
    g = place_fake_quantize(ovq.Graph.from_ov(m), target="gna", preset="mixed", calibration_samples=_data(1, 4))
    meta = g.meta["ovq.quantizers"]
    weights = {q.name: q.levels for q in meta.values() if q.is_weight}
    assert weights == {f"{n}/fq_weights_1": 65535 for n in ("conv1", "conv2", "fc1", "fc2")}  # q16_w
    acts = {q.name: q.levels for q in meta.values() if not q.is_weight}
    assert acts["input/fq_output_0"] == 65536  # Parameter output / conv input: q16
    assert acts["relu1/fq_output_0"] == 65536  # activation-function output q16_o
    assert all(levels in (65536, 2**32) for levels in acts.values())  # q32 before activation functions
    assert 2**32 in acts.values()
    fp, q = compile_model(m), compile_model(g)
    test = _data(2, 4)
    ref = np.concatenate([infer(fp, [t])[0].ravel() for t in test])
    out = np.concatenate([infer(q, [t])[0].ravel() for t in test])
    sqnr = 10 * np.log10(np.sum(ref**2) / np.sum((ref - out) ** 2))
    assert sqnr >= 60, sqnr


def test_gna_performance_uses_8bit_matmul_weights():
    g = place_fake_quantize(ovq.Graph.from_ov(gna_speech()), target="gna", preset="performance")
    meta = g.meta["ovq.quantizers"]
    assert meta["fc1/fq_weights_1"].levels == 255 and meta["conv1/fq_weights_1"].levels == 65535
