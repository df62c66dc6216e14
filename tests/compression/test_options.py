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
    (dict(mode="int4_asym", dataset=[1]), "data-aware compression \\(dataset\\) is not supported by ovq yet"),
    (dict(mode="int4_asym", awq=True, scale_estimation=True), r"\(awq, scale_estimation\) is not supported"),
    (dict(mode="int4_asym", sensitivity_metric="max_activation_variance"), "max_activation_variance"),
    (dict(mode="int4_asym", group_size_fallback_mode="round"), "not a GroupSizeFallbackMode"),
])
def test_bad_options(kw, match):
    with pytest.raises(OptionError, match=match):
        _resolve(**kw)


def test_data_free_metric_accepted():
    assert _resolve(mode="int4_sym", sensitivity_metric="weight_quantization_error").ratio == 1.0


def test_api_rejects_before_touching_the_model(tmp_path):
    with pytest.raises(OptionError, match="compression_format"):
        ovq.compress_weights(tmp_path / "missing.xml", compression_format="fq")
    with pytest.raises(OptionError, match="ratio"):
        ovq.compress_weights(tmp_path / "missing.xml", mode="int4_sym", ratio=-0.1)
