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


def test_running_aggregates_are_order_independent_and_bit_identical():
    """Results arriving out of order fold to exactly the stacked per-sample reduction."""
    from ovq.quantization.statistics import TensorStats, _Running

    rows = [{"cmin": RNG.standard_normal(7).astype(np.float32), "cmax": RNG.standard_normal(7).astype(np.float32),
             "mean": RNG.standard_normal(7).astype(np.float32), "shape": np.array([1 + k % 3, 7, 5, 4])}
            for k in range(40)]
    running = _Running(2)
    for index in [*range(1, 40, 2), *range(0, 40, 2)]:  # every odd sample first
        running.add(index, [rows[index], {}])
    st, other = TensorStats(), TensorStats()
    running.fill(0, st)
    running.fill(1, other)
    weights = np.array([np.prod(r["shape"]) for r in rows], np.float64)
    means = np.stack([r["mean"] for r in rows]).astype(np.float64)
    assert np.array_equal(st.channel_mean, (weights[:, None] * means).sum(0) / weights.sum())
    assert np.array_equal(st.channel_min, np.min(np.stack([r["cmin"] for r in rows]), 0).astype(np.float64))
    assert np.array_equal(st.channel_max, np.max(np.stack([r["cmax"] for r in rows]), 0).astype(np.float64))
    assert st.shape == (1, 7, 5, 4)
    assert running.pending == {}
    assert other.channel_mean is None and other.channel_max is None


def _dynamic_model() -> ov.Model:
    x = ops.parameter([-1, 3, -1, -1], np.float32, name="x")
    y = ops.multiply(x, ops.constant(np.float32(2.0)))
    y.set_friendly_name("y")
    return ov.Model([ops.clamp(y, -1.0, 1.0)], [x], "stats_dynamic")


@pytest.mark.parametrize("specialize", [True, False])
def test_packed_reductions_over_dynamic_shapes(specialize):
    """Batch and spatial dims vary per sample: per-sample rows ([N] each), per-channel
    vectors and runtime shapes all come back through the packed outputs. Specialized,
    the first sample runs on a static copy and the others on the dynamic model, and
    the two parts merge to the same statistics."""
    from ovq.quantization.statistics import instrument

    shapes = [(1, 3, 8, 6), (2, 3, 5, 7), (3, 3, 4, 4)]
    xs = [RNG.standard_normal(s).astype(np.float32) for s in shapes]
    obs = [Observation("mm", "y"), Observation("ch", "y", minmax=False, channel_axis=1),
           Observation("sc", "y", minmax=False, sample_channel_axis=1),
           Observation("mean", "y", minmax=False, mean_axis=1)]
    inst, _slots, packing = instrument(_dynamic_model(), obs)
    assert len(inst.outputs) == 1 + 3  # the model's output, the flat, rows and index packs
    assert packing.rows is not None and packing.flat is not None and packing.index is not None
    stats, report = collect_statistics(_dynamic_model(), obs, select_subset(xs, None), specialize=specialize)
    assert (report.static_shapes, report.models) == (((1, 3, 8, 6),), 2) if specialize else (None, 1)
    ys = [2 * x for x in xs]
    rows = [row for y in ys for row in y]  # 6 rows over the 3 samples
    np.testing.assert_array_equal(stats["mm"].mins, [r.min() for r in rows])
    np.testing.assert_array_equal(stats["mm"].maxs, [r.max() for r in rows])
    np.testing.assert_array_equal(stats["ch"].channel_max, np.max([y.max(axis=(0, 2, 3)) for y in ys], 0))
    np.testing.assert_array_equal(stats["sc"].sample_channel_max, np.stack([y.max(axis=(0, 2, 3)) for y in ys]))
    total = sum(y.size for y in ys)
    expected = sum(y.sum(axis=(0, 2, 3)).astype(np.float64) for y in ys) / (total / 3)
    np.testing.assert_allclose(stats["mean"].channel_mean, expected, rtol=1e-5)
    assert stats["mean"].shape == shapes[0]


