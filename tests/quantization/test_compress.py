"""compress_weights: integers computed in row chunks equal the whole-tensor computation."""

from __future__ import annotations

import numpy as np
import pytest
from models import conv, model, param, relu

import ovq
from ovq.quantization import compress, place_fake_quantize


def conv_net() -> ovq.Graph:
    x = param((1, 3, 8, 8))
    y = relu(conv(x, 16, 3, name="c1"), "r1")
    y = conv(y, 8, 16, k=1, name="c2")
    return ovq.Graph.from_ov(model([y], [x]))


def integer_consts(g: ovq.Graph) -> dict[str, np.ndarray]:
    return {g.op(n).name: np.asarray(g.const_value(n)) for n in g.nodes_of_type("Const")
            if g.op(n).name.endswith("/quantized")}


@pytest.mark.parametrize("preset", ["performance", "mixed"])
def test_row_chunks_give_the_same_integers(monkeypatch, preset):
    rng = np.random.default_rng(0)
    samples = [rng.standard_normal((1, 3, 8, 8)).astype(np.float32) for _ in range(4)]
    q = place_fake_quantize(conv_net(), calibration_samples=samples, preset=preset)
    weights = [m.node for m in q.meta["ovq.quantizers"].values() if m.is_weight]
    whole, chunked = q.copy(), q.copy()
    compress.compress_weights(whole, weights)
    monkeypatch.setattr(compress, "CHUNK_ELEMENTS", 7)  # a 3x3x3 filter row is 27 elements: one row a chunk
    assert len(compress._row_chunks((16, 3, 3, 3))) == 16
    compress.compress_weights(chunked, weights)
    a, b = integer_consts(whole), integer_consts(chunked)
    assert a.keys() == b.keys() and len(a) == 2
    for name in a:
        assert a[name].dtype == b[name].dtype
        np.testing.assert_array_equal(a[name], b[name])


def test_row_chunks_cover_every_row_once():
    for shape in [(), (5,), (1000, 3), (3, 1 << 21), (0, 4)]:
        chunks = compress._row_chunks(shape)
        if not shape:
            assert chunks == [Ellipsis]
            continue
        covered = np.concatenate([np.arange(shape[0])[c] for c in chunks])
        np.testing.assert_array_equal(covered, np.arange(shape[0]))
