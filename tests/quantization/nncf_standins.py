"""Small stand-ins for NNCF 3.4's public objects (same class names, fields, defaults and
methods as ``nncf.Dataset``, ``nncf.IgnoredScope``, ``nncf.Subgraph``,
``AdvancedQuantizationParameters``, ...): what ovq must accept by duck typing without
importing nncf. They are separate classes on purpose: ovq may not ``isinstance`` them."""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass, field
from typing import Any


class Dataset:
    """``nncf.Dataset``: private fields, public ``get_*`` methods, not iterable itself."""

    def __init__(self, data_source, transform_func=None):
        self._data_source = data_source
        self._transform_func = transform_func

    def _items(self, indices, transform):
        fn = transform if transform is not None else (lambda x: x)
        if indices is None:
            return (fn(x) for x in self._data_source)
        return (fn(self._data_source[i]) for i in indices)

    def get_data(self, indices=None):
        return self._items(indices, None)

    def get_inference_data(self, indices=None):
        return self._items(indices, self._transform_func)

    def get_length(self):
        return len(self._data_source) if hasattr(self._data_source, "__len__") else None

    def get_batch_size(self):
        return getattr(self._data_source, "batch_size", None)


@dataclass
class Subgraph:
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


@dataclass
class IgnoredScope:
    names: list[str] = field(default_factory=list)
    patterns: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    subgraphs: list[Subgraph] = field(default_factory=list)
    validate: bool = True


class StrEnum(str, enum.Enum):
    pass


class OverflowFix(StrEnum):
    ENABLE = "enable"
    FIRST_LAYER = "first_layer_only"
    DISABLE = "disable"


class QuantizationMode(StrEnum):
    FP8_E4M3 = "fp8_e4m3"
    FP8_E5M2 = "fp8_e5m2"


class QuantizationScheme(StrEnum):
    SYMMETRIC = "symmetric"
    ASYMMETRIC = "asymmetric"


class QuantizerPropagationRule(enum.Enum):
    DO_NOT_MERGE_BRANCHES = 0
    MERGE_IF_ALL_BRANCHES_SAME = 1
    MERGE_WITH_POTENTIAL_REQUANTIZATION = 2
    MERGE_ALL_IN_ONE = 3


class StatisticsType(enum.Enum):
    MAX = "max"
    MIN = "min"
    ABS_MAX = "abs_max"
    QUANTILE = "quantile"
    MEAN = "mean"


class AggregatorType(enum.Enum):
    MEAN = "mean"
    MAX = "max"
    MIN = "min"
    MEDIAN = "median"


class RestoreMode(enum.Enum):
    ACTIVATIONS_AND_WEIGHTS = "activations_and_weights"
    ONLY_ACTIVATIONS = "only_activations"


@dataclass
class QuantizationParameters:
    num_bits: int | None = None
    mode: QuantizationScheme | None = None
    signedness_to_force: bool | None = None
    per_channel: bool | None = None
    narrow_range: bool | None = None


@dataclass
class AdvancedBiasCorrectionParameters:
    apply_for_all_nodes: bool = False
    threshold: float | None = None


@dataclass
class AdvancedSmoothQuantParameters:
    convolution: float = -1
    matmul: float = 0.95


@dataclass
class StatisticsCollectorParameters:
    statistics_type: StatisticsType | None = None
    aggregator_type: AggregatorType | None = None
    clipping_value: float | None = None
    quantile_outlier_prob: float = 1e-4


@dataclass
class RangeEstimatorParameters:
    min: StatisticsCollectorParameters = field(default_factory=StatisticsCollectorParameters)
    max: StatisticsCollectorParameters = field(default_factory=StatisticsCollectorParameters)


@dataclass
class AdvancedQuantizationParameters:
    overflow_fix: OverflowFix | None = None
    quantize_outputs: bool = False
    inplace_statistics: bool = True
    disable_channel_alignment: bool = True
    disable_bias_correction: bool = False
    batchwise_statistics: bool | None = None
    activations_quantization_params: QuantizationParameters | None = None
    weights_quantization_params: QuantizationParameters | None = None
    quantizer_propagation_rule: QuantizerPropagationRule = QuantizerPropagationRule.MERGE_ALL_IN_ONE
    activations_range_estimator_params: RangeEstimatorParameters = field(default_factory=RangeEstimatorParameters)
    weights_range_estimator_params: RangeEstimatorParameters = field(default_factory=RangeEstimatorParameters)
    bias_correction_params: AdvancedBiasCorrectionParameters = field(default_factory=AdvancedBiasCorrectionParameters)
    smooth_quant_alphas: AdvancedSmoothQuantParameters = field(default_factory=AdvancedSmoothQuantParameters)
    smooth_quant_alpha: float | None = None
    backend_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class AdvancedAccuracyRestorerParameters:
    max_num_iterations: int = sys.maxsize
    tune_hyperparams: bool = False
    ranking_subset_size: int | None = None
    num_ranking_workers: int | None = None
    intermediate_model_dir: str | None = None
    restore_mode: RestoreMode = RestoreMode.ACTIVATIONS_AND_WEIGHTS