def test_dynamic_model_is_specialized_to_the_samples_shape():
    """Samples of one shape on a dynamic model: one static compile, and the statistics
    equal the dynamic model's bit for bit."""
    xs = [RNG.standard_normal((2, 3, 6, 5)).astype(np.float32) for _ in range(4)]
    obs = [Observation("mm", "y"), Observation("ch", "y", minmax=False, channel_axis=1),
           Observation("mean", "y", minmax=False, mean_axis=1, mean_stride=2)]
    fixed, report = collect_statistics(_dynamic_model(), obs, select_subset(xs, None))
    assert (report.static_shapes, report.models) == (((2, 3, 6, 5),), 1)
    dynamic, report = collect_statistics(_dynamic_model(), obs, select_subset(xs, None), specialize=False)
    assert (report.static_shapes, report.models) == (None, 1)
    for key in ("mm", "ch", "mean"):
        for name in ("mins", "maxs", "channel_min", "channel_max", "channel_mean", "mean_weight", "shape"):
            a, b = getattr(fixed[key], name), getattr(dynamic[key], name)
            assert (a is None and b is None) or np.array_equal(a, b), (key, name)
    assert fixed["mean"].mean_weight == 4 * (2 * 3 * 6 * 5)  # Σ elements of the observed tensor


def test_model_with_data_dependent_shapes_stays_dynamic():
    """The positive values of x (NonZero + Gather) have a data-dependent length, so a
    static-input copy would still have dynamic shapes: the pass keeps the dynamic model."""
    x = ops.parameter([-1, 4], np.float32, name="x")
    y = ops.multiply(x, ops.constant(np.float32(2.0)))
    y.set_friendly_name("y")
    flat = ops.reshape(x, ops.constant(np.array([-1], np.int64)), special_zero=False)
    where = ops.squeeze(ops.non_zero(ops.greater(flat, ops.constant(np.float32(0.0)))), ops.constant(0))
    positives = ops.gather(flat, where, ops.constant(0))
    model = ov.Model([ops.relu(y), positives], [x], "data_dependent")
    xs = [RNG.standard_normal((1, 4)).astype(np.float32) for _ in range(2)]
    stats, report = collect_statistics(model, [Observation("y", "y")], select_subset(xs, None))
    assert report.static_shapes is None and report.models == 1
    np.testing.assert_array_equal(stats["y"].maxs, [(2 * v).max() for v in xs])


def test_static_copy_that_fails_to_build_falls_back_to_the_dynamic_model(monkeypatch):
    from ovq.quantization import statistics

    def broken(model, shapes):  # a static copy OpenVINO cannot take (here: the observed op is gone)
        x = ops.parameter(list(shapes[0]), np.float32, name="x")
        return ov.Model([ops.relu(x)], [x], "broken")

    monkeypatch.setattr(statistics, "_reshaped", broken)
    xs = [RNG.standard_normal((1, 3, 4, 4)).astype(np.float32) for _ in range(3)]
    stats, report = collect_statistics(_dynamic_model(), [Observation("mm", "y")], select_subset(xs, None))
    assert (report.static_shapes, report.models) == (None, 1)
    np.testing.assert_array_equal(stats["mm"].maxs, [(2 * x).max() for x in xs])


def test_non_finite_observed_tensor_is_named_even_when_the_output_is_finite():
    from ovq.errors import NonFiniteError

    xs = [RNG.standard_normal((1, 3, 4, 4)).astype(np.float32) for _ in range(3)]
    xs[2][0, 1, 2, 3] = 3e38  # finite, but y = 2x overflows to +Inf; the Clamp output stays finite
    with pytest.raises(NonFiniteError, match=r"y:0.*calibration sample 2"):
        collect_statistics(_dynamic_model(), [Observation("mm", "y")], select_subset(xs, None))


def test_dynamic_channel_axis_is_not_mixed_with_per_sample_rows():
    """A per-channel vector over a dynamic channel dim is rank-1 and dynamic like the
    per-sample rows, but its length is C, not N: it must go to the flat pack."""
    x = ops.parameter([-1, -1, 5], np.float32, name="x")
    y = ops.multiply(x, ops.constant(np.float32(3.0)))
    y.set_friendly_name("y")
    model = ov.Model([ops.relu(y)], [x], "dynamic_channels")
    xs = [RNG.standard_normal(s).astype(np.float32) for s in [(2, 3, 5), (1, 3, 5), (4, 3, 5)]]
    obs = [Observation("mm", "y"), Observation("ch", "y", minmax=False, channel_axis=1)]
    stats, _ = collect_statistics(model, obs, select_subset(xs, None))
    ys = [3 * v for v in xs]
    np.testing.assert_array_equal(stats["mm"].maxs, [row.max() for y in ys for row in y])
    np.testing.assert_array_equal(stats["ch"].channel_max, np.max([y.max(axis=(0, 2)) for y in ys], 0))


