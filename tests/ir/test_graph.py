"""The graph API passes build on: queries, edits, verification."""

from __future__ import annotations

import numpy as np
import openvino as ov
import pytest

import ovq
from ovq import runtime
from ovq.errors import GraphError, VerificationError

import ir_models


@pytest.fixture
def graph():
    return ovq.Graph.from_ov(ir_models.conv_net())


def test_topological_order_puts_producers_first(graph):
    order = graph.topological_order()
    position = {n: i for i, n in enumerate(order)}
    for src, dst in graph.nx.edges():
        assert position[src] < position[dst]
    assert sorted(order) == sorted(graph.nodes())


def test_producer_and_consumers_by_port(graph):
    conv = graph.find("conv")
    weights = graph.find("conv.weight")
    assert graph.producer(conv, 1) == (weights, 0)
    assert graph.consumers(weights, 0) == [(conv, 1)]
    x = graph.parameters()[0]
    assert graph.inputs_of(conv) == [(x, 0), (weights, 0)]
    gap = graph.find("gap")
    assert len(graph.consumers(gap, 0)) == 3  # logits, head2 and the dedup branch


def test_insert_on_edge_keeps_outputs(graph):
    model = graph.to_ov()
    relu, gap = graph.find("relu"), graph.find("gap")
    one = graph.add_const(np.float32(1.0), "one")
    mul = graph.add_op("Multiply", "relu/identity", attrs={"auto_broadcast": "numpy"}, num_inputs=2)
    graph.connect(one, 0, mul, 1)
    graph.insert_on_edge(relu, 0, gap, 0, mul)
    graph.verify()
    assert graph.producer(gap, 0) == (mul, 0) and graph.producer(mul, 0) == (relu, 0)
    inputs = runtime.random_inputs(model)
    assert runtime.outputs_equal(
        runtime.infer(runtime.compile_model(model), inputs),
        runtime.infer(runtime.compile_model(graph), inputs),
    )


def test_replace_output_moves_consumers_and_names(graph):
    logits = graph.find("logits")
    (result, _), = graph.consumers(logits, 0)
    relu_node = graph.add_op("Relu", "logits/relu", num_inputs=1)
    graph.connect(logits, 0, relu_node, 0)
    graph.replace_output(logits, 0, relu_node, 0)
    graph.verify()
    assert graph.producer(result, 0) == (relu_node, 0)
    assert graph.producer(relu_node, 0) == (logits, 0)
    assert set(graph.op(relu_node).outputs[0].names) == {"logits", "scores"}
    model = graph.to_ov()
    assert model.outputs[0].get_names() == {"logits", "scores"}
    inputs = runtime.random_inputs(model)
    (out, *_rest) = runtime.infer(runtime.compile_model(model), inputs)
    (ref, *_r) = runtime.infer(runtime.compile_model(ir_models.conv_net()), inputs)
    np.testing.assert_array_equal(out, np.maximum(ref, 0))


def test_remove_dead_nodes(graph):
    second_result = graph.results()[1]
    graph.remove_node(second_result)
    removed = graph.remove_dead_nodes()
    names = {graph_op_name for graph_op_name in ("head2", "dup_a", "dup_b", "fc2.weight")}
    assert names <= {n for n in removed_names(removed, ovq.Graph.from_ov(ir_models.conv_net()))}
    graph.verify()
    assert len(graph.to_ov().outputs) == 1


def removed_names(removed, reference):
    return {reference.op(n).name for n in removed}


def test_verify_reports_every_problem(graph):
    conv = graph.find("conv")
    graph.disconnect(conv, 1)
    relu = graph.find("relu")
    graph.nx.add_edge(relu, conv, key=(0, 0))  # second producer of input 0 and a cycle
    with pytest.raises(VerificationError) as info:
        graph.verify()
    text = str(info.value)
    assert "input 1 of 'conv' (Convolution) is not connected" in text
    assert "input 0 of 'conv' (Convolution) has 2 producers" in text
    assert "cycle" in text


def test_verify_checks_constant_payloads(graph):
    w = graph.find("conv.weight")
    graph.op(w).const.shape = (4, 3, 3, 2)
    with pytest.raises(VerificationError, match="payload of 432 bytes does not match f32"):
        graph.verify()


