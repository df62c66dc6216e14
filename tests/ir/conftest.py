"""Fixtures for the IR mirror tests."""

from __future__ import annotations

import sys
from pathlib import Path

import openvino as ov
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import ir_models  # noqa: E402


@pytest.fixture(params=sorted(ir_models.ALL))
def tiny_model_name(request) -> str:
    return request.param


@pytest.fixture
def saved_model(tmp_path):
    """Save an openvino.Model as FP32 IR and return the .xml path."""

    def save(model: ov.Model, name: str = "model") -> Path:
        path = tmp_path / f"{name}.xml"
        ov.save_model(model, path, compress_to_fp16=False)
        return path

    return save
