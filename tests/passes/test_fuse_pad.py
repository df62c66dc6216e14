"""fuse-pad: Pad into Convolution/GroupConvolution/AvgPool/MaxPool, and every refusal.

Numerics: OpenVINO CPU at the f32 hint, before vs after, ``rtol=1e-6, atol=1e-6``
(the padding only moves, no value is recomputed).
"""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as op
import pytest

import ovq
from ovq import runtime
from ovq.passes.fusion.fuse_pad import RULES
from ovq.pipeline import get_pass
from ovq.rewrite import MatchTracer, apply_rules

RTOL = ATOL = 1e-6
RNG = np.random.default_rng(2)


def pad(x, begin=(0, 0, 1, 2), end=(0, 0, 2, 1), value=0.0, mode="constant"):
    args = [x, op.constant(np.array(begin, np.int64)), op.constant(np.array(end, np.int64)), mode]
    if mode == "constant" and value is not None:
        args.append(op.constant(np.float32(value)))
    return op.pad(*args, name="pad")


def conv(y, kind="conv", pads=(1, 1), auto_pad="explicit"):
    if kind == "conv":
        w = op.constant(RNG.uniform(-1, 1, (5, 3, 3, 3)).astype(np.float32))
        return op.convolution(y, w, [1, 1], list(pads), list(pads), [1, 1], auto_pad=auto_pad, name="consumer")
    w = op.constant(RNG.uniform(-1, 1, (3, 1, 1, 3, 3)).astype(np.float32))
    return op.group_convolution(y, w, [2, 2], list(pads), list(pads), [1, 1], auto_pad=auto_pad, name="consumer")


def model_of(y, x):
    return ov.Model([y.output(0)], [x], "m")


def check_numerics(model, graph):
    inputs = runtime.random_inputs(model)
    before = runtime.infer(runtime.compile_model(model), inputs)
    after = runtime.infer(runtime.compile_model(graph), inputs)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_allclose(b, a, rtol=RTOL, atol=ATOL)


def fused(model) -> ovq.Graph:
    graph = ovq.Graph.from_ov(model)
    assert get_pass("fuse-pad")()(graph).modified
    graph.verify()
    assert "Pad" not in graph.op_histogram()
    check_numerics(model, graph)
    assert not get_pass("fuse-pad")()(graph).modified
    return graph


def refused(model, rule: str) -> str:
    graph = ovq.Graph.from_ov(model)
    graph.infer_shapes()
    tracer = MatchTracer()
    apply_rules(graph, [cls() for cls in RULES], tracer=tracer)
    assert "Pad" in graph.op_histogram()
    return tracer.explain(rule)


def attrs(graph):
    return graph.op(graph.find("consumer")).attrs


X = [1, 3, 9, 9]


@pytest.mark.parametrize("kind", ["conv", "gconv"])
@pytest.mark.parametrize("own", [(0, 0), (1, 1)])
def test_zero_pad_merges_into_convolution(kind, own):
    x = op.parameter(X, np.float32, name="x")
    graph = fused(model_of(conv(pad(x), kind, own), x))
    a = attrs(graph)
    assert a["pads_begin"] == f"{1 + own[0]}, {2 + own[1]}" and a["pads_end"] == f"{2 + own[0]}, {1 + own[1]}"
    assert a["auto_pad"] == "explicit"
    assert graph.producer(graph.find("consumer"), 0)[0] == graph.parameters()[0]


def test_pad_without_fill_value_input_is_zero():
    x = op.parameter(X, np.float32, name="x")
    fused(model_of(conv(pad(x, value=None)), x))


def test_valid_auto_pad_becomes_explicit():
    x = op.parameter(X, np.float32, name="x")
    graph = fused(model_of(conv(pad(x), auto_pad="valid", pads=(0, 0)), x))
    assert attrs(graph)["auto_pad"] == "explicit" and attrs(graph)["pads_begin"] == "1, 2"


@pytest.mark.parametrize("exclude_pad", [False, True])
def test_zero_pad_merges_into_avgpool(exclude_pad):
    x = op.parameter(X, np.float32, name="x")
    y = op.avg_pool(pad(x), [2, 2], [0, 0], [0, 0], [3, 3], exclude_pad, name="consumer")
    graph = fused(model_of(y, x))
    assert attrs(graph)["exclude-pad"] == "false" and attrs(graph)["pads_begin"] == "1, 2"


