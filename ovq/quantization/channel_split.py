"""Outlier channel splitting for the MatMul groups SmoothQuant scaled.

SmoothQuant (α = 0.95) makes the activation easy to quantize by moving its outlier
channels into the weights: after it, a few input channels of each projection's weights
are far larger than the rest, and since every output channel's 8-bit grid spans its
largest weight, those few channels coarsen the grid of all the others. On MiniLM the
FFN output projections lose most of the model's accuracy this way (their weights alone
cost 0.0014 of embedding cosine). Splitting input channel ``j`` into ``m_j`` equal parts,
``x_j · w_j = Σ_{copies} x_j · (w_j / m_j)``, shrinks those weights ``m_j`` times at the
price of ``m_j − 1`` more input channels.

Matches: every group :func:`.smooth_quant.smooth` rewrote (:class:`.smooth_quant.Smoothed`)
whose members' weights are 2-D and whose FakeQuantize ops all read the smoothing
``Multiply``, when splitting lowers the estimated weight rounding error by at least
:data:`MIN_GAIN_DB` with at most :data:`MAX_EXTRA_SHARE` more channels.

Emits: a ``Gather`` (``index`` on the activation's channel axis: every channel, split
ones several times, ordered so that large weights sit beside small ones, see
:func:`split_index`) between the smoothing ``Multiply`` and the group's
FakeQuantize ops; each member's weights ``W[..., index] / pieces[index]`` with the weight
FakeQuantize range recomputed (same granularity).

Preserves: the FP function up to float rounding; the activation quantizers' ranges
(copies of a channel change no minimum or maximum); output shapes of the MatMuls.

The choice, per group: ``c_j`` = the largest over members of ``max_n |W_nj| / max |W|``.
Thresholds ``t``: each of the :data:`CANDIDATES` largest ``c`` values after the first,
and the largest divided by 2 … :data:`MAX_PIECES`; ``pieces_j = ceil(c_j / t)``; the estimated weight noise of a member is
``(K + extra) · Σ_n (max_j |W_nj| / pieces_j)²`` (every element's rounding error has the
variance of its row's step; the activation power per channel taken as equal), summed
over members relative to the unsplit value; the smallest estimate wins.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, MutableMapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ovq.ir.graph import Graph, Port
from ovq.quantization.consts import const_source
from ovq.quantization.records import QuantizerTable
from ovq.quantization.smooth_quant import Smoothed, broadcast_along, requantize_weights, set_weights
from ovq.quantization.statistics import TensorStats

CANDIDATES = 32
MAX_PIECES = 64
MAX_EXTRA_SHARE = 1 / 32
MIN_GAIN_DB = 1.0


@dataclass(frozen=True)
class ChannelSplit:
    """What splitting did to one group (its channel map is :attr:`.Smoothed.index`)."""

    group: str  # the group's source op
    channels: int
    extra: int
    gain_db: float  # estimated drop of the members' weight rounding noise


def _as_rows(w: np.ndarray, in_axis: int) -> np.ndarray:
    """|weights| as [output channels, input channels]."""
    a = np.abs(np.asarray(w, np.float32))
    return a if in_axis % 2 == 1 else a.T


def choose_pieces(weights: Iterable[tuple[np.ndarray, int]]) -> tuple[np.ndarray, float] | None:
    """``pieces`` per input channel (1 = not split) and the estimated gain in dB, or None
    when no split gains :data:`MIN_GAIN_DB` within :data:`MAX_EXTRA_SHARE` extra channels.

    ``weights``: each member's 2-D weights with their input-channel axis.
    """
    chosen = _choose([_as_rows(w, axis) for w, axis in weights])
    return None if chosen is None else chosen[:2]


def _choose(rows: list[np.ndarray]) -> tuple[np.ndarray, float, np.ndarray] | None:
    """:func:`choose_pieces` on the members' |weights| as [out, in], with each input
    channel's peak ``c`` (the largest over members of its largest weight relative to the
    member's largest)."""
    rows = [a for a in rows if a.size and a.max() > 0]
    if not rows:
        return None
    k = rows[0].shape[1]
    c = np.max([a.max(0) / a.max() for a in rows], axis=0)
    order = np.argsort(-c, kind="stable")
    top = order[:CANDIDATES + 1]  # only these can be split
    # per member: its rows' maxima over the never-split columns, and its top columns
    rest = [a[:, order[CANDIDATES + 1:]].max(1) if k > CANDIDATES + 1 else np.zeros(a.shape[0], np.float32)
            for a in rows]
    heads = [a[:, top] for a in rows]
    base = [float(np.square(a.max(1), dtype=np.float64).sum()) * k for a in rows]
    best: tuple[float, np.ndarray] | None = None
    thresholds = np.concatenate([c[top[1:]], c[top[0]] / np.arange(2, MAX_PIECES + 1)])
    for t in np.unique(thresholds):
        if t <= 0:
            continue
        pieces_top = np.maximum(1, np.ceil(c[top] / t - 1e-6)).astype(np.int64)
        extra = int(pieces_top.sum()) - top.size
        if extra == 0 or extra > MAX_EXTRA_SHARE * k:
            continue
        cost = sum(float(np.square(np.maximum(r, (h / pieces_top).max(1)), dtype=np.float64).sum()) * (k + extra) / b
                   for r, h, b in zip(rest, heads, base)) / len(rows)
        if best is None or cost < best[0]:
            best = (cost, pieces_top)
    if best is None:
        return None
    gain = -10.0 * np.log10(max(best[0], 1e-30))
    if gain < MIN_GAIN_DB:
        return None
    pieces = np.ones(k, np.int64)
    pieces[top] = best[1]
    return pieces, gain, c


