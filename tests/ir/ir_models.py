"""Tiny models built with openvino.opset13 that exercise the IR mirror's corners.

Imported by the IR tests through ``conftest.py`` (pytest runs with importlib mode).
"""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as op


def conv_net() -> ov.Model:
    """Conv → bias → ReLU → two heads, with layouts, odd tensor names and rt_info."""
    rng = np.random.default_rng(0)
    x = op.parameter([1, 3, 8, 8], np.float32, name="in,put<&>")
    x.output(0).get_tensor().set_names({"in,put<&>", "image"})
    x.get_output_tensor(0)
    w = op.constant(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), name="conv.weight")
    conv = op.convolution(x, w, [1, 1], [1, 1], [1, 1], [1, 1], name="conv")
    b = op.constant(rng.standard_normal((1, 4, 1, 1)).astype(np.float32), name="conv.bias")
    add = op.add(conv, b, name="conv/add")
    relu = op.relu(add, name="relu")
    relu.get_rt_info()["custom_layer_key"] = "kept"
    pool = op.reduce_mean(relu, op.constant(np.array([2, 3], np.int64)), keep_dims=False, name="gap")
    fc_w = op.constant(rng.standard_normal((4, 5)).astype(np.float32), name="fc.weight")
    logits = op.matmul(pool, fc_w, False, False, name="logits")
    logits.output(0).get_tensor().set_names({"logits", "scores"})
    same_w = op.constant(rng.standard_normal((4, 5)).astype(np.float32), name="fc2.weight")
    # Two identical constants: the writer must deduplicate them, like OpenVINO.
    dup = op.constant(np.ones((4, 5), np.float32), name="dup_a")
    dup2 = op.constant(np.ones((4, 5), np.float32), name="dup_b")
    head2 = op.add(op.matmul(pool, same_w, False, False), op.matmul(pool, op.add(dup, dup2), False, False), name="head2")
    model = ov.Model([logits, head2], [x], "conv_net")
    model.set_rt_info("value", ["custom", "nested", "key"])
    model.set_rt_info("top", ["flat"])
    model.inputs[0].get_node().set_layout(ov.Layout("NCHW"))
    return model


# ov.Tensor(ndarray) shares the array's memory, and so may Constants built from it:
# keep every array handed to OpenVINO alive for the life of the process.
_KEEP_ALIVE: list[np.ndarray] = []


def element_type_net() -> ov.Model:
    """Constants of every element type ovq must carry, each converted into one output."""
    x = op.parameter([2, 3], np.float32, name="x")
    outs = []

    def const(values, et: ov.Type, name: str):
        tensor = ov.Tensor(et, [*np.shape(values)])
        if et in (ov.Type.i4, ov.Type.u4, ov.Type.u1, ov.Type.nf4, ov.Type.u2):
            packed = _pack(np.asarray(values).reshape(-1), et.bitwidth)
            _KEEP_ALIVE.append(np.frombuffer(packed, np.uint8).copy())
            tensor = ov.Tensor(_KEEP_ALIVE[-1], [*np.shape(values)], et)
        elif et == ov.Type.bf16:
            _KEEP_ALIVE.append((np.asarray(values, np.float32).view(np.uint32) >> 16).astype(np.uint16))
            tensor = ov.Tensor(_KEEP_ALIVE[-1], [*np.shape(values)], et)
        else:
            tensor.data[...] = values
        return op.constant(tensor, name=name)

    specs = [
        ([[1.5, -2.25, 3.0], [0.0, 1e-3, -7.0]], ov.Type.f16, "f16"),
        ([[1.5, -2.25, 3.0], [0.0, 1e-3, -7.0]], ov.Type.bf16, "bf16"),
        ([[1.5, -2.25, 3.0], [0.0, 1e-3, -7.0]], ov.Type.f64, "f64"),
        ([[-128, 0, 127], [5, -5, 1]], ov.Type.i8, "i8"),
        ([[0, 255, 17], [1, 2, 3]], ov.Type.u8, "u8"),
        ([[-8, 7, 0], [1, -1, 3]], ov.Type.i4, "i4"),
        ([[1, 2, 3], [4, 5, 15]], ov.Type.u4, "u4"),
        ([[1, 0, 1], [1, 1, 0]], ov.Type.u1, "u1"),
        ([[True, False, True], [False, False, True]], ov.Type.boolean, "boolean"),
        ([[1, 2, 3], [4, 5, 6]], ov.Type.i64, "i64"),
        ([[1, 2, 3], [4, 5, 6]], ov.Type.u16, "u16"),
    ]
    for values, et, name in specs:
        c = const(values, et, f"const_{name}")
        outs.append(op.add(x, op.convert(c, np.float32), name=f"use_{name}"))
    _KEEP_ALIVE.append(np.array(["hello", "wörld", ""]))
    strings = op.constant(ov.Tensor(_KEEP_ALIVE[-1]), name="const_string")
    return ov.Model([*outs, strings], [x], "element_types")


