"""``eliminate-dead-code``: remove ops whose results nothing uses."""

from __future__ import annotations

from dataclasses import dataclass

from ovq.pipeline import Pass, PassContext, register_pass


@register_pass
@dataclass(frozen=True)
class EliminateDeadCodePass(Pass):
    """Remove ops that no Result or other sink depends on.

    Matches: every op from which no path leads to a Result, Assign or other op without
    outputs (top level; sub-graph bodies are left alone because their port maps name
    internal layers).
    Emits: nothing. Preserves: Parameters (they define the model's inputs), model
    outputs and their order, every live op untouched.
    """

    name = "eliminate-dead-code"

    def run(self, graph, ctx: PassContext) -> None:
        graph.remove_dead_nodes()
