"""``ovq.report.graph_svg``: links to table rows, colours, blocks for large graphs."""

from __future__ import annotations

import numpy as np
import pytest

from ovq.report import collect
from ovq.report import graph_svg


def _long_model(n: int):
    """Input → FakeQuantize → Conv, then a chain of ``n`` Add/Relu/MaxPool ops: a graph to collapse."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([1, 4, 8, 8], np.float32, name="x")
    lo, hi = ops.constant(np.float32(-4)), ops.constant(np.float32(4))
    fq = ops.fake_quantize(x, lo, hi, lo, hi, 256, name="fq")
    w = ops.constant(np.random.default_rng(0).standard_normal((4, 4, 1, 1)).astype(np.float32))
    wfq = ops.fake_quantize(w, ops.constant(np.float32(-3)), ops.constant(np.float32(3)),
                            ops.constant(np.float32(-3)), ops.constant(np.float32(3)), 255)
    y = ops.convolution(fq, wfq, [1, 1], [0, 0], [0, 0], [1, 1], name="conv")
    for k in range(n):  # (a MaxPool now and then: the CPU plugin fuses at most so many post-ops)
        if k % 3 == 0:
            y = ops.add(y, ops.constant(np.float32(0.1)), name=f"add{k}")
        elif k % 3 == 1:
            y = ops.relu(y, name=f"relu{k}")
        else:
            y = ops.max_pool(y, strides=[1, 1], dilations=[1, 1], pads_begin=[0, 0], pads_end=[0, 0],
                             kernel_shape=[1, 1], name=f"pool{k}").output(0)
    return ov.Model([ops.result(y)], [x], "long")


def test_small_graph_links_rows(digits_int8):
    rep = collect(digits_int8[1], measure_latency=False)
    svg = rep.graph.overview
    assert rep.graph.blocks == [] and rep.graph.note == ""
    for row in rep.layers:
        assert f'href="#{row.anchor}"' in svg
    assert graph_svg.COLORS["int8"] in svg and graph_svg.COLORS["fq"] in svg


def test_large_graph_collapses_to_blocks():
    rep = collect(_long_model(300), measure_latency=False)
    g = rep.graph
    assert len(g.blocks) == -(-303 // graph_svg.BLOCK_SIZE)  # x, fq, conv, 300 ops (Result drawn too)
    assert "collapsed to" in g.note and 'class="block"' in g.overview
    assert 'href="#layer-0"' in g.blocks[0]


def test_too_large_for_detail(monkeypatch):
    monkeypatch.setattr(graph_svg, "DETAIL_LIMIT", 100)
    rep = collect(_long_model(300), measure_latency=False)
    assert rep.graph.blocks == [] and "too many to lay out" in rep.graph.note


@pytest.mark.parametrize("n", [0])
def test_one_layer(n):
    rep = collect(_long_model(n), measure_latency=False)
    assert [r.name for r in rep.layers] == ["conv"] and rep.layers[0].weight_dtype == "f32"
