"""Read → write → read on real models: bitwise-identical outputs, same ops, names, constants.

The corpus is built from pip packages by :mod:`ovq_testing.assets` into a cache; the
heavy models run under the ``zoo`` marker (CI runs them; ``pytest -m zoo``).
"""

from __future__ import annotations

import numpy as np
import openvino as ov
import pytest

import ovq
from ovq import runtime
from ovq_testing import assets

from ir_checks import assert_graphs_match, canonical_xml

FAST = {"digits", "resnet_like"}
CORPUS = [pytest.param(name, marks=() if name in FAST else pytest.mark.zoo) for name in assets.ASSETS]


def asset_or_skip(name):
    try:
        return assets.asset_path(name)
    except assets.AssetUnavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("name", CORPUS)
def test_model_roundtrips_bitwise(name, tmp_path):
    source = asset_or_skip(name)
    original = ov.Core().read_model(str(source))
    graph = ovq.read_model(source)
    graph.verify()
    assert len(graph) == len(original.get_ops())
    written = ovq.save_model(graph, tmp_path / "roundtrip.xml")
    again = ovq.read_model(written)
    again.verify()
    assert_graphs_match(graph, again)
    if source.suffix == ".xml":
        assert canonical_xml(source) == canonical_xml(written)
        assert source.with_suffix(".bin").read_bytes() == written.with_suffix(".bin").read_bytes()

    inputs = assets.example_inputs(name)
    rebuilt = ov.Core().read_model(str(written))
    expected = runtime.infer(runtime.compile_model(original), inputs)
    got = runtime.infer(runtime.compile_model(rebuilt), inputs)
    assert runtime.outputs_equal(expected, got), f"max diff {runtime.max_abs_diff(expected, got)}"
    assert [o.get_names() for o in original.outputs] == [o.get_names() for o in rebuilt.outputs]
    assert [i.get_names() for i in original.inputs] == [i.get_names() for i in rebuilt.inputs]
    assert any(np.size(o) for o in got)
