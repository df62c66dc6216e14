"""NNCF's advanced parameters: every field mapped onto an ovq option, or refused by name;
ovq's own records and NNCF-shaped stand-ins (duck typing) alike; and real quantize runs
showing the mapped option takes effect."""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

import ovq
from ovq.errors import OptionError
from ovq.quantization.advanced_parameters import accuracy_options_from, quantize_options_from

from . import nncf_standins as nncf

RNG = np.random.default_rng(11)


def _conv_model() -> ov.Model:
    x = ops.parameter([1, 3, 8, 8], np.float32, name="x")
    x.output(0).set_names({"x"})
    c = ops.convolution(x, ops.constant((RNG.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32)),
                        [1, 1], [1, 1], [1, 1], [1, 1])
    c.set_friendly_name("conv")
    b = ops.add(c, ops.constant(np.array([0.1, -0.2, 0.3, 0.05], np.float32).reshape(1, 4, 1, 1)))
    b.set_friendly_name("conv/bias")
    r = ops.relu(b)
    r.set_friendly_name("relu")
    c2 = ops.convolution(r, ops.constant((RNG.standard_normal((2, 4, 1, 1)) * 0.3).astype(np.float32)),
                         [1, 1], [0, 0], [0, 0], [1, 1])
    c2.set_friendly_name("conv2")
    return ov.Model([c2], [x], "adv")


SAMPLES = [RNG.standard_normal((1, 3, 8, 8)).astype(np.float32) * (1 + i) for i in range(6)]


def _fq(model: ov.Model, name: str) -> tuple[np.ndarray, ...]:
    op = next(o for o in model.get_ops() if o.get_friendly_name() == name)
    return tuple(op.input_value(i).get_node().get_data().copy() for i in range(1, 5))


def _options(cls_module, **kw):
    return quantize_options_from(cls_module.AdvancedQuantizationParameters(**kw))


