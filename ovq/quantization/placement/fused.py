"""Ops that placement never quantizes because the hardware fuses them or they post-process.

Matches, walking the graph in topological order:

* a weighted op's bias/scale tail: the single-consumer chain after it of
  BatchNormInference and Add/Subtract/Multiply/Divide with a constant operand (the CPU
  plugin fuses them into the Conv/MatMul primitive; NNCF's ``operation_with_bias``);
* embedded preprocessing: the single-consumer chain after a Parameter of Convert and
  Add/Subtract/Multiply/Divide with a constant operand (NNCF's ``input_preprocessing``);
* detection post-processing (:data:`~.op_tables.POSTPROCESSING`) and every non-constant
  op feeding it, back to (not including) the nearest weighted op (NNCF's
  ``postprocessing_nms_topk``).

Emits the set of node ids; the graph is not changed.
"""

from __future__ import annotations

from collections.abc import Callable

from ovq.quantization.placement.op_tables import LINEAR_TAIL, POSTPROCESSING, WEIGHTED
from ovq.quantization.placement.view import GraphView


def fused_ops(view: GraphView) -> set[int]:
    """Ops inside hardware-fused patterns or post-processing: never quantized."""
    fused: set[int] = set()
    for n in view.order:
        t = view.type(n)
        if t in WEIGHTED:
            _absorb_chain(view, n, fused, lambda nt, nxt: nt == "BatchNormInference" or _const_linear(view, nt, nxt))
        elif t == "Parameter":
            _absorb_chain(view, n, fused, lambda nt, nxt: nt == "Convert" or _const_linear(view, nt, nxt))
        if t in POSTPROCESSING:
            _absorb_postprocessing(view, n, fused)
    return fused


def _const_linear(view: GraphView, t: str, n: int) -> bool:
    """``n`` (of type ``t``) is a linear op with a constant operand."""
    return t in LINEAR_TAIL and any(view.is_const_input(n, j) for j in range(len(view.g.op(n).inputs)))


def _absorb_chain(view: GraphView, start: int, fused: set[int], absorbs: Callable[[str, int], bool]) -> None:
    """Add to ``fused`` the single-consumer chain after ``start`` while ``absorbs(type, node)`` holds."""
    node = start
    while True:
        cons = view.g.consumers(node, 0)
        if len(cons) != 1:
            return
        nxt, _ = cons[0]
        if not absorbs(view.type(nxt), nxt):
            return
        fused.add(nxt)
        node = nxt


def _absorb_postprocessing(view: GraphView, n: int, fused: set[int]) -> None:
    """Add ``n`` and its non-constant producers back to the nearest weighted op to ``fused``.

    The walk also stops at ops already in ``fused``: chains absorbed earlier in the
    topological walk (bias tails, preprocessing) bound it.
    """
    stack = [n]
    while stack:
        cur = stack.pop()
        if cur in fused:
            continue
        fused.add(cur)
        for p in view.g.inputs_of(cur):
            if p is not None and not view.const[p[0]] and view.type(p[0]) not in WEIGHTED:
                stack.append(p[0])
