"""Ignored scopes: the ops a user keeps in floating point.

An :class:`IgnoredScope` names ops by friendly name, op type, regular expression over
friendly names, or as the subgraph between named inputs and outputs (every op on a
path from one of the ``inputs`` ops to one of the ``outputs`` ops, both ends
included). :meth:`IgnoredScope.resolve` turns it into a set of node ids for one graph
and checks that every entry matched something: an unmatched entry logs a warning
naming it, or raises :class:`IgnoredScopeError` in strict mode.

Automatic ignored patterns (POT ``IgnoredPatterns.md``, NNCF ``IgnoredPatternNames``):
:func:`match_ignored_patterns` finds the ops of each pattern a hardware descriptor lists
in ``ignored_patterns``; the placement planner keeps them in floating point and never
moves a quantizer into them. Patterns and the ops they keep float:

* ``swish``: ``x -> Sigmoid -> Multiply(x)``: the Sigmoid and the Multiply.
* ``hswish``: ``x -> Add(3) -> Clamp(0, 6) [-> Multiply/Divide(const)] -> Multiply(x)
  [-> Multiply/Divide(const)]`` and ``HSigmoid(x) -> Multiply(x)``: every op of the chain.
* ``se_block``: a squeeze-and-excitation gate ``x -> ReduceMean -> (Conv|MatMul ...)
  -> sigmoid-like -> Multiply(x)``: the ReduceMean, the gate branch and the Multiply.
* ``fc_bn_hswish_activation``: ``Unsqueeze -> Multiply(const) -> Add(const) -> Squeeze``.
* ``equal_logicalnot``: ``Equal -> LogicalNot``.
* ``softmax_reshape_matmul`` (not transformers) and ``multihead_attention_output``
  (transformers only): a MatMul reading ``Softmax [-> Reshape/Transpose...]``.
* ``assign_result``: Assign ops and Results fed by them (GNA).
* ``input_preprocessing``, ``operation_with_bias``, ``postprocessing_nms_topk``: built
  into the planner (always on: they are CPU INT8 correctness rules).
* ``batch_index``: accepted for POT compatibility; no matcher (the integer index
  tensors it protects are never quantized anyway, as FQs go on float tensors only).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import networkx as nx

from ovq.errors import OvqError
from ovq.ir.graph import Graph, canonical_ir_type

log = logging.getLogger("ovq.quantization")


class IgnoredScopeError(OvqError):
    """An ignored-scope entry matches no op (strict mode), or a pattern is not a valid regex."""


@dataclass(frozen=True)
class Subgraph:
    """The ops on every path from an op in ``inputs`` to an op in ``outputs`` (names;
    ``nncf.Subgraph``'s fields)."""

    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(_as_list(self.inputs)))
        object.__setattr__(self, "outputs", tuple(_as_list(self.outputs)))


