"""A custom rule-based pass: drop Multiply-by-one and Add-of-zero.

The pass is one :class:`~ovq.rewrite.RewriteRule` (a pattern, a check, a rewrite)
wrapped in a :class:`~ovq.rewrite.RewritePass`, which applies it wherever it matches
until nothing changes. Run it on a model:

    python examples/custom_pass.py MODEL.xml OUT.xml

A package registers the pass through its ``pyproject.toml``:

    [project.entry-points."ovq.passes"]
    drop-neutral-arithmetic = "my_package.passes:DropNeutralArithmeticPass"

after which ``ovq passes`` lists it and
``ovq run-passes MODEL.xml -p drop-neutral-arithmetic,eliminate-dead-code -o OUT.xml``
runs it. ``docs/passes.md`` walks through this file.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

import ovq
from ovq.pipeline import PassContext, register_pass
from ovq.rewrite import AnyInput, ConstInput, Match, OpPattern, Rewriter, RewritePass, RewriteRule

#: The value that leaves the other operand unchanged, per op type.
NEUTRAL = {"Multiply": 1.0, "Add": 0.0}


def numeric_const(graph: ovq.Graph, node: int) -> bool:
    """ConstInput predicate: a non-empty integer or float constant."""
    value = graph.const_value(node)
    return value.dtype.kind in "fiu" and value.size > 0


class DropNeutralOperand(RewriteRule):
    """``x · 1 → x`` and ``x + 0 → x``.

    Matches: a Multiply or Add with a numeric Const operand on either side whose every
    value is within ``tolerance`` of the neutral element (1 or 0), and whose shape does
    not broadcast ``x`` to a larger shape (``x`` must have a known shape).
    Emits: nothing; the op's consumers read ``x`` directly and the op's output tensor
    names move to ``x``'s producer. The driver then removes the op and the constant.
    Preserves: values (within ``tolerance``), element types, model outputs.
    """

    name = "drop-neutral-operand"
    pattern = OpPattern(("Multiply", "Add"), [AnyInput("x"), ConstInput("c", numeric_const)],
                        bind="op", commutative=True)

    def __init__(self, tolerance: float = 0.0) -> None:
        self.tolerance = tolerance

    def check(self, graph: ovq.Graph, match: Match) -> str | None:
        """``None`` to rewrite; otherwise the reason, which ``MatchTracer`` records."""
        value = graph.const_value(match["c"]).astype(np.float64)
        neutral = NEUTRAL[graph.op(match.root).type]
        if np.max(np.abs(value - neutral)) > self.tolerance:
            return f"the constant is not {neutral} everywhere"
        x_node, x_out = match.outputs["x"]
        x_shape = graph.op(x_node).outputs[x_out].shape
        if x_shape is None:
            return "the shape of x is unknown"
        if value.ndim > len(x_shape) or any(
            d != 1 and d != o for d, o in zip(reversed(value.shape), reversed(x_shape), strict=False)
        ):
            return f"the constant {list(value.shape)} broadcasts x {list(x_shape)} to a larger shape"
        return None

    def rewrite(self, rw: Rewriter, match: Match) -> None:
        rw.replace_output(match.root, 0, *match.outputs["x"])


@register_pass
@dataclass(frozen=True)
class DropNeutralArithmeticPass(RewritePass):
    """Remove Multiply by 1 and Add of 0 that do not change the tensor.

    Matches and emits: see :class:`DropNeutralOperand`. Follow with
    ``eliminate-dead-code``.
    """

    name = "drop-neutral-arithmetic"
    tolerance: float = 0.0
    """Largest distance from the neutral element still treated as neutral."""

    def make_rules(self) -> list[RewriteRule]:
        return [DropNeutralOperand(self.tolerance)]


def main(argv: list[str]) -> int:
    source, target = argv
    graph = ovq.read_model(source)
    ctx = PassContext()
    ovq.run_pipeline(graph, "drop-neutral-arithmetic,eliminate-dead-code", ctx=ctx)
    ovq.save_model(graph, target)
    for record in ctx.records:
        print(record.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
