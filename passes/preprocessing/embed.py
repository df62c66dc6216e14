"""``embed-preprocessing``: put an input's mean/scale/channel reversal inside the model.

Semantics and order are Model Optimizer's (and ``openvino.preprocess``'s): for the raw
input ``x`` and per-channel values in the *model's* channel order,

    x' = (R(x) - m) / s,        R = reverse the channel axis (when asked)

Folding into a first convolution ``y = conv(W, x')`` (``W[o, c, *k]``, ``C`` channels):

* reversal: ``conv(W, R(z)) = conv(W_r, z)`` with ``W_r[o, c] = W[o, C-1-c]``; constants
  met on the way (the mean) are reversed too: ``R(x) - m = R(x - m_r)``, ``m_r = m[::-1]``;
* scale: ``conv(W, z / s) = conv(W / s, z)`` (``W[o, c] / s[c]``), always exact;
* mean: ``conv(W', x - m) = conv(W', x) - sum_{c,k} W'[o, c, k] m[c]`` only when the
  convolution pads nothing: zero padding of ``x - m`` is not zero padding of ``x``, so a
  padded convolution keeps an explicit ``Subtract`` in front of it.

For a GroupConvolution ``W[g, o, i, *k]`` input channel ``c = g * I + i``; scale and an
unpadded mean fold the same way (the bias of output channel ``g * O + o`` sums over its
group's channels). Reversal maps group ``g`` to ``G-1-g``, which a grouped convolution
cannot express (output group ``g`` reads input group ``g``), so with ``G > 1`` the
reversal stays an explicit Gather and only scale/mean are folded.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element, SubElement

import numpy as np

from ovq.errors import IRError
from ovq.pipeline import Pass, PassContext, register_pass
from ovq.preprocess import (
    PreprocessingError,
    channel_axis,
    find_input,
    format_shape,
    input_label,
    input_layout,
    input_shape,
    parse_layout,
)

if TYPE_CHECKING:
    from ovq.ir.graph import Graph

log = logging.getLogger("ovq.passes.embed_preprocessing")

_CONVS = ("Convolution", "GroupConvolution")
_FLOAT_INPUTS = {"f32": np.float32, "f16": np.float16}


@dataclass(frozen=True)
class _Plan:
    """What one run will do, decided before the graph is touched."""

    param: int
    axis: int | None            # channel axis of the input (None: only scalars, no reversal)
    channels: int | None        # its static size, if known
    mean: np.ndarray | None     # float64, length 1 or C, model channel order; None = no-op
    scale: np.ndarray | None    # float64, length 1 or C; None = no-op
    reverse: bool


@register_pass
@dataclass(frozen=True)
class EmbedPreprocessingPass(Pass):
    """Embed mean subtraction, scaling and channel reversal of one input into the model.

    Matches: the Parameter named ``input`` (tensor name or friendly name; may be empty
    when the model has one input), its channel dimension found from ``layout``, the
    recorded layout or the values' count (:func:`ovq.preprocess.find_input`,
    :func:`ovq.preprocess.channel_axis`).
    Emits: when the Parameter's only consumer (ShapeOf consumers stay on the raw
    Parameter) is a Convolution/GroupConvolution with constant f32 weights reading the
    channel axis 1: reversal and scale folded into the weights' input channels, the
    mean folded into a bias (an existing per-channel Add after the conv, else a new
    ``<input>/mean`` Add) when the conv pads nothing, else an explicit
    ``<input>/mean`` Subtract (reversed values when the reversal was folded) in front of
    the conv. GroupConvolution with more than one group keeps the reversal as an
    explicit Gather. Otherwise explicit ``<input>/reverse_channels`` Gather-8 →
    ``<input>/mean`` Subtract → ``<input>/scale`` Multiply(1/scale) on the Parameter.
    ``batch`` sets the batch dimension (layout ``N``, else 0) and re-infers shapes;
    ``layout`` is also recorded on the Parameter like OpenVINO's PrePostProcessor does.
    Preserves: the Parameter, its tensor names and element type; every output.
    Raises :class:`ovq.preprocess.PreprocessingError` for an unknown input, a wrong
    number of values, a missing/ambiguous channel dimension or a non-positive scale.
    """

    name = "embed-preprocessing"
    input: str = ""
    """Input tensor name or Parameter friendly name (optional for single-input models)."""
    mean: tuple[float, ...] = ()
    """Values to subtract: one for every channel or one per channel (model order)."""
    scale: tuple[float, ...] = ()
    """Positive divisors: one for every channel or one per channel (model order)."""
    reverse_channels: bool = False
    """Reverse the channel axis first (RGB <-> BGR)."""
    layout: str = ""
    """Layout of the input (``NCHW``, ``NHWC``, ``[N,C,H,W]``); default: the Parameter's."""
    batch: int = 0
    """New batch size (0 keeps the current one)."""

    def plan(self, graph: Graph) -> _Plan:
        """Validate the options against ``graph`` and decide what to embed."""
        param = find_input(graph, self.input)
        label = input_label(graph, param)
        for key, values in (("mean", self.mean), ("scale", self.scale)):
            if any(not math.isfinite(v) for v in values):
                raise PreprocessingError(f"input {label!r}: {key} values must be finite, got {list(values)}")
        if any(v <= 0 for v in self.scale):
            raise PreprocessingError(f"input {label!r}: scale values must be positive, got {list(self.scale)}")
        if self.batch < 0:
            raise PreprocessingError(f"input {label!r}: batch must be positive (0 keeps it), got {self.batch}")
        axis, size = channel_axis(graph, param, mean=self.mean, scale=self.scale,
                                  reverse_channels=self.reverse_channels, layout=self.layout)
        mean = np.asarray(self.mean, np.float64) if self.mean and any(v != 0 for v in self.mean) else None
        scale = np.asarray(self.scale, np.float64) if self.scale and any(v != 1 for v in self.scale) else None
        if (mean is not None or scale is not None or self.reverse_channels) and (
            (graph.op(param).attrs or {}).get("element_type") not in _FLOAT_INPUTS
        ):
            et = (graph.op(param).attrs or {}).get("element_type")
            raise PreprocessingError(
                f"input {label!r}: element type {et} is not f32/f16; convert the input to float first"
            )
        if size == 1 and self.reverse_channels:
            log.info("input %r: reversing a single channel does nothing", label)
        return _Plan(param, axis, size, mean, scale, self.reverse_channels and size != 1)

    # ------------------------------------------------------------------ rewrite
    def run(self, graph: Graph, ctx: PassContext) -> None:
        plan = self.plan(graph)
        param = plan.param
        label = graph.op(param).name
        before = graph.revision
        if self.layout:
            _set_port_layout(graph, param, parse_layout(self.layout))
        reshaped = self.batch > 0 and _set_batch(graph, param, self.batch, self.layout or input_layout(graph, param))

        consumers = [c for c in graph.consumers(param, 0) if graph.op(c[0]).type != "ShapeOf"]
        dtype = _FLOAT_INPUTS.get((graph.op(param).attrs or {}).get("element_type", ""), np.float32)
        rank = len(input_shape(graph, param) or []) or None
        conv = _fold_target(graph, consumers, plan)
        groups = _groups(graph, conv) if conv is not None else 1
        fold_reverse = plan.reverse and conv is not None and groups == 1
        source = (param, 0)

        if plan.reverse and not fold_reverse:
            assert plan.axis is not None and plan.channels is not None
            indices = graph.add_const(np.arange(plan.channels - 1, -1, -1, dtype=np.int64),
                                      f"{label}/reverse_channels/indices")
            axis = graph.add_const(np.array(plan.axis, np.int64), f"{label}/reverse_channels/axis")
            gather = graph.add_op("Gather", f"{label}/reverse_channels", version="opset8",
                                  attrs={"batch_dims": 0}, num_inputs=3)
            graph.connect(indices, 0, gather, 1)
            graph.connect(axis, 0, gather, 2)
            _insert_after(graph, source, consumers, gather)
            source = (gather, 0)

        if conv is not None:
            self._fold(graph, plan, conv, source, label, fold_reverse, dtype, rank)
        else:
            if plan.mean is not None:
                sub = _binary(graph, "Subtract", f"{label}/mean",
                              _channel_const(plan.mean, plan.axis, rank, dtype), f"{label}/mean/values")
                _insert_after(graph, source, consumers, sub)
                source, consumers = (sub, 0), graph.consumers(sub, 0)
            if plan.scale is not None:
                inv = (np.float32(1) / plan.scale.astype(np.float32)).astype(np.float64)
                mul = _binary(graph, "Multiply", f"{label}/scale",
                              _channel_const(inv, plan.axis, rank, dtype), f"{label}/scale/values")
                _insert_after(graph, source, consumers, mul)
        if graph.revision != before or reshaped:
            try:
                graph.infer_shapes()
            except IRError as exc:
                raise PreprocessingError(f"input {input_label(graph, param)!r}: the model no longer validates: {exc}") from None

    def _fold(self, graph: Graph, plan: _Plan, conv: int, source: tuple[int, int], label: str,
              fold_reverse: bool, dtype, rank: int | None) -> None:
        """Fold scale (and reversal, and the mean where exact) into ``conv``'s weights."""
        wnode = graph.producer(conv, 1)[0]
        weights = graph.const_value(wnode).astype(np.float64)
        grouped = graph.op(conv).type == "GroupConvolution"
        in_axis = 2 if grouped else 1
        groups = weights.shape[0] if grouped else 1
        cin = groups * weights.shape[in_axis]
        mean = None if plan.mean is None else np.broadcast_to(plan.mean, (cin,)).copy()
        scale = np.ones(cin) if plan.scale is None else np.broadcast_to(plan.scale, (cin,)).copy()
        if fold_reverse:
            # conv(W, R(z)) == conv(W[:, ::-1], z): permute weights, reverse constants met.
            weights = np.flip(weights, axis=in_axis)
            scale, mean = scale[::-1], None if mean is None else mean[::-1]
        kshape = [1] * weights.ndim
        if grouped:
            kshape[0], kshape[2] = groups, cin // groups
        else:
            kshape[1] = cin
        if plan.scale is not None or fold_reverse:
            weights = weights / scale.reshape(kshape)
        if plan.scale is not None or fold_reverse:
            wdtype = graph.const_value(wnode).dtype
            new_w = weights.astype(wdtype)
            if len(graph.consumers(wnode, 0)) == 1:
                graph.set_const_value(wnode, new_w)
            else:
                fresh = graph.add_const(new_w, f"{graph.op(wnode).name}/preprocessed")
                graph.disconnect(conv, 1)
                graph.connect(fresh, 0, conv, 1)
        if mean is None:
            return
        if _pads_nothing(graph, conv):
            contrib = weights * mean.reshape(kshape)
            if grouped:
                bias = -contrib.sum(axis=tuple(range(2, weights.ndim))).reshape(-1)
            else:
                bias = -contrib.sum(axis=tuple(range(1, weights.ndim)))
            _add_bias(graph, conv, bias, label)
        else:
            # Zero padding of (x - m) differs from zero padding of x: keep the Subtract.
            values = plan.mean if plan.mean.size == 1 else mean  # mean: reversed if folded
            sub = _binary(graph, "Subtract", f"{label}/mean", _channel_const(values, 1, rank or weights.ndim - int(grouped), dtype),
                          f"{label}/mean/values")
            graph.insert_on_edge(source[0], source[1], conv, 0, sub)


