"""``fuse-pad``: fold an explicit Pad into the padding of the Convolution or pooling after it.

A Pad (``pad_mode=constant``, fill value ``v``, non-negative ``pads_begin``/``pads_end``
on the spatial axes only) followed by an op ``P`` with explicit padding ``(pb, pe)``::

    P(Pad(x, pb', pe', v); pads = pb, pe) = P(x; pads = pb + pb', pe + pe')

holds exactly when the padding ``P`` adds itself behaves like the value ``v``:

* Convolution / GroupConvolution pad with zeros: fused when ``v = 0``.
* AvgPool with ``exclude-pad=false`` averages padded positions as zeros: fused when
  ``v = 0``, and then ``exclude-pad`` must be false afterwards. An AvgPool with
  ``exclude-pad=true`` qualifies only if it has no padding of its own (then the flag
  changes nothing before, and is set to false). With ``rounding_type`` ceil the last
  window may run past the padded input and OpenVINO clips it; the pass only fuses when ceil
  and floor give the same output size on every axis (no partial windows), so the
  divisor never depends on where the padding came from.
* MaxPool ignores its padding (padded positions never win the max, as if they held
  −inf): fused only when ``v = −inf``; a zero-filled Pad before a MaxPool changes the
  result wherever a window's real values are all negative. MaxPool-8/14's second output
  (indices into the *input* tensor) changes with the input shape, so the fusion is
  refused when that output is used.

Common conditions: the Pad's pads (and fill value) are Consts, the mode is constant, no
padding on the batch and channel axes, no negative pads (Pad-12 crops with them), the
consumer's ``auto_pad`` is ``explicit``/``notset`` or ``valid`` (zero padding; set to
``explicit`` afterwards) — ``same_upper``/``same_lower`` recompute padding from the
shape and would drop ours — and the Pad has a single consumer. For poolings, the fused
padding must stay smaller than the (dilated) kernel on every axis so no window lies
entirely in the padding. The rewrite is exact (bitwise for convolutions up to the
kernel's own summation order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ovq.pipeline import register_pass
from ovq.rewrite import AnyInput, ConstInput, Match, OpPattern, Rewriter, RewritePass, RewriteRule

if TYPE_CHECKING:
    from ovq.ir.graph import Graph

_CONV_TYPES = ("Convolution", "GroupConvolution")


def _pad_pattern() -> OpPattern:
    return OpPattern("Pad", [AnyInput("x"), ConstInput("pb"), ConstInput("pe")], bind="pad")


def _ints(attrs: dict[str, str], key: str) -> list[int]:
    return [int(v) for v in attrs.get(key, "").replace(" ", "").split(",") if v]


def _pad_value(graph, match: Match) -> float | None:
    """The Pad's fill value (0 when the input is absent), or None if not a Const."""
    producers = graph.inputs_of(match["pad"])
    if len(producers) < 4 or producers[3] is None:
        return 0.0
    node = producers[3][0]
    if not graph.op(node).is_const:
        return None
    value = np.asarray(graph.const_value(node))
    if value.size != 1:
        return None
    return float(value.reshape(()))


def _spatial_pads(graph, match: Match, spatial: int) -> tuple[list[int], list[int]] | str:
    """The Pad's spatial pads, or the reason they cannot be fused."""
    attrs = graph.op(match["pad"]).attrs or {}
    if attrs.get("pad_mode", "constant") != "constant":
        return f"Pad mode is {attrs.get('pad_mode')}, not constant"
    begin = [int(v) for v in np.asarray(graph.const_value(match["pb"])).reshape(-1)]
    end = [int(v) for v in np.asarray(graph.const_value(match["pe"])).reshape(-1)]
    if len(begin) != spatial + 2 or len(end) != spatial + 2:
        return f"Pad pads have {len(begin)} values, the consumer has {spatial} spatial axes"
    if any(begin[:2]) or any(end[:2]):
        return "Pad pads the batch or channel axis"
    if min(begin + end) < 0:
        return "Pad has negative pads (it crops)"
    return begin[2:], end[2:]