@pytest.mark.parametrize("mod", [ovq, nncf], ids=["ovq", "nncf-standin"])
class TestMapping:
    def test_defaults_map_to_nothing(self, mod):
        assert _options(mod) == {}

    @pytest.mark.parametrize("member,expected", [("ENABLE", "enable"), ("FIRST_LAYER", "first_layer"),
                                                 ("DISABLE", "disable")])
    def test_overflow_fix(self, mod, member, expected):
        assert _options(mod, overflow_fix=getattr(mod.OverflowFix, member)) == {"overflow_fix": expected}

    def test_disable_bias_correction(self, mod):
        assert _options(mod, disable_bias_correction=True) == {"fast_bias_correction": None}

    def test_range_estimators(self, mod):
        st, ag = mod.StatisticsType, mod.AggregatorType
        scp, rep = mod.StatisticsCollectorParameters, mod.RangeEstimatorParameters
        minmax = rep(scp(st.MIN, ag.MIN), scp(st.MAX, ag.MAX))
        assert _options(mod, activations_range_estimator_params=minmax) == {"activations_range": "minmax"}
        mean = rep(scp(st.MIN, ag.MEAN), scp(st.ABS_MAX, ag.MEAN))
        assert _options(mod, activations_range_estimator_params=mean) == {"activations_range": "mean_minmax"}
        q = rep(scp(st.QUANTILE, ag.MEAN, quantile_outlier_prob=1e-3),
                scp(st.QUANTILE, ag.MEAN, quantile_outlier_prob=1e-3))
        assert _options(mod, activations_range_estimator_params=q) == {"activations_range": "quantile",
                                                                       "outlier_prob": 1e-3}
        with pytest.raises(OptionError, match=r"activations_range_estimator_params: min \(min, median\)"):
            _options(mod, activations_range_estimator_params=rep(scp(st.MIN, ag.MEDIAN), scp(st.MAX, ag.MEDIAN)))
        with pytest.raises(OptionError, match=r"activations_range_estimator_params\.max\.clipping_value"):
            _options(mod, activations_range_estimator_params=rep(max=scp(clipping_value=6.0)))
        # NNCF's default weight estimator (global min/max) is what ovq does: accepted.
        assert _options(mod, weights_range_estimator_params=minmax) == {}
        with pytest.raises(OptionError, match=r"weights_range_estimator_params\.min: \(min, mean\)"):
            _options(mod, weights_range_estimator_params=mean)

    def test_quantization_params(self, mod):
        qp = mod.QuantizationParameters
        asym = getattr(mod, "QuantizationScheme", None) or ovq.quantization.advanced_parameters.QuantizationScheme
        assert _options(mod, activations_quantization_params=qp(mode=asym.ASYMMETRIC)) == {"preset": "mixed"}
        assert _options(mod, activations_quantization_params=qp(num_bits=8, mode=asym.SYMMETRIC)) == \
            {"preset": "performance"}
        with pytest.raises(OptionError, match=r"weights_quantization_params\.mode='asymmetric'"):
            _options(mod, weights_quantization_params=qp(mode=asym.ASYMMETRIC))
        with pytest.raises(OptionError, match=r"activations_quantization_params\.num_bits=4"):
            _options(mod, activations_quantization_params=qp(num_bits=4))
        with pytest.raises(OptionError, match=r"activations_quantization_params\.per_channel"):
            _options(mod, activations_quantization_params=qp(per_channel=True))

    def test_smooth_quant_alphas_apply_to_transformers_only(self, mod):
        sq = mod.AdvancedSmoothQuantParameters
        p = mod.AdvancedQuantizationParameters(smooth_quant_alphas=sq(matmul=0.5))
        assert quantize_options_from(p, model_type="transformer") == {"smooth_quant": 0.5}
        assert quantize_options_from(p) == {}  # NNCF runs SmoothQuant for transformers only
        off = mod.AdvancedQuantizationParameters(smooth_quant_alphas=sq(matmul=-1))
        assert quantize_options_from(off, model_type=ovq.ModelType.TRANSFORMER) == {"smooth_quant": False}
        old = mod.AdvancedQuantizationParameters(smooth_quant_alpha=0.75)
        assert quantize_options_from(old, model_type="transformer") == {"smooth_quant": 0.75}
        with pytest.raises(OptionError, match=r"smooth_quant_alphas\.convolution=0\.5"):
            _options(mod, smooth_quant_alphas=sq(convolution=0.5))

    @pytest.mark.parametrize("field,value", [
        ("quantize_outputs", True), ("disable_channel_alignment", False), ("batchwise_statistics", True),
        ("backend_params", {"x": 1}),
    ])
    def test_unsupported_field_is_named(self, mod, field, value):
        with pytest.raises(OptionError, match=rf"advanced_parameters\.{field}="):
            _options(mod, **{field: value})

    def test_propagation_rule_and_bias_correction_params(self, mod):
        rule = getattr(mod, "QuantizerPropagationRule", None) or \
            ovq.quantization.advanced_parameters.QuantizerPropagationRule
        with pytest.raises(OptionError, match="quantizer_propagation_rule"):
            _options(mod, quantizer_propagation_rule=rule.DO_NOT_MERGE_BRANCHES)
        assert _options(mod, quantizer_propagation_rule=rule.MERGE_ALL_IN_ONE) == {}
        bc = mod.AdvancedBiasCorrectionParameters
        with pytest.raises(OptionError, match=r"bias_correction_params\.threshold"):
            _options(mod, bias_correction_params=bc(threshold=5.0))
        with pytest.raises(OptionError, match=r"bias_correction_params\.apply_for_all_nodes"):
            _options(mod, bias_correction_params=bc(apply_for_all_nodes=True))

    def test_inplace_statistics_changes_nothing(self, mod):
        assert _options(mod, inplace_statistics=False) == {}

    def test_accuracy_restorer(self, mod):
        p = mod.AdvancedAccuracyRestorerParameters(max_num_iterations=3, ranking_subset_size=50, num_ranking_workers=2)
        assert accuracy_options_from(p) == {"max_num_iterations": 3, "ranking_subset_size": 50}
        with pytest.raises(OptionError, match="tune_hyperparams"):
            accuracy_options_from(mod.AdvancedAccuracyRestorerParameters(tune_hyperparams=True))
        restore = getattr(mod, "RestoreMode", None) or ovq.quantization.advanced_parameters.RestoreMode
        with pytest.raises(OptionError, match="restore_mode"):
            accuracy_options_from(mod.AdvancedAccuracyRestorerParameters(restore_mode=restore.ONLY_ACTIVATIONS))


def test_a_field_ovq_does_not_know_is_refused_by_name():
    """A newer NNCF field (set away from its default) is not silently dropped."""
    from dataclasses import dataclass

    @dataclass
    class Newer(nncf.AdvancedQuantizationParameters):
        some_future_switch: bool = False

    assert quantize_options_from(Newer()) == {}
    with pytest.raises(OptionError, match=r"advanced_parameters\.some_future_switch=True"):
        quantize_options_from(Newer(some_future_switch=True))