# ---------------------------------------------------------------------- helpers

def _set_port_layout(graph: Graph, param: int, labels: tuple[str, ...]) -> None:
    """Record the layout on the Parameter's output port, as OpenVINO serializes it."""
    text = "[" + ",".join(labels) + "]"
    if input_layout(graph, param) == text:
        return
    port = graph.op(param).outputs[0]
    rt = next((e for e in port.extra if e.tag == "rt_info"), None)
    if rt is None:
        rt = Element("rt_info")
        port.extra.append(rt)
    for attr in list(rt):
        if attr.get("name") == "layout":
            rt.remove(attr)
    SubElement(rt, "attribute", {"name": "layout", "version": "0", "layout": text})
    graph.touch(param)


def _set_batch(graph: Graph, param: int, batch: int, layout_text: str) -> bool:
    shape = input_shape(graph, param)
    label = input_label(graph, param)
    if not shape:
        raise PreprocessingError(f"input {label!r}: cannot set the batch of a {format_shape(shape)} input")
    axis = 0
    if layout_text:
        labels = parse_layout(layout_text)
        if "N" in labels:
            axis = labels.index("N")
    if shape[axis] == batch:
        return False
    if shape[axis] not in (-1, 0, 1):
        raise PreprocessingError(
            f"input {label!r}: dimension {axis} of {format_shape(shape)} is {shape[axis]}, not a batch of 1 "
            "or dynamic; give a layout with N"
        )
    shape[axis] = batch
    graph.set_attrs(param, shape=",".join("?" if d < 0 else str(d) for d in shape))
    graph.op(param).outputs[0].shape = list(shape)
    return True


