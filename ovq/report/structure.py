"""What an INT8 ``openvino.Model`` quantizes, read from its structure alone.

Works the same on models from ovq, NNCF and POT, in memory or from disk: a *compute
layer* is a Convolution-like op or MatMul whose inputs are not all constant, or any other
op the model quantizes (an input through a FakeQuantize, possibly behind ops that only
move values, or a quantized constant). For each one, :func:`describe_layers` reads the
first activation FakeQuantize (range, levels), the quantized weights (levels,
granularity, storage type, the per-output-channel range they can represent) — the
rules of which ops are transparent and which constants are low precision are those of
:mod:`ovq.quantization.analyze`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ovq.quantization.analyze import (
    LINEAR_TYPES,
    LOW_PRECISION,
    TRANSPARENT_TYPES,
    ConstantSubgraphs,
    _describe_weights,
)

_MAX_WALK = 8
_INT_BOUNDS = {"i8": (-128, 127), "u8": (0, 255), "i4": (-8, 7), "u4": (0, 15), "i16": (-32768, 32767),
               "u16": (0, 65535)}


@dataclass
class LayerStructure:
    """One compute layer as the INT8 model's structure shows it."""

    node: Any
    name: str
    type: str
    act_fq: Any = None  # the FakeQuantize node on its first quantized activation input
    weight_port: int | None = None  # the input holding quantized weights
    weight_info: dict[str, Any] = field(default_factory=dict)  # levels, granularity, dtype
    weight_low: np.ndarray | None = None  # per output channel
    weight_high: np.ndarray | None = None

    @property
    def quantized(self) -> bool:
        return self.act_fq is not None or self.weight_port is not None


