"""Small data files shipped with ovq: the digits demo model and its data.

The demo model is a ~100k-parameter CNN trained on scikit-learn's 8x8 digits by
``tools/train_digits.py`` (see ``ovq/data/digits/README.md``). It is stored as an FP32
OpenVINO IR. Its input is ``pixels / 16`` as float32 of shape ``[N, 1, 8, 8]`` (raw pixels
are integers 0..16); its output is 10 logits.

Example:
    >>> from ovq.data import demo_model_path, load_demo_data
    >>> import openvino as ov
    >>> compiled = ov.Core().compile_model(str(demo_model_path()), "CPU",
    ...                                    {"INFERENCE_PRECISION_HINT": "f32"})
    >>> x, y = load_demo_data("test")
    >>> accuracy = (compiled(x)[0].argmax(1) == y).mean()
"""

from __future__ import annotations

import importlib.resources
import pathlib
from typing import Literal

import numpy as np

from ovq.errors import OptionError

__all__ = ["DEMO_ACCURACY", "demo_model_path", "load_demo_data", "load_demo_raw"]

#: Test accuracy of the shipped FP32 demo model on the 450 test images (torch and
#: OpenVINO at the f32 hint agree).
DEMO_ACCURACY = 443 / 450  # 0.9844

_SPLITS = {"test": "digits_test.npz", "calib": "digits_calib.npz"}


def _digits_dir() -> pathlib.Path:
    """Return the on-disk folder holding the digits files."""
    root = importlib.resources.files("ovq.data") / "digits"
    # ovq is installed as a regular folder (wheel or editable), so the resources are real
    # files; OpenVINO needs a filesystem path for read_model anyway.
    path = pathlib.Path(str(root))
    if not (path / "digits.xml").is_file():
        raise FileNotFoundError(
            f"ovq demo data missing: {path / 'digits.xml'} does not exist; "
            "regenerate it with `python tools/train_digits.py`"
        )
    return path


def demo_model_path() -> pathlib.Path:
    """Return the path of the demo model's IR ``.xml`` (the ``.bin`` sits next to it).

    Returns:
        Path to ``digits.xml``, an FP32 OpenVINO IR with input ``[?, 1, 8, 8]`` float32.

    Raises:
        FileNotFoundError: The package data is missing (broken install).
    """
    return _digits_dir() / "digits.xml"


def load_demo_raw(split: Literal["test", "calib"] = "test") -> tuple[np.ndarray, np.ndarray]:
    """Load the raw demo images (uint8 pixels 0..16) and labels.

    Args:
        split: ``"test"`` for the 450 held-out images, ``"calib"`` for the first 300
            training images (the calibration set).

    Returns:
        ``(pixels, labels)``: uint8 arrays of shapes ``(N, 1, 8, 8)`` and ``(N,)``.

    Raises:
        OptionError: ``split`` is not ``"test"`` or ``"calib"``.
    """
    if split not in _SPLITS:
        raise OptionError(f"split must be one of {sorted(_SPLITS)}, got {split!r}")
    with np.load(_digits_dir() / _SPLITS[split]) as f:
        return f["x"], f["y"]


def load_demo_data(split: Literal["test", "calib"] = "test") -> tuple[np.ndarray, np.ndarray]:
    """Load demo model inputs, ready to feed, and their labels.

    Args:
        split: ``"test"`` for the 450 held-out images, ``"calib"`` for the first 300
            training images (the calibration set).

    Returns:
        ``(x, labels)``: ``x`` float32 ``(N, 1, 8, 8)`` equal to ``pixels / 16``;
        ``labels`` int64 ``(N,)`` in 0..9.

    Raises:
        OptionError: ``split`` is not ``"test"`` or ``"calib"``.
    """
    raw, labels = load_demo_raw(split)
    return raw.astype(np.float32) / np.float32(16), labels.astype(np.int64)
