"""ovq.runtime: compiling on the real OpenVINO runtime."""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

from ovq import runtime
from ovq.errors import InferenceError, OvqError


def test_compile_failure_is_an_inference_error():
    x = ops.parameter([1, 4], np.float32, name="x")
    model = ov.Model([ops.relu(x)], [x], "tiny")
    with pytest.raises(InferenceError, match="OpenVINO cannot compile the model for NO_SUCH_DEVICE") as info:
        runtime.compile_model(model, device="NO_SUCH_DEVICE")
    assert isinstance(info.value, OvqError)
