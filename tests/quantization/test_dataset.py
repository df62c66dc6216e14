"""Calibration samples checked against the model's inputs (:class:`InputSpec`)."""

from __future__ import annotations

import numpy as np
import pytest
from models import if_on_scalar

import ovq
from ovq.quantization.dataset import InputSpec
from ovq.runtime import compile_model, infer

def _samples(n: int = 6) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    return [{"x": rng.standard_normal((1, 4, 8, 8)).astype(np.float32), "cond": np.array(k % 2 == 0)}
            for k in range(n)]


def test_scalar_input_keeps_its_0d_shape():
    spec = InputSpec(if_on_scalar())
    x, cond = spec.arrays(_samples(1)[0], 0)
    assert cond.shape == () and cond.dtype == np.bool_ and x.flags.c_contiguous
    strided = np.zeros((1, 4, 8, 16), np.float32)[..., ::2]  # a non-contiguous sample is copied
    assert spec.arrays({"x": strided, "cond": True}, 0)[0].flags.c_contiguous


def test_quantize_a_model_with_a_scalar_boolean_input():
    fp = if_on_scalar()
    data = _samples()
    q = ovq.quantize(fp, data, overflow_fix="enable")
    fqs = [op.get_friendly_name() for op in q.get_ops() if op.get_type_name() == "FakeQuantize"]
    assert fqs  # the conv after the If is quantized
    ref_c, got_c = compile_model(fp), compile_model(q)
    for sample in data[:2]:  # both branches
        ref, got = infer(ref_c, sample)[0], infer(got_c, sample)[0]
        assert np.linalg.norm(got - ref) < 0.05 * np.linalg.norm(ref)


@pytest.mark.parametrize("value", [np.array([True]), np.array([[1.0]], np.float32)])
def test_a_1d_value_for_a_scalar_input_is_refused(value):
    with pytest.raises(ovq.CalibrationDataError, match="'cond'"):
        InputSpec(if_on_scalar()).arrays({"x": np.zeros((1, 4, 8, 8), np.float32), "cond": value}, 0)


def test_subset_peek_reads_the_first_sample_only_from_rereadable_sources():
    from ovq.quantization.dataset import Dataset, select_subset

    items = [np.full((1, 2), i, np.float32) for i in range(10)]
    subset = select_subset(items, 4, seed=0)
    assert (subset.peek() == next(iter(subset))).all()
    assert select_subset(iter(items), 4, seed=0).peek() is None  # a one-shot iterator is never consumed
    doubled = select_subset(Dataset(items, lambda x: x * 2), 4, seed=0)
    assert (doubled.peek() == next(iter(doubled))).all()
