"""The decompression subgraph that replaces a float weight (OpenVINO's pattern).

Emits, for a weight ``W`` named ``<name>`` read as element type ``T``::

    Const <name> (u8/i8/u4/i4) -> Convert(f16)
        [-> Subtract(Convert(f16, Const <name>/zero_point))]        asym only
        -> Multiply(Const <name>/scale, f16)  named <name>/fq_weights_<port>
        [-> Reshape(original 2-D shape)]                            groups only
        [-> Transpose(1, 0)]                                        see below
        [-> Convert(T)]                                             T not f16

A MatMul weight stored ``[in, out]`` (``transpose_b`` false) is compressed as its
transpose ``[out, in]`` and its MatMul readers get ``transpose_b`` true (the CPU plugin
folds the chain only without a Transpose); a Transpose back is emitted only when
something else reads the weight too. The chain is what ``nncf.compress_weights``
writes and what the CPU plugin's ``ConvertFullyConnectedToFullyConnectedCompressed``
folds into a FullyConnected that keeps the integer weights. Preserves: every reader of the weight tensor (they read the
last op instead), its tensor names; the float Const is removed once nothing reads it.
"""

from __future__ import annotations

import numpy as np

from ovq.compression.layers import WeightSite
from ovq.compression.options import Precision
from ovq.ir.constants import ConstData
from ovq.ir.element_types import ELEMENT_TYPES
from ovq.ir.graph import Graph


def _op(graph: Graph, type_: str, name: str, inputs: list[int], shape: list[int], precision: str,
        attrs: dict | None = None) -> int:
    node = graph.add_op(type_, name, attrs=attrs, num_inputs=len(inputs))
    for i, src in enumerate(inputs):
        graph.connect(src, 0, node, i)
    port = graph.op(node).outputs[0]
    port.shape = list(shape)
    port.precision = precision
    return node


def _convert(graph: Graph, src: int, name: str, shape: list[int], to: str) -> int:
    return _op(graph, "Convert", name, [src], shape, ELEMENT_TYPES[to].precision, {"destination_type": to})


def _levels_const(values: np.ndarray, bits: int, shape: list[int]) -> ConstData:
    """An owned u8 / u4 constant (u4 packed two per byte, low nibble first, by the kernel)."""
    from ovq.kernels import pack_nibbles

    et = f"u{bits}"
    raw = np.ascontiguousarray(values, np.uint8).reshape(-1)
    data = (pack_nibbles(raw) if bits == 4 else raw).tobytes()
    return ConstData(element_type=ELEMENT_TYPES[et], shape=tuple(shape), owned=data, size=len(data))


def is_grouped(site: WeightSite, precision: Precision) -> bool:
    """True when the weight is split into several groups per row (a Reshape follows)."""
    return precision.group_size not in (-1, site.matrix[1])


def levels_shape(site: WeightSite, precision: Precision) -> list[int]:
    """Shape of the integer Const: ``[R, C/g, g]`` grouped, ``[R, C]`` for MatMul/Gather,
    the original shape for convolutions."""
    r, c = site.matrix
    if is_grouped(site, precision):
        return [r, c // precision.group_size, precision.group_size]
    if site.transposed or site.op_type in ("MatMul", "Gather"):
        return [r, c]
    return list(site.shape)


def params_shape(site: WeightSite, precision: Precision) -> list[int]:
    """Shape of the scale / zero point Consts (one per row and group, broadcastable)."""
    r, c = site.matrix
    if is_grouped(site, precision):
        return [r, c // precision.group_size, 1]
    if site.transposed or site.op_type in ("MatMul", "Gather"):
        return [r, 1]
    return list(site.shape[: site.rows]) + [1] * (len(site.shape) - site.rows)


def insert_decompression(graph: Graph, site: WeightSite, precision: Precision, levels: ConstData,
                         scale: np.ndarray, zero_point: np.ndarray | None) -> int:
    """Replace ``site``'s weight by the decompression of ``levels``; return the last op.

    ``levels`` holds the integer weights of shape ``(R, C)`` (or ``(R, C/g, g)`` for
    groups; the original shape for convolutions); ``scale``/``zero_point`` are
    ``(R, groups)`` arrays, reshaped here to broadcast against it.
    """
    name = site.name
    r, c = site.matrix
    grouped = is_grouped(site, precision)
    q_shape, p_shape = levels_shape(site, precision), params_shape(site, precision)
    qc = graph.add_const_data(levels, name)
    last = _convert(graph, qc, f"{name}/convert", q_shape, "f16")
    if zero_point is not None:
        zc = graph.add_const_data(_levels_const(zero_point, precision.bits, p_shape), f"{name}/zero_point")
        zcv = _convert(graph, zc, f"{name}/zero_point/convert", p_shape, "f16")
        last = _op(graph, "Subtract", f"{name}/zero_point/subtract", [last, zcv], q_shape, "FP16",
                   {"auto_broadcast": "numpy"})
    with np.errstate(over="ignore"):
        sc = graph.add_const(np.asarray(scale, np.float32).astype(np.float16).reshape(p_shape), f"{name}/scale")
    port = graph.op(site.op).inputs[1 if site.op_type != "Gather" else 0].id
    last = _op(graph, "Multiply", f"{name}/fq_weights_{port}", [last, sc], q_shape, "FP16",
               {"auto_broadcast": "numpy"})
    if grouped:
        shape = graph.add_const(np.array([r, c], np.int64), f"{name}/reshape/shape")
        last = _op(graph, "Reshape", f"{name}/reshape", [last, shape], [r, c], "FP16", {"special_zero": "false"})
    out_shape = list(site.shape)
    if site.transposed:
        readers = graph.consumers(*site.source)
        if all(graph.op(n).type == "MatMul" and port == 1 for n, port in readers):
            # The CPU plugin folds the chain only without a Transpose: read it as [out, in].
            for n, _ in readers:
                graph.set_attrs(n, transpose_b="true")
            out_shape = [r, c]
        else:
            perm = graph.add_const(np.array([1, 0], np.int64), f"{name}/transpose/order")
            last = _op(graph, "Transpose", f"{name}/transpose", [last, perm], [c, r], "FP16")
    if site.out_type != "f16":
        last = _convert(graph, last, f"{name}/convert_to_{site.out_type}", out_shape, site.out_type)
    src, out = site.source
    graph.replace_output(src, out, last, 0, move_names=True)
    _drop_unused(graph, src)
    return last


def _drop_unused(graph: Graph, node: int) -> None:
    """Remove ``node`` and the Consts/Converts above it that nothing reads any more."""
    work = [node]
    while work:
        n = work.pop()
        if n not in graph or graph.op(n).type not in ("Const", "Convert"):
            continue
        if any(graph.consumers(n, k) for k in range(len(graph.op(n).outputs))):
            continue
        ups = [p[0] for p in graph.inputs_of(n) if p is not None]
        graph.remove_node(n)
        work.extend(ups)
