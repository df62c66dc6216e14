"""Pattern matching and rewriting on the mirror (see :mod:`ovq.rewrite.pattern`, :mod:`ovq.rewrite.rules`)."""

from ovq.rewrite.pattern import AnyInput, ConstInput, Match, Matcher, OpPattern
from ovq.rewrite.rules import MatchTracer, Rewriter, RewriteRule, TraceEntry, apply_rules

__all__ = [
    "AnyInput",
    "ConstInput",
    "Match",
    "MatchTracer",
    "Matcher",
    "OpPattern",
    "RewriteRule",
    "Rewriter",
    "TraceEntry",
    "apply_rules",
]
