"""Rewrite rules, the rewriter they edit the graph through, and the match tracer.

A :class:`RewriteRule` has a ``pattern`` (an :class:`~ovq.rewrite.pattern.OpPattern`
anchored on its root op type), a ``check(graph, match)`` returning ``None`` or the reason
to refuse, and ``rewrite(rewriter, match)``. Rules never run themselves: the driver in
:mod:`ovq.rewrite.driver` (and :class:`~ovq.rewrite.rewrite_pass.RewritePass` on top of
it) finds matches, applies the soundness check, calls ``check`` and ``rewrite``, and
removes what the rewrite left unused.

A rule edits only through its :class:`Rewriter`: ops it creates are stamped with the
rule's name (``ovq_rule`` in rt_info) and queued for another visit, as are the consumers
of every output it replaces.
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ovq.ir.graph import Port

if TYPE_CHECKING:
    from ovq.ir.graph import Graph, Op
    from ovq.rewrite.pattern import Match, OpPattern


class RewriteRule:
    """Base class of rewrite rules: a ``pattern``, a ``check`` and a ``rewrite``.

    Attributes:
        name: Kebab-case rule name, stamped on every op the rule creates.
        pattern: What the rule matches, anchored on the op it rewrites (the root).
        allow_shared_interior: Skip the driver's soundness check (an op matched below
            the root must have no consumer outside the match and must not feed a
            Result); a rule that keeps such ops sets it and checks what it needs itself.
    """

    name: str = ""
    pattern: OpPattern
    allow_shared_interior: bool = False

    def check(self, graph: Graph, match: Match) -> str | None:
        """``None`` if the rewrite applies, else the reason it does not."""
        return None

    def rewrite(self, rw: Rewriter, match: Match) -> None:
        """Edit the graph through ``rw`` (so new nodes are stamped and re-queued)."""
        raise NotImplementedError


@dataclass
class TraceEntry:
    """Why a rule did or did not fire on a node."""

    rule: str
    node: int
    node_name: str
    outcome: str  # "success", "no-match", "condition-failed"
    reason: str = ""


@dataclass
class MatchTracer:
    """Records every rule attempt, for dry runs and debugging (``explain()``)."""

    entries: list[TraceEntry] = field(default_factory=list)

    def explain(self, rule: str | None = None) -> str:
        """One line per attempt (optionally of one rule)."""
        return "\n".join(
            f"{e.rule} @ {e.node_name}: {e.outcome}{': ' + e.reason if e.reason else ''}"
            for e in self.entries
            if rule is None or e.rule == rule
        )


class Rewriter:
    """Edits made by rules: stamps new nodes with the rule name and tracks what to re-visit."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.rule = ""
        self.touched: list[int] = []

    def add_op(self, type: str, name: str, *, like: tuple[int, int] | None = None, **kwargs: Any) -> int:
        """``Graph.add_op`` that records the rule in the new op's rt_info.

        ``like=(node, out_index)`` copies that output's element type and shape to the new
        op's first output (for rewrites that keep the tensor's type and shape).
        """
        node = self.graph.add_op(type, name, **kwargs)
        if like is not None:
            src = self.graph.op(like[0]).outputs[like[1]]
            dst = self.graph.op(node).outputs[0]
            dst.precision = src.precision
            dst.shape = None if src.shape is None else list(src.shape)
        self._stamp(node)
        return node

    def add_const(self, values: Any, name: str, **kwargs: Any) -> int:
        """``Graph.add_const`` that records the rule in the new op's rt_info."""
        node = self.graph.add_const(values, name, **kwargs)
        self._stamp(node)
        return node

    def clone_op(self, node: int, *, name: str | None = None, attrs: dict[str, str] | None = None) -> int:
        """A new, unconnected copy of ``node``: type, opset, attributes, rt_info, port shapes.

        ``attrs`` overrides attribute values. The copy is stamped with the rule (earlier
        ``ovq_rule`` stamps are not carried over); output tensor names are not copied,
        they move with :meth:`replace_output`.
        """
        op = self.graph.op(node)
        outputs = [Port(id=0, precision=p.precision, shape=None if p.shape is None else list(p.shape))
                   for p in op.outputs]
        new_attrs = dict(op.attrs or {})
        new_attrs.update(attrs or {})
        return self.add_op(op.type, op.name if name is None else name, version=op.version,
                           attrs=new_attrs if op.attrs is not None or attrs else None,
                           num_inputs=len(op.inputs), outputs=outputs, rt_info=_inherited_rt_info(op))

    def replace_output(self, old: int, old_out: int, new: int, new_out: int) -> None:
        """``Graph.replace_output``; the new producer's consumers are re-visited."""
        consumers = [c for c, _ in self.graph.consumers(old, old_out)]
        self.graph.replace_output(old, old_out, new, new_out)
        self.touched.extend([new, *consumers])

    def _stamp(self, node: int) -> None:
        op = self.graph.op(node)
        rt = op.rt_info if op.rt_info is not None else ET.Element("rt_info")
        ET.SubElement(rt, "attribute", {"name": "ovq_rule", "version": "0", "value": self.rule})
        op.rt_info = rt
        self.touched.append(node)


def _inherited_rt_info(op: Op) -> ET.Element | None:
    """The op's rt_info without earlier ``ovq_rule`` stamps (the rewriter adds its own)."""
    if op.rt_info is None:
        return None
    rt = copy.deepcopy(op.rt_info)
    for attr in [a for a in rt if a.get("name") == "ovq_rule"]:
        rt.remove(attr)
    return rt
