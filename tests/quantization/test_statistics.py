"""The statistics pass: in-graph reductions against numpy on the same tensors."""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

from ovq.quantization.dataset import select_subset
from ovq.quantization.statistics import Observation, collect_statistics

RNG = np.random.default_rng(5)


def _model() -> ov.Model:
    x = ops.parameter([1, 3, 20, 18], np.float32, name="x")
    y = ops.multiply(x, ops.constant(np.float32(2.0)))
    y.set_friendly_name("y")
    return ov.Model([ops.relu(y)], [x], "stats")


def test_reductions_match_numpy():
    xs = [RNG.standard_normal((1, 3, 20, 18)).astype(np.float32) for _ in range(5)]
    obs = [Observation("mm", "y"), Observation("ch", "y", minmax=False, channel_axis=1),
           Observation("sc", "y", minmax=False, sample_channel_axis=1),
           Observation("mean", "y", minmax=False, mean_axis=1),
           Observation("mean2", "y", minmax=False, mean_axis=1, mean_stride=2)]
    stats, report = collect_statistics(_model(), obs, select_subset(xs, None))
    ys = np.concatenate([2 * x for x in xs])
    assert report.samples == 5
    assert stats["mm"].mins == pytest.approx(ys.reshape(5, -1).min(1))
    assert stats["mm"].maxs == pytest.approx(ys.reshape(5, -1).max(1))
    assert stats["ch"].channel_max == pytest.approx(ys.max(axis=(0, 2, 3)))
    assert stats["sc"].sample_channel_min == pytest.approx(ys.min(axis=(2, 3)))
    assert stats["mean"].channel_mean == pytest.approx(ys.mean(axis=(0, 2, 3)), abs=1e-6)
    assert stats["mean"].shape == (1, 3, 20, 18)
    # mean_stride=2 reads every second row and column only
    assert stats["mean2"].channel_mean == pytest.approx(ys[:, :, ::2, ::2].mean(axis=(0, 2, 3)), abs=1e-6)
    assert stats["mean2"].shape == (1, 3, 20, 18)
