"""The model graph as static SVG, laid out by ovq (no Graphviz needed).

Nodes are the ops that carry data (constants and constant subgraphs, such as weight
decompression chains, belong to the layer that reads them and are not drawn). Each node
sits in the rank of its longest path from an input; within a rank, nodes are ordered by
the mean position of their producers. Colours: a compute layer the CPU runs in INT8,
one it runs in floating point, FakeQuantize ops, inputs/outputs, other ops. A compute
layer links to its table row (``#layer-N``).

A graph of more than :data:`FULL_LIMIT` ops is collapsed into blocks of consecutive ops
in execution order: the overview shows one box per block (its INT8 share), and each
block has its own picture that the page expands on a click; above :data:`DETAIL_LIMIT`
ops only the overview is drawn. :attr:`GraphView.note` says which happened.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from ovq.report.model import GraphView, LayerRow
from ovq.report.structure import ModelStructure

FULL_LIMIT = 160
"""Ops drawn as one picture; larger graphs are collapsed to blocks."""
BLOCK_SIZE = 48
"""Ops per block."""
DETAIL_LIMIT = 20000
"""Above this many ops, blocks are not drawn in detail."""

NODE_W, NODE_H, GAP_X, GAP_Y = 150, 24, 16, 30
COLORS = {"int8": "#b7e4b0", "float": "#f6c28b", "fq": "#9ecae1", "io": "#bdbdbd", "other": "#f0f0f0"}
LEGEND = (("int8", "compute layer, INT8 at runtime"), ("float", "compute layer, floating point"),
          ("fq", "FakeQuantize"), ("io", "input / output"), ("other", "other op"))


class _Node:
    __slots__ = ("key", "name", "type", "kind", "row", "preds", "rank", "x", "y")

    def __init__(self, key: int, name: str, type_: str, kind: str, row: LayerRow | None) -> None:
        self.key, self.name, self.type, self.kind, self.row = key, name, type_, kind, row
        self.preds: list[int] = []
        self.rank, self.x, self.y = 0, 0.0, 0.0


def _nodes(structure: ModelStructure, rows: Sequence[LayerRow]) -> list[_Node]:
    by_name = {r.name: r for r in rows}
    nodes: dict[int, _Node] = {}
    for op in structure.ops:
        if structure.is_const(op):
            continue
        t = op.get_type_name()
        name = op.get_friendly_name()
        row = by_name.get(name)
        if row is not None:
            kind = "int8" if row.int8 else "float"
        elif t == "FakeQuantize":
            kind = "fq"
        elif t in ("Parameter", "Result"):
            kind = "io"
        else:
            kind = "other"
        node = _Node(op.get_instance_id(), name, t, kind, row)
        node.preds = [i.get_source_output().get_node().get_instance_id() for i in op.inputs()
                      if i.get_source_output().get_node().get_instance_id() in nodes]
        nodes[node.key] = node
    return list(nodes.values())


def _layout(nodes: Sequence[_Node]) -> tuple[float, float]:
    """Rank and place ``nodes`` (in execution order); return the picture's width and height."""
    index = {n.key: n for n in nodes}
    ranks: dict[int, list[_Node]] = {}
    for n in nodes:
        n.rank = 1 + max((index[p].rank for p in n.preds if p in index), default=-1)
        ranks.setdefault(n.rank, [])
    width = 0.0
    for n in nodes:
        ranks[n.rank].append(n)
    order: dict[int, float] = {}
    for r in sorted(ranks):
        members = ranks[r]
        members.sort(key=lambda n: (sum(order.get(p, 0.0) for p in n.preds) / len(n.preds)) if n.preds else 0.0)
        for k, n in enumerate(members):
            order[n.key] = float(k)
            n.x = 10 + k * (NODE_W + GAP_X)
            n.y = 10 + r * (NODE_H + GAP_Y)
        width = max(width, 10 + len(members) * (NODE_W + GAP_X))
    height = 10 + (max(ranks) + 1 if ranks else 0) * (NODE_H + GAP_Y)
    return width + 10, height


def _label(n: _Node) -> str:
    text = n.name if len(n.name) <= 22 else "…" + n.name[-21:]
    return html.escape(text)


