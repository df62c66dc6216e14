"""ovq.compress_weights end to end on small OpenVINO models: the output runs on CPU with
compressed FullyConnected weights and stays close to FP32; layer selection follows NNCF."""

from __future__ import annotations

import numpy as np
import openvino as ov
import pytest

import ovq
from ovq.errors import OptionError
from tests.compression.models import fc_precisions, tiny_lm

IDS = np.random.default_rng(1).integers(0, 512, (2, 16))
MODES = {"int8_asym": "u8", "int8_sym": "i8", "int4_sym": "i4", "int4_asym": "u4"}


def _run(model):
    c = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return c, c({"ids": IDS})[0]


def _cos(a, b):
    return float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))


def _weight_types(model) -> dict[str, str]:
    return {op.get_friendly_name(): op.get_element_type().get_type_name() for op in model.get_ordered_ops()
            if op.get_type_name() == "Constant"}


@pytest.fixture(scope="module")
def fp32():
    m = tiny_lm()
    return m, _run(m)[1]


@pytest.mark.parametrize("mode", list(MODES))
def test_modes_run_compressed_on_cpu(fp32, mode):
    model, ref = fp32
    out, report = ovq.compress_weights(model, mode=mode, return_report=True)
    compiled, y = _run(out)
    prec = fc_precisions(compiled)
    want = MODES[mode]
    if mode.startswith("int8"):
        assert prec == [want] * 5  # 4 layer MatMuls + lm head; the embedding is a Gather
        assert report.counts() == {mode: 6}
        assert _cos(ref, y) > 0.9995
    else:  # the last MatMul (lm head) and the embedding stay INT8_ASYM
        assert prec == [want] * 4 + ["u8"]
        assert report.counts() == {f"{mode} g128": 4, "int8_asym": 2}
        assert _cos(ref, y) > 0.99
    assert report.bytes_after < report.bytes_before / (3.5 if mode.startswith("int8") else 5)
    # the input model is untouched
    assert not any(t in ("u8", "i8", "u4", "i4") for t in _weight_types(model).values())


def test_nncf_layout_and_names(fp32):
    model, _ = fp32
    out = ovq.compress_weights(model, mode="int4_asym", group_size=64)
    ops = {op.get_friendly_name(): op for op in out.get_ordered_ops()}
    grouped = [op for op in ops.values() if op.get_type_name() == "Constant"
               and op.get_element_type().get_type_name() == "u4" and op.get_output_partial_shape(0).rank.get_length() == 3]
    assert len(grouped) == 8  # 4 weights + 4 zero points
    w = next(op for op in grouped if not op.get_friendly_name().endswith("zero_point"))
    name = w.get_friendly_name()
    assert list(w.get_output_shape(0))[1:] == [w.get_output_shape(0)[1], 64]
    assert ops[f"{name}/scale"].get_element_type().get_type_name() == "f16"
    assert list(ops[f"{name}/scale"].get_output_shape(0)) == [w.get_output_shape(0)[0], w.get_output_shape(0)[1], 1]
    assert ops[f"{name}/zero_point/subtract"].get_type_name() == "Subtract"
    assert any(n.startswith(f"{name}/fq_weights_") for n in ops)


@pytest.mark.parametrize("variant", [dict(tied=True), dict(transpose_b=False), dict(weight_type=np.float16),
                                     dict(conv=True)])
def test_model_variants(variant):
    model = tiny_lm(**variant)
    _, ref = _run(model)
    out, report = ovq.compress_weights(model, mode="int4_sym", return_report=True)
    compiled, y = _run(out)
    assert fc_precisions(compiled) == ["i4"] * 4 + ["u8"]
    assert _cos(ref, y) > 0.99
    if variant.get("tied"):  # the lm head shares the embedding table: compressed once, INT8
        assert report.counts() == {"int4_sym g128": 4, "int8_asym": 1}
    if variant.get("conv"):  # convolutions take the backup precision
        assert [lay.reason for lay in report.layers if lay.op_type == "Convolution"] == ["backup: convolution"]