def _groups(graph: Graph, conv: int) -> int:
    if graph.op(conv).type != "GroupConvolution":
        return 1
    return int(graph.const_value(graph.producer(conv, 1)[0]).shape[0])


def _fold_target(graph: Graph, consumers: list[tuple[int, int]], plan: _Plan) -> int | None:
    """The convolution to fold into, or None when explicit ops are needed."""
    if plan.mean is None and plan.scale is None and not plan.reverse:
        return None
    if len(consumers) != 1 or consumers[0][1] != 0:
        return None
    conv = consumers[0][0]
    op = graph.op(conv)
    if op.type not in _CONVS:
        return None
    weights = graph.producer(conv, 1)
    if weights is None or not graph.op(weights[0]).is_const:
        return None
    value = graph.const_value(weights[0])
    if value.dtype != np.float32:
        return None
    grouped = op.type == "GroupConvolution"
    if value.ndim < 3 + int(grouped):
        return None
    cin = value.shape[0] * value.shape[2] if grouped else value.shape[1]
    per_channel = plan.reverse or any(v is not None and v.size > 1 for v in (plan.mean, plan.scale))
    if per_channel and plan.axis != 1:
        return None  # the conv reads dimension 1 as channels; the values are elsewhere
    if plan.channels is not None and plan.axis == 1 and plan.channels != cin:
        return None
    return conv


