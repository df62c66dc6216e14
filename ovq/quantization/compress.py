"""Fold weight FakeQuantize ops into integer constants (``compress_weights=True``).

Matches: a FakeQuantize whose data input is a constant (directly or through a
``Convert`` of an FP16-compressed constant) and whose output range equals its input
range, as :func:`~ovq.quantization.placement.apply_plan` emits for weights.

Emits, in place of the FQ (the last op keeps the FQ's name, e.g. ``conv/fq_weights_1``,
as NNCF does):

* symmetric grids whose zero point is a whole level (255 levels → int8 ``[-127, 127]``,
  256 signed → ``[-128, 127]``, 65535 → int16): ``Const(i8|i16) → Convert(f32) →
  Multiply(scale)`` — the form the CPU plugin runs in INT8;
* other grids: ``Const(u8|u16) → Convert → Subtract(Convert(zero point)) → Multiply``.

The integers are the FQ's own levels, computed by the FakeQuantize kernel (bit-exact
with OpenVINO), so dequantized weights equal the FQ's output up to one float rounding.
Preserves: every tensor name and consumer of the FQ's output; the original weight
constant if something else still reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ovq.ir.graph import Graph
from ovq.quantization.consts import const_source


@dataclass(frozen=True)
class CompressedWeight:
    """One FQ folded into integers."""

    name: str
    dtype: str
    elements: int
    bytes_before: int
    bytes_after: int


def _ranges(graph: Graph, fq: int) -> list[np.ndarray] | None:
    out = []
    for port in range(1, 5):
        src = graph.producer(fq, port)
        if src is None or graph.op(src[0]).type != "Const":
            return None
        out.append(np.asarray(graph.const_value(src[0]), np.float32))
    return out


DROP_PAGES_EVERY = 16 << 20
"""Bytes of weights read between two drops of the graph's mapped ``.bin`` pages."""


class _PageDropper:
    """Drops the graph's mapped ``.bin`` pages after every :data:`DROP_PAGES_EVERY` bytes
    of weights read (FP weights read from a memory-mapped ``.bin`` count in the resident
    set until their pages are dropped)."""

    def __init__(self, graph: Graph) -> None:
        self.graph, self.unread = graph, DROP_PAGES_EVERY

    def read(self, nbytes: int) -> None:
        self.unread -= nbytes
        if self.unread <= 0:
            self.graph.drop_constant_pages()
            self.unread = DROP_PAGES_EVERY