@dataclass(frozen=True)
class IgnoredScope:
    """Ops excluded from quantization.

    Attributes:
        names: Exact friendly names.
        types: Op types (IR or OpenVINO spelling: ``Relu`` or ``ReLU``).
        patterns: Regular expressions matched at the start of friendly names (``re.match``, as
            NNCF's ``IgnoredScope``: ``conv2`` also matches ``conv2/bias``; end a pattern with
            ``$`` for a whole-name match).
        subgraphs: :class:`Subgraph` entries (or ``(inputs, outputs)`` pairs, or objects
            with ``inputs`` and ``outputs`` attributes such as ``nncf.Subgraph``).
        operations: POT's ``ignored.operations``: ``{"type": T, "attributes": {...}}``
            entries, matching ops of type ``T`` whose IR attributes equal every given
            value (lists compare element-wise, numbers numerically).
        validate: An entry that matches no op is an error (NNCF's default); ``False``
            logs a warning instead.
    """

    names: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    subgraphs: tuple[Subgraph, ...] = field(default_factory=tuple)
    operations: tuple[Mapping, ...] = ()
    validate: bool = True

    def __post_init__(self) -> None:
        # Accept lists and bare (inputs, outputs) pairs for convenience.
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "types", tuple(self.types))
        object.__setattr__(self, "patterns", tuple(self.patterns))
        subs = []
        for s in self.subgraphs:
            if not isinstance(s, Subgraph):
                if hasattr(s, "inputs") and hasattr(s, "outputs"):
                    s = Subgraph(s.inputs, s.outputs)
                else:
                    try:
                        ins, outs = s
                    except (TypeError, ValueError):
                        raise IgnoredScopeError(f"ignored scope: a subgraph must be a Subgraph(inputs, outputs) or an "
                                                f"(inputs, outputs) pair, got {s!r}") from None
                    s = Subgraph(ins, outs)
            subs.append(s)
        object.__setattr__(self, "subgraphs", tuple(subs))
        ops = []
        for entry in self.operations:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("type"), str) \
                    or not isinstance(entry.get("attributes", {}), Mapping):
                raise IgnoredScopeError(f"ignored scope: an operation must be {{\"type\": T, \"attributes\": {{...}}}}, "
                                        f"got {entry!r}")
            ops.append({"type": entry["type"], "attributes": dict(entry.get("attributes", {}))})
        object.__setattr__(self, "operations", tuple(ops))
        for p in self.patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise IgnoredScopeError(f"ignored scope: pattern {p!r} is not a valid regular expression: {exc}") from None

    def is_empty(self) -> bool:
        """True if the scope ignores nothing."""
        return not (self.names or self.types or self.patterns or self.subgraphs or self.operations)

    def resolve(self, graph: Graph, *, strict: bool = False) -> set[int]:
        """Node ids of ``graph`` in the scope.

        Raises:
            IgnoredScopeError: ``validate`` or ``strict``, and some entry matches nothing
                (all unmatched entries are named in one message).
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
            nodes = [n for name, ns in by_name.items() if rx.match(name) for n in ns]
            if not nodes:
                unmatched.append(f"pattern {pattern!r}")
            hits.update(nodes)
        for entry in self.operations:
            attrs = entry["attributes"]
            nodes = [n for n in graph.nodes_of_type(entry["type"])
                     if all(_attr_equal((graph.op(n).attrs or {}).get(k), v) for k, v in attrs.items())]
            if not nodes:
                unmatched.append(f"operation {entry['type']!r} with {attrs}" if attrs else f"type {entry['type']!r}")
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
            if strict or self.validate:
                raise IgnoredScopeError(f"{graph.source}: {msg} (IgnoredScope(..., validate=False) to allow it)")
            log.warning("%s: %s", graph.source, msg)
        return hits


def _attr_equal(ir_value: str | None, wanted: object) -> bool:
    """An IR attribute string against a config value: ``"1,1"`` equals ``[1, 1]``,
    ``"2.0"`` equals ``2``, ``"true"`` equals ``True``."""
    if ir_value is None:
        return False
    if isinstance(wanted, (list, tuple)):
        parts = [p.strip() for p in ir_value.split(",")] if ir_value.strip() else []
        return len(parts) == len(wanted) and all(_attr_equal(p, w) for p, w in zip(parts, wanted, strict=True))
    if isinstance(wanted, bool):
        return ir_value.strip().lower() == str(wanted).lower()
    if isinstance(wanted, (int, float)):
        try:
            return float(ir_value) == float(wanted)
        except ValueError:
            return False
    return ir_value.strip().lower() == str(wanted).strip().lower()


def _as_list(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


_SCOPE_FIELDS = ("names", "types", "patterns", "subgraphs")


def as_ignored_scope(value: IgnoredScope | dict | None) -> IgnoredScope:
    """Coerce ``None``, a dict (``{"names": [...], "types": [...], ..., "validate": bool}``),
    a scope, or an object with ``nncf.IgnoredScope``'s public attributes (``names``,
    ``patterns``, ``types``, ``subgraphs``, ``validate``)."""
    if value is None:
        return IgnoredScope()
    if isinstance(value, IgnoredScope):
        return value
    if isinstance(value, dict):
        unknown = set(value) - {*_SCOPE_FIELDS, "operations", "validate"}
        if unknown:
            raise IgnoredScopeError(f"ignored scope: unknown keys {sorted(unknown)} "
                                    "(use names, types, patterns, subgraphs, operations, validate)")
        fields = {k: tuple(v) if not isinstance(v, str) else (v,) for k, v in value.items() if k != "validate"}
        return IgnoredScope(**fields, validate=bool(value.get("validate", True)))
    if any(hasattr(value, f) for f in _SCOPE_FIELDS):
        fields = {f: _as_list(getattr(value, f, None) or ()) for f in _SCOPE_FIELDS}
        return IgnoredScope(**fields, validate=bool(getattr(value, "validate", True)))
    raise IgnoredScopeError(f"ignored scope: expected an IgnoredScope (ovq's or nncf's) or a dict, "
                            f"got {type(value).__name__}")


# ------------------------------------------------------------------ ignored patterns
_Tensor = tuple[int, int]
_WEIGHTED = {"Convolution", "GroupConvolution", "MatMul"}
_SIGMOID_LIKE = {"Sigmoid", "HSigmoid", "HardSigmoid", "Clamp"}
_MAX_GATE_OPS = 24


def _type(graph: Graph, node: int) -> str:
    return graph.op(node).ov_type


def _acts(graph: Graph, const: Mapping[int, bool], node: int) -> list[_Tensor]:
    return [p for p in graph.inputs_of(node) if p is not None and not const[p[0]]]


def _has_const_input(graph: Graph, const: Mapping[int, bool], node: int) -> bool:
    return any(p is not None and const[p[0]] for p in graph.inputs_of(node))


def _only_consumer(graph: Graph, node: int) -> int | None:
    """The single value consumer of output 0 (ShapeOf readers ignored), else None."""
    cons = [c for c, _ in graph.consumers(node, 0) if _type(graph, c) != "ShapeOf"]
    return cons[0] if len(cons) == 1 else None


def _two_input_multiplies(graph: Graph, const: Mapping[int, bool]) -> Iterable[tuple[int, _Tensor, _Tensor]]:
    for node, op in graph.ops():
        if op.ov_type == "Multiply":
            acts = _acts(graph, const, node)
            if len(acts) == 2:
                yield node, acts[0], acts[1]


def _const_scale_tail(graph: Graph, const: Mapping[int, bool], node: int) -> set[int]:
    """A following ``Multiply``/``Divide`` by a constant (the 1/6 of hswish), if any."""
    nxt = _only_consumer(graph, node)
    if nxt is not None and _type(graph, nxt) in ("Multiply", "Divide") and _has_const_input(graph, const, nxt):
        return {nxt}
    return set()


def _swish(graph: Graph, const: Mapping[int, bool]) -> set[int]:
    out: set[int] = set()
    for mul, a, b in _two_input_multiplies(graph, const):
        for gate, x in ((a, b), (b, a)):
            if _type(graph, gate[0]) == "Sigmoid" and graph.producer(gate[0], 0) == x \
                    and _only_consumer(graph, gate[0]) == mul:
                out |= {gate[0], mul}
                break
    return out


def _hsigmoid_chain(graph: Graph, const: Mapping[int, bool], gate: _Tensor, x: _Tensor, mul: int) -> set[int]:
    """Ops of ``hsigmoid(x)`` ending at ``gate`` (which feeds only ``mul``), or empty."""
    chain: set[int] = set()
    node = gate[0]
    if _only_consumer(graph, node) != mul:
        return set()
    if _type(graph, node) == "HSigmoid":
        return {node} if graph.producer(node, 0) == x else set()
    if _type(graph, node) in ("Multiply", "Divide") and _has_const_input(graph, const, node):
        chain.add(node)
        acts = _acts(graph, const, node)
        if len(acts) != 1 or _only_consumer(graph, acts[0][0]) != node:
            return set()
        node = acts[0][0]
    if _type(graph, node) != "Clamp":
        return set()
    chain.add(node)
    src = graph.producer(node, 0)
    if src is None or _type(graph, src[0]) != "Add" or _only_consumer(graph, src[0]) != node:
        return set()
    add = src[0]
    if not _has_const_input(graph, const, add) or _acts(graph, const, add) != [x]:
        return set()
    return chain | {add}


def _hswish(graph: Graph, const: Mapping[int, bool]) -> set[int]:
    out: set[int] = set()
    for mul, a, b in _two_input_multiplies(graph, const):
        for gate, x in ((a, b), (b, a)):
            chain = _hsigmoid_chain(graph, const, gate, x, mul)
            if chain:
                out |= chain | {mul} | _const_scale_tail(graph, const, mul)
                break
    return out


def _se_gate(graph: Graph, const: Mapping[int, bool], gate: _Tensor, x: _Tensor, mul: int) -> set[int]:
    """The gate branch of a squeeze-and-excitation block (ReduceMean .. sigmoid), or empty."""
    region: set[int] = set()
    readers_of_x: set[int] = set()
    stack = [gate[0]]
    while stack:
        cur = stack.pop()
        if cur in region:
            continue
        if _type(graph, cur) in ("Parameter", "ReadValue") or len(region) >= _MAX_GATE_OPS:
            return set()
        region.add(cur)
        for p in _acts(graph, const, cur):
            if p == x:
                readers_of_x.add(cur)
            else:
                stack.append(p[0])
    if not readers_of_x or any(_type(graph, r) != "ReduceMean" for r in readers_of_x):
        return set()
    types = {_type(graph, n) for n in region}
    if not (types & _WEIGHTED and types & _SIGMOID_LIKE):
        return set()
    for n in region:
        for o in range(len(graph.op(n).outputs)):
            if any(c not in region and c != mul for c, _ in graph.consumers(n, o) if _type(graph, c) != "ShapeOf"):
                return set()
    return region


def _se_block(graph: Graph, const: Mapping[int, bool]) -> set[int]:
    out: set[int] = set()
    for mul, a, b in _two_input_multiplies(graph, const):
        for gate, x in ((a, b), (b, a)):
            region = _se_gate(graph, const, gate, x, mul)
            if region:
                out |= region | {mul}
                break
    return out


def _fc_bn_hswish(graph: Graph, const: Mapping[int, bool]) -> set[int]:
    out: set[int] = set()
    for node in graph.nodes_of_type("Unsqueeze"):
        chain, cur = [node], node
        for want in ("Multiply", "Add", "Squeeze"):
            nxt = _only_consumer(graph, cur)
            if nxt is None or _type(graph, nxt) != want or (want != "Squeeze" and not _has_const_input(graph, const, nxt)):
                break
            chain.append(nxt)
            cur = nxt
        else:
            out |= set(chain)
    return out


def _equal_logicalnot(graph: Graph, const: Mapping[int, bool]) -> set[int]:
    out: set[int] = set()
    for node in graph.nodes_of_type("Equal"):
        nxt = _only_consumer(graph, node)
        if nxt is not None and _type(graph, nxt) == "LogicalNot":
            out |= {node, nxt}
    return out


def _softmax_matmul(graph: Graph, const: Mapping[int, bool]) -> set[int]:
    out: set[int] = set()
    for node in graph.nodes_of_type("MatMul"):
        for p in _acts(graph, const, node):
            while p is not None and _type(graph, p[0]) in ("Reshape", "Transpose"):
                p = graph.producer(p[0], 0)
            if p is not None and _type(graph, p[0]) == "Softmax":
                out.add(node)
    return out


def _assign_result(graph: Graph, const: Mapping[int, bool]) -> set[int]:
    out = set(graph.nodes_of_type("Assign"))
    for r in graph.results():
        p = graph.producer(r, 0)
        if p is not None and _type(graph, p[0]) == "Assign":
            out.add(r)
    return out


_Matcher = Callable[[Graph, Mapping[int, bool]], set[int]]
# name -> (matcher, model types it applies to: None = every model, "transformer", "other")
IGNORED_PATTERNS: dict[str, tuple[_Matcher | None, str | None]] = {
    "swish": (_swish, None),
    "hswish": (_hswish, None),
    "se_block": (_se_block, None),
    "fc_bn_hswish_activation": (_fc_bn_hswish, None),
    "equal_logicalnot": (_equal_logicalnot, None),
    "softmax_reshape_matmul": (_softmax_matmul, "other"),
    "multihead_attention_output": (_softmax_matmul, "transformer"),
    "assign_result": (_assign_result, None),
    # Built into the planner (always on) or not needed; accepted by name.
    "input_preprocessing": (None, None),
    "operation_with_bias": (None, None),
    "postprocessing_nms_topk": (None, None),
    "batch_index": (None, None),
}


def match_ignored_patterns(graph: Graph, names: Iterable[str], const: Mapping[int, bool],
                           model_type: str | None = None) -> dict[str, set[int]]:
    """Ops of each named ignored pattern found in ``graph`` (empty sets are kept out).

    Args:
        graph: The model.
        names: Pattern names (a descriptor's ``ignored_patterns``); unknown names are
            logged and skipped.
        const: Node id -> True if the node computes a constant.
        model_type: ``"transformer"`` or None; patterns tied to a model type apply only there.
    """
    found: dict[str, set[int]] = {}
    for name in names:
        entry = IGNORED_PATTERNS.get(name)
        if entry is None:
            log.debug("ignored pattern %r has no matcher in ovq; skipped", name)
            continue
        matcher, applies = entry
        if matcher is None:
            continue
        if applies == "transformer" and model_type != "transformer":
            continue
        if applies == "other" and model_type == "transformer":
            continue
        nodes = matcher(graph, const)
        if nodes:
            found[name] = nodes
    return found