def test_ratio_follows_sensitivity(fp32):
    model, _ = fp32
    _, full = ovq.compress_weights(model, mode="int4_asym", ratio=1.0, return_report=True)
    _, half = ovq.compress_weights(model, mode="int4_asym", ratio=0.5, return_report=True)
    four = [lay for lay in half.layers if lay.precision.startswith("int4")]
    assert 0 < len(four) < 4
    assert sum(np.prod(lay.shape) for lay in four) / sum(
        np.prod(lay.shape) for lay in full.layers if lay.precision.startswith("int4")) < 0.5
    assert {lay.reason for lay in half.layers if lay.precision == "int8_asym"} >= {"backup: ratio"}


def test_all_layers_backup_none_and_ignored_scope(fp32):
    model, ref = fp32
    _, rep = ovq.compress_weights(model, mode="int4_asym", all_layers=True, return_report=True)
    assert rep.counts() == {"int4_asym g128": 6}
    _, rep = ovq.compress_weights(model, mode="int4_asym", ratio=0.5, backup_mode="none", return_report=True)
    assert "float" in rep.counts() and "int8_asym" not in rep.counts()
    first = next(op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "MatMul")
    out, rep = ovq.compress_weights(model, mode=ovq.CompressWeightsMode.INT8_SYM,
                                    ignored_scope=ovq.IgnoredScope(names=[first]), return_report=True)
    assert rep.ignored == [first] and rep.counts() == {"int8_sym": 5}
    compiled, y = _run(out)
    assert sorted(fc_precisions(compiled)) == ["f32"] + ["i8"] * 4


def test_group_size_that_does_not_divide():
    model = tiny_lm(hidden=96, ffn=192)
    with pytest.raises(OptionError, match=r"group_size=128 does not divide .*96 input channels.*InvalidGroupSizeError"):
        ovq.compress_weights(model, mode="int4_sym")
    _, rep = ovq.compress_weights(model, mode="int4_sym", group_size_fallback_mode="ignore", return_report=True)
    assert rep.counts() == {"float": 4, "int8_asym": 2}
    out, rep = ovq.compress_weights(model, mode="int4_sym", group_size_fallback_mode="adjust", return_report=True)
    assert rep.counts() == {"int4_sym g32": 2, "int4_sym g64": 2, "int8_asym": 2}
    assert fc_precisions(_run(out)[0]) == ["i4"] * 4 + ["u8"]


def test_already_compressed_is_left_alone(fp32, caplog):
    model, _ = fp32
    once = ovq.compress_weights(model, mode="int8_asym")
    with caplog.at_level("WARNING", logger="ovq.compression"):
        twice, rep = ovq.compress_weights(once, mode="int4_asym", return_report=True)
    assert rep.layers == [] and len(rep.already_compressed) == 6
    assert "already have compressed weights" in caplog.text
    assert _weight_types(twice) == _weight_types(once)


def test_graph_and_path_inputs(tmp_path, fp32):
    model, ref = fp32
    ov.save_model(model, tmp_path / "m.xml", compress_to_fp16=False)
    g = ovq.read_model(tmp_path / "m.xml")
    out = ovq.compress_weights(g, mode="int4_asym")
    assert isinstance(out, ovq.Graph) and out is not g
    ovq.save_model(out, tmp_path / "c.xml")
    assert (tmp_path / "c.bin").stat().st_size < (tmp_path / "m.bin").stat().st_size / 5
    compiled, y = _run(ov.Core().read_model(tmp_path / "c.xml"))
    assert fc_precisions(compiled) == ["u4"] * 4 + ["u8"] and _cos(ref, y) > 0.99
    path_out = ovq.compress_weights(tmp_path / "m.xml", mode="int4_asym")
    assert isinstance(path_out, ovq.Graph)


def test_ignored_last_matmul_is_not_singled_out(fp32):
    # As NNCF: when the last weighted op is ignored, no other MatMul is kept at 8 bits in its place.
    model, _ = fp32
    last = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "MatMul"][-1]
    _, rep = ovq.compress_weights(model, mode="int4_asym", ignored_scope={"names": [last]}, return_report=True)
    assert rep.ignored == [last]
    assert rep.counts() == {"int4_asym g128": 4, "int8_asym": 1}
    assert [lay.reason for lay in rep.layers if lay.op_type == "Gather"] == ["backup: embedding"]
