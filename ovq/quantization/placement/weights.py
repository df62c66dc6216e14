"""Weight inputs: where a weight FQ goes, its float value, and its output-channel axes.

A weight FQ sits on a ``Const`` (float), or after the ``Convert`` of an f16 ``Const``
(f16 storage decompressed to f32). Anything else is refused with a typed reason,
:class:`WeightSkip`, whose message the planner records in ``plan.skipped``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from ovq.quantization.placement.view import GraphView


class WeightSkip(enum.Enum):
    """Why a weight input cannot be quantized; the value is the reason ``plan.skipped`` records."""

    UNCONNECTED = "weight input unconnected"
    NOT_FLOAT = "weights are not float"
    """An integer Const: for an embedding lookup, an integer table is no embedding at all."""
    ALREADY_QUANTIZED = "weights already quantized"
    CONSTANT_SUBGRAPH = "weights are a constant subgraph that does not fold (FakeQuantize or 4-bit/fp8 weights)"
    """What is left after :func:`~.weight_paths.fold_weight_paths`: paths through a
    FakeQuantize (already quantized) or a 4-bit/fp8 decompression, which it keeps."""
    NOT_CONSTANT = "weights are not constant"

    @property
    def message(self) -> str:
        """The reason as ``plan.skipped`` records it."""
        return self.value


@dataclass(frozen=True, eq=False)
class WeightSource:
    """Where a weight FQ goes and the float weight it quantizes.

    Attributes:
        port: ``(node, output)`` the FQ reads: the Const, or the Convert of an f16 Const.
        value: The weight as f32.
    """

    port: tuple[int, int]
    value: np.ndarray


def weight_source(view: GraphView, n: int, i: int) -> WeightSource | WeightSkip:
    """The tensor to put a weight FQ on for input ``i`` of ``n`` and its value, or why not."""
    g = view.g
    p = g.producer(n, i)
    if p is None:
        return WeightSkip.UNCONNECTED
    op = g.op(p[0])
    if op.type == "Const":
        value = g.const_value(p[0])
        if value.dtype.kind != "f":
            return WeightSkip.NOT_FLOAT
        return WeightSource(p, value.astype(np.float32))
    if op.type == "Convert":
        q = g.producer(p[0], 0)
        if q is not None and g.op(q[0]).type == "Const":
            value = g.const_value(q[0])
            if value.dtype.kind == "f":  # f16 storage decompressed to f32
                return WeightSource(p, value.astype(np.float32))
    if op.type == "FakeQuantize":
        return WeightSkip.ALREADY_QUANTIZED
    if view.const[p[0]]:
        return WeightSkip.CONSTANT_SUBGRAPH
    return WeightSkip.NOT_CONSTANT


def weight_axes(view: GraphView, n: int, i: int, rank: int) -> tuple[int, ...]:
    """Output-channel axes of the weight on input ``i`` of ``n`` (rank ``rank``).

    Convolution ``[O, I, ...]``: 0; GroupConvolution ``[G, O/G, I/G, ...]``: 0, 1;
    ConvolutionBackpropData ``[I, O, ...]``: 1; GroupConvolutionBackpropData: 0, 2;
    MatMul: the non-reduced axis of the operand (after ``transpose_a``/``transpose_b``),
    none for a rank-1 operand; anything else: 0.
    """
    t = view.type(n)
    attrs = view.g.op(n).attrs or {}
    if t == "Convolution":
        return (0,)
    if t == "GroupConvolution":
        return (0, 1)
    if t == "ConvolutionBackpropData":
        return (1,)
    if t == "GroupConvolutionBackpropData":
        return (0, 2)
    if t == "MatMul":
        if rank < 2:
            return ()
        if i == 1:
            return (rank - 2,) if attrs.get("transpose_b") == "true" else (rank - 1,)
        return (rank - 1,) if attrs.get("transpose_a") == "true" else (rank - 2,)
    return (0,)
