"""Weight paths: fold the constant subgraphs that feed weights, and nothing else.

TFLite and ONNX models often store a weight as a small constant subgraph rather than a
``Const``: ``Const → Transpose`` (TFLite OHWI kernels), ``Const(f16) → Convert →
Transpose`` (TFLite ``Dequantize`` of FP16 weights), ``ConstantOfShape → Broadcast``
(the ONNX light zoo), ``Const → Reshape`` / ``Unsqueeze`` (grouped convolutions). A
weight FakeQuantize needs the weight as one constant tensor, so
:func:`fold_weight_paths` folds exactly the subgraphs that end in a weight input.

Matches: the weight inputs placement quantizes (port 1 of Convolution-like ops, either
MatMul port, W and R of recurrent ops) whose producer is a constant subgraph rather than a
``Const`` or the ``Convert`` of an f16 ``Const``.
Emits: one ``Const`` per folded weight (OpenVINO's ``ConstantFolding`` computes it, see
:class:`~ovq.passes.cleanup.fold_constants.FoldConstantsPass`), named like the op it
replaces.
Compressed weights (``Const(i8) → Convert → [Subtract] → Multiply``, as TFLite int8
models and ``nncf.compress_weights`` store them, possibly followed by Transpose/Reshape)
are expanded to f32 like any other weight path: placement then requantizes them per
output channel (exactly, when each channel reaches ±127 on its old grid); the fold
holds them as f32 meanwhile (4× their int8 size).
Preserves: the rest of the graph as given (activation paths, shape subgraphs, constants
feeding other ops), 4-bit and fp8 weights (requantizing them to int8 would double their
size), and weights behind a FakeQuantize: such layers stay float with the reason
:attr:`~ovq.quantization.placement.weights.WeightSkip.CONSTANT_SUBGRAPH`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import networkx as nx

from ovq.ir.graph import Graph
from ovq.quantization.placement.op_tables import RECURRENT_PORTS, WEIGHTED
from ovq.quantization.placement.view import GraphView

log = logging.getLogger("ovq.quantization")


@dataclass
class WeightFolding:
    """What :func:`fold_weight_paths` did.

    Attributes:
        ops: Names of the ops whose weight input was a constant subgraph and is now a Const.
        outputs: Folded outputs (one per distinct weight subgraph; shared ones count once).
    """

    ops: list[str] = field(default_factory=list)
    outputs: int = 0


def weight_ports(graph: Graph, node: int) -> tuple[int, ...]:
    """The input ports of ``node`` that placement treats as weights."""
    t = graph.op(node).ov_type
    if t == "MatMul":
        return (0, 1)
    if t in WEIGHTED:
        return (1,)
    if t in RECURRENT_PORTS:
        return RECURRENT_PORTS[t][1]
    return ()


def _is_plain_weight(graph: Graph, node: int) -> bool:
    """A Const, or the Convert of a float Const: what a weight FQ can already sit on."""
    op = graph.op(node)
    if op.type == "Const":
        return True
    if op.type == "Convert":
        p = graph.producer(node, 0)
        return p is not None and graph.op(p[0]).type == "Const" and graph.const_value(p[0]).dtype.kind == "f"
    return False


def weight_subgraphs(graph: Graph) -> dict[int, list[str]]:
    """Producer node -> names of the ops reading it as a weight, for every weight input fed
    by a constant subgraph (not a plain Const)."""
    view = GraphView(graph)
    found: dict[int, list[str]] = {}
    for n in view.order:
        if view.const[n]:  # a MatMul of two constants is itself folded by OpenVINO: no weight
            continue
        for i in weight_ports(graph, n):
            p = graph.producer(n, i)
            if p is None or not view.const[p[0]] or _is_plain_weight(graph, p[0]):
                continue
            found.setdefault(p[0], []).append(graph.op(n).name)
    return found


def fold_weight_paths(graph: Graph) -> WeightFolding:
    """Fold every constant subgraph that feeds a weight input of ``graph`` (in place)."""
    from ovq.passes.cleanup.fold_constants import FoldConstantsPass

    found = weight_subgraphs(graph)
    result = WeightFolding()
    if not found:
        return result
    within: set[int] = set()
    for producer in found:
        within.add(producer)
        within |= nx.ancestors(graph.nx, producer)
    before = set(found)
    result.outputs = FoldConstantsPass(fold_int8=True).fold(graph, within)
    if result.outputs:
        left = weight_subgraphs(graph)
        result.ops = sorted({name for p in before for name in found[p]} - {name for names in left.values()
                                                                        for name in names})
        log.info("weight paths: folded %d constant subgraphs feeding the weights of %d ops",
                 result.outputs, len(result.ops))
    return result
