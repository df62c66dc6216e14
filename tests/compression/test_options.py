"""compress_weights options: NNCF's enums, defaults and rejections, as OptionErrors."""

from __future__ import annotations

import pytest

import ovq
from ovq.compression.options import BackupMode, CompressWeightsMode, resolve_options
from ovq.errors import OptionError


def _resolve(**kw):
    base = dict(mode=None, ratio=None, group_size=None, all_layers=None, backup_mode=None, sensitivity_metric=None,
                dataset=None, awq=None, scale_estimation=None, gptq=None, lora_correction=None,
                group_size_fallback_mode=None)
    base.update(kw)
    return resolve_options(**base)


def test_defaults():
    o = _resolve()
    assert o.mode == CompressWeightsMode.INT8_ASYM and o.ratio == 1.0 and o.group_size == -1
    assert o.primary.element_type == "u8"
    o = _resolve(mode="INT4_SYM")
    assert o.group_size == 128 and o.backup_mode == BackupMode.INT8_ASYM and o.primary.element_type == "i4"
    assert _resolve(mode=ovq.CompressWeightsMode.INT4_ASYM, backup_mode=ovq.BackupMode.NONE).backup is None


@pytest.mark.parametrize("kw,match", [
    (dict(mode="int5"), "mode='int5' is not a CompressWeightsMode"),
    (dict(mode="nf4"), "mode='nf4' is not supported by ovq"),
    (dict(mode="int4_asym", ratio=1.5), r"ratio=1\.5 is outside \[0, 1\]"),
    (dict(mode="int4_asym", ratio="x"), "ratio='x' is not a number"),
    (dict(mode="int4_asym", group_size=0), "group_size=0 must be a positive integer or -1"),
    (dict(mode="int4_asym", group_size=12.5), "group_size=12.5 is not an integer"),
    (dict(mode="int8_asym", ratio=0.5), "int8_asym .* takes no ratio"),
    (dict(mode="int8_sym", group_size=64, all_layers=True), "takes no group_size, all_layers"),
    (dict(mode="int8_asym", backup_mode="int8_sym"), "takes no backup_mode"),
    (dict(mode="int4_asym", backup_mode="fp8_e4m3"), "backup_mode='fp8_e4m3' is not supported"),
    (dict(mode="int8_asym", dataset=[1]), "int8_asym .* takes no dataset"),
    (dict(mode="int8_sym", awq=True), "int8_sym .* takes no awq"),
    (dict(mode="int4_asym", scale_estimation=True), "scale_estimation=True needs a dataset"),
    (dict(mode="int4_asym", gptq=True, dataset=[1]), "gptq is not implemented in ovq"),
    (dict(mode="int4_asym", lora_correction=True, dataset=[1]), "lora_correction is not implemented"),
    (dict(mode="int4_asym", ratio=0.5, sensitivity_metric="max_activation_variance"),
     "sensitivity_metric=max_activation_variance ranks layers by activation statistics and needs a dataset"),
    (dict(mode="int4_asym", dataset=[1], subset_size=0), "subset_size=0 must be a positive integer"),
    (dict(mode="int4_asym", group_size_fallback_mode="round"), "not a GroupSizeFallbackMode"),
])
def test_bad_options(kw, match):
    with pytest.raises(OptionError, match=match):
        _resolve(**kw)


def test_data_free_metric_accepted():
    assert _resolve(mode="int4_sym", sensitivity_metric="weight_quantization_error").ratio == 1.0


def test_data_aware_defaults():
    """NNCF 3.4: the metric defaults to MAX_ACTIVATION_VARIANCE with a dataset; AWQ runs
    without one (data-free); statistics are needed only when an option uses them."""
    from ovq.compression.options import SensitivityMetric

    o = _resolve(mode="int4_asym", dataset=[1])
    assert o.sensitivity_metric == SensitivityMetric.MAX_ACTIVATION_VARIANCE and o.subset_size == 128
    assert o.data_aware and not o.needs_statistics  # ratio 1, no correction: nothing to measure
    assert _resolve(mode="int4_asym", dataset=[1], ratio=0.8).needs_statistics
    o = _resolve(mode="int4_asym", awq=True)
    assert o.awq and not o.data_aware and not o.needs_statistics
    assert _resolve(mode="int4_asym").sensitivity_metric == SensitivityMetric.WEIGHT_QUANTIZATION_ERROR
    # a data-aware metric without a ratio below 1 is accepted without data, as NNCF (ratio None)
    assert _resolve(mode="int4_asym", sensitivity_metric="mean_activation_magnitude").ratio == 1.0


def test_api_rejects_before_touching_the_model(tmp_path):
    with pytest.raises(OptionError, match="compression_format"):
        ovq.compress_weights(tmp_path / "missing.xml", compression_format="fq")
    with pytest.raises(OptionError, match="ratio"):
        ovq.compress_weights(tmp_path / "missing.xml", mode="int4_sym", ratio=-0.1)
