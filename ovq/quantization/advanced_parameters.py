"""NNCF 3.4's advanced-parameter records, and their translation into ``ovq.quantize`` options.

The classes below carry NNCF's names, fields and defaults
(``nncf/quantization/advanced_parameters.py`` and ``range_estimator.py``), so code that
builds ``AdvancedQuantizationParameters(...)`` needs only its import changed. The
translators read any object with those public attributes — ovq's records or NNCF's own
(duck typing: ovq never imports ``nncf``):

* :func:`quantize_options_from` maps ``AdvancedQuantizationParameters`` onto the keyword
  options of :func:`ovq.quantize` (``overflow_fix``, ``activations_range``,
  ``outlier_prob``, ``smooth_quant``, ``fast_bias_correction``, ``preset``);
* :func:`accuracy_options_from` maps ``AdvancedAccuracyRestorerParameters`` onto
  :func:`ovq.quantize_with_accuracy_control`'s;
* :func:`check_mode` refuses NNCF's ``mode=`` (FP8).

A field ovq has no equivalent for is accepted at its NNCF default and is an
:class:`~ovq.errors.OptionError` naming it at any other value: it is never dropped.
"""

from __future__ import annotations

import dataclasses
import enum
import sys
from dataclasses import dataclass, field
from typing import Any

from ovq.errors import OptionError

__all__ = [
    "AdvancedAccuracyRestorerParameters",
    "AdvancedBiasCorrectionParameters",
    "AdvancedQuantizationParameters",
    "AdvancedSmoothQuantParameters",
    "AggregatorType",
    "FP8QuantizationParameters",
    "FP8Type",
    "OverflowFix",
    "QuantizationMode",
    "QuantizationParameters",
    "QuantizationScheme",
    "QuantizerPropagationRule",
    "RangeEstimatorParameters",
    "RangeEstimatorParametersSet",
    "RestoreMode",
    "StatisticsCollectorParameters",
    "StatisticsType",
    "accuracy_options_from",
    "check_mode",
    "quantize_options_from",
]


class OverflowFix(str, enum.Enum):
    """NNCF's ``OverflowFix``: which 8-bit weights get a halved range (see ``overflow_fix``)."""

    ENABLE = "enable"
    FIRST_LAYER = "first_layer_only"
    DISABLE = "disable"


class QuantizationMode(str, enum.Enum):
    """NNCF's ``mode=`` values (FP8); ovq refuses them (:func:`check_mode`)."""

    FP8_E4M3 = "fp8_e4m3"
    FP8_E5M2 = "fp8_e5m2"


class QuantizationScheme(str, enum.Enum):
    """NNCF's quantizer ``mode`` in :class:`QuantizationParameters`."""

    SYMMETRIC = "symmetric"
    ASYMMETRIC = "asymmetric"


class FP8Type(str, enum.Enum):
    """NNCF's FP8 destination types (not supported)."""

    E4M3 = "f8e4m3"
    E5M2 = "f8e5m2"


class QuantizerPropagationRule(enum.Enum):
    """NNCF's quantizer merging rules; ovq's placement is ``MERGE_ALL_IN_ONE`` (NNCF's default)."""

    DO_NOT_MERGE_BRANCHES = 0
    MERGE_IF_ALL_BRANCHES_SAME = 1
    MERGE_WITH_POTENTIAL_REQUANTIZATION = 2
    MERGE_ALL_IN_ONE = 3


class StatisticsType(enum.Enum):
    """Per-sample statistic of a range estimator."""

    MAX = "max"
    MIN = "min"
    ABS_MAX = "abs_max"
    QUANTILE = "quantile"
    ABS_QUANTILE = "abs_quantile"
    MEAN = "mean"
    RAW = "raw"


class AggregatorType(enum.Enum):
    """How per-sample statistics are aggregated over the samples."""

    MEAN = "mean"
    MAX = "max"
    MIN = "min"
    MEDIAN = "median"
    MEAN_NO_OUTLIERS = "mean_no_outliers"
    MEDIAN_NO_OUTLIERS = "median_no_outliers"
    HISTOGRAM = "histogram"


class RestoreMode(enum.Enum):
    """How accuracy control reverts a layer; ovq reverts activations and weights."""

    ACTIVATIONS_AND_WEIGHTS = "activations_and_weights"
    ONLY_ACTIVATIONS = "only_activations"


