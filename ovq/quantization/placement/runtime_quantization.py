"""A model's own run-time quantization arithmetic, which placement leaves alone.

A dynamically quantized model (ONNX Runtime's ``quantize_dynamic``: a
``DynamicQuantizeLinear`` before each ``ConvInteger``/``MatMulInteger``) reaches OpenVINO
as plain arithmetic: the range of an activation is measured at run time
(``ReduceMin``/``ReduceMax``), a scale and a zero point are computed from it, the
activation is divided by the scale, rounded, shifted and clamped, and the integer result
is converted back to float for the convolution, whose integer output is scaled back.
Every elementwise op of that arithmetic has two activation inputs, so the eltwise rule
would put a FakeQuantize on each: a second, static 8-bit grid on values the model
rounds itself (ddddocr's ``common_old``: 236 such FakeQuantize ops, output SQNR 7.8 dB).

:func:`find_runtime_quantization` marks, from the graph alone:

* **integer tensors**: outputs of ``Round``/``Floor``/``Ceil``, of a ``Convert`` from an
  integer element type, and of ``Clamp``/``Convert``/``Add``/``Subtract``/
  ``Multiply``/``Maximum``/``Minimum``/``Negative``/``Abs`` whose inputs are all integer
  tensors or constants with whole values;
* **run-time statistics**: outputs of ``ReduceMin``/``ReduceMax``, and of elementwise and
  :data:`STATISTIC_PRESERVING` ops whose activation inputs are all statistics (the scale
  and zero point made from them);
* **rounding inputs**: elementwise ops whose output is only read by ``Round``/
  ``Floor``/``Ceiling`` (the division by the run-time scale).

All three are marked only in a model that rounds an activation itself (some rounding
input exists); a float model's integer tensors (an attention mask converted to float) and
reductions stay under the ordinary rules. The planner then quantizes no input that is an
integer tensor or a statistic, and no input of a rounding-input op. Preserves: the graph
(read only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ovq.quantization.placement.op_tables import ELTWISE

if TYPE_CHECKING:
    from ovq.quantization.placement.view import GraphView

ROUNDING = frozenset({"Round", "Floor", "Ceiling"})
"""Ops whose output holds whole numbers whatever their input."""

INTEGER_PRESERVING = frozenset({
    "Clamp", "Convert", "Add", "Subtract", "Multiply", "Maximum", "Minimum", "Negative", "Abs",
})
"""Ops that map whole numbers (and whole constants) to whole numbers."""

STATISTICS = frozenset({"ReduceMin", "ReduceMax"})
"""Reductions a model measures its own activation range with."""

STATISTIC_PRESERVING = frozenset({"Clamp", "Convert", "Abs", "Negative", "Sqrt", "Reshape", "Squeeze", "Unsqueeze"})
"""Non-eltwise ops that keep a statistic a statistic (besides eltwise arithmetic of statistics)."""

INTEGER_PRECISIONS = frozenset({"U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64", "U4", "I4", "BOOLEAN"})

_MAX_CONST_CHECK = 4096
"""Constants larger than this are not read to see whether their values are whole."""


@dataclass(frozen=True)
class RuntimeQuantization:
    """Node ids of a model's own quantization arithmetic (see the module docstring).

    Attributes:
        integer: Nodes whose output 0 holds whole numbers.
        statistics: Nodes whose output 0 is a run-time range statistic or made only from one.
        rounding_inputs: Elementwise nodes whose output only rounding ops read.
    """

    integer: frozenset[int] = frozenset()
    statistics: frozenset[int] = frozenset()
    rounding_inputs: frozenset[int] = frozenset()

    def keeps_input(self, view: GraphView, n: int, i: int) -> bool:
        """Whether input ``i`` of ``n`` belongs to the model's own quantization."""
        if n in self.rounding_inputs:
            return True
        p = view.g.producer(n, i)
        return p is not None and p[1] == 0 and (p[0] in self.integer or p[0] in self.statistics)

    @property
    def found(self) -> bool:
        return bool(self.integer or self.statistics or self.rounding_inputs)


def find_runtime_quantization(view: GraphView) -> RuntimeQuantization:
    """Mark the run-time quantization arithmetic of the graph behind ``view``."""
    g = view.g
    types = {n: view.type(n) for n in view.order}
    rounding = {n for n in view.order if types[n] in ELTWISE and not view.const[n]
                and (cons := g.consumers(n, 0)) and all(types.get(c) in ROUNDING for c, _i in cons)}
    if not rounding:  # the model rounds no activation itself: nothing here is its own quantization
        return RuntimeQuantization()
    integer: set[int] = set()
    statistics: set[int] = set()
    for n in view.order:
        t = types[n]
        if view.const[n]:
            continue
        inputs = [p for p in g.inputs_of(n) if p is not None]
        if t in ROUNDING:
            integer.add(n)
        elif t in STATISTICS:
            statistics.add(n)
        elif t == "Convert" and inputs and g.op(inputs[0][0]).outputs[inputs[0][1]].precision in INTEGER_PRECISIONS:
            integer.add(n)
        elif t in INTEGER_PRESERVING and inputs and _all_whole(view, inputs, integer):
            integer.add(n)
        elif t in ELTWISE or t in STATISTIC_PRESERVING:
            live = [p for p in inputs if not view.const[p[0]]]
            if live and all(p[0] in statistics for p in live):
                statistics.add(n)
    return RuntimeQuantization(frozenset(integer), frozenset(statistics), frozenset(rounding))


def _all_whole(view: GraphView, inputs: list[tuple[int, int]], integer: set[int]) -> bool:
    """Every input is an integer tensor or a constant with whole values."""
    for node, out in inputs:
        if node in integer:
            continue
        if not view.const[node] or not _whole_constant(view, node, out):
            return False
    return True


def _whole_constant(view: GraphView, node: int, out: int) -> bool:
    g = view.g
    port = g.op(node).outputs[out]
    if port.precision in INTEGER_PRECISIONS:
        return True
    op = g.op(node)
    if op.const is None:
        src = g.producer(node, 0)  # a Convert of an integer constant
        return op.type == "Convert" and src is not None and _whole_constant(view, *src)
    if op.const.size > _MAX_CONST_CHECK:
        return False
    values = np.asarray(g.const_value(node), np.float64)
    return bool(np.all(np.isfinite(values)) and np.all(values == np.rint(values)))