def _pack(values: np.ndarray, bits: int) -> bytes:
    flat = values.astype(np.int16) & ((1 << bits) - 1)
    expanded = ((flat[:, None] >> np.arange(bits)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(expanded, bitorder="little").tobytes()


def if_net() -> ov.Model:
    """An If with two bodies, one of them holding a Const."""
    cond = op.parameter([1], ov.Type.boolean, name="cond")
    x = op.parameter([2, 3], np.float32, name="x")
    tx = op.parameter([2, 3], np.float32, name="tx")
    then_res = op.result(op.relu(tx))
    ex = op.parameter([2, 3], np.float32, name="ex")
    else_res = op.result(op.multiply(ex, op.constant(np.full((2, 3), 2.5, np.float32))))
    node = op.if_op(cond)
    node.set_then_body(ov.Model([then_res], [tx], "then"))
    node.set_else_body(ov.Model([else_res], [ex], "else"))
    node.set_input(x.output(0), tx, ex)
    out = node.set_output(then_res, else_res)
    return ov.Model([out], [cond, x], "if_net")


def tensor_iterator_net() -> ov.Model:
    """A TensorIterator with a sliced input, a back edge and a Const in its body."""
    X = op.parameter([1, 4, 3], np.float32, name="X")
    H = op.parameter([1, 3], np.float32, name="H")
    ti = op.tensor_iterator()
    bx = op.parameter([1, 1, 3], np.float32)
    bh = op.parameter([1, 3], np.float32)
    squeezed = op.squeeze(bx, op.constant(np.array([1], np.int64)))
    w = op.constant(np.arange(9, dtype=np.float32).reshape(3, 3) / 10, name="body_w")
    new_h = op.tanh(op.add(op.matmul(squeezed, w, False, False), bh))
    res = op.result(new_h)
    ti.set_body(ov.Model([res], [bx, bh], "body"))
    ti.set_sliced_input(bx, X.output(0), 0, 1, 1, -1, 1)
    ti.set_merged_input(bh, H.output(0), res.output(0))
    last = ti.get_iter_value(res.output(0), -1)
    return ov.Model([last], [X, H], "ti_net")


def loop_net() -> ov.Model:
    """A Loop that adds a constant to its state a fixed number of times."""
    x = op.parameter([2], np.float32, name="x")
    trip = op.constant(np.array(3, np.int64))
    cond = op.constant(np.array(True))
    bx = op.parameter([2], np.float32)
    body_out = op.add(bx, op.constant(np.array([1.0, 2.0], np.float32), name="step"))
    body_cond = op.result(op.constant(np.array(True)))
    body_res = op.result(body_out)
    loop = op.loop(trip, cond)
    loop.set_function(ov.Model([body_cond, body_res], [bx], "loop_body"))
    loop.set_special_body_ports([-1, 0])
    loop.set_merged_input(bx, x.output(0), body_res.output(0))
    out = loop.get_iter_value(body_res.output(0), -1)
    return ov.Model([out], [x], "loop_net")


def dynamic_net() -> ov.Model:
    """Dynamic and bounded dims: partial shapes must survive in Parameter data."""
    x = op.parameter(ov.PartialShape("?,3,1..10,5"), np.float32, name="x")
    y = op.multiply(x, op.constant(np.float32(3.0)))
    return ov.Model([op.relu(y)], [x], "dynamic_net")


ALL = {
    "conv_net": conv_net,
    "element_types": element_type_net,
    "if_net": if_net,
    "tensor_iterator": tensor_iterator_net,
    "loop": loop_net,
    "dynamic": dynamic_net,
}
