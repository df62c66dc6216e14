"""Embedding tables: a Gather whose data (port 0) is a constant float table gets a weight FQ.

NNCF 3.4 (measured on all-MiniLM-L6-v2 and on these tiny graphs, targets ANY/CPU/GPU/NPU):
one FakeQuantize on the table, per row (axis 0 of ``[vocab, hidden]``), symmetric,
255 levels, range ``±max|row|``; nothing on the indices. A Gather of an activation stays
agnostic.
"""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest
from models import model, param

import ovq
from ovq.quantization import place_fake_quantize, plan_placement, runtime_audit

RNG = np.random.default_rng(3)
VOCAB, HIDDEN, SEQ = 40, 16, 6


def table(rows: int, cols: int, dtype=np.float32) -> np.ndarray:
    t = RNG.standard_normal((rows, cols)) * RNG.uniform(0.05, 2.0, (rows, 1))
    t[0] = 0.0  # padding row, as BERT's [PAD]
    return t.astype(dtype)


def ids_param(name: str):
    p = ops.parameter([1, SEQ], ov.Type.i64, name=name)
    p.output(0).set_names({name})
    return p


def bert_embeddings() -> ov.Model:
    """word (f32) + token type (f32) + position (f16 Const -> Convert) lookups -> MVN -> MatMul."""
    ids, tt = ids_param("input_ids"), ids_param("token_type_ids")
    word = ops.gather(ops.constant(table(VOCAB, HIDDEN), name="word.weight"), ops.convert(ids, "i32"), 0)
    word.set_friendly_name("word/Gather")
    types = ops.gather(ops.constant(table(2, HIDDEN), name="type.weight"), ops.convert(tt, "i32"), 0)
    types.set_friendly_name("type/Gather")
    pos_table = ops.convert(ops.constant(table(SEQ, HIDDEN, np.float16), name="pos.weight"), "f32")
    pos = ops.gather(pos_table, ops.constant(np.arange(SEQ, dtype=np.int32)[None]), 0)
    pos.set_friendly_name("pos/Gather")
    # pos has constant indices: a constant subgraph, not a lookup (fold-constants folds it).
    s = ops.add(ops.add(word, types), pos)
    norm = ops.mvn(s, ops.constant(np.array([-1], np.int32)), True, 1e-6, "inside_sqrt")
    mm = ops.matmul(norm, ops.constant(table(HIDDEN, 8)), False, False)
    mm.set_friendly_name("dense")
    return model([mm], [ids, tt], "bert_embeddings")


def lookup_then_matmul(axis: int = 0, data_dtype=np.float32) -> ov.Model:
    """ids -> Gather(table, ids, axis) -> MatMul: the lookup feeds a quantized op directly."""
    ids = ids_param("input_ids")
    shape = (VOCAB, HIDDEN) if axis == 0 else (HIDDEN, VOCAB)
    g = ops.gather(ops.constant(table(*shape, dtype=data_dtype), name="emb.weight"), ids, axis)
    g.set_friendly_name("emb/Gather")
    if axis == 1:
        g = ops.transpose(g, ops.constant(np.array([1, 2, 0])))
    mm = ops.matmul(g, ops.constant(table(HIDDEN, 8)), False, False)
    mm.set_friendly_name("dense")
    return model([mm], [ids], "lookup")


def id_samples(n: int = 3, seed: int = 1, count: int = 1):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        batch = [rng.integers(0, VOCAB, (1, SEQ)), rng.integers(0, 2, (1, SEQ))]
        out.append(batch[:count])
    return out


def weight_meta(g: ovq.Graph) -> dict:
    return {q.name: q for q in g.meta["ovq.quantizers"].values() if q.is_weight}


def fq_range(g: ovq.Graph, fq: int) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray(g.const_value(g.producer(fq, 1)[0])), np.asarray(g.const_value(g.producer(fq, 2)[0])))


def test_embedding_tables_get_per_row_symmetric_weight_fq():
    fp = ovq.Graph.from_ov(bert_embeddings())
    g = place_fake_quantize(fp.copy(), model_type="transformer", calibration_samples=id_samples(count=2))
    meta = g.meta["ovq.quantizers"]
    assert set(weight_meta(g)) == {"word/Gather/fq_weights_0", "type/Gather/fq_weights_0", "dense/fq_weights_1"}
    for name, table_name in (("word/Gather/fq_weights_0", "word.weight"), ("type/Gather/fq_weights_0", "type.weight")):
        m = meta[name]
        assert (m.role.value, m.levels, m.mode, m.config.space, m.weight_op) == (
            "weights", 255, "symmetric", "q8_w_sym", name.split("/fq_")[0])
        fq = m.node
        assert fp.op(next(n for n, op in fp.ops() if op.name == table_name)).type == "Const"
        t = g.const_value(g.producer(fq, 0)[0])
        lo, hi = fq_range(g, fq)
        assert hi.shape == (t.shape[0], 1)  # one range per row: axis 0 of [vocab, hidden]
        nz = np.abs(t).max(1) > 0
        np.testing.assert_allclose(hi[nz, 0], np.abs(t).max(1)[nz], rtol=1e-6)
        np.testing.assert_array_equal(lo, -hi)
        assert hi[0, 0] > 0  # all-zero padding row: the zero-filter fix keeps a valid range
    # Constant indices: a constant subgraph, left to fold-constants; nothing on integer tensors.
    assert "pos/Gather/fq_weights_0" not in meta
    for m in meta.values():
        src = g.producer(m.node, 0)
        assert g.op(src[0]).outputs[src[1]].precision not in ("I32", "I64")
    # Add and MVN are transformer-ignored: the lookups' outputs stay float, as in NNCF.
    assert not [q.name for q in meta.values() if not q.is_weight and "Gather" in q.name]


