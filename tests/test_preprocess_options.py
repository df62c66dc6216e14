"""Model Optimizer style option strings and ``preprocess_cli`` (what ``ovq preprocess`` runs)."""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as op
import pytest

import ovq
from ovq import runtime
from ovq.preprocess import (
    PreprocessingError,
    parse_layout,
    parse_mo_layouts,
    parse_mo_values,
    preprocess_cli,
)


@pytest.mark.parametrize("text,expected", [
    ("[123,117,104]", {"": (123.0, 117.0, 104.0)}),
    ("[ 0.5 ]", {"": (0.5,)}),
    ("image[123.675,116.28,103.53],other[0.5]", {"image": (123.675, 116.28, 103.53), "other": (0.5,)}),
    ("gpu_0/data_0[1 2 3]", {"gpu_0/data_0": (1.0, 2.0, 3.0)}),
    ("a:0[1e2, -2.5]", {"a:0": (100.0, -2.5)}),
])
def test_parse_mo_values(text, expected):
    assert parse_mo_values(text) == expected


@pytest.mark.parametrize("text,message", [
    ("123,117", "expected '\\['"),
    ("image[1,2", "never closed"),
    ("image[1,x]", "is not a list of numbers"),
    ("image[]", "no values for 'image'"),
    ("a[1],a[2]", "input 'a' given twice"),
    ("a[1] b[2]", "expected ','"),
    ("", "nothing to parse"),
])
def test_parse_mo_values_errors(text, message):
    with pytest.raises(PreprocessingError, match=message):
        parse_mo_values(text, "--mean-values")


@pytest.mark.parametrize("text,expected", [
    ("nchw", {"": "NCHW"}),
    ("image(nchw),other(nhwc)", {"image": "NCHW", "other": "NHWC"}),
    ("x([N,C,H,W])", {"x": "[N,C,H,W]"}),
])
def test_parse_mo_layouts(text, expected):
    assert parse_mo_layouts(text) == expected


@pytest.mark.parametrize("text,message", [
    ("nhwc->nchw", "layout conversion"),
    ("image(nchw", "never closed"),
    ("image(nc1w)", "expected letters"),
    ("ncnw", "appears twice"),
])
def test_parse_mo_layouts_errors(text, message):
    with pytest.raises(PreprocessingError, match=message):
        parse_mo_layouts(text)


def test_parse_layout_forms():
    assert parse_layout("nchw") == ("N", "C", "H", "W")
    assert parse_layout("[N,C,?,W]") == ("N", "C", "?", "W")
    assert parse_layout("N??C") == ("N", "?", "?", "C")


def two_input_model() -> ov.Model:
    rng = np.random.default_rng(0)
    image = op.parameter([-1, 3, 8, 8], np.float32, name="image")
    aux = op.parameter([1, 6, 6, 3], np.float32, name="aux")
    w = op.constant(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    a = op.convolution(image, w, [1, 1], [1, 1], [1, 1], [1, 1], name="conv")
    t = op.transpose(aux, op.constant(np.array([0, 3, 1, 2], np.int64)))
    b = op.convolution(t, op.constant(rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
                       [1, 1], [0, 0], [0, 0], [1, 1])
    return ov.Model([op.reduce_mean(a, op.constant(np.array([2, 3])), False),
                     op.reduce_mean(b, op.constant(np.array([2, 3])), False)], [image, aux], "two")


def test_preprocess_cli_two_inputs(tmp_path):
    from openvino.preprocess import PrePostProcessor

    model = two_input_model()
    src = ovq.save_model(ovq.Graph.from_ov(model), tmp_path / "in.xml")
    out = preprocess_cli(src, tmp_path / "out.xml", mean_values="image[123.675,116.28,103.53],aux[10]",
                         scale_values="image[58.395,57.12,57.375]", reverse_input_channels=True,
                         layout="image(nchw),aux(nhwc)", batch=1)
    assert out == tmp_path / "out.xml"
    result = ov.Core().read_model(str(out))
    assert result.input("image").get_partial_shape() == ov.PartialShape([1, 3, 8, 8])

    ppp = PrePostProcessor(model)
    ppp.input("image").model().set_layout(ov.Layout("NCHW"))
    ppp.input("image").preprocess().reverse_channels().mean([123.675, 116.28, 103.53]).scale([58.395, 57.12, 57.375])
    ppp.input("aux").model().set_layout(ov.Layout("NHWC"))
    ppp.input("aux").preprocess().reverse_channels().mean(10.0)
    ref = ppp.build()
    ref.reshape({"image": [1, 3, 8, 8]})
    rng = np.random.default_rng(1)
    x = [rng.uniform(0, 255, (1, 3, 8, 8)).astype(np.float32), rng.uniform(0, 255, (1, 6, 6, 3)).astype(np.float32)]
    ours, theirs = runtime.infer(runtime.compile_model(result), x), runtime.infer(runtime.compile_model(ref), x)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(np.abs(b).max()))


def test_preprocess_cli_single_input_without_names(tmp_path):
    x = op.parameter([1, 3, 8, 8], np.float32, name="x")
    src = ovq.save_model(ovq.Graph.from_ov(ov.Model([op.relu(x)], [x], "m")), tmp_path / "in.xml")
    out = preprocess_cli(src, tmp_path / "out.xml", mean_values="[1,2,3]", scale_values="[2]")
    hist = ovq.read_model(out).op_histogram()
    assert hist["Subtract"] == 1 and hist["Multiply"] == 1 and "Gather" not in hist


def test_preprocess_cli_errors(tmp_path):
    src = ovq.save_model(ovq.Graph.from_ov(two_input_model()), tmp_path / "in.xml")
    with pytest.raises(PreprocessingError, match="the model has 2 inputs: name the input"):
        preprocess_cli(src, tmp_path / "o.xml", mean_values="[1,2,3]")
    with pytest.raises(PreprocessingError, match="unknown input 'img'"):
        preprocess_cli(src, tmp_path / "o.xml", mean_values="img[1,2,3]")
    with pytest.raises(PreprocessingError, match="--batch 0"):
        preprocess_cli(src, tmp_path / "o.xml", batch=0)
    x = op.parameter([1, 4, 8, 8], np.float32, name="x")
    four = ovq.save_model(ovq.Graph.from_ov(ov.Model([op.relu(x)], [x], "m")), tmp_path / "four.xml")
    with pytest.raises(PreprocessingError, match="no input has a 3-channel dimension"):
        preprocess_cli(four, tmp_path / "o.xml", reverse_input_channels=True)
    assert not (tmp_path / "o.xml").exists()