class ModelStructure:
    """The compute layers of an ``openvino.Model`` and its FakeQuantize ops.

    Attributes:
        ops: Every op in execution order.
        layers: The compute layers, in execution order.
        fake_quantize: Every FakeQuantize op.
        low_precision_constants: Constants of an integer type below 32 bits used as weights.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.ops = list(model.get_ordered_ops())
        self._constants = ConstantSubgraphs()
        self.fake_quantize = [op for op in self.ops if op.get_type_name() == "FakeQuantize"]
        self.low_precision_constants = [op for op in self.ops if op.get_type_name() == "Constant"
                                        and op.get_output_element_type(0).get_type_name() in LOW_PRECISION]
        self.layers = [s for s in (self._layer(op) for op in self.ops) if s is not None]

    @property
    def nothing_quantized(self) -> bool:
        """No FakeQuantize and no low-precision weights anywhere."""
        return not self.fake_quantize and not self.low_precision_constants

    def is_const(self, node: Any) -> bool:
        """True if ``node`` computes a constant (no Parameter or state upstream)."""
        return self._constants.is_const(node)

    def _quantized_const(self, node: Any) -> bool:
        return self._constants.quantized_const(node)

    def _find_fq(self, node: Any, depth: int) -> Any:
        t = node.get_type_name()
        if t == "FakeQuantize":
            return node
        if t in TRANSPARENT_TYPES and depth < _MAX_WALK:
            for i in node.inputs():
                src = i.get_source_output().get_node()
                if not self.is_const(src):
                    found = self._find_fq(src, depth + 1)
                    if found is not None:
                        return found
        return None

    def _layer(self, op: Any) -> LayerStructure | None:
        t = op.get_type_name()
        if t in ("FakeQuantize", "Result", "Parameter", "Constant") or self.is_const(op):
            return None
        act_fq, weight_port = None, None
        for k, inp in enumerate(op.inputs()):
            src = inp.get_source_output().get_node()
            if self.is_const(src):
                if weight_port is None and self._quantized_const(src):
                    weight_port = k
            elif act_fq is None:
                act_fq = self._find_fq(src, 0)
        if t not in LINEAR_TYPES:
            if t in TRANSPARENT_TYPES and weight_port is None:
                return None  # between a FakeQuantize and the layer it feeds
            if act_fq is None and weight_port is None:
                return None
        layer = LayerStructure(op, op.get_friendly_name(), t, act_fq, weight_port)
        if weight_port is not None:
            src = op.input_value(weight_port).get_node()
            layer.weight_info = _describe_weights(src)
            layer.weight_low, layer.weight_high = _weight_range(src, t)
        return layer


def fq_range(fq: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """``input_low``, ``input_high`` (as stored, broadcastable) and ``levels`` of a FakeQuantize."""
    low = _const(fq.input_value(1).get_node())
    high = _const(fq.input_value(2).get_node())
    return low, high, int(fq.get_attributes()["levels"])


def _const(node: Any, depth: int = 0) -> np.ndarray | None:
    t = node.get_type_name()
    if t == "Constant":
        try:
            return np.asarray(node.get_data(), np.float64)
        except (RuntimeError, TypeError, ValueError):
            return None
    if t == "Convert" and depth < 4:
        return _const(node.input_value(0).get_node(), depth + 1)
    return None


def _weight_range(node: Any, layer_type: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The per-output-channel range a quantized weight subgraph can represent: a weight
    FakeQuantize's ``[input_low, input_high]``, or ``(q_min − zero point) · scale`` to
    ``(q_max − zero point) · scale`` of a ``Const(int) → Convert → [Subtract] → Multiply``
    chain (reshapes above it are walked through)."""
    for _ in range(6):
        t = node.get_type_name()
        if t in ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Convert") and node.get_input_size():
            node = node.input_value(0).get_node()
            continue
        break
    t = node.get_type_name()
    if t == "FakeQuantize":
        low, high, _levels = fq_range(node)
        if low is None or high is None:
            return None, None
        low, high = np.broadcast_arrays(low, high)
        return low.reshape(-1), high.reshape(-1)
    if t != "Multiply":
        return None, None
    scale, body = None, None
    for i in node.inputs():
        src = i.get_source_output().get_node()
        value = _const(src)
        if value is not None and src.get_type_name() in ("Constant", "Convert") and \
                src.get_output_element_type(0).get_type_name() not in LOW_PRECISION and \
                _int_source(src) is None:
            scale = value
        else:
            body = src
    if scale is None or body is None:
        return None, None
    zero = np.zeros(1)
    if body.get_type_name() == "Subtract":
        zp = _const(body.input_value(1).get_node())
        zero = zp if zp is not None else zero
        body = body.input_value(0).get_node()
    source = _int_source(body)
    if source is None:
        return None, None
    lo, hi = _INT_BOUNDS.get(source.get_output_element_type(0).get_type_name(), (None, None))
    if lo is None:
        return None, None
    a = (lo - zero) * scale
    b = (hi - zero) * scale
    low, high = np.minimum(a, b), np.maximum(a, b)
    if low.ndim >= 2 and low.shape[0] > 1 and low[0].size > 1:
        # group-wise (or element-wise) scales of a [O, ...] weight: the envelope per output channel
        rest = tuple(range(1, low.ndim))
        low, high = low.min(axis=rest), high.max(axis=rest)
    return low.reshape(-1), high.reshape(-1)


def _int_source(node: Any) -> Any:
    """The low-precision Constant under ``Convert`` ops, or None."""
    for _ in range(3):
        t = node.get_type_name()
        if t == "Constant":
            return node if node.get_output_element_type(0).get_type_name() in _INT_BOUNDS else None
        if t != "Convert":
            return None
        node = node.input_value(0).get_node()
    return None


def constant_bytes(model: Any) -> int:
    """Bytes of every Constant of ``model`` (its weights, as stored)."""
    total = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() == "Constant":
            shape = op.get_output_partial_shape(0)
            if shape.is_static:
                n = int(np.prod(shape.to_shape())) if len(shape) else 1
                total += (n * op.get_output_element_type(0).bitwidth + 7) // 8
    return total
