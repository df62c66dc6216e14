"""Plan application: one FakeQuantize-1 and one quantizer record per plan command.

Matches: the ops and ports a :class:`~.commands.PlacementPlan` names (node ids of the graph
the plan was made for). Emits: per command, a FakeQuantize-1 with five inputs
``x, il, ih, ol, oh`` (four f32 Consts ``<fq>/input_low`` ... ``<fq>/output_high``),
``auto_broadcast="numpy"`` and the command's ``levels``, named like NNCF
(``<producer>/fq_output_<port>``, ``<op>/fq_weights_<port>``, a ``_<k>`` suffix when
taken), wired between the source tensor and the command's consumers. Weight FQs go in
first, then activation FQs in plan order. Preserves every other edge, op name, output and
tensor name; the FQ's output port copies the source port's precision and shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ovq.ir.graph import Graph, Port
from ovq.quantization.placement.commands import PlacementPlan, QuantizeWeight
from ovq.quantization.records import META_KEY, Quantizer, QuantizerTable, Role


def _port_like(graph: Graph, node: int, out: int) -> Port:
    """A fresh output port with the precision and shape of output ``out`` of ``node``."""
    src = graph.op(node).outputs[out]
    return Port(id=0, precision=src.precision, shape=None if src.shape is None else list(src.shape))


def _unique(graph: Graph, base: str, taken: set[str]) -> str:
    """``base``, or ``base_<k>`` with the smallest free ``k``; the name is added to ``taken``."""
    name, k = base, 1
    while name in taken:
        name = f"{base}_{k}"
        k += 1
    taken.add(name)
    return name


def _insert_fq(graph: Graph, name: str, src: tuple[int, int], consumers: Sequence[tuple[int, int]], levels: int,
               lo: np.ndarray, hi: np.ndarray) -> int:
    """Insert one FakeQuantize reading ``src`` and feeding ``consumers``; return its node id.

    Input and output ranges are equal (``lo``/``hi`` as f32 Consts).
    """
    fq = graph.add_op("FakeQuantize", name, version="opset1", attrs={"levels": levels, "auto_broadcast": "numpy"},
                      num_inputs=5, outputs=[_port_like(graph, *src)])
    for dst, i in consumers:
        graph.disconnect(dst, i)
        graph.connect(fq, 0, dst, i)
    graph.connect(src[0], src[1], fq, 0)
    for k, (suffix, value) in enumerate((("input_low", lo), ("input_high", hi), ("output_low", lo),
                                         ("output_high", hi)), start=1):
        c = graph.add_const(np.asarray(value, np.float32), f"{name}/{suffix}")
        graph.connect(c, 0, fq, k)
    return fq


def _weight_key(graph: Graph, w: QuantizeWeight) -> tuple:
    """What makes two weight commands one quantizer: the same source tensor, grid, channel
    axes, range and unified group, read by ops of one type (a weight shared by two
    convolutions). A tied embedding table read by a Gather and an LM-head MatMul keeps one
    FQ per reader: the plugin's compressed-MatMul path wants its own decompression."""
    lo, hi = np.asarray(w.input_low, np.float32), np.asarray(w.input_high, np.float32)
    return (w.source, graph.op(w.op).ov_type, w.input_index, w.config, w.axes, w.unified, lo.shape, lo.tobytes(),
            hi.tobytes())


def apply_plan(graph: Graph, plan: PlacementPlan) -> QuantizerTable:
    """Insert the planned FakeQuantize ops; return (and store in ``graph.meta``) their records.

    Weight quantizers get their final range; activation quantizers start with the
    placeholder range ``[0, 1]`` (no range in their record) until calibration sets it.
    """
    taken = {op.name for _n, op in graph.ops()}
    table = graph.meta.get(META_KEY)
    if table is None:
        table = graph.meta[META_KEY] = QuantizerTable()
    shared: dict[tuple, Quantizer] = {}
    for w in plan.weights:
        key = _weight_key(graph, w)
        q = shared.get(key)
        if q is not None:  # the same constant with the same grid and range: one FQ for every reader
            graph.disconnect(w.op, w.input_index)
            graph.connect(q.node, 0, w.op, w.input_index)
            q.consumers = (*q.consumers, (w.op, w.input_index))
            continue
        name = _unique(graph, f"{graph.op(w.op).name}/fq_weights_{w.input_index}", taken)
        node = _insert_fq(graph, name, w.source, [(w.op, w.input_index)], w.config.levels, w.input_low, w.input_high)
        q = Quantizer(name, node, Role.WEIGHTS, w.config, ((w.op, w.input_index),), w.axes, w.unified,
                      weight_op=graph.op(w.op).name, low=np.asarray(w.input_low, np.float32),
                      high=np.asarray(w.input_high, np.float32))
        table.add(q)
        shared[key] = q
    for a in plan.activations:
        name = _unique(graph, f"{graph.op(a.producer).name}/fq_output_{a.out_index}", taken)
        lo, hi = np.float32(0.0), np.float32(1.0)
        shape = graph.op(a.producer).outputs[a.out_index].shape
        if a.per_channel_axis is not None and shape and isinstance(shape[a.per_channel_axis], int) \
                and shape[a.per_channel_axis] > 0:
            bshape = [1] * len(shape)
            bshape[a.per_channel_axis] = shape[a.per_channel_axis]
            lo, hi = np.zeros(bshape, np.float32), np.ones(bshape, np.float32)
        node = _insert_fq(graph, name, (a.producer, a.out_index), a.consumers, a.config.levels, lo, hi)
        axes = () if a.per_channel_axis is None else (a.per_channel_axis,)
        table.add(Quantizer(name, node, Role(a.group), a.config, tuple(a.consumers), axes, a.unified,
                            range_include=a.range_include, hidden_state=a.hidden_state))
    return table