def _own_pads(graph, node: int, spatial: int) -> tuple[list[int], list[int]] | str:
    """The consumer's explicit pads (zero for auto_pad=valid), or why they are automatic."""
    attrs = graph.op(node).attrs or {}
    auto_pad = attrs.get("auto_pad", "explicit").lower()
    if auto_pad in ("same_upper", "same_lower"):
        return f"{graph.op(node).name!r} has auto_pad={auto_pad}, which recomputes its padding"
    if auto_pad == "valid":
        return [0] * spatial, [0] * spatial
    return _ints(attrs, "pads_begin") or [0] * spatial, _ints(attrs, "pads_end") or [0] * spatial


def _spatial_count(graph, node: int) -> int:
    attrs = graph.op(node).attrs or {}
    return len(_ints(attrs, "strides"))


def _merged(graph, match: Match) -> tuple[list[int], list[int]] | str:
    root = match.root
    spatial = _spatial_count(graph, root)
    pads = _spatial_pads(graph, match, spatial)
    if isinstance(pads, str):
        return pads
    own = _own_pads(graph, root, spatial)
    if isinstance(own, str):
        return own
    return ([a + b for a, b in zip(own[0], pads[0], strict=True)],
            [a + b for a, b in zip(own[1], pads[1], strict=True)])


def _pool_problem(graph, match: Match, begin: list[int], end: list[int]) -> str | None:
    """Window-in-padding and ceil-rounding conditions shared by the pooling rules."""
    attrs = graph.op(match.root).attrs or {}
    kernel = _ints(attrs, "kernel")
    dilations = _ints(attrs, "dilations") or [1] * len(kernel)
    extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    if any(p >= e for p, e in zip(begin + end, extent + extent, strict=True)):
        return "fused padding would reach the kernel size (windows entirely in padding)"
    return None


def _ceil_problem(graph, match: Match, begin: list[int], end: list[int]) -> str | None:
    attrs = graph.op(match.root).attrs or {}
    if attrs.get("rounding_type", "floor").lower() == "floor":
        return None
    x_node, x_out = match.outputs["x"]
    shape = graph.op(x_node).outputs[x_out].shape
    if shape is None or any(d < 0 for d in shape[2:]):
        return "rounding_type is ceil and the input's spatial size is unknown"
    kernel = _ints(attrs, "kernel")
    strides = _ints(attrs, "strides")
    dilations = _ints(attrs, "dilations") or [1] * len(kernel)
    for size, b, e, k, s, d in zip(shape[2:], begin, end, kernel, strides, dilations, strict=True):
        span = size + b + e - ((k - 1) * d + 1)
        if math.ceil(span / s) != span // s:
            return "rounding_type is ceil and the last window is partial (its divisor would change)"
    return None


def _rewrite(rw: Rewriter, match: Match, begin: list[int], end: list[int], **extra: str) -> None:
    g = rw.graph
    root = match.root
    attrs = {"pads_begin": ", ".join(map(str, begin)), "pads_end": ", ".join(map(str, end)),
             "auto_pad": "explicit", **extra}
    new = rw.clone_op(root, attrs=attrs)
    for in_index, producer in enumerate(g.inputs_of(root)):
        if in_index == 0:
            g.connect(*match.outputs["x"], new, 0)
        elif producer is not None:
            g.connect(*producer, new, in_index)
    for out_index in range(len(g.op(root).outputs)):
        rw.replace_output(root, out_index, new, out_index)


class FusePadIntoConvolution(RewriteRule):
    """``Conv(Pad(x, 0)) → Conv(x)`` with the Pad's pads added to the convolution's.

    Matches: Convolution/GroupConvolution whose data input is a zero-filled constant Pad
    (conditions in the module docstring). Emits: a copy of the convolution reading ``x``
    with the summed pads and ``auto_pad=explicit``. Preserves: values exactly.
    """

    name = "fuse-pad-into-convolution"
    pattern = OpPattern(_CONV_TYPES, [_pad_pattern()], bind="conv")

    def check(self, graph, match):
        value = _pad_value(graph, match)
        if value != 0.0:
            return f"pad value is {value}, a convolution pads with 0" if value is not None else "pad value is not a Const"
        merged = _merged(graph, match)
        return merged if isinstance(merged, str) else None

    def rewrite(self, rw: Rewriter, match: Match) -> None:
        begin, end = _merged(rw.graph, match)
        _rewrite(rw, match, begin, end)


