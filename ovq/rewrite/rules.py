"""Rewrite rules and the worklist driver that applies them.

A :class:`RewriteRule` has a ``pattern`` (anchored on its root op type), a
``check(graph, match)`` returning ``None`` or the reason to refuse, and
``rewrite(rewriter, match)``. :func:`apply_rules` walks the graph with a worklist seeded
in topological order; it never iterates the live node set, skips nodes removed since
they were queued, and re-queues ops a rewrite created or whose inputs it changed.

Soundness: a match is refused when an interior node (matched below the root, and so
removed by the fusion) has a consumer outside the match or feeds a Result, unless the
rule sets ``allow_shared_interior``.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ovq.rewrite.pattern import Match, Matcher, OpPattern

if TYPE_CHECKING:
    from ovq.ir.graph import Graph

log = logging.getLogger("ovq.rewrite")


class RewriteRule:
    """Base class of rewrite rules: a ``pattern``, a ``check`` and a ``rewrite``."""

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


def _interior_problem(graph: Graph, match: Match) -> str | None:
    inside = set(match.nodes.values()) | {match.root}
    for node in match.interior:
        op = graph.op(node)
        for out_index in range(len(op.outputs)):
            for consumer, _ in graph.consumers(node, out_index):
                if consumer not in inside:
                    kind = "a model output" if graph.op(consumer).type == "Result" else repr(graph.op(consumer).name)
                    return f"{op.name!r} is also used by {kind} outside the match"
    return None


def _drop_unused(graph: Graph, candidates: list[int]) -> None:
    """Remove matched ops the rewrite left without consumers, and Consts that fed only them."""
    work = list(dict.fromkeys(candidates))
    while work:
        node = work.pop()
        if node not in graph:
            continue
        op = graph.op(node)
        if op.type in ("Parameter", "Result") or not op.outputs:
            continue
        if any(graph.consumers(node, k) for k in range(len(op.outputs))):
            continue
        producers = list(graph.nx.predecessors(node))
        graph.remove_node(node)
        work.extend(producers)


def apply_rules(graph: Graph, rules: list[RewriteRule], *, tracer: MatchTracer | None = None,
                max_rewrites: int = 100_000) -> int:
    """Apply ``rules`` until no rule fires; return the number of rewrites.

    Each node is tried against the rules whose anchor type it has, in rule order.
    """
    by_type: dict[str, list[RewriteRule]] = {}
    for rule in rules:
        for t in rule.pattern.type_set():
            by_type.setdefault(t, []).append(rule)
    queue = deque(graph.topological_order())
    queued = set(queue)
    rewriter = Rewriter(graph)
    matcher = Matcher(graph)
    count = 0
    while queue:
        node = queue.popleft()
        queued.discard(node)
        if node not in graph:
            continue
        for rule in by_type.get(graph.op(node).type, ()):
            match = matcher.match(rule.pattern, node)
            name = graph.op(node).name
            if match is None:
                if tracer:
                    tracer.entries.append(TraceEntry(rule.name, node, name, "no-match", matcher.last_reason))
                continue
            reason = None if rule.allow_shared_interior else _interior_problem(graph, match)
            reason = reason or rule.check(graph, match)
            if reason:
                if tracer:
                    tracer.entries.append(TraceEntry(rule.name, node, name, "condition-failed", reason))
                continue
            rewriter.rule = rule.name
            rewriter.touched = []
            rule.rewrite(rewriter, match)
            _drop_unused(graph, [match.root, *match.interior, *match.nodes.values()])
            count += 1
            if tracer:
                tracer.entries.append(TraceEntry(rule.name, node, name, "success"))
            log.debug("%s rewrote %s", rule.name, name)
            if count >= max_rewrites:
                raise RuntimeError(f"more than {max_rewrites} rewrites: rules do not converge")
            for touched in rewriter.touched:
                if touched in graph and touched not in queued:
                    queue.append(touched)
                    queued.add(touched)
            break
    return count