def test_observed_tensors_with_different_first_dims_fall_back_to_flat_packing():
    """Dynamic shapes hide that a Reshape doubles the first dim: the per-sample rows of
    y ([N]) and z ([2N]) cannot be stacked, so the first sample's run fails and the model
    is rebuilt without the rows pack; every sample still counts, in order."""
    from ovq.quantization.statistics import instrument

    x = ops.parameter([-1, 4], np.float32, name="x")
    y = ops.multiply(x, ops.constant(np.float32(2.0)))
    y.set_friendly_name("y")
    z = ops.reshape(y, ops.constant(np.array([-1, 2], np.int64)), special_zero=False)
    z.set_friendly_name("z")
    model = ov.Model([ops.relu(z)], [x], "batch_reshape")
    assert instrument(model, [Observation("y", "y")])[2].rows is not None
    xs = [RNG.standard_normal((n, 4)).astype(np.float32) for n in (3, 1, 2)]
    stats, report = collect_statistics(model, [Observation("y", "y"), Observation("z", "z")],
                                       select_subset(xs, None))
    assert report.samples == 3
    ys = [2 * v for v in xs]
    np.testing.assert_array_equal(stats["y"].maxs, [r.max() for y in ys for r in y])
    np.testing.assert_array_equal(stats["z"].mins, [r.min() for y in ys for r in y.reshape(-1, 2)])


@pytest.mark.parametrize(("observation", "match"), [
    (Observation("gone", "nope"), "no op named 'nope'"),
    (Observation("port", "y", out_index=3), "op 'y' has no output 3"),
])
def test_an_observation_the_model_lacks_is_an_observation_error(observation, match):
    from ovq.errors import ObservationError

    xs = [RNG.standard_normal((1, 3, 20, 18)).astype(np.float32)]
    with pytest.raises(ObservationError, match=match):
        collect_statistics(_model(), [observation], select_subset(xs, None))


def test_per_channel_statistic_of_a_dynamic_rank_is_an_observation_error():
    from ovq.errors import ObservationError
    from ovq.quantization.statistics import instrument

    x = ops.parameter(ov.PartialShape.dynamic(), np.float32, name="x")
    y = ops.multiply(x, ops.constant(np.float32(2.0)))
    y.set_friendly_name("y")
    model = ov.Model([ops.relu(y)], [x], "dynamic_rank")
    with pytest.raises(ObservationError, match="output 0 of 'y' has a dynamic rank"):
        instrument(model, [Observation("ch", "y", minmax=False, channel_axis=1)])


def test_openvino_compile_failure_is_an_inference_error(monkeypatch):
    from ovq.errors import InferenceError
    from ovq.ir import bridge

    class _Core:
        def compile_model(self, *args, **kwargs):
            raise RuntimeError("Exception from src/plugin.cpp:1:\nno kernel for op y\n")

    monkeypatch.setattr(bridge, "core", lambda: _Core())
    xs = [RNG.standard_normal((1, 3, 20, 18)).astype(np.float32)]
    with pytest.raises(InferenceError, match="OpenVINO cannot compile the statistics model"):
        collect_statistics(_model(), [Observation("mm", "y")], select_subset(xs, None))


def test_a_static_first_dim_is_not_a_batch():
    """A [3, 5] MatMul input is one sample of 3 rows, not 3 samples: its per-sample
    min/max cover the whole tensor (NNCF's reduction)."""
    import openvino as ov
    import openvino.opset13 as ops

    from ovq.quantization.dataset import select_subset
    from ovq.quantization.statistics import Observation, collect_statistics

    x = ops.parameter([3, 5], np.float32, name="x")
    r = ops.relu(x)
    r.set_friendly_name("r")
    mm = ops.matmul(r, ops.constant(np.ones((5, 2), np.float32)), False, False)
    model = ov.Model([mm], [x])
    rng = np.random.default_rng(0)
    data = [rng.standard_normal((3, 5)).astype(np.float32) for _ in range(4)]
    stats, _ = collect_statistics(model, [Observation("r", "r", 0)], select_subset(data, None))
    st = stats["r"]
    assert st.maxs.shape == (4,)
    np.testing.assert_allclose(st.maxs, [np.maximum(d, 0).max() for d in data], rtol=1e-6)