def test_f16_table_behind_convert_is_quantized():
    ids = ids_param("input_ids")
    t = ops.convert(ops.constant(table(VOCAB, HIDDEN, np.float16), name="emb.weight"), "f32")
    gather = ops.gather(t, ops.convert(ids, "i32"), 0)
    gather.set_friendly_name("emb/Gather")
    g = place_fake_quantize(ovq.Graph.from_ov(model([ops.relu(gather)], [ids])), calibration_samples=id_samples(count=1))
    (name, m), = weight_meta(g).items()
    assert name == "emb/Gather/fq_weights_0"
    src = g.producer(m.node, 0)
    assert g.op(src[0]).type == "Convert" and fq_range(g, m.node)[1].shape == (VOCAB, 1)


def test_gather_axis_1_still_per_table_row():
    """NNCF uses axis 0 of the table whatever the Gather's axis (range shape (16, 1))."""
    g = place_fake_quantize(ovq.Graph.from_ov(lookup_then_matmul(axis=1)), calibration_samples=id_samples(count=1))
    m = weight_meta(g)["emb/Gather/fq_weights_0"]
    assert fq_range(g, m.node)[1].shape == (HIDDEN, 1)


def test_gather_of_activation_stays_agnostic():
    x = param([1, 8, HIDDEN])
    gather = ops.gather(x, ops.constant(np.array([0, 2, 4], np.int32)), 1)
    gather.set_friendly_name("select")
    mm = ops.matmul(gather, ops.constant(table(HIDDEN, 8)), False, False)
    mm.set_friendly_name("dense")
    rng = np.random.default_rng(0)
    g = place_fake_quantize(ovq.Graph.from_ov(model([mm], [x])),
                            calibration_samples=[rng.standard_normal((1, 8, HIDDEN)).astype(np.float32)])
    meta = g.meta["ovq.quantizers"]
    assert set(meta) == {"dense/fq_weights_1", "input/fq_output_0"}  # moved up through the Gather


def test_integer_table_is_not_an_embedding():
    ids = ids_param("input_ids")
    gather = ops.gather(ops.constant(np.arange(VOCAB * 2, dtype=np.int64).reshape(VOCAB, 2)), ids, 0)
    out = ops.convert(gather, "f32")
    plan = plan_placement(ovq.Graph.from_ov(model([ops.relu(out)], [ids])))
    assert not plan.weights and not plan.skipped


@pytest.mark.parametrize(("target", "space"), [("ANY", "q8_w_sym"), ("CPU", "q8_w_sym"), ("GPU", "q8_w_sym"),
                                               ("CPU_SPR", "q8_w_sym"), ("NPU", "q8_ch"), ("GNA", None)])
def test_targets(target, space):
    """NNCF quantizes embeddings on ANY/CPU/GPU/NPU (its CPU, GPU and NPU setups); GNA has no such rule."""
    g = ovq.Graph.from_ov(lookup_then_matmul())
    g.infer_shapes()
    plan = plan_placement(g, target)
    emb = [w for w in plan.weights if g.op(w.op).name == "emb/Gather"]
    if space is None:
        assert not emb
    else:
        assert len(emb) == 1 and emb[0].config.space == space and emb[0].config.levels == 255
        assert emb[0].input_low.shape == (VOCAB, 1)


def test_lookup_output_feeding_matmul_keeps_its_activation_fq():
    """The MatMul's input FQ stays on the lookup output (NNCF MIXED does the same; NNCF
    PERFORMANCE instead merges it into a per-tensor 256-level table FQ: not implemented)."""
    g = place_fake_quantize(ovq.Graph.from_ov(lookup_then_matmul()), preset="mixed",
                            calibration_samples=id_samples(count=1))
    meta = g.meta["ovq.quantizers"]
    assert set(meta) == {"emb/Gather/fq_weights_0", "emb/Gather/fq_output_0", "dense/fq_weights_1"}
    assert meta["emb/Gather/fq_output_0"].role.value == "activations"


def test_ignored_scope_keeps_table_float():
    g = place_fake_quantize(ovq.Graph.from_ov(lookup_then_matmul()), ignored_scope={"names": ["emb/Gather"]},
                            calibration_samples=id_samples(count=1))
    assert "emb/Gather/fq_weights_0" not in g.meta["ovq.quantizers"]


def test_runtime_audit_runs_the_lookup_model():
    g = place_fake_quantize(ovq.Graph.from_ov(lookup_then_matmul()), calibration_samples=id_samples(count=1))
    report = runtime_audit(g)
    assert report.ok, report.format()
