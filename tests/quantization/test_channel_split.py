"""Outlier channel splitting after SmoothQuant: the choice, the rewrite's exactness, the gain."""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

import ovq
from ovq.errors import OvqError
from ovq.ir import read_model
from ovq.quantization import channel_split as cs
from ovq.quantization import smooth_quant as sq
from ovq.quantization.placement import apply_plan, plan_placement
from ovq.quantization.statistics import TensorStats

RNG = np.random.default_rng(5)
K = 256
OUTLIERS = (3, 17, 40)
F32 = {"INFERENCE_PRECISION_HINT": "f32"}
EMULATED = {**F32, "LP_TRANSFORMS_MODE": False}  # FakeQuantize in float: no kernel saturation


def _model() -> ov.Model:
    """x [1,16,K] → a LayerNorm stand-in with three outlier channels → q and k projections."""
    x = ops.parameter([1, 16, K], np.float32, name="x")
    x.output(0).set_names({"x"})
    gain = np.ones(K, np.float32)
    gain[list(OUTLIERS)] = (60.0, 35.0, 80.0)
    src = ops.multiply(x, ops.constant(gain))
    src.set_friendly_name("norm")
    outs = []
    for name in ("q", "k"):
        w = (RNG.standard_normal((32, K)) * 0.2).astype(np.float32)
        m = ops.matmul(src, ops.constant(w), transpose_a=False, transpose_b=True)
        m.set_friendly_name(name)
        outs.append(m)
    return ov.Model(outs, [x], "outlier_projections")


def _samples(n: int) -> list[np.ndarray]:
    return [RNG.uniform(-1, 1, (1, 16, K)).astype(np.float32) for _ in range(n)]  # bounded: no clipping error


def _run(model: ov.Model, xs: list[np.ndarray], config: dict = F32) -> np.ndarray:
    c = ov.Core().compile_model(model, "CPU", config)
    return np.concatenate([np.concatenate([r.reshape(-1) for r in c(x).values()]) for x in xs])


def test_choose_pieces_splits_only_the_outlier_columns():
    w = RNG.standard_normal((32, 256)).astype(np.float32)
    w[:, [5, 9]] *= 30
    pieces, gain = cs.choose_pieces([(w, -1)])
    assert pieces[5] > 1 and pieces[9] > 1
    assert (np.delete(pieces, [5, 9]) == 1).mean() > 0.95
    assert pieces.sum() - 256 <= cs.MAX_EXTRA_SHARE * 256
    assert gain >= cs.MIN_GAIN_DB
    # the same weights stored [in, out] (input axis -2) give the same choice
    again, _ = cs.choose_pieces([(w.T.copy(), -2)])
    assert (again == pieces).all()


def test_no_split_without_outlier_columns():
    assert cs.choose_pieces([(RNG.standard_normal((32, 256)).astype(np.float32), -1)]) is None


def test_split_index_copies_each_channel_and_pairs_large_with_small():
    pieces = np.array([1, 3, 1, 2])
    index = cs.split_index(pieces, np.array([1.0, 9.0, 2.0, 8.0]))  # pieces of 1, 3, 2, 4
    assert np.bincount(index).tolist() == pieces.tolist()
    assert index.tolist() == [3, 0, 3, 2, 1, 1, 1]  # pairs (4, 1), (4, 2), (3, 3), (3)


def _strip_fake_quantize(model: ov.Model) -> ov.Model:
    for op in model.get_ordered_ops():
        if op.get_type_name() == "FakeQuantize":
            for target in list(op.output(0).get_target_inputs()):
                target.replace_source_output(op.input_value(0))
    model.validate_nodes_and_infer_types()
    return model


def test_split_keeps_the_fp_function_and_copies_the_channels():
    model = _model()
    g = read_model(model)
    g.infer_shapes()
    table = apply_plan(g, plan_placement(g, "CPU", model_type="transformer"))
    (group,) = sq.find_groups(g, table)
    x = np.abs(RNG.standard_normal((8, K))) + 0.1
    x[:, list(OUTLIERS)] *= 60
    (smoothed,) = sq.smooth(g, [group], {group.key: TensorStats(sample_channel_min=-x, sample_channel_max=x)},
                            table, alpha=0.95)
    done = cs.split_group(g, smoothed, table)
    assert done is not None
    record, split = done
    assert split.extra == record.index.size - K > 0
    copies = np.bincount(record.index, minlength=K)
    assert set(np.flatnonzero(copies > 1).tolist()) <= set(OUTLIERS) and (copies >= 1).all()
    gather = g.find("norm/split_channels")
    assert g.op(gather).type == "Gather"
    assert sorted(d for d, _ in g.consumers(gather, 0)) == sorted(group.fqs)
    for m in group.members:
        assert sq.const_source(g, m.weight_fq, 0)[1].shape == (32, record.index.size)
    held = _samples(4)
    got, want = _run(_strip_fake_quantize(g.to_ov()), held), _run(model, held)
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_split_lowers_the_quantization_error_and_is_reported():
    model, xs, held = _model(), _samples(24), _samples(8)
    fp = _run(model, held)
    split, rep = ovq.quantize(model, xs, model_type="transformer", return_report=True)
    plain, rep0 = ovq.quantize(model, xs, model_type="transformer", channel_split=False, return_report=True)
    assert len(rep.channel_splits) == 1 and rep0.channel_splits == []
    assert rep.channel_splits[0].extra > 0
    assert "channel split: 1 smoothed groups" in rep.format()
    assert "channel_split" in rep.phases and "channel_split" not in rep0.phases

    def err(q: ov.Model, config: dict) -> float:
        return float(np.square(_run(q, held, config) - fp).sum() / np.square(fp).sum())

    assert err(split, EMULATED) < 0.5 * err(plain, EMULATED)
    assert err(split, F32) < err(plain, F32)  # on this CPU's INT8 kernels, after the overflow fix


def test_channel_split_is_validated_and_needs_smooth_quant():
    with pytest.raises(OvqError, match="channel_split"):
        ovq.quantize(_model(), _samples(2), model_type="transformer", channel_split="yes")
    _, rep = ovq.quantize(_model(), _samples(4), model_type="transformer", smooth_quant=False, return_report=True)
    assert rep.channel_splits == [] and "channel_split" not in rep.phases


def test_cli_splits_by_default_and_no_channel_split_turns_it_off(tmp_path):
    from ovq_testing.cli import run_cli

    model = tmp_path / "m.xml"
    ov.save_model(_model(), model, compress_to_fp16=False)
    np.save(tmp_path / "x.npy", np.concatenate(_samples(8)))
    args = ("quantize", model, "-o", tmp_path / "q.xml", "--data", tmp_path / "x.npy", "--model-type", "transformer",
            "--no-audit")
    assert "channel split: 1 smoothed groups" in run_cli(*args).stdout
    assert "channel split" not in run_cli(*args, "--no-channel-split").stdout


def test_analyze_folds_the_split_weights_back():
    model, xs = _model(), _samples(8)
    q = ovq.quantize(model, xs, model_type="transformer")
    table = ovq.analyze(model, q, xs[:2])
    rows = {r.name: r for r in table.rows}
    for name in ("q", "k"):
        assert rows[name].weight_nmse is not None and 0 < rows[name].weight_nmse < 1e-3
