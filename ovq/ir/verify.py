"""Structural checks of a Graph, run between passes (``Graph.verify()``)."""

from __future__ import annotations

import networkx as nx

from ovq.errors import VerificationError
from ovq.ir.graph import Graph


def graph_problems(graph: Graph, where: str | None = None) -> list[str]:
    """Every invariant violation in ``graph`` (and its bodies), one line each."""
    where = where or graph.source
    problems: list[str] = []
    seen_inputs: dict[tuple[int, int], int] = {}
    for src, dst, key in graph.nx.edges(keys=True):
        if not (isinstance(key, tuple) and len(key) == 2):
            problems.append(f"edge {src}->{dst} has key {key!r}, expected (out_index, in_index)")
            continue
        out_i, in_i = key
        src_op, dst_op = graph.nx.nodes[src].get("op"), graph.nx.nodes[dst].get("op")
        if src_op is None or dst_op is None:
            problems.append(f"edge {src}->{dst} touches a node without an op")
            continue
        if not 0 <= out_i < len(src_op.outputs):
            problems.append(f"edge from {src_op.name!r} uses output {out_i} but it has {len(src_op.outputs)}")
        if not 0 <= in_i < len(dst_op.inputs):
            problems.append(f"edge into {dst_op.name!r} uses input {in_i} but it has {len(dst_op.inputs)}")
        seen_inputs[(dst, in_i)] = seen_inputs.get((dst, in_i), 0) + 1
    for node, data in graph.nx.nodes(data=True):
        op = data.get("op")
        if op is None:
            problems.append(f"node {node} has no op")
            continue
        for in_i in range(len(op.inputs)):
            count = seen_inputs.get((node, in_i), 0)
            if count != 1:
                what = "is not connected" if count == 0 else f"has {count} producers"
                problems.append(f"input {in_i} of {op.name!r} ({op.type}) {what}")
        ids = [p.id for p in op.inputs + op.outputs]
        if len(set(ids)) != len(ids):
            problems.append(f"{op.name!r} has duplicate port ids {ids}")
        if op.type == "Const":
            problems.extend(_const_problems(op))
        for tag, body in op.bodies.items():
            problems.extend(f"{op.name}/{tag}: {p}" for p in graph_problems(body, where))
    if not nx.is_directed_acyclic_graph(graph.nx):
        cycle = nx.find_cycle(graph.nx)
        problems.append("cycle: " + " -> ".join(repr(graph.op(u).name) for u, *_ in cycle))
    return problems


def _const_problems(op) -> list[str]:
    data = op.const
    if data is None:
        return [f"Const {op.name!r} has no payload"]
    problems = []
    et = data.element_type
    if et.name != "string" and data.size != et.nbytes(data.shape):
        problems.append(
            f"Const {op.name!r}: payload of {data.size} bytes does not match {et.name}{list(data.shape)}"
        )
    if data.in_file and data.size and (data.bin is None or data.offset + data.size > data.bin.size):
        problems.append(f"Const {op.name!r}: payload lies outside its .bin")
    attrs = op.attrs or {}
    if attrs.get("element_type") != et.name:
        problems.append(f"Const {op.name!r}: element_type attribute {attrs.get('element_type')!r} != payload {et.name}")
    if len(op.outputs) != 1 or op.inputs:
        problems.append(f"Const {op.name!r} must have no inputs and one output")
    return problems


def verify_graph(graph: Graph) -> None:
    """Raise :class:`VerificationError` listing every problem, if there are any."""
    problems = graph_problems(graph)
    if problems:
        shown = "\n  ".join(problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise VerificationError(f"{graph.source}: graph verification failed:\n  {shown}{more}")