def test_edit_errors_name_the_layer(graph):
    conv = graph.find("conv")
    with pytest.raises(GraphError, match="'conv' has no input 5"):
        graph.connect(graph.find("relu"), 0, conv, 5)
    with pytest.raises(GraphError, match="input 0 of layer 'conv' is already connected"):
        graph.connect(graph.find("relu"), 0, conv, 0)
    with pytest.raises(GraphError, match="no layer named 'nope'"):
        graph.find("nope")
    with pytest.raises(GraphError, match="is not a Const"):
        graph.const_value(conv)


def test_constants_are_views_until_changed(tmp_path):
    path = tmp_path / "m.xml"
    ov.save_model(ir_models.conv_net(), path, compress_to_fp16=False)
    graph = ovq.read_model(path)
    w = graph.find("conv.weight")
    data = graph.const_data(w)
    assert data.in_file
    value = graph.const_value(w)
    assert not value.flags.writeable and not value.flags.owndata
    copy = graph.copy()
    graph.set_const_value(w, np.zeros((4, 3, 3, 3), np.float32))
    assert not graph.const_data(w).in_file
    # The copy and the file are untouched (copy on write).
    np.testing.assert_array_equal(copy.const_value(w), value)
    assert copy.const_data(w).in_file


def test_op_histogram_counts_bodies():
    graph = ovq.Graph.from_ov(ir_models.tensor_iterator_net())
    hist = graph.op_histogram()
    assert hist["TensorIterator"] == 1 and hist["MatMul"] == 1 and hist["Parameter"] == 4


def test_infer_shapes_fills_new_ports(graph):
    relu, gap = graph.find("relu"), graph.find("gap")
    mul = graph.add_op("Multiply", "scaled", attrs={"auto_broadcast": "numpy"}, num_inputs=2)
    graph.connect(graph.add_const(np.float32(2.0), "two"), 0, mul, 1)
    graph.insert_on_edge(relu, 0, gap, 0, mul)
    convert = graph.add_op("Convert", "to_f16", attrs={"destination_type": "f16"}, num_inputs=1)
    graph.connect(mul, 0, convert, 0)
    graph.connect(convert, 0, graph.add_op("Result", "f16_out", num_inputs=1, outputs=0), 0)
    assert graph.op(mul).outputs[0].shape is None
    graph.infer_shapes()
    assert graph.op(mul).outputs[0].precision == "FP32"
    assert graph.op(mul).outputs[0].shape == [1, 4, 8, 8]
    assert graph.op(convert).outputs[0].precision == "FP16"


def test_infer_shapes_runs_only_after_an_edit(graph, monkeypatch):
    """A graph mirrored from OpenVINO already holds OpenVINO's shapes: no round trip
    until it is edited (or asked with force=True), also on a copy."""
    from ovq.ir import bridge

    calls = []
    real = bridge.infer_shapes
    monkeypatch.setattr(bridge, "infer_shapes", lambda g: (calls.append(g), real(g)))
    graph.infer_shapes()
    graph.copy().infer_shapes()
    assert calls == []
    graph.infer_shapes(force=True)
    assert len(calls) == 1
    graph.touch(graph.find("relu"))  # an in-place edit
    graph.infer_shapes()
    graph.infer_shapes()
    assert len(calls) == 2
    graph.op(graph.find("relu")).outputs[0].shape = None  # a port whose shape was dropped
    graph.infer_shapes()
    assert len(calls) == 3 and graph.op(graph.find("relu")).outputs[0].shape == [1, 4, 8, 8]


def test_edits_never_reorder_model_outputs(graph):
    """OpenVINO orders outputs by Result file order; edits must not change it."""
    before = [o.get_names() for o in graph.to_ov().outputs]
    logits = graph.find("logits")
    relu_node = graph.add_op("Relu", "late", num_inputs=1)
    graph.connect(logits, 0, relu_node, 0)
    graph.replace_output(logits, 0, relu_node, 0)
    assert [o.get_names() for o in graph.to_ov().outputs] == before
