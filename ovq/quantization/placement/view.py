"""Read-only facts about a graph that placement planning asks for.

:class:`GraphView` is the frozen mirror the planner reads: it computes the topological
order and which nodes are constant once, and answers port questions (float? constant?
an activation to quantize?). Nothing here edits the graph. :func:`hw_type` maps an op to
the descriptor op type whose rule applies to it.
"""

from __future__ import annotations

import functools

from ovq.hw import HardwareDescriptor
from ovq.ir.graph import Graph
from ovq.quantization.placement.op_tables import FLOAT_PRECISIONS
from ovq.quantization.placement.runtime_quantization import RuntimeQuantization, find_runtime_quantization

SHAPE_PORTS: dict[str, frozenset[int]] = {
    "Reshape": frozenset({1}), "Broadcast": frozenset({1, 2}), "Tile": frozenset({1}),
    "Unsqueeze": frozenset({1}), "Squeeze": frozenset({1}),
}
"""Inputs that only say how an op lays out the values of its input 0: a constant moved
by a shape computed at run time (a bias reshaped to ``ShapeOf(ShapeOf(conv))``-derived
dims, a zero state broadcast to the batch) still holds constant values."""


class GraphView:
    """Read-only facts about a graph used while planning.

    Attributes:
        g: The graph (never edited through the view).
        order: Node ids in topological order.
        const: Node id -> whether the node holds constant values (a Const, or an op other
            than Parameter/ReadValue whose inputs are all constant, not counting the
            inputs of :data:`SHAPE_PORTS`).
    """

    def __init__(self, graph: Graph) -> None:
        self.g = graph
        self.order = graph.topological_order()
        self.const: dict[int, bool] = {}
        for n in self.order:
            op = graph.op(n)
            ins = graph.inputs_of(n)
            shape_ports = SHAPE_PORTS.get(op.type, frozenset())
            self.const[n] = op.type == "Const" or (
                bool(ins) and op.type not in ("Parameter", "ReadValue")
                and all(p is not None and self.const[p[0]] for i, p in enumerate(ins) if i not in shape_ports)
            )

    @functools.cached_property
    def runtime_quantization(self) -> RuntimeQuantization:
        """The model's own run-time quantization arithmetic, which placement leaves alone."""
        return find_runtime_quantization(self)

    def type(self, n: int) -> str:
        """The OpenVINO op type of ``n``."""
        return self.g.op(n).ov_type

    def is_const_input(self, n: int, i: int) -> bool:
        """Input ``i`` of ``n`` is connected to a constant."""
        p = self.g.producer(n, i)
        return p is not None and self.const[p[0]]

    def is_float(self, n: int, out: int) -> bool:
        """Output ``out`` of ``n`` is float (or its precision is not known)."""
        port = self.g.op(n).outputs[out]
        return port.precision in FLOAT_PRECISIONS

    def is_activation_input(self, n: int, i: int) -> bool:
        """Input ``i`` of ``n`` is a float activation not already quantized: a quantizer may go there."""
        p = self.g.producer(n, i)
        return p is not None and not self.const[p[0]] and self.is_float(*p) and self.g.op(p[0]).type != "FakeQuantize"

    def weight_shape(self, n: int, i: int) -> list[int] | None:
        """Shape of the tensor on input ``i`` of ``n`` (None: unconnected or unknown)."""
        p = self.g.producer(n, i)
        if p is None:
            return None
        return self.g.op(p[0]).outputs[p[1]].shape

    def input_rank(self, n: int, i: int) -> int | None:
        """Rank of the tensor on input ``i`` of ``n`` (None: unconnected or unknown shape)."""
        p = self.g.producer(n, i)
        shape = None if p is None else self.g.op(p[0]).outputs[p[1]].shape
        return None if shape is None else len(shape)

    def is_embedding(self, n: int) -> bool:
        """A Gather reading a constant float table (NNCF's ``Embedding``): data on port 0.

        The indices must be an activation: a Gather of constants is a constant subgraph
        (fold-constants turns it into a Const), not a lookup table.
        """
        if self.type(n) != "Gather" or self.const[n]:
            return False
        p = self.g.producer(n, 0)
        return p is not None and self.const[p[0]] and self.is_float(*p)


def hw_type(view: GraphView, hw: HardwareDescriptor, n: int) -> str:
    """The descriptor op type whose rule applies to ``n``.

    Usually the op type; also the pseudo-types ``Embedding`` (a lookup in a constant
    table, when the descriptor has that rule) and ``DepthWiseConvolution`` (a
    GroupConvolution with 1x1 groups, when the descriptor has no GroupConvolution rule but
    a depthwise one; other group convolutions then use the Convolution rule).
    """
    t = view.type(n)
    if t == "Gather" and hw.rule_for("Embedding") is not None and view.is_embedding(n):
        return "Embedding"
    if t == "GroupConvolution" and hw.rule_for("GroupConvolution") is None:
        shape = view.weight_shape(n, 1)
        if shape and len(shape) >= 3 and shape[1] == 1 and shape[2] == 1 and hw.rule_for("DepthWiseConvolution"):
            return "DepthWiseConvolution"
        return "Convolution"
    return t
