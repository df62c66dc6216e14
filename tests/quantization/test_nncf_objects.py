"""NNCF's Dataset, IgnoredScope and Subgraph (stand-ins with NNCF's public attributes)
accepted by ovq.quantize and ovq.quantize_with_accuracy_control, and ovq.Dataset with
NNCF's keyword names and methods."""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

import ovq
from ovq.quantization.ignored_scope import IgnoredScopeError

from . import nncf_standins as nncf

RNG = np.random.default_rng(5)


def _model() -> ov.Model:
    x = ops.parameter([1, 3, 8, 8], np.float32, name="x")
    x.output(0).set_names({"x"})
    c = ops.convolution(x, ops.constant((RNG.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32)),
                        [1, 1], [1, 1], [1, 1], [1, 1])
    c.set_friendly_name("conv1")
    r = ops.relu(c)
    r.set_friendly_name("relu")
    c2 = ops.convolution(r, ops.constant((RNG.standard_normal((2, 4, 1, 1)) * 0.3).astype(np.float32)),
                         [1, 1], [0, 0], [0, 0], [1, 1])
    c2.set_friendly_name("conv2")
    return ov.Model([c2], [x], "two_convs")


ITEMS = [(RNG.standard_normal((1, 3, 8, 8)).astype(np.float32), i) for i in range(8)]


def _transform(item):
    return item[0]


def _fq_names(model: ov.Model) -> set[str]:
    return {o.get_friendly_name() for o in model.get_ops() if o.get_type_name() == "FakeQuantize"}


def _consts(model: ov.Model) -> list[np.ndarray]:
    return [o.get_data().copy() for o in model.get_ops() if o.get_type_name() == "Constant"]


def test_ovq_dataset_takes_nncf_keyword_names_and_methods():
    ds = ovq.Dataset(data_source=ITEMS, transform_func=_transform)
    assert ds.get_length() == 8 and ds.get_batch_size() is None
    got = list(ds.get_inference_data([3, 1]))
    np.testing.assert_array_equal(got[0], ITEMS[1][0])
    np.testing.assert_array_equal(got[1], ITEMS[3][0])
    assert [i for _, i in ds.get_data([0, 5])] == [0, 5]
    assert ovq.Dataset(iter(ITEMS)).get_length() is None

    class Loader(list):
        batch_size = 4

    assert ovq.Dataset(Loader(ITEMS), _transform).get_batch_size() == 4
    assert ovq.Dataset(ITEMS, transform_fn=_transform).transform_fn is _transform  # the older alias
    with pytest.raises(ovq.CalibrationDataError, match="not both"):
        ovq.Dataset(ITEMS, _transform, transform_fn=_transform)


def test_quantize_accepts_an_nncf_dataset_and_draws_the_same_subset():
    model = _model()
    ours = ovq.quantize(model, ovq.Dataset(ITEMS, _transform), subset_size=5)
    theirs = ovq.quantize(model, nncf.Dataset(ITEMS, _transform), subset_size=5)
    for a, b in zip(_consts(ours), _consts(theirs), strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_nncf_dataset_without_length_takes_the_first_items():
    class Stream:
        def __iter__(self):
            return iter(ITEMS)

    model = _model()
    first = ovq.quantize(model, [t for t, _ in ITEMS[:3]], subset_size=3)
    streamed = ovq.quantize(model, nncf.Dataset(Stream(), _transform), subset_size=3)
    for a, b in zip(_consts(first), _consts(streamed), strict=True):
        np.testing.assert_array_equal(a, b)


def test_nncf_ignored_scope_names_types_patterns_subgraphs():
    model = _model()
    full = _fq_names(ovq.quantize(model, nncf.Dataset(ITEMS, _transform), compress_weights=False))
    assert "conv2/fq_weights_1" in full
    by_name = _fq_names(ovq.quantize(model, nncf.Dataset(ITEMS, _transform), compress_weights=False,
                                     ignored_scope=nncf.IgnoredScope(names=["conv2"])))
    assert "conv2/fq_weights_1" not in by_name and "conv1/fq_weights_1" in by_name
    by_type = _fq_names(ovq.quantize(model, ITEMS and [t for t, _ in ITEMS], compress_weights=False,
                                     ignored_scope=nncf.IgnoredScope(types=["Convolution"])))
    assert by_type == set()
    by_pattern = _fq_names(ovq.quantize(model, [t for t, _ in ITEMS], compress_weights=False,
                                        ignored_scope=nncf.IgnoredScope(patterns=["conv[2]"])))
    assert by_pattern == by_name
    sub = nncf.Subgraph(inputs=["relu"], outputs=["conv2"])
    by_sub = _fq_names(ovq.quantize(model, [t for t, _ in ITEMS], compress_weights=False,
                                    ignored_scope=nncf.IgnoredScope(subgraphs=[sub])))
    assert by_sub == by_name
    ours = _fq_names(ovq.quantize(model, [t for t, _ in ITEMS], compress_weights=False,
                                  ignored_scope=ovq.IgnoredScope(subgraphs=[ovq.Subgraph(inputs=["relu"],
                                                                                         outputs=["conv2"])])))
    assert ours == by_name


def test_nncf_ignored_scope_validate():
    model = _model()
    samples = [t for t, _ in ITEMS]
    with pytest.raises(IgnoredScopeError, match="'nope'"):
        ovq.quantize(model, samples, ignored_scope=nncf.IgnoredScope(names=["nope"]))
    q = ovq.quantize(model, samples, ignored_scope=nncf.IgnoredScope(names=["nope"], validate=False))
    assert _fq_names(q)


def test_accuracy_control_accepts_nncf_dataset_and_ignored_scope():
    model = _model()
    seen = []

    def validate(compiled, data):
        items = list(data)
        seen.append(len(items))
        assert all(isinstance(x, np.ndarray) for x in items)  # the transformed items
        return 0.5

    q = ovq.quantize_with_accuracy_control(
        model, nncf.Dataset(ITEMS, _transform), nncf.Dataset(ITEMS[:3], _transform), validate,
        ignored_scope=nncf.IgnoredScope(names=["conv2"]), compress_weights=False)
    assert seen == [3, 3]
    assert "conv2/fq_weights_1" not in _fq_names(q)
