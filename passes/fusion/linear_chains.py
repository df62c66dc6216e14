"""``merge-linear-chains``: collapse chains of constant Multiply/Add into one of each.

Math (c1, c2 constants, broadcast numpy-style):

* ``(x · c1) · c2 = x · (c1·c2)``
* ``(x + c1) + c2 = x + (c1+c2)``
* ``(x + c1) · c2 = x · c2 + c1·c2``  (Add moved after the Multiply, so that a following
  ``+ c3`` merges too and the Multiply meets the op before it)

The merged constant is computed in float64 and stored in the original element type;
results agree with the unmerged chain to float rounding (allclose, not bitwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ovq.pipeline import register_pass
from ovq.rewrite import AnyInput, ConstInput, Match, OpPattern, Rewriter, RewritePass, RewriteRule

from .linear_ops import float_const, numpy_broadcast


def _inner(op_type: str) -> OpPattern:
    return OpPattern(op_type, [AnyInput("x"), ConstInput("c1", float_const)], bind="inner",
                     commutative=True, predicate=numpy_broadcast)


def _fits(graph, match: Match) -> str | None:
    """The merged constant must not broadcast x to a bigger tensor than the chain did."""
    x_node, x_out = match.outputs["x"]
    x_shape = graph.op(x_node).outputs[x_out].shape
    root_shape = graph.op(match.root).outputs[0].shape
    if x_shape is None or root_shape is None or list(x_shape) != list(root_shape):
        return "shapes unknown, or the constants broadcast the tensor"
    return None


def _merged(graph, match: Match, combine) -> np.ndarray:
    c1 = graph.const_value(match["c1"])
    c2 = graph.const_value(match["c2"])
    merged = combine(c1.astype(np.float64), c2.astype(np.float64))
    return merged.astype(c1.dtype)


class _MergeChain(RewriteRule):
    """``(x ∘ c1) ∘ c2 → x ∘ (c1 ∘ c2)`` for an associative ``∘`` (Multiply or Add).

    Matches: ``∘(∘(x, Const c1), Const c2)`` (constants on either side), float
    constants, numpy broadcasting, the chain's output shaped like ``x``. Emits: one op
    ``∘(x, Const c1∘c2)`` named like the outer op, which takes over its consumers and
    tensor names. Preserves: values up to float rounding.
    """

    op_type = ""
    suffix = ""

    @staticmethod
    def combine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __init__(self) -> None:
        self.pattern = OpPattern(self.op_type, [_inner(self.op_type), ConstInput("c2", float_const)],
                                 bind="outer", commutative=True, predicate=numpy_broadcast)

    def check(self, graph, match):
        return _fits(graph, match)

    def rewrite(self, rw: Rewriter, match: Match) -> None:
        g = rw.graph
        root = g.op(match.root).name
        const = rw.add_const(_merged(g, match, self.combine), f"{root}/{self.suffix}")
        merged = rw.add_op(self.op_type, root, attrs={"auto_broadcast": "numpy"}, num_inputs=2,
                           like=(match.root, 0))
        g.connect(*match.outputs["x"], merged, 0)
        g.connect(const, 0, merged, 1)
        rw.replace_output(match.root, 0, merged, 0)


class MergeMultiplyChain(_MergeChain):
    """(x·c1)·c2 → x·(c1·c2)."""

    name = "merge-multiply-chain"
    op_type = "Multiply"
    suffix = "merged_scale"
    combine = staticmethod(np.multiply)


class MergeAddChain(_MergeChain):
    """(x+c1)+c2 → x+(c1+c2)."""

    name = "merge-add-chain"
    op_type = "Add"
    suffix = "merged_shift"
    combine = staticmethod(np.add)


class SwapAddMultiply(RewriteRule):
    """``(x + c1) · c2 → x · c2 + c1·c2``.

    Matches: ``Multiply(Add(x, Const c1), Const c2)`` under the same conditions as the
    chain merges. Emits: ``Multiply(x, c2)`` named ``<outer>/scaled`` followed by an Add
    named like the outer Multiply, which takes over its consumers and tensor names.
    Preserves: values up to float rounding.
    """

    name = "swap-add-multiply"
    pattern = OpPattern("Multiply", [_inner("Add"), ConstInput("c2", float_const)], bind="outer",
                        commutative=True, predicate=numpy_broadcast)

    def check(self, graph, match):
        return _fits(graph, match)

    def rewrite(self, rw: Rewriter, match: Match) -> None:
        g = rw.graph
        root = g.op(match.root).name
        c2 = g.const_value(match["c2"])
        shift = _merged(g, match, np.multiply)
        scale = rw.add_const(c2, f"{root}/scale")
        mul = rw.add_op("Multiply", f"{root}/scaled", attrs={"auto_broadcast": "numpy"}, num_inputs=2,
                        like=(match.root, 0))
        g.connect(*match.outputs["x"], mul, 0)
        g.connect(scale, 0, mul, 1)
        shift_node = rw.add_const(shift, f"{root}/shift")
        add = rw.add_op("Add", root, attrs={"auto_broadcast": "numpy"}, num_inputs=2, like=(match.root, 0))
        g.connect(mul, 0, add, 0)
        g.connect(shift_node, 0, add, 1)
        rw.replace_output(match.root, 0, add, 0)


@register_pass
@dataclass(frozen=True)
class MergeLinearChainsPass(RewritePass):
    """Merge chains of constant Multiply/Add into a single Multiply followed by a single Add.

    Matches: Multiply/Add with a float Const operand whose other operand is a Multiply
    or Add with a float Const operand and a single consumer, where the constants do not
    broadcast the tensor to a larger shape (needs port shapes: the pass runs
    ``infer_shapes`` first when any is unknown).
    Emits: one Multiply and/or one Add with merged constants, stamped ``ovq_rule``; the
    final op keeps the friendly name and tensor names of the chain's last op.
    Preserves: values up to float rounding (allclose), model outputs and their names.
    Follow with ``fold-linear`` to push the result into a neighbouring Conv/MatMul.
    """

    name = "merge-linear-chains"
    rules = (MergeMultiplyChain, MergeAddChain, SwapAddMultiply)
    max_rounds = 1  # one worklist run: each merge re-queues the consumers of the op it replaced, so a chain collapses in it
