""":class:`RewritePass`: a pass made of rewrite rules, driven to a fixpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ovq.pipeline.base import Pass
from ovq.rewrite.driver import MAX_REWRITES, MAX_ROUNDS, apply_until_stable, ensure_shapes
from ovq.rewrite.rules import RewriteRule

if TYPE_CHECKING:
    from ovq.ir.graph import Graph
    from ovq.pipeline.context import PassContext


@dataclass(frozen=True)
class RewritePass(Pass):
    """A pass that applies a set of rewrite rules until none fires.

    A rule-based pass is a subclass that names itself and lists its rules::

        @register_pass
        @dataclass(frozen=True)
        class FusePadPass(RewritePass):
            name = "fuse-pad"
            rules = (FusePadIntoConvolution, FusePadIntoAvgPool, FusePadIntoMaxPool)

    Running it: :meth:`applies` decides whether there is anything to do (by default,
    whether some op has the anchor type of a rule); if so the port shapes are inferred
    where unknown (:func:`~ovq.rewrite.driver.ensure_shapes`, when ``needs_shapes``)
    and :func:`~ovq.rewrite.driver.apply_until_stable` applies the rules. Options are
    typed dataclass fields as for any pass; :meth:`make_rules` turns them into rules.

    Attributes:
        rules: Rule classes (instantiated for each run) or rule objects, in priority
            order: on a node, the first rule that matches and passes its checks wins.
        max_rounds: Worklist runs at most (1: a single run).
        max_rewrites: Rewrites one run may make before the pass fails with
            :class:`~ovq.errors.RewriteError` (the rules do not converge).
        needs_shapes: Infer unknown port shapes before the rules run (rules that read
            ranks or shapes need them).
    """

    rules: ClassVar[tuple[type[RewriteRule] | RewriteRule, ...]] = ()
    max_rounds: ClassVar[int] = MAX_ROUNDS
    max_rewrites: ClassVar[int] = MAX_REWRITES
    needs_shapes: ClassVar[bool] = True

    def make_rules(self) -> list[RewriteRule]:
        """The rules of one run (override to build them from the pass's options)."""
        return [rule() if isinstance(rule, type) else rule for rule in self.rules]

    def applies(self, graph: Graph, rules: list[RewriteRule]) -> bool:
        """Whether the rules can fire at all: a cheap scan, so an idle pass costs nothing.

        The default looks for an op of a rule's anchor type; override with a sharper
        test (the default must stay a necessary condition for a match).
        """
        anchors = {t for rule in rules for t in rule.pattern.type_set()}
        return bool(graph.nodes_of_type(*anchors))

    def run(self, graph: Graph, ctx: PassContext) -> None:
        rules = self.make_rules()
        if not self.applies(graph, rules):
            return
        if self.needs_shapes:
            ensure_shapes(graph)
        apply_until_stable(graph, rules, max_rounds=self.max_rounds, max_rewrites=self.max_rewrites)
