"""Fixtures for the batch tests: a folder with the digits model, its calibration data and
a tiny second model, and a manifest writer."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ovq.data import demo_model_path, load_demo_data


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """``models/digits.xml`` (+ ``.bin``), ``models/tiny.xml`` and ``calib.npy`` (64 digits)."""
    import openvino as ov
    import openvino.opset13 as ops

    models = tmp_path / "models"
    models.mkdir()
    src = demo_model_path()
    shutil.copy(src, models / "digits.xml")
    shutil.copy(src.with_suffix(".bin"), models / "digits.bin")
    x, _ = load_demo_data("calib")
    np.save(tmp_path / "calib.npy", x[:64].astype(np.float32))
    rng = np.random.default_rng(0)
    p = ops.parameter([1, 1, 8, 8], np.float32, name="input")
    p.output(0).set_names({"input"})
    c = ops.convolution(p, ops.constant(rng.standard_normal((4, 1, 3, 3)).astype(np.float32)), [1, 1], [1, 1],
                        [1, 1], [1, 1])
    ov.save_model(ov.Model([ops.relu(c)], [p], "tiny"), models / "tiny.xml", compress_to_fp16=False)
    return tmp_path


@pytest.fixture
def manifest(workspace: Path):
    """``manifest(text, name="batch.toml")`` writes a (dedented) manifest into the workspace."""

    def write(text: str, name: str = "batch.toml") -> Path:
        path = workspace / name
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    return write