@pytest.mark.parametrize("mod", [ovq, nncf], ids=["ovq", "nncf-standin"])
def test_quantize_honours_advanced_parameters(mod):
    model = _conv_model()
    base = ovq.quantize(model, SAMPLES, compress_weights=False, overflow_fix="first_layer")
    # overflow_fix: DISABLE keeps the first conv's weight range, FIRST_LAYER doubles it
    disabled = ovq.quantize(model, SAMPLES, compress_weights=False,
                            advanced_parameters=mod.AdvancedQuantizationParameters(overflow_fix=mod.OverflowFix.DISABLE))
    lo_b, hi_b = _fq(base, "conv/fq_weights_1")[2:]
    lo_d, hi_d = _fq(disabled, "conv/fq_weights_1")[2:]
    np.testing.assert_allclose(hi_b, 2 * hi_d, rtol=1e-6)
    # the range estimator: MINMAX widens the input range to the global extremes
    st, ag, scp = mod.StatisticsType, mod.AggregatorType, mod.StatisticsCollectorParameters
    minmax = mod.RangeEstimatorParameters(scp(st.MIN, ag.MIN), scp(st.MAX, ag.MAX))
    wide = ovq.quantize(model, SAMPLES, compress_weights=False, advanced_parameters=mod.AdvancedQuantizationParameters(
        activations_range_estimator_params=minmax))
    assert float(_fq(wide, "x/fq_output_0")[1].max()) == pytest.approx(max(float(np.abs(s).max()) for s in SAMPLES))
    assert float(_fq(base, "x/fq_output_0")[1].max()) < float(_fq(wide, "x/fq_output_0")[1].max())
    # disable_bias_correction: the bias stays as it was
    nobc = ovq.quantize(model, SAMPLES, compress_weights=False,
                        advanced_parameters=mod.AdvancedQuantizationParameters(disable_bias_correction=True))
    ref = ovq.quantize(model, SAMPLES, compress_weights=False, fast_bias_correction=None)
    for a, b in zip(nobc.get_ops(), ref.get_ops(), strict=True):
        if a.get_type_name() == "Constant":
            np.testing.assert_array_equal(a.get_data(), b.get_data())


def test_advanced_parameters_contradicting_an_argument_is_an_error():
    p = ovq.AdvancedQuantizationParameters(overflow_fix=ovq.OverflowFix.ENABLE)
    with pytest.raises(OptionError, match="overflow_fix='disable' contradicts advanced_parameters"):
        ovq.quantize(_conv_model(), SAMPLES, overflow_fix="disable", advanced_parameters=p)
    same = ovq.quantize(_conv_model(), SAMPLES, overflow_fix="enable", advanced_parameters=p)
    assert same is not None


@pytest.mark.parametrize("mode", [nncf.QuantizationMode.FP8_E4M3, "fp8_e5m2"])
def test_fp8_mode_is_refused(mode):
    with pytest.raises(OptionError, match="FP8 quantization .* not supported"):
        ovq.quantize(_conv_model(), SAMPLES, mode=mode)


def test_accuracy_control_takes_nncf_advanced_parameters():
    model = _conv_model()
    calls = []

    def validate(compiled, data):
        calls.append(len(list(data)))
        return 1.0

    q, report = ovq.quantize_with_accuracy_control(
        model, nncf.Dataset(SAMPLES), nncf.Dataset(SAMPLES[:2]), validate, return_report=True, compress_weights=False,
        advanced_quantization_parameters=nncf.AdvancedQuantizationParameters(overflow_fix=nncf.OverflowFix.DISABLE),
        advanced_accuracy_restorer_parameters=nncf.AdvancedAccuracyRestorerParameters(max_num_iterations=2))
    assert report.met and calls == [2, 2]  # FP and INT8, each on the 2 validation items
    disabled = ovq.quantize(model, SAMPLES, compress_weights=False, overflow_fix="disable")
    halved = ovq.quantize(model, SAMPLES, compress_weights=False, overflow_fix="first_layer")
    np.testing.assert_array_equal(_fq(q, "conv/fq_weights_1")[3], _fq(disabled, "conv/fq_weights_1")[3])
    assert not np.array_equal(_fq(q, "conv/fq_weights_1")[3], _fq(halved, "conv/fq_weights_1")[3])
