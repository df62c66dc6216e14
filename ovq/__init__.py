"""ovq: a post-training quantization compiler for OpenVINO models."""

from __future__ import annotations

from ovq.errors import BackendError, CalibrationDataError, GraphError, IRError, OvqError, VerificationError
from ovq.ir import Graph, read_model, save_model
from ovq.kernels import kernels_backend
from ovq.pipeline import run_pipeline
from ovq.preprocess import PreprocessingError, embed_preprocessing
from ovq.quantization import place_fake_quantize
from ovq.quantization.analyze import LayerErrorTable, analyze
from ovq.quantization.dataset import Dataset
from ovq.quantization.ignored_scope import IgnoredScope
from ovq.quantization.quantize import ModelType, QuantizationPreset, QuantizeReport, TargetDevice, quantize

__version__ = "0.1.0"

__all__ = [
    "BackendError",
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
