"""Constant inputs of quantization ops: read through decompression, rewrite without aliasing.

:func:`const_source` finds the constant behind an input (through ``Convert`` ops, e.g.
FP16-compressed weights) and its float32 value; :func:`set_const_input` gives an op's
input a new constant value, editing the Const in place when only that input reads it
and attaching a private copy when it is shared.
"""

from __future__ import annotations

import numpy as np

from ovq.ir.graph import Graph


def const_source(graph: Graph, node: int, port: int = 0) -> tuple[int, np.ndarray] | None:
    """The Const feeding input ``port`` of ``node`` (through Convert ops) and its float32 value."""
    src = graph.producer(node, port)
    while src is not None and graph.op(src[0]).type == "Convert":
        src = graph.producer(src[0], 0)
    if src is None or graph.op(src[0]).type != "Const":
        return None
    return src[0], np.asarray(graph.const_value(src[0]), np.float32)


def set_const_input(graph: Graph, node: int, port: int, value: np.ndarray, name: str) -> None:
    """Make input ``port`` of ``node`` (fed by a Const) read ``value``; never alter other readers."""
    src = graph.producer(node, port)
    if len(graph.consumers(src[0], src[1])) > 1:
        c = graph.add_const(value, name)
        graph.disconnect(node, port)
        graph.connect(c, 0, node, port)
    else:
        graph.set_const_value(src[0], value)