@dataclass
class QuantizationParameters:
    """Quantizer settings for weights or activations (``None``: the preset's)."""

    num_bits: int | None = None
    mode: QuantizationScheme | str | None = None
    signedness_to_force: bool | None = None
    per_channel: bool | None = None
    narrow_range: bool | None = None


@dataclass
class FP8QuantizationParameters:
    """FP8 conversion settings (not supported)."""

    destination_type: FP8Type | None = None


@dataclass
class AdvancedBiasCorrectionParameters:
    """Bias correction knobs; ovq supports the defaults only."""

    apply_for_all_nodes: bool = False
    threshold: float | None = None


@dataclass
class AdvancedSmoothQuantParameters:
    """SmoothQuant alphas per op type (negative: off); applied when ``model_type`` is transformer."""

    convolution: float = -1
    matmul: float = 0.95


@dataclass
class StatisticsCollectorParameters:
    """One bound of a range estimator: per-sample statistic, aggregator, clipping, quantile."""

    statistics_type: StatisticsType | None = None
    aggregator_type: AggregatorType | None = None
    clipping_value: float | None = None
    quantile_outlier_prob: float = 1e-4


@dataclass
class RangeEstimatorParameters:
    """How a quantizer's lower and upper bounds are estimated (``None`` fields: the default)."""

    min: StatisticsCollectorParameters = field(default_factory=StatisticsCollectorParameters)
    max: StatisticsCollectorParameters = field(default_factory=StatisticsCollectorParameters)


def _estimator(min_stat: StatisticsType, min_agg: AggregatorType, max_stat: StatisticsType,
               max_agg: AggregatorType) -> RangeEstimatorParameters:
    return RangeEstimatorParameters(StatisticsCollectorParameters(min_stat, min_agg),
                                    StatisticsCollectorParameters(max_stat, max_agg))


class RangeEstimatorParametersSet:
    """NNCF's named estimators; ovq computes MINMAX, MEAN_MINMAX and MEAN_QUANTILE."""

    MINMAX = _estimator(StatisticsType.MIN, AggregatorType.MIN, StatisticsType.MAX, AggregatorType.MAX)
    MEAN_MINMAX = _estimator(StatisticsType.MIN, AggregatorType.MEAN, StatisticsType.MAX, AggregatorType.MEAN)
    MEDIAN_MINMAX = _estimator(StatisticsType.MIN, AggregatorType.MEDIAN, StatisticsType.MAX, AggregatorType.MEDIAN)
    MEAN_NO_OUTLIERS_MINMAX = _estimator(StatisticsType.MIN, AggregatorType.MEAN_NO_OUTLIERS,
                                         StatisticsType.MAX, AggregatorType.MEAN_NO_OUTLIERS)
    MEAN_QUANTILE = _estimator(StatisticsType.QUANTILE, AggregatorType.MEAN, StatisticsType.QUANTILE,
                               AggregatorType.MEAN)
    HISTOGRAM = _estimator(StatisticsType.RAW, AggregatorType.HISTOGRAM, StatisticsType.RAW, AggregatorType.HISTOGRAM)


@dataclass
class AdvancedQuantizationParameters:
    """NNCF's ``AdvancedQuantizationParameters`` (3.4 fields and defaults); see
    :func:`quantize_options_from` for what each field becomes in ovq."""

    overflow_fix: OverflowFix | str | None = None
    quantize_outputs: bool = False
    inplace_statistics: bool = True
    disable_channel_alignment: bool = True
    disable_bias_correction: bool = False
    batchwise_statistics: bool | None = None
    activations_quantization_params: QuantizationParameters | FP8QuantizationParameters | None = None
    weights_quantization_params: QuantizationParameters | FP8QuantizationParameters | None = None
    quantizer_propagation_rule: QuantizerPropagationRule = QuantizerPropagationRule.MERGE_ALL_IN_ONE
    activations_range_estimator_params: RangeEstimatorParameters = field(default_factory=RangeEstimatorParameters)
    weights_range_estimator_params: RangeEstimatorParameters = field(default_factory=RangeEstimatorParameters)
    bias_correction_params: AdvancedBiasCorrectionParameters = field(default_factory=AdvancedBiasCorrectionParameters)
    smooth_quant_alphas: AdvancedSmoothQuantParameters = field(default_factory=AdvancedSmoothQuantParameters)
    smooth_quant_alpha: float | None = None
    backend_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class AdvancedAccuracyRestorerParameters:
    """NNCF's accuracy-restorer parameters; see :func:`accuracy_options_from`."""

    max_num_iterations: int = sys.maxsize
    tune_hyperparams: bool = False
    ranking_subset_size: int | None = None
    num_ranking_workers: int | None = None
    intermediate_model_dir: str | None = None
    restore_mode: RestoreMode = RestoreMode.ACTIVATIONS_AND_WEIGHTS


