"""ovq: a post-training quantization compiler for OpenVINO models."""

from __future__ import annotations

# First: a bare source checkout (no passes, no native kernels) fails here, with the fix.
from ovq import _install_check  # noqa: F401
from ovq.compression import (
    BackupMode,
    CompressionReport,
    CompressWeightsMode,
    GroupSizeFallbackMode,
    SensitivityMetric,
    compress_weights,
)
from ovq.errors import (
    AlreadyQuantizedError,
    BackendError,
    CalibrationDataError,
    GraphError,
    IRError,
    OvqError,
    VerificationError,
)
from ovq.ir import Graph, read_model, save_model
from ovq.kernels import kernels_backend
from ovq.pipeline import run_pipeline
from ovq.preprocess import PreprocessingError, embed_preprocessing
from ovq.quantization import place_fake_quantize
from ovq.quantization.accuracy_control import (
    AccuracyControlReport,
    AccuracyControlWarning,
    DropType,
    quantize_with_accuracy_control,
)
from ovq.quantization.advanced_parameters import (
    AdvancedAccuracyRestorerParameters,
    AdvancedBiasCorrectionParameters,
    AdvancedQuantizationParameters,
    AdvancedSmoothQuantParameters,
    AggregatorType,
    OverflowFix,
    QuantizationMode,
    QuantizationParameters,
    RangeEstimatorParameters,
    RangeEstimatorParametersSet,
    StatisticsCollectorParameters,
    StatisticsType,
)
from ovq.quantization.analyze import LayerErrorTable, analyze
from ovq.quantization.dataset import Dataset
from ovq.quantization.ignored_scope import IgnoredScope, Subgraph
from ovq.quantization.quantize import ModelType, QuantizationPreset, QuantizeReport, TargetDevice, quantize

# The one version source: pyproject.toml reads it (scikit-build-core regex provider).
__version__ = "0.1.0"

__all__ = [
    "AdvancedAccuracyRestorerParameters",
    "AdvancedBiasCorrectionParameters",
    "AdvancedQuantizationParameters",
    "AdvancedSmoothQuantParameters",
    "AggregatorType",
    "OverflowFix",
    "QuantizationMode",
    "QuantizationParameters",
    "RangeEstimatorParameters",
    "RangeEstimatorParametersSet",
    "StatisticsCollectorParameters",
    "StatisticsType",
    "Subgraph",
    "AccuracyControlReport",
    "AccuracyControlWarning",
    "AlreadyQuantizedError",
    "BackupMode",
    "CompressWeightsMode",
    "CompressionReport",
    "GroupSizeFallbackMode",
    "SensitivityMetric",
    "compress_weights",
    "BackendError",
    "DropType",
    "CalibrationDataError",
    "Dataset",
    "IgnoredScope",
    "LayerErrorTable",
    "analyze",
    "ModelType",
    "QuantizationPreset",
    "QuantizeReport",
    "TargetDevice",
    "quantize",
    "quantize_with_accuracy_control",
    "GraphError",
    "IRError",
    "OvqError",
    "PreprocessingError",
    "Graph",
    "VerificationError",
    "__version__",
    "embed_preprocessing",
    "kernels_backend",
    "place_fake_quantize",
    "read_model",
    "run_pipeline",
    "save_model",
]