def test_stateful_model_keeps_its_assign_sinks_and_quantizes():
    """ReadValue/Assign: the instrumented model keeps the sinks (OpenVINO refuses a
    ReadValue without its Assign) and every sample starts from the initial state."""
    import models

    import ovq
    from ovq.quantization.audit import runtime_audit
    from ovq.runtime import compile_model, infer

    fp = models.stateful()
    rng = np.random.default_rng(21)
    xs = [rng.standard_normal((1, 4, 8, 8)).astype(np.float32) for _ in range(6)]
    stats, _report = collect_statistics(fp, [Observation("sum", "sum")], select_subset(xs, None))
    # the state is reset before every sample: sum = x + 0.5 each time, never x + earlier sums
    assert stats["sum"].maxs == pytest.approx([float((x + 0.5).max()) for x in xs])
    q, report = ovq.quantize(fp, xs, overflow_fix="enable", return_report=True)
    assert report.quantized_ops == 1 and runtime_audit(q).int8_count == 1
    assert [s.get_type_name() for s in q.get_sinks()] == ["Assign"]
    ref, got = infer(compile_model(fp), [xs[0]])[0], infer(compile_model(q), [xs[0]])[0]
    assert np.linalg.norm(got - ref) < 0.05 * np.linalg.norm(ref)


def test_a_0d_tensor_is_reduced_whole_per_inference():
    """A scalar computed from the input (a dynamic scale, as in models quantized at run
    time) has no batch axis: one min/max per inference, no reshape over a batch."""
    x = ops.parameter([2, 5], np.float32, name="x")
    s = ops.reduce_max(ops.abs(x), ops.constant(np.array([0, 1], np.int64)), False)
    s.set_friendly_name("s")
    model = ov.Model([ops.multiply(x, s)], [x])
    rng = np.random.default_rng(0)
    data = [rng.standard_normal((2, 5)).astype(np.float32) for _ in range(3)]
    stats, _ = collect_statistics(model, [Observation("s", "s", 0)], select_subset(data, None))
    np.testing.assert_allclose(stats["s"].maxs, [np.abs(d).max() for d in data], rtol=1e-6)


@pytest.mark.parametrize("dynamic", [False, True])
def test_weight_compression_statistics_match_numpy(dynamic):
    """wc_channel_axis / wc_scalars: per-sample channel means, elements per channel and
    NNCF's mixed-precision scalars, equal to numpy on the observed tensor; with samples
    of two token counts (a dynamic model switching passes) the rows stay in sample order."""
    rng = np.random.default_rng(5)
    x = ops.parameter([1, -1, 6] if dynamic else [1, 4, 6], ov.Type.f32, name="x")
    y = ops.matmul(x, ops.constant(rng.standard_normal((6, 3)).astype(np.float32)), False, False)
    y.set_friendly_name("mm")
    model = ov.Model([y], [x])
    lengths = [4, 4, 7, 4, 7] if dynamic else [4] * 5
    data = [rng.standard_normal((1, t, 6)).astype(np.float32) for t in lengths]
    obs = Observation("x", "x", minmax=False, wc_channel_axis=-1,
                      wc_scalars=("var_mean", "var_max", "absmax_mean", "sq_mean"))
    st = collect_statistics(model, [obs], select_subset(data, None), progress=False)[0]["x"]
    np.testing.assert_allclose(st.sample_mean, np.stack([d.mean(axis=(0, 1)) for d in data]), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(st.sample_tokens, lengths)
    var = [d.var(axis=-2) for d in data]
    np.testing.assert_allclose(st.sample_scalars["var_mean"], [v.mean() for v in var], rtol=1e-5)
    np.testing.assert_allclose(st.sample_scalars["var_max"], [v.max() for v in var], rtol=1e-5)
    np.testing.assert_allclose(st.sample_scalars["absmax_mean"], [np.abs(d).max(axis=-2).mean() for d in data],
                               rtol=1e-5)
    np.testing.assert_allclose(st.sample_scalars["sq_mean"], [(d * d).sum() / d.size for d in data], rtol=1e-5)