# ----------------------------------------------------------------------------- translation

_OVERFLOW_FIX = {"enable": "enable", "first_layer_only": "first_layer", "first_layer": "first_layer",
                 "disable": "disable"}


def _name(value: Any) -> Any:
    """An enum member's value (NNCF's or ovq's enums alike), lower-cased if a string."""
    if isinstance(value, enum.Enum):
        value = value.value
    return value.lower() if isinstance(value, str) else value


def _enum_name(value: Any) -> str:
    return value.name if isinstance(value, enum.Enum) else str(value)


def _unsupported(where: str, value: Any, why: str) -> OptionError:
    return OptionError(f"{where}={value!r} is not supported by ovq ({why}); leave it at NNCF's default")


def _check_known_fields(obj: Any, where: str, known: set[str]) -> None:
    """A dataclass field ovq does not know, set to a non-default value, is an error."""
    if not dataclasses.is_dataclass(obj):
        return
    for f in dataclasses.fields(obj):
        if f.name in known:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        value = getattr(obj, f.name)
        if _name(value) != _name(default):
            raise _unsupported(f"{where}.{f.name}", value, "ovq has no equivalent")


def _get(obj: Any, name: str, default: Any) -> Any:
    return getattr(obj, name, default) if obj is not None else default


def overflow_fix_option(value: Any) -> str | None:
    """NNCF's ``OverflowFix`` (member or value string) as ovq's ``overflow_fix`` string;
    None stays None (ovq's default)."""
    if value is None:
        return None
    name = _name(value)
    if name not in _OVERFLOW_FIX:
        raise OptionError(f"advanced_parameters.overflow_fix={value!r}: expected OverflowFix.ENABLE, "
                          "FIRST_LAYER or DISABLE")
    return _OVERFLOW_FIX[name]


def activations_range_option(params: Any, where: str) -> tuple[str | None, float | None]:
    """``(activations_range, outlier_prob)`` for a ``RangeEstimatorParameters``; ``None``
    for fields left at the default. Unset statistic/aggregator fields take NNCF's
    defaults (MIN/MAX per sample, MEAN over samples)."""
    if params is None:
        return None, None
    lo, hi = _get(params, "min", None), _get(params, "max", None)
    sides = []
    probs = []
    for side_name, side, default_stat in (("min", lo, "min"), ("max", hi, "max")):
        clip = _get(side, "clipping_value", None)
        if clip is not None:
            raise _unsupported(f"{where}.{side_name}.clipping_value", clip, "ranges are never clipped")
        stat = _name(_get(side, "statistics_type", None))
        agg = _name(_get(side, "aggregator_type", None))
        probs.append(float(_get(side, "quantile_outlier_prob", 1e-4)))
        sides.append((stat, agg))
    if all(s is None and a is None for s, a in sides) and probs == [1e-4, 1e-4]:
        return None, None
    (min_stat, min_agg), (max_stat, max_agg) = sides
    min_stat, min_agg = min_stat or "min", min_agg or "mean"
    max_stat, max_agg = max_stat or "max", max_agg or "mean"
    if max_stat == "abs_max":
        max_stat = "max"  # symmetric quantizers take the abs-max of the min/max statistics anyway
    combo = (min_stat, min_agg, max_stat, max_agg)
    estimator = {("min", "mean", "max", "mean"): "mean_minmax", ("min", "min", "max", "max"): "minmax",
                 ("quantile", "mean", "quantile", "mean"): "quantile"}.get(combo)
    if estimator is None:
        raise OptionError(
            f"{where}: min ({min_stat}, {min_agg}) / max ({max_stat}, {max_agg}) is not supported by ovq; "
            "it computes MEAN_MINMAX (min/mean, max/mean), MINMAX (min/min, max/max) and MEAN_QUANTILE "
            "(quantile/mean both)")
    if estimator == "quantile":
        if probs[0] != probs[1]:
            raise OptionError(f"{where}: min and max quantile_outlier_prob differ ({probs[0]} vs {probs[1]}); "
                              "ovq uses one outlier probability")
        return estimator, probs[0]
    return estimator, None


