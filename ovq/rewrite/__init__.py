"""Pattern matching and rewriting on the mirror.

* :mod:`ovq.rewrite.pattern`: declarative patterns (:class:`OpPattern`, :class:`AnyInput`,
  :class:`ConstInput`) and the :class:`Matcher`;
* :mod:`ovq.rewrite.rules`: :class:`RewriteRule`, the :class:`Rewriter` rules edit
  through, and the :class:`MatchTracer`;
* :mod:`ovq.rewrite.driver`: :func:`apply_rules` (one worklist run) and
  :func:`apply_until_stable` (runs until nothing changes);
* :mod:`ovq.rewrite.rewrite_pass`: :class:`RewritePass`, a pass made of rules.

``docs/passes.md`` shows how to write, register, test and run a rule-based pass.
"""

from ovq.rewrite.driver import apply_rules, apply_until_stable, ensure_shapes
from ovq.rewrite.pattern import AnyInput, ConstInput, Match, Matcher, OpPattern
from ovq.rewrite.rewrite_pass import RewritePass
from ovq.rewrite.rules import MatchTracer, Rewriter, RewriteRule, TraceEntry

__all__ = [
    "AnyInput",
    "ConstInput",
    "Match",
    "MatchTracer",
    "Matcher",
    "OpPattern",
    "RewritePass",
    "RewriteRule",
    "Rewriter",
    "TraceEntry",
    "apply_rules",
    "apply_until_stable",
    "ensure_shapes",
]
