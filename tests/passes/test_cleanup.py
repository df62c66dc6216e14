"""eliminate-dead-code and fold-constants on tiny graphs, checked through OpenVINO."""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as op
import pytest

import ovq
from ovq import runtime


def outputs(model_or_graph, inputs):
    return runtime.infer(runtime.compile_model(model_or_graph), inputs)


def test_dead_code_removes_unused_branch_keeps_parameters():
    x = op.parameter([2, 2], np.float32, name="x")
    unused_param = op.parameter([1], np.float32, name="unused")
    live = op.relu(x, name="live")
    op.sigmoid(x, name="dead")  # consumed by nothing
    graph = ovq.Graph.from_ov(ov.Model([live], [x, unused_param], "m"))
    # from_ov drops ops not reachable from Results; add a dead one in the mirror.
    dead = graph.add_op("Sigmoid", "dead", num_inputs=1)
    graph.connect(graph.parameters()[0], 0, dead, 0)
    result = ovq.run_pipeline(graph, "eliminate-dead-code")
    names = {o.name for _, o in result.ops()}
    assert "dead" not in names and {"x", "unused", "live"} <= names


def broadcast_weight_model():
    """A Conv whose weights come from Broadcast(Const), like the onnx light zoo, plus FP16 decompression."""
    x = op.parameter([1, 3, 6, 6], np.float32, name="x")
    w = op.broadcast(op.constant(np.float32(0.25)), op.constant(np.array([4, 3, 3, 3], np.int64)))
    conv = op.convolution(x, w, [1, 1], [0, 0], [0, 0], [1, 1], name="conv")
    b16 = op.constant(np.arange(4, dtype=np.float16).reshape(1, 4, 1, 1), name="bias_f16")
    bias = op.convert(b16, np.float32, name="bias")
    shape = op.shape_of(x, name="shape")  # static: folds
    flat = op.reshape(op.add(conv, bias, name="add"),
                      op.concat([op.gather(shape, op.constant(np.array([0], np.int64)), op.constant(np.int64(0))),
                                 op.constant(np.array([-1], np.int64))], 0), False, name="flat")
    return ov.Model([flat], [x], "bw")


def test_fold_constants_folds_broadcast_fp16_and_static_shapes():
    model = broadcast_weight_model()
    graph = ovq.Graph.from_ov(model)
    from ovq.pipeline import get_pass

    result = get_pass("fold-constants")()(graph)
    assert result.modified
    hist = graph.op_histogram()
    assert "Broadcast" not in hist and "ShapeOf" not in hist and "Convert" not in hist and "Gather" not in hist
    conv = graph.find("conv")
    weights = graph.const_value(graph.producer(conv, 1)[0])
    assert weights.shape == (4, 3, 3, 3) and np.all(weights == 0.25)
    assert graph.const_value(graph.find("bias")).dtype == np.float32
    x = runtime.random_inputs(model)
    assert runtime.outputs_equal(outputs(model, x), outputs(graph, x))
    assert not get_pass("fold-constants")()(graph).modified  # idempotent


def test_fold_constants_keeps_fp16_decompression_when_asked():
    from ovq.pipeline import parse_pipeline

    graph = ovq.Graph.from_ov(broadcast_weight_model())
    (pass_,) = parse_pipeline("fold-constants{fold_fp16=false}")
    pass_(graph)
    assert graph.op_histogram().get("Convert") == 1


def test_fold_constants_never_undoes_quantization():
    x = op.parameter([1, 4], np.float32, name="x")
    w = op.constant(np.arange(8, dtype=np.float32).reshape(4, 2) - 3, name="w")
    lo, hi = op.constant(np.float32(-4)), op.constant(np.float32(4))
    wq = op.fake_quantize(w, lo, hi, lo, hi, 255, name="w/fq")
    w8 = op.constant(np.array([[1, -2], [3, 4], [-5, 6], [7, 8]], np.int8), name="w8")
    deq = op.multiply(op.convert(w8, np.float32, name="w8/convert"), op.constant(np.float32(0.5)), name="w8/scale")
    model = ov.Model([op.matmul(x, wq, False, False, name="mm"), op.matmul(x, deq, False, False, name="mm8")], [x], "q")
    graph = ovq.Graph.from_ov(model)
    from ovq.pipeline import get_pass

    get_pass("fold-constants")()(graph)
    hist = graph.op_histogram()
    assert hist["FakeQuantize"] == 1 and hist["Convert"] == 1 and hist["Multiply"] == 1
    assert graph.const_data(graph.find("w8")).element_type.name == "i8"


@pytest.mark.parametrize("name", ["onnx_light/squeezenet", pytest.param("onnx_light/resnet50", marks=pytest.mark.zoo)])
def test_fold_constants_on_light_zoo_makes_plain_weights(name):
    from ovq_testing import assets
    from ovq.pipeline import PassContext

    try:
        src = assets.asset_path(name)
    except assets.AssetUnavailable as exc:
        pytest.skip(str(exc))
    graph = ovq.read_model(src)
    assert graph.op_histogram().get("Broadcast", 0) > 0
    ovq.run_pipeline(graph, "fold-constants,eliminate-dead-code", ctx=PassContext())
    assert "Broadcast" not in graph.op_histogram()
    for conv in graph.nodes_of_type("Convolution"):
        assert graph.op(graph.producer(conv, 1)[0]).is_const
    x = assets.example_inputs(name)
    original = ov.Core().read_model(str(src))
    assert runtime.outputs_equal(outputs(original, x), outputs(graph, x))
