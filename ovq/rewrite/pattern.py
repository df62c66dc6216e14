"""Declarative, port-aware patterns over the mirror.

A pattern is a tree rooted at the op a rule anchors on. Each :class:`OpPattern` matches
one op by type (IR or OpenVINO spelling), optionally its inputs (matched against the
producer of each input port, in order), attribute values, a predicate, the number of
consumers of its output, and binds the matched node under a name::

    conv = OpPattern("Convolution", [AnyInput("x"), ConstInput("w")], bind="conv", consumers=1)
    pattern = OpPattern("Multiply", [conv, ConstInput("scale")], bind="mul", commutative=True)

Matching returns a :class:`Match` (bindings name → node, plus which output of each
producer was used) or ``None`` with the reason in :attr:`Matcher.last_reason`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ovq.ir.graph import canonical_ir_type

if TYPE_CHECKING:
    from ovq.ir.graph import Graph

Predicate = Callable[["Graph", int], bool]


@dataclass(frozen=True)
class AnyInput:
    """Matches any producer; binds it (node and output index) when ``bind`` is set."""

    bind: str | None = None


@dataclass(frozen=True)
class ConstInput:
    """Matches a Const producer, optionally filtered by ``predicate(graph, node)``."""

    bind: str | None = None
    predicate: Predicate | None = None


@dataclass(frozen=True)
class OpPattern:
    """Matches one op.

    Attributes:
        types: Accepted op types (a name or a tuple of names).
        inputs: Patterns for the op's inputs in port order (``None``: inputs unchecked;
            a shorter list checks only the first inputs).
        bind: Name to bind the matched node under.
        attrs: Required ``<data>`` attribute values (compared as strings).
        predicate: Extra condition ``predicate(graph, node)``.
        consumers: Required number of consumers of output 0 (``None``: any).
        commutative: For two-input ops, also try the inputs swapped.
    """

    types: str | tuple[str, ...]
    inputs: Sequence[OpPattern | AnyInput | ConstInput] | None = None
    bind: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    predicate: Predicate | None = None
    consumers: int | None = None
    commutative: bool = False

    def type_set(self) -> frozenset[str]:
        """Accepted types in IR spelling."""
        names = (self.types,) if isinstance(self.types, str) else self.types
        return frozenset(canonical_ir_type(t) for t in names)


@dataclass
class Match:
    """The result of a successful match.

    Attributes:
        root: The node the pattern was anchored on.
        nodes: Bound name → node.
        outputs: Bound name → (node, output index) actually consumed.
        interior: Nodes matched by OpPatterns below the root (the ops a fusion removes).
    """

    root: int
    nodes: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, tuple[int, int]] = field(default_factory=dict)
    interior: list[int] = field(default_factory=list)

    def __getitem__(self, name: str) -> int:
        return self.nodes[name]


class Matcher:
    """Matches patterns on a graph; remembers why the last attempt failed."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.last_reason = ""

    def match(self, pattern: OpPattern, node: int) -> Match | None:
        """Match ``pattern`` anchored at ``node``."""
        match = Match(root=node)
        if self._op(pattern, node, 0, match, is_root=True):
            return match
        return None

    def _fail(self, reason: str) -> bool:
        self.last_reason = reason
        return False

    def _bind(self, name: str | None, node: int, out_index: int, match: Match) -> bool:
        if name is None:
            return True
        if name in match.nodes and match.nodes[name] != node:
            return self._fail(f"{name!r} bound to two different ops")
        match.nodes[name] = node
        match.outputs[name] = (node, out_index)
        return True

    def _any(self, pattern, producer: tuple[int, int] | None, match: Match) -> bool:
        if producer is None:
            return self._fail("input not connected")
        node, out_index = producer
        if isinstance(pattern, AnyInput):
            return self._bind(pattern.bind, node, out_index, match)
        if isinstance(pattern, ConstInput):
            op = self.graph.op(node)
            if not op.is_const:
                return self._fail(f"{op.name!r} is {op.type}, not a Const")
            if pattern.predicate is not None and not pattern.predicate(self.graph, node):
                return self._fail(f"Const {op.name!r} fails its predicate")
            return self._bind(pattern.bind, node, out_index, match)
        return self._op(pattern, node, out_index, match, is_root=False)

    def _op(self, pattern: OpPattern, node: int, out_index: int, match: Match, *, is_root: bool) -> bool:
        graph = self.graph
        op = graph.op(node)
        if op.type not in pattern.type_set():
            return self._fail(f"{op.name!r} is {op.type}, expected {sorted(pattern.type_set())}")
        for key, value in pattern.attrs.items():
            if (op.attrs or {}).get(key) != value:
                return self._fail(f"{op.name!r}: attribute {key}={(op.attrs or {}).get(key)!r}, expected {value!r}")
        if pattern.consumers is not None:
            count = len(graph.consumers(node, out_index))
            if count != pattern.consumers:
                return self._fail(f"{op.name!r} has {count} consumers, expected {pattern.consumers}")
        if pattern.predicate is not None and not pattern.predicate(graph, node):
            return self._fail(f"{op.name!r} fails its predicate")
        if not is_root:
            match.interior.append(node)
        if not self._bind(pattern.bind, node, out_index, match):
            return False
        if pattern.inputs is None:
            return True
        producers = graph.inputs_of(node)
        if len(pattern.inputs) > len(producers):
            return self._fail(f"{op.name!r} has {len(producers)} inputs, pattern needs {len(pattern.inputs)}")
        orders = [list(range(len(pattern.inputs)))]
        if pattern.commutative and len(pattern.inputs) == 2:
            orders.append([1, 0])
        for order in orders:
            trial = Match(match.root, dict(match.nodes), dict(match.outputs), list(match.interior))
            if all(self._any(sub, producers[i], trial) for sub, i in zip(pattern.inputs, order, strict=True)):
                match.nodes, match.outputs, match.interior = trial.nodes, trial.outputs, trial.interior
                return True
        return False
