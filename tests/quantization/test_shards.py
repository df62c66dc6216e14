"""The statistics pass in contiguous slices, merged: bit for bit the unsharded pass."""

from __future__ import annotations

import dataclasses

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

from ovq.errors import OptionError
from ovq.ir import read_model, save_model
from ovq.quantization.dataset import select_subset
from ovq.quantization.phases import QuantizeOptions, QuantizeSession
from ovq.quantization.shards import (
    collect_partial_statistics,
    merge_partial_statistics,
    shard_slices,
)
from ovq.quantization.statistics import Observation, TensorStats, collect_statistics

RNG = np.random.default_rng(3)


def _net(dynamic: bool = False) -> ov.Model:
    """Conv -> bias -> ReLU -> Conv -> bias -> flatten -> MatMul (one of each observed kind)."""
    x = ops.parameter([1, 3, -1, -1] if dynamic else [1, 3, 8, 8], np.float32, name="x")
    x.output(0).set_names({"x"})
    c1 = ops.convolution(x, ops.constant((RNG.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)),
                         [1, 1], [1, 1], [1, 1], [1, 1])
    c1.set_friendly_name("conv1")
    b1 = ops.add(c1, ops.constant((RNG.standard_normal((1, 8, 1, 1)) * 0.1 + 0.2).astype(np.float32)))
    b1.set_friendly_name("conv1/bias")
    r = ops.relu(b1)
    r.set_friendly_name("relu")
    c2 = ops.convolution(r, ops.constant((RNG.standard_normal((6, 8, 3, 3)) * 0.3).astype(np.float32)),
                         [1, 1], [1, 1], [1, 1], [1, 1])
    c2.set_friendly_name("conv2")
    b2 = ops.add(c2, ops.constant((RNG.standard_normal((1, 6, 1, 1)) * 0.1).astype(np.float32)))
    b2.set_friendly_name("conv2/bias")
    pooled = ops.reduce_mean(b2, ops.constant(np.array([2, 3], np.int64)), keep_dims=False)
    pooled.set_friendly_name("pool")
    mm = ops.matmul(pooled, ops.constant((RNG.standard_normal((6, 5)) * 0.3).astype(np.float32)), False, False)
    mm.set_friendly_name("fc")
    return ov.Model([mm], [x], "shards_net")


