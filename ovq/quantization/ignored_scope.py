"""Ignored scopes: the ops a user keeps in floating point.

An :class:`IgnoredScope` names ops by friendly name, op type, regular expression over
friendly names, or as the subgraph between named inputs and outputs (every op on a
path from one of the ``inputs`` ops to one of the ``outputs`` ops, both ends
included). :meth:`IgnoredScope.resolve` turns it into a set of node ids for one graph
and checks that every entry matched something: an unmatched entry logs a warning
naming it, or raises :class:`IgnoredScopeError` in strict mode.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import networkx as nx

from ovq.errors import OvqError
from ovq.ir.graph import Graph, canonical_ir_type

log = logging.getLogger("ovq.quantization")


class IgnoredScopeError(OvqError):
    """An ignored-scope entry matches no op (strict mode), or a pattern is not a valid regex."""


@dataclass(frozen=True)
class Subgraph:
    """The ops on every path from an op in ``inputs`` to an op in ``outputs`` (names)."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class IgnoredScope:
    """Ops excluded from quantization.

    Attributes:
        names: Exact friendly names.
        types: Op types (IR or OpenVINO spelling: ``Relu`` or ``ReLU``).
        patterns: Regular expressions matched (``re.fullmatch``) against friendly names.
        subgraphs: :class:`Subgraph` entries (or ``(inputs, outputs)`` pairs).
    """

    names: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    subgraphs: tuple[Subgraph, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        # Accept lists and bare (inputs, outputs) pairs for convenience.
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "types", tuple(self.types))
        object.__setattr__(self, "patterns", tuple(self.patterns))
        subs = []
        for s in self.subgraphs:
            if not isinstance(s, Subgraph):
                ins, outs = s
                s = Subgraph(tuple(_as_list(ins)), tuple(_as_list(outs)))
            subs.append(s)
        object.__setattr__(self, "subgraphs", tuple(subs))
        for p in self.patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise IgnoredScopeError(f"ignored scope: pattern {p!r} is not a valid regular expression: {exc}") from None

    def is_empty(self) -> bool:
        """True if the scope ignores nothing."""
        return not (self.names or self.types or self.patterns or self.subgraphs)

    def resolve(self, graph: Graph, *, strict: bool = False) -> set[int]:
        """Node ids of ``graph`` in the scope.

        Raises:
            IgnoredScopeError: ``strict`` and some entry matches nothing (all unmatched
                entries are named in one message).
        """
        by_name: dict[str, list[int]] = {}
        for node, op in graph.ops():
            by_name.setdefault(op.name, []).append(node)
        hits: set[int] = set()
        unmatched: list[str] = []
        for name in self.names:
            nodes = by_name.get(name, [])
            if not nodes:
                unmatched.append(f"name {name!r}")
            hits.update(nodes)
        for type_name in self.types:
            nodes = graph.nodes_of_type(type_name)
            if not nodes:
                unmatched.append(f"type {canonical_ir_type(type_name)!r}")
            hits.update(nodes)
        for pattern in self.patterns:
            rx = re.compile(pattern)
            nodes = [n for name, ns in by_name.items() if rx.fullmatch(name) for n in ns]
            if not nodes:
                unmatched.append(f"pattern {pattern!r}")
            hits.update(nodes)
        for sub in self.subgraphs:
            missing = [n for n in (*sub.inputs, *sub.outputs) if n not in by_name]
            if missing:
                unmatched.extend(f"subgraph endpoint {n!r}" for n in missing)
                continue
            starts = {n for name in sub.inputs for n in by_name[name]}
            ends = {n for name in sub.outputs for n in by_name[name]}
            down: set[int] = set(starts)
            for s in starts:
                down |= nx.descendants(graph.nx, s)
            up: set[int] = set(ends)
            for e in ends:
                up |= nx.ancestors(graph.nx, e)
            nodes_in = down & up
            if not nodes_in:
                unmatched.append(f"subgraph {list(sub.inputs)} -> {list(sub.outputs)} (no path)")
            hits |= nodes_in
        if unmatched:
            msg = "ignored scope entries match no op in the model: " + ", ".join(unmatched)
            if strict:
                raise IgnoredScopeError(f"{graph.source}: {msg}")
            log.warning("%s: %s", graph.source, msg)
        return hits


def _as_list(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def as_ignored_scope(value: IgnoredScope | dict | None) -> IgnoredScope:
    """Coerce ``None``, a dict (``{"names": [...], "types": [...], ...}``) or a scope."""
    if value is None:
        return IgnoredScope()
    if isinstance(value, IgnoredScope):
        return value
    if isinstance(value, dict):
        unknown = set(value) - {"names", "types", "patterns", "subgraphs"}
        if unknown:
            raise IgnoredScopeError(f"ignored scope: unknown keys {sorted(unknown)} (use names, types, patterns, subgraphs)")
        return IgnoredScope(**{k: tuple(v) if not isinstance(v, str) else (v,) for k, v in value.items()})
    raise IgnoredScopeError(f"ignored scope: expected an IgnoredScope or a dict, got {type(value).__name__}")