def _weights_range(params: Any, where: str) -> None:
    """ovq's weight ranges are NNCF's default (global min/max per channel); accept that only."""
    if params is None:
        return
    for side_name, want_stat, want_agg in (("min", ("min",), "min"), ("max", ("max", "abs_max"), "max")):
        side = _get(params, side_name, None)
        clip = _get(side, "clipping_value", None)
        if clip is not None:
            raise _unsupported(f"{where}.{side_name}.clipping_value", clip, "weight ranges are never clipped")
        stat, agg = _name(_get(side, "statistics_type", None)), _name(_get(side, "aggregator_type", None))
        if (stat is not None and stat not in want_stat) or (agg is not None and agg != want_agg):
            raise OptionError(f"{where}.{side_name}: ({stat}, {agg}) is not supported by ovq; weight ranges are "
                              "the global min/max per output channel (NNCF's default)")


def _quantizer_params(params: Any, where: str, *, weights: bool) -> str | None:
    """The preset a ``QuantizationParameters`` asks for (activations ``mode``), else None."""
    if params is None:
        return None
    if hasattr(params, "destination_type"):
        raise _unsupported(where, params, "FP8 conversion is not implemented")
    bits = _get(params, "num_bits", None)
    if bits not in (None, 8):
        raise _unsupported(f"{where}.num_bits", bits, "activations and weights are 8-bit")
    for name in ("signedness_to_force", "per_channel", "narrow_range"):
        value = _get(params, name, None)
        if value is not None:
            raise _unsupported(f"{where}.{name}", value, "the target's hardware descriptor decides it")
    mode = _name(_get(params, "mode", None))
    if mode is None:
        return None
    if mode not in ("symmetric", "asymmetric"):
        raise _unsupported(f"{where}.mode", mode, "8-bit symmetric or asymmetric only")
    if weights:
        if mode != "symmetric":
            raise _unsupported(f"{where}.mode", mode, "CPU INT8 kernels take symmetric weights")
        return None
    return "mixed" if mode == "asymmetric" else "performance"


_AQP_FIELDS = {"overflow_fix", "quantize_outputs", "inplace_statistics", "disable_channel_alignment",
               "disable_bias_correction", "batchwise_statistics", "activations_quantization_params",
               "weights_quantization_params", "quantizer_propagation_rule", "activations_range_estimator_params",
               "weights_range_estimator_params", "bias_correction_params", "smooth_quant_alphas",
               "smooth_quant_alpha", "backend_params"}


def quantize_options_from(params: Any, *, model_type: Any = None,
                          where: str = "advanced_parameters") -> dict[str, Any]:
    """The :func:`ovq.quantize` options an ``AdvancedQuantizationParameters`` (ovq's or
    NNCF's) asks for; only the fields that differ from NNCF's defaults appear.

    ============================================  ===========================================
    NNCF field                                    ovq option
    ============================================  ===========================================
    ``overflow_fix``                              ``overflow_fix`` (``first_layer_only`` ->
                                                  ``first_layer``)
    ``disable_bias_correction=True``              ``fast_bias_correction=None``
    ``activations_range_estimator_params``        ``activations_range`` (+ ``outlier_prob``)
    ``activations_quantization_params.mode``      ``preset`` (asymmetric -> ``mixed``)
    ``smooth_quant_alphas.matmul`` /              ``smooth_quant`` (transformers only, as in
    ``smooth_quant_alpha``                        NNCF)
    ``inplace_statistics``                        none: ovq always reduces in the graph, and
                                                  the numbers do not depend on it
    ============================================  ===========================================

    Raises:
        OptionError: a field ovq has no equivalent for at a non-default value (named).
    """
    if params is None:
        return {}
    _check_known_fields(params, where, _AQP_FIELDS)
    out: dict[str, Any] = {}
    fix = overflow_fix_option(_get(params, "overflow_fix", None))
    if fix is not None:
        out["overflow_fix"] = fix
    for name, default, why in (
        ("quantize_outputs", False, "model outputs are never quantized"),
        ("disable_channel_alignment", True, "channel alignment is not implemented"),
        ("batchwise_statistics", None, "statistics are per dataset item"),
    ):
        value = _get(params, name, default)
        if value != default:
            raise _unsupported(f"{where}.{name}", value, why)
    if _get(params, "disable_bias_correction", False):
        out["fast_bias_correction"] = None
    rule = _get(params, "quantizer_propagation_rule", None)
    if rule is not None and _enum_name(rule) != "MERGE_ALL_IN_ONE":
        raise _unsupported(f"{where}.quantizer_propagation_rule", rule, "placement merges as MERGE_ALL_IN_ONE")
    preset = _quantizer_params(_get(params, "activations_quantization_params", None),
                               f"{where}.activations_quantization_params", weights=False)
    _quantizer_params(_get(params, "weights_quantization_params", None), f"{where}.weights_quantization_params",
                      weights=True)
    if preset is not None:
        out["preset"] = preset
    estimator, prob = activations_range_option(_get(params, "activations_range_estimator_params", None),
                                               f"{where}.activations_range_estimator_params")
    if estimator is not None:
        out["activations_range"] = estimator
    if prob is not None:
        out["outlier_prob"] = prob
    _weights_range(_get(params, "weights_range_estimator_params", None), f"{where}.weights_range_estimator_params")
    bc = _get(params, "bias_correction_params", None)
    if _get(bc, "apply_for_all_nodes", False):
        raise _unsupported(f"{where}.bias_correction_params.apply_for_all_nodes", True,
                           "only layers with a bias are corrected")
    if _get(bc, "threshold", None) is not None:
        raise _unsupported(f"{where}.bias_correction_params.threshold", bc.threshold,
                           "the thresholds are fixed: 2.0 fast, 1000 full, as NNCF's defaults")
    alphas = _get(params, "smooth_quant_alphas", None)
    conv = float(_get(alphas, "convolution", -1))
    if conv >= 0:
        raise _unsupported(f"{where}.smooth_quant_alphas.convolution", conv, "SmoothQuant covers MatMuls only")
    alpha = _get(params, "smooth_quant_alpha", None)
    matmul = float(alpha) if alpha is not None else float(_get(alphas, "matmul", 0.95))
    if _name(model_type) == "transformer" and matmul != 0.95:
        out["smooth_quant"] = matmul if matmul >= 0 else False
    backend = _get(params, "backend_params", None) or {}
    if backend:
        raise _unsupported(f"{where}.backend_params", dict(backend), "ovq has no backend switches")
    return out