def _samples(n: int, sizes: tuple[int, ...] = (8,)) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.standard_normal((1, 3, sizes[i * len(sizes) // n], sizes[i * len(sizes) // n])).astype(np.float32)
            * 2 for i in range(n)]


OBSERVATIONS = [
    Observation("x", "x", minmax=True),
    Observation("relu", "relu", minmax=True, nonnegative=True, mean_axis=1),
    Observation("relu/pc", "relu", minmax=False, channel_axis=1),
    Observation("bias2", "conv2/bias", minmax=True, quantile=0.01, mean_axis=1, mean_stride=2),
    Observation("pool", "pool", minmax=False, sample_channel_axis=1, keep_samples=5, mean_axis=1),
    Observation("relu/whole", "relu", minmax=True, whole_samples=2),
]
FIELDS = [f.name for f in dataclasses.fields(TensorStats) if f.name not in ("sample_means", "sample_weights")]


def _assert_identical(merged: dict, whole: dict) -> None:
    assert merged.keys() == whole.keys()
    for key in whole:
        for name in FIELDS:
            a, b = getattr(merged[key], name), getattr(whole[key], name)
            assert (a is None) == (b is None), (key, name)
            if isinstance(b, list):  # whole tensors of the first samples
                assert len(a) == len(b) and all(x.tobytes() == y.tobytes() for x, y in zip(a, b)), (key, name)
            elif isinstance(b, np.ndarray):
                assert a.dtype == b.dtype and a.shape == b.shape, (key, name)
                assert a.tobytes() == b.tobytes(), (key, name)  # bit for bit
            else:
                assert a == b, (key, name)


@pytest.mark.parametrize("shards", [1, 2, 3, 9])
def test_merged_slices_equal_the_unsharded_pass_bit_for_bit(shards):
    # magnitudes 1e7 and 1e-5 alternate: the float64 sums behind the means are then
    # inexact, so summing per-slice means by weight (not per sample in order) would
    # differ in the last bits (it does, for 2 and 3 slices here)
    model = _net()
    samples = [s * (1e7 if i % 2 == 0 else 1e-5) for i, s in enumerate(_samples(9))]
    subset = select_subset(samples, None)
    whole, _ = collect_statistics(model, OBSERVATIONS, subset)
    parts = [collect_partial_statistics(model, OBSERVATIONS, subset, piece) for piece in shard_slices(9, shards)]
    merged, report = merge_partial_statistics(parts[::-1])  # any order
    _assert_identical(merged, whole)
    assert report.samples == 9
    assert merged["pool"].kept.shape[0] == 5  # the first five samples, not five per slice
    assert len(merged["relu/whole"].whole) == 2  # the first two, not two per slice


@pytest.mark.parametrize("shards", [2, 3])
def test_a_shape_change_inside_a_slice_is_merged_as_the_unsharded_pass_does(shards):
    # 8x8 samples then 12x12 ones: the unsharded pass specialises on 8x8 and switches to the
    # dynamic model at sample 5, combining the two parts' means by weight
    model, samples = _net(dynamic=True), _samples(10, sizes=(8, 8, 12, 12, 12, 12))
    subset = select_subset(samples, None)
    whole, whole_report = collect_statistics(model, OBSERVATIONS, subset)
    assert whole_report.models == 2
    parts = [collect_partial_statistics(model, OBSERVATIONS, subset, piece) for piece in shard_slices(10, shards)]
    merged, _ = merge_partial_statistics(parts)
    _assert_identical(merged, whole)


def test_a_session_quantizing_from_merged_slices_writes_the_same_model(tmp_path):
    model, samples = _net(), _samples(12)
    options = QuantizeOptions.build(subset_size=10)
    plain = read_model(model)
    QuantizeSession(plain, samples, options).run()

    # each slice in its own session (as each shard task does), then one session from the merge
    parts = []
    for piece in shard_slices(10, 3):
        session = QuantizeSession(read_model(model), samples, options)
        observations = session.observations()
        parts.append(collect_partial_statistics(session.state.fp_model, observations, session.state.subset, piece))
    sharded = read_model(model)
    QuantizeSession(sharded, samples, options, collect=lambda state, obs: merge_partial_statistics(parts)).run()

    save_model(plain, tmp_path / "plain.xml")
    save_model(sharded, tmp_path / "sharded.xml")
    assert (tmp_path / "plain.bin").read_bytes() == (tmp_path / "sharded.bin").read_bytes()
    assert (tmp_path / "plain.xml").read_bytes() == (tmp_path / "sharded.xml").read_bytes()
    x = samples[0]
    fp = ov.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})([x])[0]
    q = ov.compile_model(ov.Core().read_model(tmp_path / "sharded.xml"), "CPU",
                         {"INFERENCE_PRECISION_HINT": "f32"})([x])[0]
    assert np.abs(q - fp).max() < 0.1 * np.abs(fp).max()  # quantized, and still the same function


def test_bad_shard_counts_are_option_errors():
    with pytest.raises(OptionError, match="shards: must be a positive integer, got 0"):
        shard_slices(5, 0)
    with pytest.raises(OptionError, match=r"shards: 6 slices of 5 calibration samples: at most 5"):
        shard_slices(5, 6)
    with pytest.raises(OptionError, match="has no length"):
        shard_slices(None, 2)
    assert [(s.start, s.stop) for s in shard_slices(7, 3)] == [(0, 3), (3, 5), (5, 7)]


def test_partials_that_do_not_tile_the_subset_are_refused():
    model, samples = _net(), _samples(4)
    subset = select_subset(samples, None)
    a = collect_partial_statistics(model, OBSERVATIONS[:1], subset, shard_slices(4, 2)[0])
    with pytest.raises(OptionError, match="do not tile the subset"):
        merge_partial_statistics([a])
    other = collect_partial_statistics(model, OBSERVATIONS[1:2], subset, shard_slices(4, 2)[1])
    with pytest.raises(OptionError, match="observed other tensors"):
        merge_partial_statistics([a, other])


def test_errors_in_a_slice_name_the_slice():
    from ovq.errors import CalibrationDataError

    samples = _samples(6)
    samples[4] = samples[4] * np.nan
    with pytest.raises(CalibrationDataError, match=r"calibration sample 1: input 'x' holds NaN or Inf "
                                                   r"\(shard 2/2: subset samples 3\.\.5; sample numbers count from"):
        collect_partial_statistics(_net(), OBSERVATIONS, select_subset(samples, None), shard_slices(6, 2)[1])
