"""Read → write → read keeps models identical: structure, constants and outputs."""

from __future__ import annotations

import numpy as np
import openvino as ov
import pytest

import ovq
from ovq import runtime
import ir_models
from ir_checks import assert_graphs_match, canonical_xml


def run_both(path_a, path_b, *, seed=0):
    model_a = ov.Core().read_model(path_a)
    model_b = ov.Core().read_model(path_b)
    inputs = runtime.random_inputs(model_a, seed=seed)
    out_a = runtime.infer(runtime.compile_model(model_a), inputs)
    out_b = runtime.infer(runtime.compile_model(model_b), inputs)
    return out_a, out_b


def test_tiny_models_roundtrip_exactly(tiny_model_name, saved_model, tmp_path):
    original = saved_model(ir_models.ALL[tiny_model_name](), tiny_model_name)
    graph = ovq.read_model(original)
    graph.verify()
    written = ovq.save_model(graph, tmp_path / "roundtrip.xml")
    again = ovq.read_model(written)
    again.verify()
    assert_graphs_match(graph, again)
    assert canonical_xml(original) == canonical_xml(written)
    assert original.with_suffix(".bin").read_bytes() == written.with_suffix(".bin").read_bytes()
    out_a, out_b = run_both(original, written)
    assert runtime.outputs_equal(out_a, out_b)


def test_conv_net_keeps_names_layout_and_rt_info(saved_model, tmp_path):
    graph = ovq.read_model(saved_model(ir_models.conv_net()))
    model = ovq.read_model(ovq.save_model(graph, tmp_path / "rt.xml")).to_ov()
    assert model.inputs[0].get_names() == {"in,put<&>", "image"}
    assert model.outputs[0].get_names() == {"logits", "scores"}
    assert str(model.inputs[0].get_node().get_layout()) == "[N,C,H,W]"
    assert model.get_rt_info(["custom", "nested", "key"]).astype(str) == "value"


def test_layer_rt_info_survives_ovq_and_openvino(saved_model, tmp_path):
    import xml.etree.ElementTree as ET

    graph = ovq.read_model(saved_model(ir_models.conv_net()))
    relu = graph.find("relu")
    rt = ET.Element("rt_info")
    ET.SubElement(rt, "attribute", {"name": "fused_names", "version": "0", "value": "conv/add,relu"})
    graph.op(relu).rt_info = rt
    path = ovq.save_model(graph, tmp_path / "rt.xml")
    again = ovq.read_model(path)
    kept = again.op(again.find("relu")).rt_info
    assert (kept[0].tag, kept[0].attrib) == (rt[0].tag, rt[0].attrib)
    # OpenVINO parses it too, and its own serializer writes it back the same way.
    through_ov = ovq.Graph.from_ov(ov.Core().read_model(path))
    attr = through_ov.op(through_ov.find("relu")).rt_info[0]
    assert attr.get("name") == "fused_names" and attr.get("value").replace(" ", "") == "conv/add,relu"


def test_identical_constants_are_deduplicated(saved_model, tmp_path):
    graph = ovq.read_model(saved_model(ir_models.conv_net()))
    a, b = graph.find("dup_a"), graph.find("dup_b")
    # Make the two payloads separate owned copies: the writer must still merge them.
    graph.set_const_value(a, np.ones((4, 5), np.float32))
    graph.set_const_value(b, np.ones((4, 5), np.float32))
    out = ovq.save_model(graph, tmp_path / "dedup.xml")
    again = ovq.read_model(out)
    da, db = again.const_data(again.find("dup_a")), again.const_data(again.find("dup_b"))
    assert (da.offset, da.size) == (db.offset, db.size)


def test_element_type_values_read_correctly(saved_model):
    graph = ovq.read_model(saved_model(ir_models.element_type_net()))
    value = {graph.op(n).name: graph.const_value(n) for n in graph.nodes_of_type("Const")}
    np.testing.assert_array_equal(value["const_i4"], [[-8, 7, 0], [1, -1, 3]])
    np.testing.assert_array_equal(value["const_u4"], [[1, 2, 3], [4, 5, 15]])
    np.testing.assert_array_equal(value["const_u1"], [[1, 0, 1], [1, 1, 0]])
    np.testing.assert_array_equal(value["const_boolean"], [[True, False, True], [False, False, True]])
    np.testing.assert_array_equal(value["const_f16"], np.array([[1.5, -2.25, 3.0], [0.0, 1e-3, -7.0]], np.float16))
    bf16 = value["const_bf16"].astype(np.uint32) << 16
    np.testing.assert_array_equal(bf16.view(np.float32), [[1.5, -2.25, 3.0], [0.0, np.float32(0.00099945068359375), -7.0]])
    assert list(value["const_string"]) == ["hello", "wörld", ""]


