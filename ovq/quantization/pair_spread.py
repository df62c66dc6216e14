"""Pair spreading: a convolution with few input channels reads each channel beside a
zero, so that no u8·s8 pair sum can leave int16 (a cure for saturation that keeps
8-bit weights).

x86 INT8 kernels without VNNI add the products of input channels ``(2j, 2j + 1)`` of
the same kernel tap into a saturating int16 (:mod:`.saturation`). A first convolution
on an image has three input channels, padded to four: red and green, strongly
correlated in natural images, form one pair, and their weights often share a sign, so
the pair saturates on bright pixels. Halving the weight range (7-bit weights) cures it
at the price of a coarse grid on a layer whose few terms make every weight count
(EfficientNet-Lite0 on AVX2, top-1 agreement with FP32 over 300 crops: 0.753 with the
stem's saturation left, 0.927 with its channels halved, 0.950 spread).

Spreading doubles the layer's input channels instead: a ``Gather`` repeats every
channel (``0, 0, 1, 1, ...``) before the activation FakeQuantize, and the weights get
the original values on the even channels and zeros on the odd ones. Every pair then
holds one real product and a zero: the sum is exact, whatever the kernel. It costs the
layer twice its multiply-adds, so it is kept for layers with at most
:data:`MAX_SPREAD_CHANNELS` input channels, where that is a small share of a model.

``overflow_fix="auto"`` chooses the layers (:func:`can_spread` on those whose analysis
would halve a channel); the ``pair_spread`` phase rewrites them after bias correction.

Matches: a plain Convolution (not grouped) with at most :data:`MAX_SPREAD_CHANNELS`
input channels whose per-tensor activation FakeQuantize feeds only it, directly (other
readers of the tensor before that FakeQuantize are not affected). Emits: the ``Gather`` and the widened weights (the weight
quantizer's per-output-channel range is unchanged: only zeros are added). Preserves:
the FP function (the copies meet zero weights), the activation range and levels.
"""

from __future__ import annotations

import numpy as np

from ovq.ir.graph import Graph
from ovq.quantization.channel_split import gather_channels
from ovq.quantization.consts import const_source
from ovq.quantization.saturation import SaturationLayer
from ovq.quantization.smooth_quant import set_weights

MAX_SPREAD_CHANNELS = 4
"""Largest input-channel count of a convolution that is spread rather than halved."""


def can_spread(graph: Graph, layer: SaturationLayer) -> bool:
    """Whether ``layer`` matches (see the module docstring)."""
    if layer.kind != "conv" or not layer.direct or graph.op(layer.op).type != "Convolution":
        return False
    if graph.consumers(layer.activation.node, 0) != [(layer.op, 0)] or np.asarray(layer.activation.low).size != 1:
        return False  # shared, or per-channel ranges that would need repeating too
    found = const_source(graph, layer.weight.node, 0)
    if found is None or found[1].ndim < 3:
        return False
    src = graph.producer(layer.activation.node, 0)
    shape = None if src is None else graph.op(src[0]).outputs[src[1]].shape
    return shape is not None and len(shape) >= 3 and 0 < int(shape[1]) <= MAX_SPREAD_CHANNELS \
        and found[1].shape[1] == int(shape[1])


def spread_pairs(graph: Graph, layer: SaturationLayer) -> None:
    """Rewrite ``layer`` (which :func:`can_spread` accepted) so that every input channel
    sits beside a zero-weight copy of itself."""
    fq = layer.activation.node
    src = graph.producer(fq, 0)
    channels = int(graph.op(src[0]).outputs[src[1]].shape[1])
    gather_channels(graph, src, [fq], np.repeat(np.arange(channels, dtype=np.int64), 2), 1,
                    f"{graph.op(layer.op).name}/spread")
    w = const_source(graph, layer.weight.node, 0)[1]
    wide = np.zeros((w.shape[0], 2 * w.shape[1], *w.shape[2:]), np.float32)
    wide[:, 0::2] = w
    set_weights(graph, layer.weight.node, wide, "spread")
    graph.op(layer.weight.node).outputs[0].shape = list(wide.shape)
