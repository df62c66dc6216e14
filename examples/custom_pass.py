"""A worked example of a custom ovq pass: remove Multiply-by-one and Add-of-zero ops.

Run it:

    python examples/custom_pass.py MODEL.xml OUT.xml

A package would instead register the class through its ``pyproject.toml``:

    [project.entry-points."ovq.passes"]
    drop-neutral-arithmetic = "my_package.passes:DropNeutralArithmeticPass"

after which ``ovq passes`` lists it and ``ovq run-passes -p drop-neutral-arithmetic``
runs it from the shell.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

import ovq
from ovq.pipeline import Pass, PassContext, register_pass

NEUTRAL = {"Multiply": 1.0, "Add": 0.0}


@register_pass
@dataclass(frozen=True)
class DropNeutralArithmeticPass(Pass):
    """Remove Multiply by 1 and Add of 0 when they do not change the tensor.

    Matches: Multiply/Add with one Const input whose every value is the neutral element
    and whose shape broadcasts to no more than the other input's shape.
    Emits: nothing; consumers read the other input directly.
    Preserves: output tensor names (moved to the surviving producer) and element types.
    """

    name = "drop-neutral-arithmetic"
    tolerance: float = 0.0

    def run(self, graph: ovq.Graph, ctx: PassContext) -> None:
        # Snapshot the candidates first: the graph is edited below.
        candidates = [n for n, op in graph.ops() if op.type in NEUTRAL]
        for node in candidates:
            inputs = graph.inputs_of(node)
            for const_index in (0, 1):
                src = inputs[const_index]
                other = inputs[1 - const_index]
                if src is None or other is None or not graph.op(src[0]).is_const:
                    continue
                value = graph.const_value(src[0])
                if value.dtype.kind not in "fiu" or value.size == 0:
                    continue
                if np.max(np.abs(value.astype(np.float64) - NEUTRAL[graph.op(node).type])) > self.tolerance:
                    continue
                other_shape = graph.op(other[0]).outputs[other[1]].shape
                if other_shape is None or len(value.shape) > len(other_shape) or any(
                    d != 1 and d != o for d, o in zip(reversed(value.shape), reversed(other_shape))
                ):
                    continue  # the constant would broadcast the tensor to a larger shape
                graph.replace_output(node, 0, other[0], other[1])
                graph.remove_node(node)
                break
        graph.remove_dead_nodes()


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