@pytest.mark.parametrize("values, et", [
    (np.array([[-8, 7, 0], [1, -1, 3]]), "i4"),
    (np.array([1, 2, 3, 4, 5]), "u4"),
    (np.array(["a", "", "ünï,code"]), "string"),
    (np.array([[True, False]]), "boolean"),
    (np.arange(6, dtype=np.float16).reshape(2, 3), None),
])
def test_set_const_value_roundtrips_through_the_bin(values, et, tmp_path):
    graph = ovq.Graph("consts")
    node = graph.add_const(values, "c", element_type=et)
    result = graph.add_op("Result", "out", num_inputs=1, outputs=0)
    graph.connect(node, 0, result, 0)
    graph.verify()
    again = ovq.read_model(ovq.save_model(graph, tmp_path / "c.xml"))
    got = again.const_value(again.find("c"))
    if et == "string":
        assert list(got) == list(values)
    else:
        np.testing.assert_array_equal(got, values)


def test_u4_packing_is_low_nibble_first():
    graph = ovq.Graph()
    node = graph.add_const(np.array([1, 2, 3, 4, 5]), "c", element_type="u4")
    assert bytes(graph.const_data(node).raw()) == bytes([0x21, 0x43, 0x05])


def test_string_layout_matches_openvino():
    graph = ovq.Graph()
    node = graph.add_const(np.array(["hello", "wörld", ""]), "s", element_type="string")
    raw = bytes(graph.const_data(node).raw())
    assert len(raw) == 31
    assert np.frombuffer(raw[:20], "<i4").tolist() == [3, 0, 5, 11, 11]


def test_from_ov_and_to_ov_keep_outputs_bitwise(tiny_model_name):
    model = ir_models.ALL[tiny_model_name]()
    graph = ovq.Graph.from_ov(model)
    graph.verify()
    rebuilt = graph.to_ov()
    inputs = runtime.random_inputs(model, seed=3)
    a = runtime.infer(runtime.compile_model(model), inputs)
    b = runtime.infer(runtime.compile_model(rebuilt), inputs)
    assert runtime.outputs_equal(a, b)
    assert [o.get_names() for o in model.outputs] == [o.get_names() for o in rebuilt.outputs]


def test_read_model_accepts_openvino_model_graph_and_onnx(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    graph = ovq.read_model(path)
    assert graph.op_histogram() == {"Parameter": 1, "Relu": 1, "Result": 1}
    assert ovq.read_model(graph) is graph
    assert len(ovq.read_model(graph.to_ov())) == 3


def test_saving_over_the_source_model_keeps_weights_valid(saved_model):
    path = saved_model(ir_models.conv_net())
    before = runtime.infer(runtime.compile_model(str(path)), runtime.random_inputs(ov.Core().read_model(path)))
    graph = ovq.read_model(path)
    ovq.save_model(graph, path)  # the graph's weights are a view onto the file it replaces
    ovq.save_model(graph, path)
    after = runtime.infer(runtime.compile_model(str(path)), runtime.random_inputs(ov.Core().read_model(path)))
    assert runtime.outputs_equal(before, after)


def test_ir_v10_is_read_through_openvino_and_written_as_v11(saved_model, tmp_path):
    path = saved_model(ir_models.conv_net(), "v11")
    v10 = tmp_path / "v10.xml"
    v10.write_text(path.read_text().replace('version="11"', 'version="10"', 1))
    v10.with_suffix(".bin").write_bytes(path.with_suffix(".bin").read_bytes())
    graph = ovq.read_model(v10)
    assert graph.source == str(v10)
    written = ovq.save_model(graph, tmp_path / "out.xml")
    assert 'version="11"' in written.read_text().splitlines()[1]
    out_a, out_b = run_both(path, written)
    assert runtime.outputs_equal(out_a, out_b)


def test_save_model_accepts_an_openvino_model(tmp_path):
    model = ir_models.conv_net()
    written = ovq.save_model(model, tmp_path / "m.xml")
    out_a, out_b = run_both(written, written)
    assert runtime.outputs_equal(out_a, out_b)
    inputs = runtime.random_inputs(model)
    assert runtime.outputs_equal(runtime.infer(runtime.compile_model(model), inputs),
                                 runtime.infer(runtime.compile_model(str(written)), inputs))
