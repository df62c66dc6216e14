"""Which weights ``compress_weights`` compresses, and in which precision.

Matches (in topological order of their consumers) the float constant weights of:

* ``MatMul`` input 1, rank 2 (``transpose_b`` true: rows are output channels; false:
  the weight is read transposed);
* ``Gather`` input 0 with a constant axis 0 and no batch dims, rank 2 (embeddings:
  one row per token);
* ``Convolution`` / ``GroupConvolution`` input 1 (rows: output channels).

A weight may sit behind a ``Convert`` (FP16-compressed IR). A constant read by several
of these ops is compressed once, in the precision of its first reader.

The precision of each weight follows ``nncf.compress_weights`` 3.4 (data-free):
INT8 modes put every weight in the primary precision per channel; 4-bit modes put the
*ratio-defining* weights (every MatMul but the last, plus rank-2 Gathers with
``all_layers``; the last MatMul too with ``all_layers``) in the primary precision, the
``ratio`` share of them (by element count, least sensitive first) when ``ratio < 1``,
and every other weight in ``backup_mode`` (per-channel INT8, or float for ``NONE``).
Weights already stored as integers (a decompression subgraph) are reported and left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ovq.compression.options import (
    MIN_ADJUSTED_GROUP_SIZE,
    CompressionOptions,
    GroupSizeFallbackMode,
    Precision,
)
from ovq.errors import OptionError
from ovq.ir.graph import Graph

FLOAT_TYPES = ("f32", "f16", "bf16")
INT_TYPES = ("u8", "i8", "u4", "i4", "nf4", "u2", "u3", "f4e2m1", "f8e4m3", "f8e5m2")
_WEIGHT_PORT = {"MatMul": 1, "Gather": 0, "Convolution": 1, "GroupConvolution": 1}


@dataclass
class WeightSite:
    """One weight constant and how its first reader uses it.

    Attributes:
        const: The Const node.
        name: The Const's friendly name (NNCF's weight name).
        source: ``(node, port)`` of the tensor the readers read: the Const, or the
            ``Convert`` after it.
        op: The first reading op; ``op_type``/``op_name`` its type and name.
        element_type: The Const's element type (``f32``, ``f16``, ``bf16``).
        out_type: The element type readers see (after the Convert, if any).
        shape: The Const's shape.
        rows: Leading axes that are output channels (1; 2 for GroupConvolution).
        transposed: A ``MatMul`` weight stored ``[in, out]`` (read transposed).
    """

    const: int
    name: str
    source: tuple[int, int]
    op: int
    op_type: str
    op_name: str
    element_type: str
    out_type: str
    shape: tuple[int, ...]
    rows: int = 1
    transposed: bool = False

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def matrix(self) -> tuple[int, int]:
        """``(R, C)``: output channels by reduced (input) channels, as the kernel sees it."""
        if self.transposed:
            return self.shape[1], self.shape[0]
        r = int(np.prod(self.shape[: self.rows], dtype=np.int64))
        return r, self.elements // max(r, 1)


@dataclass(frozen=True)
class LayerPlan:
    """The precision chosen for one weight (``None``: kept float) and why."""

    site: WeightSite
    precision: Precision | None
    reason: str


@dataclass
class Selection:
    """The plan of a run: weights to compress, weights left alone, and why."""

    plans: list[LayerPlan] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    already_compressed: list[str] = field(default_factory=list)


def _const_behind(graph: Graph, node: int, port: int) -> tuple[int, tuple[int, int], str] | None:
    """(Const, source tensor, reader element type) feeding ``port``: Const or Convert(Const)."""
    src = graph.producer(node, port)
    if src is None:
        return None
    op = graph.op(src[0])
    if op.type == "Const":
        return src[0], src, op.attrs.get("element_type", "")
    if op.type == "Convert":
        up = graph.producer(src[0], 0)
        if up is not None and graph.op(up[0]).type == "Const":
            return up[0], src, op.attrs.get("destination_type", "")
    return None


def _is_decompressed(graph: Graph, node: int, port: int) -> bool:
    """True if ``port`` reads an integer constant through a decompression chain."""
    src = graph.producer(node, port)
    seen = 0
    stack = [src] if src else []
    while stack and seen < 16:
        n, _ = stack.pop()
        seen += 1
        op = graph.op(n)
        if op.type == "Const":
            if op.attrs.get("element_type") in INT_TYPES:
                return True
            continue
        if op.type in ("Convert", "Reshape", "Transpose", "Multiply", "Subtract"):
            stack.extend(p for p in graph.inputs_of(n)[:1 if op.type in ("Reshape", "Transpose") else 2] if p)
    return False


def _site(graph: Graph, node: int) -> WeightSite | None:
    op = graph.op(node)
    port = _WEIGHT_PORT[op.type]
    found = _const_behind(graph, node, port)
    if found is None:
        return None
    const, source, out_type = found
    cop = graph.op(const)
    et = cop.attrs.get("element_type", "")
    shape = tuple(graph.const_data(const).shape)
    if et not in FLOAT_TYPES:
        if et == "f64":
            raise OptionError(f"{op.type} {op.name!r}: weight {cop.name!r} is f64, which weight compression "
                              "does not support (convert the model to f32 or f16 first)")
        return None
    if op.type == "MatMul":
        if len(shape) != 2 or _const_behind(graph, node, 0) is not None:
            return None
        transposed = str(op.attrs.get("transpose_b", "false")).lower() != "true"
        return WeightSite(const, cop.name, source, node, op.type, op.name, et, out_type, shape, 1, transposed)
    if op.type == "Gather":
        axis = _const_behind(graph, node, 2)
        if len(shape) != 2 or axis is None or int(op.attrs.get("batch_dims", "0")) != 0:
            return None
        if np.asarray(graph.const_value(axis[0])).reshape(-1).tolist() not in ([0], [-2]):
            return None
        return WeightSite(const, cop.name, source, node, op.type, op.name, et, out_type, shape)
    if len(shape) < 3:
        return None
    rows = 2 if op.type == "GroupConvolution" else 1
    return WeightSite(const, cop.name, source, node, op.type, op.name, et, out_type, shape, rows)


def find_sites(graph: Graph, ignored: set[int], ignored_names: set[str]) -> tuple[list[WeightSite], Selection, bool]:
    """Weight sites in topological order, plus what was ignored / already compressed.

    Also returns NNCF's ``is_last_layer_skipped``: the last weighted op's weight was
    ignored or already seen (then the last MatMul is not singled out).
    """
    sel = Selection()
    nodes = [n for n in graph.topological_order() if graph.op(n).type in _WEIGHT_PORT]
    candidates = []
    for n in nodes:
        site = _site(graph, n)
        if site is not None:
            candidates.append(site)
        elif graph.op(n).type in ("MatMul", "Gather") and _is_decompressed(graph, n, _WEIGHT_PORT[graph.op(n).type]):
            sel.already_compressed.append(graph.op(n).name)
    sites: list[WeightSite] = []
    seen: set[int] = set()
    last_skipped = False
    for i, site in enumerate(candidates):
        is_last = i == len(candidates) - 1
        if site.const in seen:
            last_skipped = is_last
            continue
        if site.op in ignored or site.name in ignored_names:
            last_skipped = is_last
            sel.ignored.append(site.op_name)
            continue
        seen.add(site.const)
        sites.append(site)
    return sites, sel, last_skipped


def select_precisions(graph: Graph, sites: list[WeightSite], sel: Selection, last_skipped: bool,
                      opts: CompressionOptions, sensitivity) -> Selection:
    """Fill ``sel.plans`` with one :class:`LayerPlan` per site (NNCF 3.4 data-free rules).

    ``sensitivity(site) -> float`` scores a weight (lower goes to the primary precision
    first); it is called only when ``ratio < 1``.

    Raises:
        OptionError: ``group_size`` does not divide the input channels of a
            ratio-defining weight and ``group_size_fallback_mode`` is ERROR.
    """
    primary, backup = opts.primary, opts.backup
    if opts.is_int8:
        sel.plans = [LayerPlan(s, primary, "primary") for s in sites]
        return sel
    defining = [s for s in sites if s.op_type == "MatMul"]
    if not opts.all_layers and not last_skipped and defining:
        defining = defining[:-1]
    if opts.all_layers:
        defining += [s for s in sites if s.op_type == "Gather"]
    group_of = {s.const: opts.group_size for s in defining}
    floats: set[int] = set()
    unfit: set[int] = set()
    if opts.group_size != -1:
        bad = [s for s in defining if s.matrix[1] % opts.group_size]
        if bad and opts.group_size_fallback == GroupSizeFallbackMode.ERROR:
            names = "; ".join(f"{s.op_name!r} ({s.matrix[1]} input channels)" for s in bad[:8])
            more = f" and {len(bad) - 8} more" if len(bad) > 8 else ""
            raise OptionError(
                f"group_size={opts.group_size} does not divide the input channels of {names}{more}; "
                "nncf.compress_weights raises InvalidGroupSizeError here too. Choose a group size that divides "
                "them, or group_size_fallback_mode='ignore' (keep those float) or 'adjust' (the largest power "
                f"of two dividing them, at least {MIN_ADJUSTED_GROUP_SIZE}, else backup precision)")
        for s in bad:
            defining.remove(s)
            if opts.group_size_fallback == GroupSizeFallbackMode.IGNORE:
                floats.add(s.const)
                continue
            c = s.matrix[1]
            adjusted = c & -c
            if adjusted >= MIN_ADJUSTED_GROUP_SIZE:
                defining.append(s)
                group_of[s.const] = adjusted
            else:
                unfit.add(s.const)
    chosen = defining
    if opts.ratio < 1.0 and defining:
        scores = [sensitivity(s) for s in defining]
        total = sum(s.elements for s in defining)
        chosen, acc = [], 0
        for i in sorted(range(len(defining)), key=lambda i: scores[i]):
            if (acc + defining[i].elements) / total >= opts.ratio:
                break
            chosen.append(defining[i])
            acc += defining[i].elements
    chosen_ids = {s.const for s in chosen}
    defining_ids = {s.const for s in defining}
    for s in sites:
        if s.const in floats:
            sel.plans.append(LayerPlan(s, None, "float: group size does not divide the input channels"))
        elif s.const in chosen_ids:
            p = Precision(primary.bits, primary.sym, group_of[s.const])
            sel.plans.append(LayerPlan(s, p, "primary"))
        else:
            why = ("ratio" if s.const in defining_ids else "group size" if s.const in unfit else
                   "last MatMul" if s.op_type == "MatMul" else
                   "embedding" if s.op_type == "Gather" else "convolution" if "Convolution" in s.op_type
                   else "group size")
            sel.plans.append(LayerPlan(s, backup, f"backup: {why}"))
    return sel