def split_index(pieces: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """The channel each new channel copies: channel ``j`` ``pieces[j]`` times, ordered so
    that the largest piece (``magnitude[j] / pieces[j]``) sits beside the smallest, the
    second largest beside the second smallest, and so on.

    x86 INT8 kernels without VNNI add the products of input channels ``(2i, 2i + 1)`` in
    16 bits (:mod:`.saturation`): two large weights side by side saturate, a large one
    beside a small one does not.
    """
    channels = np.repeat(np.arange(pieces.size), pieces)
    order = np.argsort(-(magnitude / pieces)[channels], kind="stable")
    paired = np.empty_like(order)
    half = (order.size + 1) // 2
    paired[0::2] = order[:half]
    paired[1::2] = order[half:][::-1]
    return channels[paired].astype(np.int64)


def gather_channels(graph: Graph, source: tuple[int, int], fqs: Iterable[int], index: np.ndarray, axis: int,
                    prefix: str) -> None:
    """Put a ``Gather`` of ``index`` along ``axis`` between tensor ``source`` and the
    FakeQuantize ops ``fqs`` that read it (named ``{prefix}_channels``, its constants
    ``{prefix}_index`` and ``{prefix}_axis``); the FakeQuantize outputs take the new shape."""
    out = graph.op(source[0]).outputs[source[1]]
    rank = len(out.shape)
    shape = list(out.shape)
    shape[axis] = int(index.size)
    idx = graph.add_const(index, f"{prefix}_index")
    ax = graph.add_const(np.array(axis % rank, np.int64), f"{prefix}_axis")
    gather = graph.add_op("Gather", f"{prefix}_channels", version="opset8", attrs={"batch_dims": "0"}, num_inputs=3,
                          outputs=[Port(id=0, precision=out.precision, shape=shape)])
    graph.connect(*source, gather, 0)
    graph.connect(idx, 0, gather, 1)
    graph.connect(ax, 0, gather, 2)
    for fq in fqs:
        graph.disconnect(fq, 0)
        graph.connect(gather, 0, fq, 0)
        graph.op(fq).outputs[0].shape = list(shape)


def split_group(graph: Graph, smoothed: Smoothed, quantizers: QuantizerTable) -> tuple[Smoothed, ChannelSplit] | None:
    """Split ``smoothed``'s outlier channels in ``graph`` (see the module doc); return the
    group's record with its ``index`` set, and what was done; None if it was left alone."""
    group = smoothed.group
    producers = {graph.producer(fq, 0) for fq in group.fqs}
    if len(producers) != 1:
        return None
    mul = producers.pop()
    weights = {}
    for m in group.members:
        found = const_source(graph, m.weight_fq, 0)
        if found is None or found[1].ndim != 2:
            return None
        weights[m.op] = found[1]
    chosen = _choose([_as_rows(weights[m.op], m.weight_axis) for m in group.members])
    if chosen is None:
        return None
    pieces, gain, peaks = chosen
    index = split_index(pieces, peaks)
    gather_channels(graph, mul, group.fqs, index, group.act_axis, f"{group.source_name}/split")
    by_node = quantizers.by_node()
    for m in group.members:
        w = weights[m.op]
        split = (np.take(w, index, axis=m.weight_axis)
                 / broadcast_along(pieces[index].astype(np.float32), w.ndim, m.weight_axis)).astype(np.float32)
        set_weights(graph, m.weight_fq, split, "split")
        requantize_weights(graph, by_node[m.weight_fq], split)
        graph.op(m.weight_fq).outputs[0].shape = list(split.shape)
    record = ChannelSplit(group.source_name, int(pieces.size), int(index.size - pieces.size), round(gain, 2))
    return replace(smoothed, index=index), record


def split_channels(graph: Graph, smoothed: Iterable[Smoothed],
                   quantizers: QuantizerTable) -> tuple[list[Smoothed], list[ChannelSplit]]:
    """Split every group that gains from it; returns every group's record (``index`` set
    on the split ones) and the splits made."""
    records, splits = [], []
    for r in smoothed:
        done = split_group(graph, r, quantizers)
        if done is None:
            records.append(r)
            continue
        records.append(done[0])
        splits.append(done[1])
    return records, splits


def split_means(results: Iterable[Smoothed], layers: Iterable[Any],
                stats: MutableMapping[Hashable, TensorStats]) -> None:
    """Bias-correction input means of split layers, copied to the new channels (a copy
    of channel ``j`` has its mean)."""
    index_of = {m.op: r.index for r in results if r.index is not None for m in r.group.members}
    for layer in layers:
        index = index_of.get(layer.op)
        st = stats.get(layer.key)
        if index is None or st is None or st.channel_mean is None or st.channel_mean.shape[-1] != index.max() + 1:
            continue
        stats[layer.key] = replace(st, channel_mean=np.take(st.channel_mean, index, axis=-1))