def test_minus_inf_pad_merges_into_maxpool():
    x = op.parameter(X, np.float32, name="x")
    y = op.max_pool(pad(x, value=-np.inf), [2, 2], [1, 1], [0, 0], [0, 0], [3, 3], name="consumer")
    graph = fused(model_of(y, x))
    assert attrs(graph)["pads_end"] == "2, 1"


# ----------------------------------------------------------------------------- refusals


def test_nonzero_pad_value_before_convolution_is_refused():
    x = op.parameter(X, np.float32, name="x")
    assert "pad value is 1.0, a convolution pads with 0" in refused(model_of(conv(pad(x, value=1.0)), x),
                                                                     "fuse-pad-into-convolution")


def test_zero_pad_before_maxpool_is_refused():
    x = op.parameter(X, np.float32, name="x")
    y = op.max_pool(pad(x), [2, 2], [1, 1], [0, 0], [0, 0], [3, 3], name="consumer")
    assert "only a -inf Pad fuses" in refused(model_of(y, x), "fuse-pad-into-maxpool")


def test_maxpool_with_used_indices_is_refused():
    x = op.parameter(X, np.float32, name="x")
    y = op.max_pool(pad(x, value=-np.inf), [2, 2], [1, 1], [0, 0], [0, 0], [3, 3], name="consumer")
    model = ov.Model([y.output(0), y.output(1)], [x], "m")
    assert "indices output is used" in refused(model, "fuse-pad-into-maxpool")


def test_reflect_pad_is_refused():
    x = op.parameter(X, np.float32, name="x")
    assert "Pad mode is reflect" in refused(model_of(conv(pad(x, mode="reflect")), x), "fuse-pad-into-convolution")


def test_channel_pad_is_refused():
    x = op.parameter(X, np.float32, name="x")
    y = op.avg_pool(pad(x, begin=(0, 1, 1, 1), end=(0, 0, 1, 1)), [1, 1], [0, 0], [0, 0], [2, 2], False,
                    name="consumer")
    assert "pads the batch or channel axis" in refused(model_of(y, x), "fuse-pad-into-avgpool")


def test_negative_pad_is_refused():
    x = op.parameter(X, np.float32, name="x")
    assert "negative pads" in refused(model_of(conv(pad(x, begin=(0, 0, -1, 1))), x), "fuse-pad-into-convolution")


def test_same_auto_pad_is_refused():
    x = op.parameter(X, np.float32, name="x")
    assert "auto_pad=same_upper" in refused(model_of(conv(pad(x), auto_pad="same_upper"), x),
                                            "fuse-pad-into-convolution")


def test_avgpool_excluding_its_own_padding_is_refused():
    x = op.parameter(X, np.float32, name="x")
    y = op.avg_pool(pad(x), [1, 1], [1, 1], [1, 1], [3, 3], True, name="consumer")
    assert "exclude-pad=true and padding of its own" in refused(model_of(y, x), "fuse-pad-into-avgpool")


def test_avgpool_with_partial_ceil_window_is_refused():
    x = op.parameter(X, np.float32, name="x")
    y = op.avg_pool(pad(x, begin=(0, 0, 1, 1), end=(0, 0, 0, 0)), [2, 2], [0, 0], [0, 0], [3, 3], False,
                    rounding_type="ceil", name="consumer")
    assert "last window is partial" in refused(model_of(y, x), "fuse-pad-into-avgpool")


def test_pool_padding_as_large_as_the_kernel_is_refused():
    x = op.parameter(X, np.float32, name="x")
    y = op.avg_pool(pad(x, begin=(0, 0, 2, 2), end=(0, 0, 2, 2)), [1, 1], [0, 0], [0, 0], [2, 2], False,
                    name="consumer")
    assert "windows entirely in padding" in refused(model_of(y, x), "fuse-pad-into-avgpool")


def test_shared_pad_is_refused():
    x = op.parameter(X, np.float32, name="x")
    p = pad(x)
    model = ov.Model([conv(p).output(0), op.relu(p, name="other").output(0)], [x], "m")
    assert "'pad' is also used by 'other'" in refused(model, "fuse-pad-into-convolution")
