"""The rewrite driver: apply a rule set to a graph until no rule fires.

:func:`apply_rules` walks the graph with a worklist seeded in topological order. It
never iterates the live node set: it skips nodes removed since they were queued, and
re-queues the ops a rewrite created and the consumers of every output it replaced.
After each rewrite it removes the matched ops the rewrite left without consumers (and
Consts that fed only them). One call ends when the worklist is empty.

A worklist run can leave matches behind: a node whose match only becomes possible when
an op further away changes is not re-queued. :func:`apply_until_stable` therefore
repeats :func:`apply_rules` until a run rewrites nothing.

Soundness: a match is refused when an interior node (matched below the root, and so
removed by the fusion) has a consumer outside the match or feeds a Result, unless the
rule sets ``allow_shared_interior``.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING

from ovq.errors import RewriteError
from ovq.rewrite.pattern import Matcher
from ovq.rewrite.rules import MatchTracer, Rewriter, RewriteRule, TraceEntry

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ovq.ir.graph import Graph
    from ovq.rewrite.pattern import Match

log = logging.getLogger("ovq.rewrite")

#: Rewrites one :func:`apply_rules` call may make before it gives up (:class:`RewriteError`).
MAX_REWRITES = 100_000
#: Worklist runs :func:`apply_until_stable` makes at most.
MAX_ROUNDS = 10


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


def apply_rules(graph: Graph, rules: Sequence[RewriteRule], *, tracer: MatchTracer | None = None,
                max_rewrites: int = MAX_REWRITES) -> int:
    """Apply ``rules`` with one worklist run; return the number of rewrites.

    Each node is tried against the rules whose anchor type it has, in rule order; the
    first rule that matches and passes its checks rewrites it.

    Args:
        graph: Edited in place.
        rules: The rule set.
        tracer: Records every attempt (success, no match, refused) with its reason.
        max_rewrites: Bound on rewrites; a rule set that reaches it does not converge.

    Raises:
        RewriteError: more than ``max_rewrites`` rewrites.
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
                names = ", ".join(dict.fromkeys(r.name for r in rules))
                raise RewriteError(f"rules [{names}] do not converge: more than {max_rewrites} rewrites "
                                   f"(the last: {rule.name} on {name!r})")
            for touched in rewriter.touched:
                if touched in graph and touched not in queued:
                    queue.append(touched)
                    queued.add(touched)
            break
    return count


def apply_until_stable(graph: Graph, rules: Sequence[RewriteRule], *, tracer: MatchTracer | None = None,
                       max_rounds: int = MAX_ROUNDS, max_rewrites: int = MAX_REWRITES) -> int:
    """Run :func:`apply_rules` until a run rewrites nothing; return the total rewrites.

    Stops after ``max_rounds`` runs even if the last one still rewrote: every rewrite
    is sound on its own, so the graph is then valid, only less rewritten (logged as a
    warning when more than one run was allowed; ``max_rounds=1`` asks for exactly one
    worklist run).

    Raises:
        RewriteError: one run does not converge (see :func:`apply_rules`).
    """
    total = 0
    for _ in range(max_rounds):
        count = apply_rules(graph, rules, tracer=tracer, max_rewrites=max_rewrites)
        total += count
        if not count:
            return total
    if max_rounds > 1:
        log.warning("rules [%s] still rewrote in run %d of %d; stopping there",
                    ", ".join(dict.fromkeys(r.name for r in rules)), max_rounds, max_rounds)
    return total


def ensure_shapes(graph: Graph) -> None:
    """Run OpenVINO shape inference unless every op output already records a shape.

    A model read from IR records every port's shape, and rewrites made through
    :meth:`Rewriter.clone_op` or ``Rewriter.add_op(like=...)`` keep them; an op added
    without a shape triggers a full ``Graph.infer_shapes`` (a round trip through
    OpenVINO, the dominant cost of rule-based passes on large models).
    """
    for _, op in graph.ops():
        if any(port.shape is None for port in op.outputs):
            graph.infer_shapes()
            return