def _pads_nothing(graph: Graph, conv: int) -> bool:
    attrs = graph.op(conv).attrs or {}
    auto_pad = attrs.get("auto_pad", "explicit").lower()
    if auto_pad == "valid":
        return True
    if auto_pad not in ("explicit", "notset", ""):
        return False  # same_upper / same_lower pad whenever the kernel exceeds 1
    pads = [attrs.get("pads_begin", ""), attrs.get("pads_end", "")]
    return all(int(v) == 0 for text in pads for v in text.split(",") if v.strip())


def _channel_const(values: np.ndarray, axis: int | None, rank: int | None, dtype) -> np.ndarray:
    """``values`` shaped to broadcast along ``axis`` of a rank-``rank`` tensor (a scalar: all ones)."""
    values = np.asarray(values, dtype)
    if values.size == 1 or axis is None or rank is None:
        return values.reshape([1] * (rank or 1)) if values.size == 1 else values
    shape = [1] * rank
    shape[axis] = values.size
    return values.reshape(shape)


def _binary(graph: Graph, type_: str, name: str, value: np.ndarray, const_name: str) -> int:
    """A binary eltwise op whose input 1 is a new Const (input 0 left open)."""
    const = graph.add_const(value, const_name)
    node = graph.add_op(type_, name, attrs={"auto_broadcast": "numpy"}, num_inputs=2)
    graph.connect(const, 0, node, 1)
    return node


def _insert_after(graph: Graph, source: tuple[int, int], consumers: list[tuple[int, int]], node: int) -> None:
    """Feed ``node`` input 0 from ``source`` and make ``consumers`` read ``node`` instead."""
    graph.connect(source[0], source[1], node, 0)
    for dst, in_index in list(consumers):
        graph.disconnect(dst, in_index)
        graph.connect(node, 0, dst, in_index)


def _add_bias(graph: Graph, conv: int, bias: np.ndarray, label: str) -> None:
    """Add ``bias`` (one value per output channel) after ``conv``.

    Reuses an existing per-channel Add(Const) that is the conv's only consumer (and
    the constant's only user); otherwise inserts ``<label>/mean`` Add.
    """
    # Output rank: Convolution weights [O, C, *k], GroupConvolution [G, O, I, *k].
    rank = graph.const_value(graph.producer(conv, 1)[0]).ndim - int(graph.op(conv).type == "GroupConvolution")
    consumers = graph.consumers(conv, 0)
    if len(consumers) == 1 and graph.op(consumers[0][0]).type == "Add":
        add = consumers[0][0]
        other = graph.producer(add, 1 - consumers[0][1])
        if other is not None and graph.op(other[0]).is_const and len(graph.consumers(other[0], other[1])) == 1:
            current = graph.const_value(other[0])
            expected = [1] * rank
            expected[1] = bias.size
            if current.dtype == np.float32 and list(current.shape) in (expected, expected[1:]):
                graph.set_const_value(other[0], (current.astype(np.float64) + bias.reshape(current.shape)).astype(np.float32))
                return
    shape = [1] * rank
    shape[1] = bias.size
    add = _binary(graph, "Add", f"{label}/mean", bias.astype(np.float32).reshape(shape), f"{label}/mean/bias")
    graph.connect(conv, 0, add, 0)
    graph.replace_output(conv, 0, add, 0)