def _draw(nodes: Sequence[_Node], css_class: str = "graph") -> str:
    w, h = _layout(nodes)
    index = {n.key: n for n in nodes}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" width="{w:.0f}" height="{h:.0f}" '
             f'viewBox="0 0 {w:.0f} {h:.0f}">']
    for n in nodes:
        for p in n.preds:
            src = index.get(p)
            if src is None:
                continue
            x1, y1 = src.x + NODE_W / 2, src.y + NODE_H
            x2, y2 = n.x + NODE_W / 2, n.y
            my = (y1 + y2) / 2
            parts.append(f'<path d="M{x1:.0f},{y1:.0f} C{x1:.0f},{my:.0f} {x2:.0f},{my:.0f} {x2:.0f},{y2:.0f}" '
                         f'fill="none" stroke="#888" stroke-width="1"/>')
    for n in nodes:
        title = html.escape(f"{n.name} ({n.type})" + (f", {n.row.runtime_precision}" if n.row and
                                                      n.row.runtime_precision else ""))
        box = (f'<rect x="{n.x:.0f}" y="{n.y:.0f}" width="{NODE_W}" height="{NODE_H}" rx="4" '
               f'fill="{COLORS[n.kind]}" stroke="#555" stroke-width="0.8"/>'
               f'<text x="{n.x + NODE_W / 2:.0f}" y="{n.y + 10:.0f}" font-size="8" text-anchor="middle">'
               f'{html.escape(n.type)}</text>'
               f'<text x="{n.x + NODE_W / 2:.0f}" y="{n.y + 20:.0f}" font-size="8" text-anchor="middle" '
               f'fill="#333">{_label(n)}</text>')
        if n.row is not None:
            parts.append(f'<a href="#{n.row.anchor}" class="node" data-row="{n.row.index}"><title>{title}</title>'
                         f'{box}</a>')
        else:
            parts.append(f'<g class="node"><title>{title}</title>{box}</g>')
    parts.append("</svg>")
    return "".join(parts)


def _overview(blocks: Sequence[Sequence[_Node]], edges: set[tuple[int, int]]) -> str:
    bw, bh, gap = 420, 30, 18
    h = 10 + len(blocks) * (bh + gap)
    w = bw + 120
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="graph overview" width="{w}" height="{h}" '
             f'viewBox="0 0 {w} {h}">']
    for a, b in sorted(edges):
        y1, y2 = 10 + a * (bh + gap) + bh, 10 + b * (bh + gap)
        if b == a + 1:
            parts.append(f'<line x1="{10 + bw / 2}" y1="{y1}" x2="{10 + bw / 2}" y2="{y2}" stroke="#888"/>')
        else:
            x = 10 + bw
            parts.append(f'<path d="M{x},{y1 - bh / 2} C{x + 30 + 8 * (b - a)},{y1} {x + 30 + 8 * (b - a)},{y2} '
                         f'{x},{y2 + bh / 2}" fill="none" stroke="#aaa"/>')
    for k, block in enumerate(blocks):
        compute = [n for n in block if n.row is not None]
        int8 = sum(n.kind == "int8" for n in compute)
        fqs = sum(n.kind == "fq" for n in block)
        share = int8 / len(compute) if compute else 0.0
        color = COLORS["int8"] if compute and share >= 0.5 else (COLORS["float"] if compute else COLORS["other"])
        y = 10 + k * (bh + gap)
        first = compute[0].row.index if compute else None
        label = (f"block {k + 1}: {len(block)} ops, {len(compute)} compute ({int8} INT8), {fqs} FakeQuantize"
                 + (f", rows {first}–{compute[-1].row.index}" if compute else ""))
        parts.append(f'<g class="block" data-block="{k}" style="cursor:pointer"><title>click to expand</title>'
                     f'<rect x="10" y="{y}" width="{bw}" height="{bh}" rx="5" fill="{color}" stroke="#555"/>'
                     f'<text x="{10 + bw / 2}" y="{y + 19}" font-size="10" text-anchor="middle">'
                     f'{html.escape(label)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def graph_view(structure: ModelStructure, rows: Sequence[LayerRow]) -> GraphView:
    """Lay out the graph of ``structure`` (see the module docstring)."""
    nodes = _nodes(structure, rows)
    if len(nodes) <= FULL_LIMIT:
        return GraphView(_draw(nodes))
    blocks = [nodes[i:i + BLOCK_SIZE] for i in range(0, len(nodes), BLOCK_SIZE)]
    where = {n.key: k for k, block in enumerate(blocks) for n in block}
    edges = {(where[p], where[n.key]) for n in nodes for p in n.preds if where[p] != where[n.key]}
    overview = _overview(blocks, edges)
    if len(nodes) > DETAIL_LIMIT:
        return GraphView(overview, [], f"{len(nodes)} ops: too many to lay out; shown as {len(blocks)} blocks of "
                                       f"{BLOCK_SIZE} ops in execution order, without detail")
    details = [_draw(block, "graph block-detail") for block in blocks]
    return GraphView(overview, details, f"{len(nodes)} ops: too many for one picture; collapsed to {len(blocks)} "
                                        f"blocks of up to {BLOCK_SIZE} ops in execution order (click a block to "
                                        f"expand it; edges between blocks are drawn on the overview only)")


def legend() -> list[tuple[str, str]]:
    """``(colour, meaning)`` pairs for the page's legend."""
    return [(COLORS[k], text) for k, text in LEGEND]


__all__ = ["graph_view", "legend", "FULL_LIMIT", "BLOCK_SIZE", "DETAIL_LIMIT"]
