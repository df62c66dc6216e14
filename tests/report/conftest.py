"""Shared fixtures of the report tests: the digits CNN quantized once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ovq.data import demo_model_path, load_demo_data


@pytest.fixture(scope="session")
def digits_samples() -> list[np.ndarray]:
    x, _ = load_demo_data("calib")
    return [x[i:i + 1] for i in range(64)]


@pytest.fixture(scope="session")
def digits_int8(digits_samples):
    """(FP openvino.Model, INT8 ovq.Graph, QuantizeReport) of the demo model."""
    import openvino as ov

    import ovq

    fp = ov.Core().read_model(str(demo_model_path()))
    graph, report = ovq.quantize(str(demo_model_path()), digits_samples, subset_size=64, progress=False,
                                 return_report=True)
    return fp, graph, report


@pytest.fixture(scope="session")
def digits_files(tmp_path_factory, digits_int8, digits_samples) -> tuple[Path, Path, Path]:
    """(FP .xml, INT8 .xml, samples .npy) on disk."""
    import ovq

    folder = tmp_path_factory.mktemp("digits")
    ovq.save_model(digits_int8[1], folder / "int8.xml")
    data = folder / "data.npy"
    np.save(data, np.concatenate(digits_samples))
    return demo_model_path(), folder / "int8.xml", data