def compress_weight_fq(graph: Graph, fq: int, *, pages: _PageDropper | None = None) -> CompressedWeight | None:
    """Replace weight FakeQuantize ``fq`` by integer weights; ``None`` if it does not match.
    ``pages`` is told of every chunk of FP weights read (a large table's pages need not
    all be resident at once)."""
    from ovq.kernels import get_kernels

    found = const_source(graph, fq)
    ranges = _ranges(graph, fq)
    if found is None or ranges is None:
        return None
    const, w = found
    il, ih, ol, oh = ranges
    if not (np.array_equal(il, ol) and np.array_equal(ih, oh)):
        return None
    levels = int(graph.op(fq).attrs["levels"])
    if levels > 65536 or levels < 2:
        return None
    scale = ((oh.astype(np.float64) - ol) / (levels - 1))
    safe = np.where(scale > 0, scale, 1.0)
    zp = -ol.astype(np.float64) / safe
    zp_int = np.rint(zp)
    whole = np.all(np.abs(zp - zp_int) < 1e-3) and np.all(scale > 0)
    name = graph.op(fq).name
    offsets = np.unique(zp_int) if whole else np.array([])
    signed_type, unsigned_type = (np.int8, np.uint8) if levels <= 256 else (np.int16, np.uint16)
    info = np.iinfo(signed_type)
    direct = whole and offsets.size == 1 and info.min <= -offsets[0] and levels - 1 - offsets[0] <= info.max
    data = np.empty(w.shape, signed_type if direct else unsigned_type)
    offset = offsets[0] if direct else 0.0
    for rows in _row_chunks(w.shape):
        if pages is not None:
            pages.read(w[rows].nbytes)
        y = get_kernels().fake_quantize(w[rows], *(_rows_of(r, rows, w.ndim) for r in (il, ih, ol, oh)), levels,
                                        flavor="node")
        # the level index in [0, L-1] (minus the zero point in the direct form)
        data[rows] = np.rint((y - _rows_of(ol, rows, w.ndim)) / _rows_of(safe, rows, w.ndim)) - offset
    if not direct:
        zp_u = np.clip(zp_int, 0, np.iinfo(unsigned_type).max).astype(unsigned_type)
    scale32 = scale.astype(np.float32)

    qc = graph.add_const(data, f"{name}/quantized")
    cv = graph.add_op("Convert", f"{name}/convert", attrs={"destination_type": "f32"}, num_inputs=1)
    graph.connect(qc, 0, cv, 0)
    last = cv
    if not direct:
        zc = graph.add_const(zp_u, f"{name}/zero_point")
        zcv = graph.add_op("Convert", f"{name}/zero_point/convert", attrs={"destination_type": "f32"}, num_inputs=1)
        graph.connect(zc, 0, zcv, 0)
        sub = graph.add_op("Subtract", f"{name}/zero_point/subtract", attrs={"auto_broadcast": "numpy"}, num_inputs=2)
        graph.connect(last, 0, sub, 0)
        graph.connect(zcv, 0, sub, 1)
        last = sub
    sc = graph.add_const(scale32, f"{name}/scale")
    mul = graph.add_op("Multiply", f"{name}__ovq_tmp", attrs={"auto_broadcast": "numpy"}, num_inputs=2)
    graph.connect(last, 0, mul, 0)
    graph.connect(sc, 0, mul, 1)
    port = graph.op(fq).outputs[0]
    graph.op(mul).outputs[0].precision = "FP32"
    graph.op(mul).outputs[0].shape = list(port.shape) if port.shape is not None else None
    graph.replace_output(fq, 0, mul, 0, move_names=True)
    before = int(graph.const_data(const).size)
    inputs = [graph.producer(fq, i) for i in range(5)]
    graph.remove_node(fq)
    graph.op(mul).name = name
    _drop_unused(graph, [p[0] for p in inputs if p is not None])
    return CompressedWeight(name, str(data.dtype), int(w.size), before, int(data.nbytes + scale32.nbytes))


CHUNK_ELEMENTS = 1 << 20
"""Weights are turned into integers this many elements (a few MiB of temporaries) at a
time: whole-tensor float64 temporaries of an embedding table cost several times its size."""


def _row_chunks(shape: tuple[int, ...]) -> list[Any]:
    """Slices of the first axis covering about :data:`CHUNK_ELEMENTS` elements each."""
    if not shape:
        return [Ellipsis]
    per_row = max(int(np.prod(shape[1:], dtype=np.int64)), 1)
    step = max(CHUNK_ELEMENTS // per_row, 1)
    return [slice(i, min(i + step, shape[0])) for i in range(0, max(shape[0], 1), step)]


def _rows_of(r: np.ndarray, rows: Any, ndim: int) -> np.ndarray:
    """The part of range array ``r`` (broadcastable to a rank-``ndim`` tensor) for ``rows``."""
    if rows is Ellipsis or r.ndim < ndim or r.shape[0] == 1:
        return r  # constant along the first axis
    return r[rows]


def _drop_unused(graph: Graph, nodes: list[int]) -> None:
    work = list(nodes)
    while work:
        n = work.pop()
        if n not in graph or graph.op(n).type == "Parameter":
            continue
        if any(graph.consumers(n, k) for k in range(len(graph.op(n).outputs))):
            continue
        ups = [p[0] for p in graph.inputs_of(n) if p is not None]
        graph.remove_node(n)
        work.extend(ups)


def compress_weights(graph: Graph, fq_nodes: list[int]) -> list[CompressedWeight]:
    """Fold every weight FQ in ``fq_nodes`` that matches; return what was folded.

    Dropping the mapped FP weight pages every :data:`DROP_PAGES_EVERY` bytes read keeps
    the peak at the integer weights plus a few MiB instead of all FP weights on top of them.
    """
    done = []
    pages = _PageDropper(graph)
    for fq in list(fq_nodes):
        if fq in graph:
            r = compress_weight_fq(graph, fq, pages=pages)
            if r is not None:
                done.append(r)
    graph.drop_constant_pages()
    return done
