"""compress_weights on embedding tables: the table FQ becomes ``i8 Const -> Convert -> Multiply``.

Numerics through OpenVINO CPU at the f32 hint: the folded model equals the FakeQuantize
model (same integer levels), and both stay within half a quantization step of FP32.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_placement_embedding import HIDDEN, VOCAB, bert_embeddings, id_samples, lookup_then_matmul, weight_meta

import ovq
from ovq.quantization import place_fake_quantize, runtime_audit
from ovq.quantization.compress import compress_weights
from ovq.runtime import compile_model, infer


def lookup_only(axis: int, dtype) -> ovq.Graph:
    """The embedding alone as the output: its error is the table's quantization error."""
    import openvino.opset13 as ops
    from models import model
    from test_placement_embedding import ids_param, table

    ids = ids_param("input_ids")
    shape = (VOCAB, HIDDEN) if axis == 0 else (HIDDEN, VOCAB)
    data = ops.constant(table(*shape, dtype=dtype), name="emb.weight")
    if dtype == np.float16:
        data = ops.convert(data, "f32")
    g = ops.gather(data, ids, axis)
    g.set_friendly_name("emb/Gather")
    return ovq.Graph.from_ov(model([ops.relu(g)], [ids], "lookup_only"))


def quantize_tables(g: ovq.Graph, samples, **kw) -> tuple[ovq.Graph, ovq.Graph, list]:
    q = place_fake_quantize(g.copy(), calibration_samples=samples, **kw)
    folded = q.copy()
    done = compress_weights(folded, [m.node for m in weight_meta(folded).values()])
    return q, folded, done


@pytest.mark.parametrize(("axis", "dtype"), [(0, np.float32), (1, np.float32), (0, np.float16)])
def test_table_folds_to_int8_and_matches_fq_model(axis, dtype):
    fp = lookup_only(axis, dtype)
    samples = id_samples(n=4, count=1)
    q, folded, done = quantize_tables(fp, samples)
    (cw,) = [d for d in done if d.name == "emb/Gather/fq_weights_0"]
    assert cw.dtype == "int8" and cw.elements == VOCAB * HIDDEN
    gather = next(n for n, op in folded.ops() if op.name == "emb/Gather")
    mul = folded.producer(gather, 0)[0]
    assert folded.op(mul).type == "Multiply" and folded.op(mul).name == "emb/Gather/fq_weights_0"
    cv = folded.producer(mul, 0)[0]
    assert folded.op(cv).type == "Convert"
    qc = folded.producer(cv, 0)[0]
    data = folded.const_value(qc)
    assert data.dtype == np.int8 and data.min() >= -127 and data.max() <= 127
    scale = folded.const_value(folded.producer(mul, 1)[0])
    assert scale.shape == (data.shape[0], 1)  # per table row, whatever the Gather axis
    assert not folded.nodes_of_type("FakeQuantize")

    c_fp, c_q, c_f = (compile_model(x) for x in (fp, q, folded))
    for s in samples:
        ref, y_q, y_f = infer(c_fp, s)[0], infer(c_q, s)[0], infer(c_f, s)[0]
        np.testing.assert_allclose(y_f, y_q, rtol=1e-6, atol=1e-6)
        # Symmetric per-row grid: error at most half a step (scale / 2) of that row.
        step = scale.max()
        assert np.abs(y_f - ref).max() <= step / 2 + 1e-6
        assert np.abs(y_f - ref).max() > 0  # really quantized


def test_bert_embeddings_numerics_and_audit():
    fp = ovq.Graph.from_ov(bert_embeddings())
    samples = id_samples(n=4, count=2)
    q, folded, done = quantize_tables(fp, samples, model_type="transformer")
    assert {d.name for d in done} == {"word/Gather/fq_weights_0", "type/Gather/fq_weights_0", "dense/fq_weights_1"}
    c_fp, c_q, c_f = (compile_model(x) for x in (fp, q, folded))
    for s in samples:
        ref, y_q, y_f = infer(c_fp, s)[0], infer(c_q, s)[0], infer(c_f, s)[0]
        np.testing.assert_allclose(y_f, y_q, rtol=1e-5, atol=1e-5)
        cos = (ref * y_f).sum(-1) / np.linalg.norm(ref, axis=-1) / np.linalg.norm(y_f, axis=-1)
        assert cos.min() > 0.99
    report = runtime_audit(folded)
    assert report.ok and report.int8_count == 1, report.format()


def test_lookup_feeding_matmul_end_to_end():
    """Embedding -> MatMul through ovq.quantize: the table is int8 and the MatMul runs INT8."""
    fp = lookup_then_matmul()
    samples = id_samples(n=8, count=1)
    q = ovq.quantize(ovq.Graph.from_ov(fp), samples, progress=False)
    gather = next(n for n, op in q.ops() if op.name == "emb/Gather")
    chain = q.producer(gather, 0)[0]
    assert q.op(chain).type == "Multiply"
    assert q.const_value(q.producer(q.producer(chain, 0)[0], 0)[0]).dtype == np.int8
    assert runtime_audit(q).ok
    ref, out = infer(compile_model(fp), samples[0])[0], infer(compile_model(q), samples[0])[0]
    assert np.abs(out - ref).max() < 0.05 * np.abs(ref).max()
