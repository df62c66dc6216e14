"""Running models on the real OpenVINO runtime: compile, infer, compare.

Every numeric check in ovq goes through here, so they all share the same traps
avoided: CPU compiles use ``INFERENCE_PRECISION_HINT=f32`` (bf16-capable CPUs default
to bf16, which would make "FP32" references silently bf16).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ovq.errors import InferenceError
from ovq.ir.bridge import core

if TYPE_CHECKING:
    import openvino as ov

    from ovq.ir.graph import Graph

F32_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}


def as_ov_model(model: ov.Model | Graph | str) -> ov.Model:
    """An ``openvino.Model`` for a Graph, a path or a Model."""
    import openvino as ov

    from ovq.ir import Graph, read_model

    if isinstance(model, ov.Model):
        return model
    if not isinstance(model, Graph):
        model = read_model(model)
    return model.to_ov()


def compile_model(model: ov.Model | Graph | str, *, device: str = "CPU", f32: bool = True, config: Mapping[str, Any] | None = None):
    """Compile for ``device``; with ``f32`` (default) pin the inference precision to f32.

    Raises:
        InferenceError: OpenVINO cannot compile the model for ``device``.
    """
    settings = dict(F32_CONFIG if f32 and device == "CPU" else {})
    settings.update(config or {})
    try:
        return core().compile_model(as_ov_model(model), device, settings)
    except RuntimeError as exc:
        raise InferenceError(f"OpenVINO cannot compile the model for {device}: {str(exc).strip().splitlines()[0]}") from None


def random_inputs(model: ov.Model, *, seed: int = 0, dynamic_dim: int = 1) -> list[np.ndarray]:
    """Deterministic random inputs for every model input (dynamic dims become ``dynamic_dim``).

    Floats are drawn from N(0, 1); integers from [0, 10) (safe as indices and ids);
    booleans uniformly.
    """
    import openvino as ov

    rng = np.random.default_rng(seed)
    arrays = []
    for port in model.inputs:
        pshape = port.get_partial_shape()
        shape = [d.get_length() if d.is_static else dynamic_dim for d in pshape]
        et = port.get_element_type()
        if et == ov.Type.boolean:
            arrays.append(rng.random(shape) < 0.5)
        elif et.is_real():
            arrays.append(rng.standard_normal(shape).astype(et.to_dtype()))
        else:
            arrays.append(rng.integers(0, 10, size=shape).astype(et.to_dtype()))
    return arrays


def infer(compiled, inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Run one synchronous inference; return every output as a copied array."""
    request = compiled.create_infer_request()
    result = request.infer(list(inputs) if not isinstance(inputs, Mapping) else dict(inputs))
    return [np.array(result[out]) for out in compiled.outputs]


def outputs_equal(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> bool:
    """Bitwise equality of two output lists (NaNs compare equal to NaNs)."""
    if len(a) != len(b):
        return False
    return all(x.shape == y.shape and x.dtype == y.dtype and x.tobytes() == y.tobytes() for x, y in zip(a, b))


def max_abs_diff(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """Largest absolute difference over all outputs (inf if shapes differ)."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        if x.shape != y.shape:
            return float("inf")
        if x.size and np.issubdtype(x.dtype, np.number):
            worst = max(worst, float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))))
    return worst
