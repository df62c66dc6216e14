"""The pattern matcher: types, port order, constants, attributes, consumers, commutativity."""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as op

import ovq
from ovq.rewrite import AnyInput, ConstInput, Matcher, OpPattern


def graph() -> ovq.Graph:
    x = op.parameter([1, 3, 4, 4], np.float32, name="x")
    w = op.constant(np.ones((2, 3, 1, 1), np.float32), name="w")
    conv = op.convolution(x, w, [1, 1], [0, 0], [0, 0], [1, 1], name="conv")
    scale = op.constant(np.full((1, 2, 1, 1), 2.0, np.float32), name="scale")
    mul = op.multiply(scale, conv, name="mul")  # constant first
    return ovq.Graph.from_ov(ov.Model([op.relu(mul, name="relu"), op.sigmoid(conv, name="side")], [x], "g"))


CONV = OpPattern("Convolution", [AnyInput("x"), ConstInput("w")], bind="conv")


def test_match_binds_nodes_and_ports():
    g = graph()
    m = Matcher(g).match(CONV, g.find("conv"))
    assert m is not None
    assert m["conv"] == g.find("conv") and m["w"] == g.find("w") and m.outputs["x"] == (g.find("x"), 0)
    assert m.interior == []


def test_port_order_and_commutativity():
    g = graph()
    strict = OpPattern("Multiply", [CONV, ConstInput("s")], bind="mul")
    matcher = Matcher(g)
    assert matcher.match(strict, g.find("mul")) is None
    assert "is Const, expected ['Convolution']" in matcher.last_reason
    loose = OpPattern("Multiply", [CONV, ConstInput("s")], bind="mul", commutative=True)
    m = matcher.match(loose, g.find("mul"))
    assert m is not None and m["s"] == g.find("scale") and m.interior == [g.find("conv")]


def test_consumers_attrs_and_predicates():
    g = graph()
    matcher = Matcher(g)
    assert matcher.match(OpPattern("Convolution", consumers=1), g.find("conv")) is None
    assert "has 2 consumers, expected 1" in matcher.last_reason
    assert matcher.match(OpPattern("Convolution", attrs={"auto_pad": "explicit"}), g.find("conv")) is not None
    assert matcher.match(OpPattern("Convolution", attrs={"auto_pad": "same_upper"}), g.find("conv")) is None
    big = ConstInput("w", lambda gr, n: gr.const_value(n).size > 100)
    assert matcher.match(OpPattern("Convolution", [AnyInput(), big]), g.find("conv")) is None
    assert "fails its predicate" in matcher.last_reason
    assert matcher.match(OpPattern(("Relu", "Sigmoid")), g.find("side")) is not None
    assert matcher.match(OpPattern("ReLU"), g.find("relu")) is not None  # IR spelling accepted