def accuracy_options_from(params: Any,
                          where: str = "advanced_accuracy_restorer_parameters") -> dict[str, Any]:
    """:func:`ovq.quantize_with_accuracy_control` options from an
    ``AdvancedAccuracyRestorerParameters`` (``max_num_iterations``, ``ranking_subset_size``;
    ``num_ranking_workers`` only sizes NNCF's worker pool and is accepted)."""
    if params is None:
        return {}
    _check_known_fields(params, where, {"max_num_iterations", "tune_hyperparams", "ranking_subset_size",
                                        "num_ranking_workers", "intermediate_model_dir", "restore_mode"})
    out: dict[str, Any] = {}
    iterations = _get(params, "max_num_iterations", sys.maxsize)
    if iterations != sys.maxsize:
        out["max_num_iterations"] = iterations
    if _get(params, "ranking_subset_size", None) is not None:
        out["ranking_subset_size"] = params.ranking_subset_size
    if _get(params, "tune_hyperparams", False):
        raise _unsupported(f"{where}.tune_hyperparams", True, "hyperparameter tuning is not implemented")
    if _get(params, "intermediate_model_dir", None) is not None:
        raise _unsupported(f"{where}.intermediate_model_dir", params.intermediate_model_dir,
                           "intermediate models are not written")
    mode = _get(params, "restore_mode", None)
    if mode is not None and _enum_name(mode) != "ACTIVATIONS_AND_WEIGHTS":
        raise _unsupported(f"{where}.restore_mode", mode, "layers are reverted to float entirely")
    return out


def check_mode(mode: Any) -> None:
    """``mode=`` of ``nncf.quantize`` selects FP8 quantization, which ovq does not do."""
    if mode is not None:
        raise OptionError(f"mode={_name(mode)!r}: FP8 quantization (NNCF's QuantizationMode) is not supported by "
                          "ovq; it quantizes to INT8 (leave mode=None)")


def merge_options(explicit: dict[str, Any], defaults: dict[str, Any], advanced: dict[str, Any],
                  where: str = "advanced_parameters") -> dict[str, Any]:
    """``explicit`` keyword options updated with ``advanced`` ones; an option given both
    ways with different values is an error."""
    merged = dict(explicit)
    for key, value in advanced.items():
        given = explicit.get(key, defaults.get(key))
        if given != defaults.get(key) and _name(given) != _name(value):
            raise OptionError(f"{key}={given!r} contradicts {where} (which asks for {value!r})")
        merged[key] = value
    return merged
