"""embed-preprocessing: structure on tiny graphs, numerics against OpenVINO's PrePostProcessor.

Every numeric check compiles both models with the f32 inference hint and compares with
``assert_close``: ``|ours - ppp| <= RTOL * |ppp| + ATOL * max|ppp|`` per output (folding
1/scale into weights reorders float32 rounding, so bit-exactness is not expected).
"""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as op
import pytest
from openvino.preprocess import PrePostProcessor

import ovq
from ovq import runtime
from ovq.pipeline import PassError, get_pass, parse_pipeline
from ovq.preprocess import PreprocessingError, embed_preprocessing

MEAN = (123.675, 116.28, 103.53)
SCALE = (58.395, 57.12, 57.375)
RTOL, ATOL = 1e-4, 1e-5


# ---------------------------------------------------------------------- helpers

def conv_model(pad=0, *, shape=(1, 3, 8, 8), group=None, auto_pad="explicit", bias=False, seed=0,
               extra_consumer=False, shape_of=False) -> ov.Model:
    """Parameter ``x`` → (Group)Convolution [→ Add bias] → ReLU, with optional extras."""
    rng = np.random.default_rng(seed)
    x = op.parameter(list(shape), np.float32, name="x")
    x.output(0).get_tensor().set_names({"x", "image"})
    cin = shape[1]
    if group:
        w = op.constant(rng.standard_normal((group, 2, cin // group, 3, 3)).astype(np.float32), name="w")
        conv = op.group_convolution(x, w, [1, 1], [pad, pad], [pad, pad], [1, 1], auto_pad, name="conv")
        cout = 2 * group
    else:
        w = op.constant(rng.standard_normal((4, cin, 3, 3)).astype(np.float32), name="w")
        conv = op.convolution(x, w, [1, 1], [pad, pad], [pad, pad], [1, 1], auto_pad, name="conv")
        cout = 4
    y = conv
    if bias:
        y = op.add(conv, op.constant(rng.standard_normal((1, cout, 1, 1)).astype(np.float32), name="b"), name="bias")
    outs = [op.relu(y, name="relu")]
    if extra_consumer:
        outs.append(op.sigmoid(x, name="side"))
    if shape_of:
        outs.append(op.shape_of(x, name="shape"))
    return ov.Model(outs, [x], "tiny")


def nhwc_model(seed=0) -> ov.Model:
    """NHWC input → Transpose → padded Conv: the channel axis is 3, nothing can fold."""
    rng = np.random.default_rng(seed)
    x = op.parameter([1, 8, 8, 3], np.float32, name="x")
    t = op.transpose(x, op.constant(np.array([0, 3, 1, 2], np.int64)), name="to_nchw")
    w = op.constant(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), name="w")
    return ov.Model([op.convolution(t, w, [1, 1], [1, 1], [1, 1], [1, 1], name="conv")], [x], "nhwc")


def two_input_model(seed=0) -> ov.Model:
    """``image`` NCHW → padded conv; ``aux`` NHWC [1,4,4,3] → Transpose → unpadded conv; summed."""
    rng = np.random.default_rng(seed)
    image = op.parameter([1, 3, 8, 8], np.float32, name="image")
    aux = op.parameter([1, 6, 6, 3], np.float32, name="aux")
    w1 = op.constant(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    w2 = op.constant(rng.standard_normal((4, 3, 1, 1)).astype(np.float32))
    a = op.convolution(image, w1, [1, 1], [0, 0], [0, 0], [1, 1], name="conv_image")
    t = op.transpose(aux, op.constant(np.array([0, 3, 1, 2], np.int64)), name="aux/nchw")
    b = op.convolution(t, w2, [1, 1], [0, 0], [0, 0], [1, 1], name="conv_aux")
    return ov.Model([op.add(a, b, name="sum")], [image, aux], "two")


def ppp_reference(model: ov.Model, per_input: dict[str, dict]) -> ov.Model:
    """The same preprocessing through openvino.preprocess (layout, RIC, mean, scale)."""
    ppp = PrePostProcessor(model)
    for name, opts in per_input.items():
        info = ppp.input(name) if name else ppp.input()
        if opts.get("layout"):
            info.model().set_layout(ov.Layout(opts["layout"]))
        steps = info.preprocess()
        if opts.get("reverse_channels"):
            steps.reverse_channels()
        for key, step in (("mean", steps.mean), ("scale", steps.scale)):
            values = opts.get(key)
            if values:
                step(float(values[0]) if len(values) == 1 else [float(v) for v in values])
    return ppp.build()


def pixels(shape, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)


def run(model, inputs):
    return runtime.infer(runtime.compile_model(model), inputs)


def assert_close(ours, ref) -> tuple[float, float]:
    """Compare output lists; return (max abs diff, max abs diff / max |ref|)."""
    worst_abs = worst_rel = 0.0
    for a, b in zip(ours, ref, strict=True):
        assert a.shape == b.shape
        peak = float(np.max(np.abs(b))) or 1.0
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL * peak)
        diff = float(np.max(np.abs(a.astype(np.float64) - b)))
        worst_abs, worst_rel = max(worst_abs, diff), max(worst_rel, diff / peak)
    return worst_abs, worst_rel


def check_against_ppp(model: ov.Model, per_input: dict[str, dict], inputs) -> ovq.Graph:
    graph = embed_preprocessing(ovq.Graph.from_ov(model), inputs=per_input)
    assert_close(run(graph, inputs), run(ppp_reference(model, per_input), inputs))
    return graph


def types_in(graph) -> dict[str, int]:
    return graph.op_histogram()


def consumers_types(graph, node):
    return sorted(graph.op(c).type for c, _ in graph.consumers(node))


FULL = {"mean": MEAN, "scale": SCALE, "reverse_channels": True, "layout": "NCHW"}


# ------------------------------------------------------------------ folding structure

def test_unpadded_conv_folds_everything():
    model = conv_model(pad=0)
    w_before = ovq.Graph.from_ov(model)
    graph = check_against_ppp(model, {"x": FULL}, [pixels((1, 3, 8, 8))])
    hist = types_in(graph)
    assert "Gather" not in hist and "Subtract" not in hist and "Multiply" not in hist
    conv = graph.find("conv")
    assert graph.producer(conv, 0)[0] == graph.parameters()[0]
    # Weights: reversed along the input channels and divided by the (reversed) scale.
    w0 = w_before.const_value(w_before.producer(w_before.find("conv"), 1)[0])
    w1 = graph.const_value(graph.producer(conv, 1)[0])
    np.testing.assert_allclose(w1, w0[:, ::-1] / np.array(SCALE[::-1]).reshape(1, 3, 1, 1), rtol=1e-6)
    # The mean became a bias Add named after the input, right after the conv.
    (add, _), = graph.consumers(conv)
    assert graph.op(add).type == "Add" and graph.op(add).name == "x/mean"
    bias = graph.const_value(graph.producer(add, 1)[0]).reshape(-1)
    expected = -(w0 * (np.array(MEAN) / np.array(SCALE)).reshape(1, 3, 1, 1)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(bias, expected, rtol=1e-5)


def test_padded_conv_keeps_reversed_mean_subtract():
    graph = check_against_ppp(conv_model(pad=1), {"x": FULL}, [pixels((1, 3, 8, 8))])
    hist = types_in(graph)
    assert "Gather" not in hist and "Multiply" not in hist and hist["Subtract"] == 1
    sub = graph.find("x/mean")
    assert graph.producer(sub, 0)[0] == graph.parameters()[0]
    assert consumers_types(graph, sub) == ["Convolution"]
    # Reversal folded into the weights, so the mean is applied in raw (reversed) order.
    np.testing.assert_allclose(graph.const_value(graph.producer(sub, 1)[0]).reshape(-1), MEAN[::-1], rtol=1e-6)


@pytest.mark.parametrize("auto_pad,folded", [("valid", True), ("same_upper", False)])
def test_auto_pad_decides_mean_folding(auto_pad, folded):
    graph = check_against_ppp(conv_model(auto_pad=auto_pad), {"x": FULL}, [pixels((1, 3, 8, 8))])
    assert ("Subtract" in types_in(graph)) is not folded


def test_existing_bias_add_absorbs_the_mean():
    model = conv_model(pad=0, bias=True)
    graph = check_against_ppp(model, {"x": FULL}, [pixels((1, 3, 8, 8))])
    assert types_in(graph)["Add"] == 1
    assert [o.name for _, o in graph.ops() if o.type == "Add"] == ["bias"]


def test_shared_weights_are_copied_not_edited():
    rng = np.random.default_rng(0)
    x = op.parameter([1, 3, 8, 8], np.float32, name="x")
    other = op.parameter([1, 3, 8, 8], np.float32, name="other")
    w = op.constant(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), name="w")
    a = op.convolution(x, w, [1, 1], [1, 1], [1, 1], [1, 1], name="conv")
    b = op.convolution(other, w, [1, 1], [1, 1], [1, 1], [1, 1], name="conv_other")
    model = ov.Model([a, b], [x, other], "shared")
    graph = check_against_ppp(model, {"x": FULL}, [pixels((1, 3, 8, 8)), pixels((1, 3, 8, 8), seed=3)])
    w_node = graph.find("w")
    assert graph.consumers(w_node) == [(graph.find("conv_other"), 1)]
    assert graph.op(graph.producer(graph.find("conv"), 1)[0]).name == "w/preprocessed"


def test_depthwise_group_conv_keeps_gather_folds_scale():
    model = conv_model(pad=1, group=3)
    graph = check_against_ppp(model, {"x": FULL}, [pixels((1, 3, 8, 8))])
    hist = types_in(graph)
    assert hist["Gather"] == 1 and hist["Subtract"] == 1 and "Multiply" not in hist
    gather = graph.find("x/reverse_channels")
    assert graph.producer(gather, 0)[0] == graph.parameters()[0]
    np.testing.assert_array_equal(graph.const_value(graph.producer(gather, 1)[0]), [2, 1, 0])
    # Order: Gather → Subtract(mean, model order) → GroupConvolution(W / s).
    sub = graph.find("x/mean")
    assert graph.producer(sub, 0)[0] == gather
    np.testing.assert_allclose(graph.const_value(graph.producer(sub, 1)[0]).reshape(-1), MEAN, rtol=1e-6)


def test_unpadded_group_conv_folds_mean_into_bias():
    graph = check_against_ppp(conv_model(pad=0, group=3), {"x": FULL}, [pixels((1, 3, 8, 8))])
    hist = types_in(graph)
    assert hist["Gather"] == 1 and "Subtract" not in hist and hist["Add"] == 1


def test_single_group_conv_folds_the_reversal_too():
    graph = check_against_ppp(conv_model(pad=1, group=1), {"x": FULL}, [pixels((1, 3, 8, 8))])
    assert "Gather" not in types_in(graph)


# ------------------------------------------------------------------ explicit ops

def test_two_consumers_get_explicit_ops_in_mo_order():
    graph = check_against_ppp(conv_model(pad=1, extra_consumer=True), {"x": FULL}, [pixels((1, 3, 8, 8))])
    param = graph.parameters()[0]
    (gather, _), = graph.consumers(param)
    chain = [graph.op(gather).name]
    node = gather
    while len(graph.consumers(node)) == 1 and graph.op(graph.consumers(node)[0][0]).name.startswith("x/"):
        node = graph.consumers(node)[0][0]
        chain.append(graph.op(node).name)
    assert chain == ["x/reverse_channels", "x/mean", "x/scale"]
    assert [graph.op(n).type for n in (gather, graph.find("x/mean"), graph.find("x/scale"))] == [
        "Gather", "Subtract", "Multiply"]
    assert consumers_types(graph, node) == ["Convolution", "Sigmoid"]
    # The Parameter keeps its name and tensor names.
    assert graph.op(param).name == "x" and set(graph.op(param).outputs[0].names) == {"x", "image"}


def test_shape_of_stays_on_the_raw_parameter():
    graph = check_against_ppp(conv_model(pad=0, shape_of=True), {"x": FULL}, [pixels((1, 3, 8, 8))])
    param = graph.parameters()[0]
    assert consumers_types(graph, param) == ["Convolution", "ShapeOf"]


def test_nhwc_input_uses_explicit_ops_on_axis_3():
    model = nhwc_model()
    opts = {**FULL, "layout": "NHWC"}
    graph = check_against_ppp(model, {"x": opts}, [pixels((1, 8, 8, 3))])
    gather = graph.find("x/reverse_channels")
    assert int(graph.const_value(graph.producer(gather, 2)[0])) == 3
    assert graph.const_value(graph.producer(graph.find("x/mean"), 1)[0]).shape == (1, 1, 1, 3)


def test_nhwc_layout_is_inferred_when_unambiguous():
    model = nhwc_model()
    graph = embed_preprocessing(ovq.Graph.from_ov(model), mean=MEAN, scale=SCALE, reverse_channels=True)
    x = [pixels((1, 8, 8, 3))]
    assert_close(run(graph, x), run(ppp_reference(model, {"x": {**FULL, "layout": "NHWC"}}), x))


def test_two_inputs_one_nhwc():
    model = two_input_model()
    per_input = {
        "image": {"mean": MEAN, "scale": SCALE, "reverse_channels": True, "layout": "NCHW"},
        "aux": {"mean": (10.0, 20.0, 30.0), "scale": (2.0,), "reverse_channels": True, "layout": "NHWC"},
    }
    inputs = [pixels((1, 3, 8, 8)), pixels((1, 6, 6, 3), seed=2)]
    graph = check_against_ppp(model, per_input, inputs)
    hist = types_in(graph)
    # image: everything folded into conv_image (no padding); aux: explicit ops (NHWC).
    assert hist["Gather"] == 1 and hist["Subtract"] == 1 and hist["Multiply"] == 1
    assert graph.producer(graph.find("conv_image"), 0)[0] == graph.find("image")
    assert graph.op(graph.find("aux/reverse_channels")).type == "Gather"


def test_scalar_mean_and_scale_need_no_channel_dim():
    model = conv_model(pad=1, shape=(1, 5, 8, 8))  # 5 channels: no layout guess possible
    opts = {"mean": (100.0,), "scale": (50.0,)}
    graph = check_against_ppp(model, {"x": opts}, [pixels((1, 5, 8, 8))])
    sub = graph.find("x/mean")
    assert graph.const_value(graph.producer(sub, 1)[0]).shape == (1, 1, 1, 1)
    assert "Multiply" not in types_in(graph)


def test_layout_is_recorded_and_batch_is_set():
    model = conv_model(pad=1, shape=(-1, 3, 8, 8))
    graph = embed_preprocessing(ovq.Graph.from_ov(model), **FULL, batch=2)
    converted = graph.to_ov()
    assert converted.inputs[0].get_partial_shape() == ov.PartialShape([2, 3, 8, 8])
    assert converted.inputs[0].get_node().get_layout() == ov.Layout("NCHW")
    x = [pixels((2, 3, 8, 8))]
    assert_close(run(graph, x), run(ppp_reference(model, {"x": FULL}), x))


def test_batch_uses_the_layout_n_dimension():
    x = op.parameter([3, 8, 8, -1], np.float32, name="x")
    model = ov.Model([op.relu(x)], [x], "m")
    graph = embed_preprocessing(ovq.Graph.from_ov(model), layout="CHWN", batch=4)
    assert graph.to_ov().inputs[0].get_partial_shape() == ov.PartialShape([3, 8, 8, 4])


def test_nothing_to_do_changes_nothing():
    graph = ovq.Graph.from_ov(conv_model())
    result = get_pass("embed-preprocessing")(mean=(0.0, 0.0, 0.0), scale=(1.0,))(graph)
    assert not result.modified


def test_options_by_friendly_or_tensor_name():
    for name in ("x", "image"):
        graph = embed_preprocessing(ovq.Graph.from_ov(conv_model(pad=1)), input=name, mean=(1.0,))
        assert graph.op(graph.find("x/mean")).type == "Subtract"


def test_openvino_model_in_openvino_model_out():
    model = conv_model(pad=1)
    out = embed_preprocessing(model, **FULL)
    assert isinstance(out, ov.Model) and out is not model
    x = [pixels((1, 3, 8, 8))]
    assert_close(run(out, x), run(ppp_reference(model, {"x": FULL}), x))


def test_path_in_written_path_out(tmp_path):
    src = ovq.save_model(ovq.Graph.from_ov(conv_model(pad=1)), tmp_path / "m.xml")
    written = embed_preprocessing(src, output=tmp_path / "out.xml", **FULL)
    assert written == tmp_path / "out.xml" and written.exists()


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize("options,message", [
    ({"input": "nope", "mean": (1.0,)}, "unknown input 'nope'; inputs: 'x' (tensor names image, x)"),
    ({"mean": (1.0, 2.0)}, "no channel dimension of size 2"),
    ({"mean": (1.0, 2.0), "layout": "NCHW"}, "2 mean values for 3 channels"),
    ({"scale": (1.0, 2.0, 3.0, 4.0), "layout": "NCHW"}, "4 scale values for 3 channels"),
    ({"scale": (1.0, 0.0, 2.0)}, "scale values must be positive"),
    ({"scale": (-1.0,)}, "scale values must be positive"),
    ({"mean": (float("nan"),)}, "must be finite"),
    ({"reverse_channels": True, "layout": "NHWC"}, "cannot reverse a channel dimension of unknown size"),
    ({"mean": MEAN, "layout": "NC"}, "layout 'NC' has 2 dimensions, the input has 4"),
    ({"mean": MEAN, "layout": "NXHW"}, "has no channel dimension C"),
    ({"mean": MEAN, "layout": "N..."}, "expected letters per dimension"),
    ({"batch": 2, "layout": "CNHW"}, "is 3, not a batch of 1"),
])
def test_errors_name_the_input_and_the_problem(options, message):
    model = conv_model(shape=(1, 3, 8, -1) if options.get("layout") == "NHWC" else (1, 3, 8, 8))
    with pytest.raises(PreprocessingError) as info:
        embed_preprocessing(ovq.Graph.from_ov(model), **options)
    assert message in str(info.value)
    if "unknown input" not in message:
        assert "'image'" in str(info.value) or "'x'" in str(info.value)


def test_ambiguous_channel_dimension():
    x = op.parameter([1, 3, 8, 3], np.float32, name="x")
    model = ov.Model([op.relu(x)], [x], "m")
    with pytest.raises(PreprocessingError, match="ambiguous channel dimension in \\[1,3,8,3\\]"):
        embed_preprocessing(model, mean=MEAN)
    embed_preprocessing(model, mean=MEAN, layout="NHWC")  # resolved by a layout


def test_model_with_two_inputs_needs_a_name():
    with pytest.raises(PreprocessingError, match="the model has 2 inputs; name one"):
        embed_preprocessing(two_input_model(), mean=(1.0,))
    with pytest.raises(PreprocessingError, match="unknown input 'img'; inputs: 'image', 'aux'"):
        embed_preprocessing(two_input_model(), inputs={"img": {"mean": (1.0,)}})


def test_non_float_input_is_refused():
    x = op.parameter([1, 3, 4, 4], np.uint8, name="x")
    model = ov.Model([op.convert(x, np.float32)], [x], "u8")
    with pytest.raises(PreprocessingError, match="element type u8 is not f32/f16"):
        embed_preprocessing(model, mean=(1.0,))


def test_api_argument_errors():
    with pytest.raises(PreprocessingError, match="not both"):
        embed_preprocessing(conv_model(), inputs={"x": {}}, mean=(1.0,))
    with pytest.raises(PreprocessingError, match="unknown option"):
        embed_preprocessing(conv_model(), inputs={"x": {"means": (1.0,)}})
    with pytest.raises(PreprocessingError, match="mean must be a number or a sequence"):
        embed_preprocessing(conv_model(), mean="abc")


def test_pipeline_error_is_the_preprocessing_error_naming_the_pass():
    with pytest.raises(PreprocessingError, match="unknown input 'nope'") as info:
        ovq.run_pipeline(ovq.Graph.from_ov(conv_model()), "embed-preprocessing{input=nope;mean=1}")
    assert info.value.pass_name == "embed-preprocessing" and not isinstance(info.value, PassError)


# ------------------------------------------------------------------ spec round trip

def test_spec_round_trip_and_textual_run():
    spec = ("embed-preprocessing{input=image;mean=123.675,116.28,103.53;scale=58.395,57.12,57.375;"
            "reverse_channels=true;layout=NCHW}")
    (pass_,) = parse_pipeline(spec)
    assert pass_ == get_pass("embed-preprocessing")(input="image", mean=MEAN, scale=SCALE,
                                                    reverse_channels=True, layout="NCHW")
    assert pass_.spec() == spec
    assert parse_pipeline(pass_.spec()) == [pass_]
    model = conv_model(pad=1)
    graph = ovq.run_pipeline(ovq.Graph.from_ov(model), spec)
    x = [pixels((1, 3, 8, 8))]
    assert_close(run(graph, x), run(ppp_reference(model, {"x": FULL}), x))


# ------------------------------------------------------------------ corpus

def _asset(name):
    from ovq_testing import assets

    try:
        return assets.asset_path(name)
    except assets.AssetUnavailable as exc:
        pytest.skip(str(exc))


def corpus_case(name: str, per_input: dict, raw: dict[str, np.ndarray], pre: str = "") -> tuple[float, float]:
    src = _asset(name)
    original = ov.Core().read_model(str(src))
    graph = ovq.read_model(src)
    if pre:
        ovq.run_pipeline(graph, pre)
    embed_preprocessing(graph, inputs=per_input)
    ours = run(graph, raw)
    ref = run(ppp_reference(original, per_input), raw)
    return assert_close(ours, ref)


def test_corpus_digits_scalar_scale_folds_into_the_first_conv():
    from ovq_testing import assets

    _asset("digits")
    normalized = assets.example_inputs("digits")["input"]
    raw = {"input": normalized * 16}  # the model expects pixels / 16
    corpus_case("digits", {"input": {"scale": (16.0,)}}, raw)
    graph = embed_preprocessing(ovq.read_model(_asset("digits")), scale=(16.0,))
    assert "Multiply" not in graph.op_histogram()
    # Raw pixels through the preprocessed model ≈ normalized pixels through the original.
    original = run(ovq.read_model(_asset("digits")), {"input": normalized})
    assert_close(run(graph, raw), original)


def test_corpus_resnet_like_full_preprocessing():
    corpus_case("resnet_like", {"input": FULL}, {"input": pixels((1, 3, 224, 224))})


@pytest.mark.zoo
def test_corpus_efficientnet_lite0_matches_ppp_and_the_original():
    from ovq_testing import assets

    _asset("efficientnet_lite0")
    crops = assets.example_inputs("efficientnet_lite0")["input"]
    raw = {"input": crops * 127.5 + 127.5}  # the model expects (pixel - 127.5) / 127.5
    opts = {"mean": (127.5,), "scale": (127.5,)}
    corpus_case("efficientnet_lite0", {"input": opts}, raw)
    graph = embed_preprocessing(ovq.read_model(_asset("efficientnet_lite0")), **opts)
    original = run(ovq.read_model(_asset("efficientnet_lite0")), {"input": crops})
    ours = run(graph, raw)
    np.testing.assert_array_equal(ours[0].argmax(1), original[0].argmax(1))
    assert_close(ours, original)


ONNX_LIGHT = ("bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50",
              "shufflenet", "squeezenet", "vgg19", "zfnet512")


def randomize_weights(graph: ovq.Graph, seed: int = 0) -> None:
    """He-init every constant Conv/MatMul weight (the light zoo's weights are all equal,
    which makes every output channel identical and the softmax uniform)."""
    rng = np.random.default_rng(seed)
    for node in graph.nodes_of_type("Convolution", "GroupConvolution", "MatMul"):
        src = graph.producer(node, 1)
        if src is None or not graph.op(src[0]).is_const:
            continue
        w = graph.const_value(src[0])
        if w.dtype == np.float32:
            fan_in = w[0].size if w.ndim > 2 else w.shape[0]
            graph.set_const_value(src[0], (rng.standard_normal(w.shape) * np.sqrt(2 / fan_in)).astype(np.float32))


@pytest.mark.zoo
@pytest.mark.parametrize("model", ONNX_LIGHT)
def test_corpus_onnx_light(model):
    src = _asset(f"onnx_light/{model}")
    graph = ovq.read_model(src)
    ovq.run_pipeline(graph, "fold-constants,eliminate-dead-code")  # weights come from Broadcast
    randomize_weights(graph)
    original = graph.to_ov()
    name = original.inputs[0].get_any_name()
    first = graph.consumers(graph.parameters()[0])[0][0]
    padded = any(int(v) for key in ("pads_begin", "pads_end") for v in graph.op(first).attrs[key].split(","))
    per_input = {name: FULL}
    before = graph.op_histogram()
    embed_preprocessing(graph, inputs=per_input)
    after = graph.op_histogram()
    added = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
    # RIC and scale fold into the first conv; the mean too unless it pads.
    assert added == ({"Subtract": 1, "Constant": 1} if padded else {})
    raw = {name: pixels((1, 3, 224, 224))}
    assert_close(run(graph, raw), run(ppp_reference(original, per_input), raw))
