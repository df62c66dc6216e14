"""Options of :func:`ovq.compress_weights`: NNCF 3.4's enums, defaults and checks.

Matches ``nncf.compress_weights`` spellings: :class:`CompressWeightsMode`,
:class:`BackupMode`, :class:`SensitivityMetric` and :class:`GroupSizeFallbackMode`
(enum members or their lowercase string values). :func:`resolve_options` applies NNCF's
defaults (``ratio`` 1, ``group_size`` 128 for 4-bit modes and -1 for 8-bit ones,
``backup_mode`` INT8_ASYM) and its rejections, and returns one
:class:`CompressionOptions` record; every bad value is an :class:`~ovq.errors.OptionError`
naming the option. Data-aware options follow NNCF 3.4 too: ``dataset`` with
``subset_size``, the four data-aware sensitivity metrics (MAX_ACTIVATION_VARIANCE is
the default with a dataset), ``awq`` (data-aware with a dataset, data-free without) and
``scale_estimation`` (needs a dataset); ``gptq`` and ``lora_correction`` are refused.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ovq.errors import OptionError


class CompressWeightsMode(str, Enum):
    """Primary precision (NNCF's enum; ovq implements the four integer modes)."""

    INT8_SYM = "int8_sym"
    INT8_ASYM = "int8_asym"
    INT4_SYM = "int4_sym"
    INT4_ASYM = "int4_asym"
    INT3_SYM = "int3_sym"
    INT2_SYM = "int2_sym"
    NF4 = "nf4"
    CB4 = "cb4"
    MXFP4 = "mxfp4"
    MXFP8_E4M3 = "mxfp8_e4m3"
    FP8_E4M3 = "fp8_e4m3"
    FP4 = "fp4"
    NVFP4 = "nvfp4"
    CODEBOOK = "codebook"
    ADAPTIVE_CODEBOOK = "adaptive_codebook"


class BackupMode(str, Enum):
    """Precision of the layers not in the primary precision (``NONE`` keeps them float)."""

    NONE = "none"
    INT8_SYM = "int8_sym"
    INT8_ASYM = "int8_asym"
    MXFP8_E4M3 = "mxfp8_e4m3"
    FP8_E4M3 = "fp8_e4m3"


class SensitivityMetric(str, Enum):
    """How layers are ranked when ``ratio < 1`` (ovq implements the data-free one)."""

    WEIGHT_QUANTIZATION_ERROR = "weight_quantization_error"
    HESSIAN_INPUT_ACTIVATION = "hessian_input_activation"
    MEAN_ACTIVATION_VARIANCE = "mean_activation_variance"
    MAX_ACTIVATION_VARIANCE = "max_activation_variance"
    MEAN_ACTIVATION_MAGNITUDE = "mean_activation_magnitude"


class GroupSizeFallbackMode(str, Enum):
    """What to do with a layer whose input channels ``group_size`` does not divide."""

    ERROR = "error"
    IGNORE = "ignore"
    ADJUST = "adjust"


SUPPORTED_MODES = (CompressWeightsMode.INT8_SYM, CompressWeightsMode.INT8_ASYM,
                   CompressWeightsMode.INT4_SYM, CompressWeightsMode.INT4_ASYM)
SUPPORTED_BACKUP = (BackupMode.NONE, BackupMode.INT8_SYM, BackupMode.INT8_ASYM)
MIN_ADJUSTED_GROUP_SIZE = 32
"""NNCF's ``min_adjusted_group_size``: the smallest group ``ADJUST`` falls back to."""


@dataclass(frozen=True)
class Precision:
    """One integer weight format: bits, symmetric or not, group size (-1: per channel)."""

    bits: int
    sym: bool
    group_size: int = -1

    @property
    def element_type(self) -> str:
        """The IR element type of the stored levels (``u8``, ``i8``, ``u4``, ``i4``)."""
        return f"{'i' if self.sym else 'u'}{self.bits}"

    @property
    def label(self) -> str:
        """``int4_asym g128`` style name used in reports."""
        base = f"int{self.bits}_{'sym' if self.sym else 'asym'}"
        return base if self.group_size == -1 else f"{base} g{self.group_size}"


@dataclass(frozen=True)
class CompressionOptions:
    """The resolved options of one compression run."""

    mode: CompressWeightsMode
    ratio: float
    group_size: int
    all_layers: bool
    backup_mode: BackupMode
    group_size_fallback: GroupSizeFallbackMode
    sensitivity_metric: SensitivityMetric = SensitivityMetric.WEIGHT_QUANTIZATION_ERROR
    data_aware: bool = False
    """A dataset was given (statistics are collected if an option below needs them)."""
    awq: bool = False
    scale_estimation: bool = False
    subset_size: int = 128

    @property
    def data_aware_ratio(self) -> bool:
        """Layers are ranked by activation statistics (NNCF: metric is data-aware and ratio != 1)."""
        return self.sensitivity_metric != SensitivityMetric.WEIGHT_QUANTIZATION_ERROR and self.ratio != 1.0

    @property
    def needs_statistics(self) -> bool:
        """A statistics pass over the dataset is needed (NNCF's data-aware mixed precision or compression)."""
        return self.data_aware and (self.data_aware_ratio or self.awq or self.scale_estimation)

    @property
    def primary(self) -> Precision:
        bits = 8 if self.mode in (CompressWeightsMode.INT8_SYM, CompressWeightsMode.INT8_ASYM) else 4
        sym = self.mode in (CompressWeightsMode.INT8_SYM, CompressWeightsMode.INT4_SYM)
        return Precision(bits, sym, self.group_size)

    @property
    def backup(self) -> Precision | None:
        """Per-channel 8-bit backup precision, or ``None`` (``BackupMode.NONE``: float)."""
        if self.backup_mode == BackupMode.NONE:
            return None
        return Precision(8, self.backup_mode == BackupMode.INT8_SYM, -1)

    @property
    def is_int8(self) -> bool:
        return self.primary.bits == 8


def _enum(cls: type[Enum], value: Any, option: str) -> Any:
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        key = value.strip().lower().replace("-", "_")
        for member in cls:
            if member.value == key:
                return member
    valid = ", ".join(m.value for m in cls)
    raise OptionError(f"{option}={value!r} is not a {cls.__name__}; valid: {valid}")


def resolve_options(*, mode: Any, ratio: Any, group_size: Any, all_layers: Any, backup_mode: Any,
                    sensitivity_metric: Any, dataset: Any, awq: Any, scale_estimation: Any, gptq: Any,
                    lora_correction: Any, group_size_fallback_mode: Any, subset_size: Any = 128) -> CompressionOptions:
    """NNCF's defaults and rejections for integer compression, data-free or data-aware.

    Raises:
        OptionError: an unknown or unsupported mode, ``ratio`` outside [0, 1], a bad
            ``group_size`` or ``subset_size``, an option NNCF rejects with INT8 modes,
            ``scale_estimation`` or a data-aware metric (with a ratio) without a
            dataset, or ``gptq`` / ``lora_correction`` (not implemented).
    """
    mode = _enum(CompressWeightsMode, CompressWeightsMode.INT8_ASYM if mode is None else mode, "mode")
    if mode not in SUPPORTED_MODES:
        raise OptionError(f"mode={mode.value!r} is not supported by ovq; supported: "
                          + ", ".join(m.value for m in SUPPORTED_MODES))
    metric = None if sensitivity_metric is None else _enum(SensitivityMetric, sensitivity_metric,
                                                           "sensitivity_metric")
    has_data = dataset is not None
    asked = [name for name, v in (("dataset", has_data), ("awq", awq), ("scale_estimation", scale_estimation),
                                  ("gptq", gptq), ("lora_correction", lora_correction)) if v]
    int8 = mode in (CompressWeightsMode.INT8_SYM, CompressWeightsMode.INT8_ASYM)
    if int8:
        # NNCF: INT8 modes take none of the mixed-precision or data-aware options.
        bad = [name for name, v in (("ratio", ratio not in (None, 1, 1.0)),
                                    ("group_size", group_size not in (None, -1)),
                                    ("all_layers", bool(all_layers)),
                                    ("sensitivity_metric", metric is not None),
                                    ("backup_mode", backup_mode is not None)) if v]
        bad += [a for a in asked if a not in bad and not a.startswith("sensitivity_metric")]
        if bad:
            raise OptionError(f"mode={mode.value} quantizes every weight per channel and takes no "
                              f"{', '.join(bad)} (as nncf.compress_weights); use a 4-bit mode for mixed precision")
    refused = [name for name, v in (("gptq", gptq), ("lora_correction", lora_correction)) if v]
    if refused:
        raise OptionError(f"{' and '.join(refused)} {'is' if len(refused) == 1 else 'are'} not implemented in ovq; "
                          "data-aware compression supports awq, scale_estimation and the data-aware "
                          "sensitivity metrics")
    if scale_estimation and not has_data:
        raise OptionError("scale_estimation=True needs a dataset (as nncf.compress_weights: 'Scale estimation, "
                          "GPTQ or Lora Correction algorithm is defined, but dataset is None')")
    if (ratio not in (None, 0) and not has_data and metric is not None
            and metric != SensitivityMetric.WEIGHT_QUANTIZATION_ERROR):
        raise OptionError(f"sensitivity_metric={metric.value} ranks layers by activation statistics and needs a "
                          "dataset (or use weight_quantization_error)")
    if isinstance(subset_size, bool) or not isinstance(subset_size, numbers.Integral) or subset_size <= 0:
        raise OptionError(f"subset_size={subset_size!r} must be a positive integer")
    if metric is None:
        metric = SensitivityMetric.MAX_ACTIVATION_VARIANCE if has_data else SensitivityMetric.WEIGHT_QUANTIZATION_ERROR
    r = 1.0 if ratio is None else ratio
    try:
        r = float(r)
    except (TypeError, ValueError):
        raise OptionError(f"ratio={ratio!r} is not a number in [0, 1]") from None
    if not 0.0 <= r <= 1.0:
        raise OptionError(f"ratio={ratio!r} is outside [0, 1]")
    if group_size is None:
        gs = -1 if int8 else 128
    else:
        if isinstance(group_size, bool) or not isinstance(group_size, numbers.Real) or (
                float(group_size) != int(group_size)):
            raise OptionError(f"group_size={group_size!r} is not an integer")
        gs = int(group_size)
        if gs < 1 and gs != -1:
            raise OptionError(f"group_size={group_size!r} must be a positive integer or -1 (per channel)")
    backup = BackupMode.INT8_ASYM if backup_mode is None else _enum(BackupMode, backup_mode, "backup_mode")
    if backup not in SUPPORTED_BACKUP:
        raise OptionError(f"backup_mode={backup.value!r} is not supported by ovq; supported: "
                          + ", ".join(b.value for b in SUPPORTED_BACKUP))
    fallback = _enum(GroupSizeFallbackMode,
                     GroupSizeFallbackMode.ERROR if group_size_fallback_mode is None else group_size_fallback_mode,
                     "group_size_fallback_mode")
    return CompressionOptions(mode, r, gs, bool(all_layers), backup, fallback, metric, has_data, bool(awq),
                              bool(scale_estimation), int(subset_size))