class FusePadIntoAvgPool(RewriteRule):
    """``AvgPool(Pad(x, 0)) → AvgPool(x)`` with the pads added and ``exclude-pad=false``.

    Matches: AvgPool reading a zero-filled constant Pad, with ``exclude-pad=false`` or
    no padding of its own, no window entirely in padding and no partial ceil window.
    Emits: a copy of the AvgPool reading ``x``. Preserves: values exactly.
    """

    name = "fuse-pad-into-avgpool"
    pattern = OpPattern("AvgPool", [_pad_pattern()], bind="pool")

    def check(self, graph, match):
        value = _pad_value(graph, match)
        if value != 0.0:
            return f"pad value is {value}, AvgPool pads count as 0" if value is not None else "pad value is not a Const"
        attrs = graph.op(match.root).attrs or {}
        spatial = _spatial_count(graph, match.root)
        own = _own_pads(graph, match.root, spatial)
        if isinstance(own, str):
            return own
        if attrs.get("exclude-pad", "false").lower() == "true" and any(own[0] + own[1]):
            return "AvgPool has exclude-pad=true and padding of its own (its divisor excludes that padding)"
        merged = _merged(graph, match)
        if isinstance(merged, str):
            return merged
        return _pool_problem(graph, match, *merged) or _ceil_problem(graph, match, *merged)

    def rewrite(self, rw: Rewriter, match: Match) -> None:
        begin, end = _merged(rw.graph, match)
        _rewrite(rw, match, begin, end, **{"exclude-pad": "false"})


class FusePadIntoMaxPool(RewriteRule):
    """``MaxPool(Pad(x, −inf)) → MaxPool(x)`` with the pads added (its padding never wins the max).

    Matches: MaxPool reading a −inf-filled constant Pad, its indices output unused, no
    window entirely in padding. Emits: a copy of the MaxPool reading ``x``, which takes
    over both outputs. Preserves: values exactly.
    """

    name = "fuse-pad-into-maxpool"
    pattern = OpPattern("MaxPool", [_pad_pattern()], bind="pool")

    def check(self, graph, match):
        value = _pad_value(graph, match)
        if value is None:
            return "pad value is not a Const"
        if value != -math.inf:
            return f"pad value is {value}; MaxPool padding acts as -inf, so only a -inf Pad fuses"
        outputs = graph.op(match.root).outputs
        if len(outputs) > 1 and graph.consumers(match.root, 1):
            return "MaxPool's indices output is used (indices depend on the padded input's shape)"
        merged = _merged(graph, match)
        if isinstance(merged, str):
            return merged
        return _pool_problem(graph, match, *merged)

    def rewrite(self, rw: Rewriter, match: Match) -> None:
        begin, end = _merged(rw.graph, match)
        _rewrite(rw, match, begin, end)


RULES = (FusePadIntoConvolution, FusePadIntoAvgPool, FusePadIntoMaxPool)


@register_pass
@dataclass(frozen=True)
class FusePadPass(RewritePass):
    """Fold a constant-mode Pad into the padding of the Convolution, GroupConvolution, AvgPool or MaxPool after it.

    Matches: ``Pad(x, pads_begin, pads_end[, v]) → Conv/GroupConv/AvgPool/MaxPool``
    (input 0) with constant, non-negative spatial-only pads, a single consumer, and the
    fill value the consumer's own padding implies (0 for convolutions and AvgPool,
    −inf for MaxPool); see the module docstring for every condition.
    Emits: a copy of the consumer with the summed pads and ``auto_pad=explicit``
    (AvgPool: ``exclude-pad=false``), keeping its friendly name; its output tensor names
    move over; stamped ``ovq_rule``. Preserves: values exactly. Follow with
    ``eliminate-dead-code``.
    """

    name = "fuse-pad"
    rules = RULES

    def applies(self, graph: Graph, rules: list[RewriteRule]) -> bool:
        return bool(graph.nodes_of_type("Pad"))  # the rules anchor on the op after the Pad
