"""The report's plots, drawn as inline SVG by ovq.

* :func:`error_plot`: the error each layer adds, in execution order (the worst five in
  red and named); without an analysis, the sampled saturation share per layer.
* :func:`histogram_plot`: an activation histogram (log counts) with the chosen range.
* :func:`weight_range_plot`: the per-output-channel weight range of one layer.

Each returns one ``<svg>`` element with axes, ticks and labels; bars carry a
``<title>`` (hover text). Drawing is plain string work (a few ms per plot).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from ovq.report.model import ChannelRanges, Histogram, ModelReport

_WORST_MARKED = 5
_LEFT, _RIGHT, _TOP, _BOTTOM = 62, 14, 30, 40


def _e(x: object) -> str:
    return html.escape(str(x))


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


class _Axes:
    """A plot area mapping data to pixels (y linear or log10)."""

    def __init__(self, width: int, height: int, x0: float, x1: float, y0: float, y1: float, log: bool) -> None:
        self.w, self.h, self.log = width, height, log
        self.x0, self.x1 = x0, x1 if x1 > x0 else x0 + 1
        if log:
            y0, y1 = math.log10(y0), math.log10(y1)
        self.y0, self.y1 = y0, y1 if y1 > y0 else y0 + 1

    def px(self, x: float) -> float:
        return _LEFT + (x - self.x0) / (self.x1 - self.x0) * (self.w - _LEFT - _RIGHT)

    def py(self, y: float) -> float:
        if self.log:
            y = math.log10(max(y, 10 ** self.y0))
        return self.h - _BOTTOM - (y - self.y0) / (self.y1 - self.y0) * (self.h - _TOP - _BOTTOM)

    def frame(self, title: str, xlabel: str, ylabel: str, xticks: Sequence[float]) -> list[str]:
        w, h = self.w, self.h
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{w}" height="{h}" '
                 f'viewBox="0 0 {w} {h}" font-family="sans-serif">',
                 f'<text x="{w / 2:.0f}" y="16" font-size="12" text-anchor="middle">{_e(title)}</text>',
                 f'<rect x="{_LEFT}" y="{_TOP}" width="{w - _LEFT - _RIGHT}" height="{h - _TOP - _BOTTOM}" '
                 f'fill="none" stroke="#444" stroke-width="0.8"/>']
        if self.log:
            yt = [10.0 ** k for k in range(math.ceil(self.y0), math.floor(self.y1) + 1)]
        else:
            yt = _nice_ticks(self.y0, self.y1)
        for y in yt:
            p = self.py(y)
            parts.append(f'<line x1="{_LEFT}" x2="{w - _RIGHT}" y1="{p:.1f}" y2="{p:.1f}" stroke="#ddd" '
                         f'stroke-width="0.6"/><text x="{_LEFT - 4}" y="{p + 3:.1f}" font-size="9" '
                         f'text-anchor="end">{_fmt(y)}</text>')
        for x in xticks:
            p = self.px(x)
            parts.append(f'<line x1="{p:.1f}" x2="{p:.1f}" y1="{h - _BOTTOM}" y2="{h - _BOTTOM + 4}" stroke="#444"/>'
                         f'<text x="{p:.1f}" y="{h - _BOTTOM + 14}" font-size="9" text-anchor="middle">'
                         f'{_fmt(x)}</text>')
        parts.append(f'<text x="{(w + _LEFT) / 2:.0f}" y="{h - 6}" font-size="10" text-anchor="middle">'
                     f'{_e(xlabel)}</text>')
        parts.append(f'<text transform="translate(12,{(h + _TOP - _BOTTOM) / 2:.0f}) rotate(-90)" font-size="10" '
                     f'text-anchor="middle">{_e(ylabel)}</text>')
        return parts


def _fmt(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-2:
        return f"{x:.0e}"
    return f"{x:.4g}"


def error_plot(report: ModelReport) -> str | None:
    """Bars of the per-layer error (or saturation) in execution order; None without any."""
    rows = [r for r in report.layers if r.quantized]
    if any(r.output_nmse is not None for r in rows):
        values, label, log = [r.output_nmse for r in rows], "model-output NMSE, only this layer quantized", True
        title = "error added per layer"
    elif any(r.nmse is not None for r in rows):
        values, label, log = [r.nmse for r in rows], "layer-output NMSE, only this layer quantized", True
        title = "error added per layer"
    elif any(r.saturation is not None for r in rows):
        values = [None if r.saturation is None else 100.0 * r.saturation for r in rows]
        label, log = "% of values outside the range", False
        title = f"saturation per layer ({report.summary.histogram_samples} samples)"
    else:
        return None
    ys = [v if v is not None and math.isfinite(v) else 0.0 for v in values]
    positive = [y for y in ys if y > 0]
    if log and not positive:
        log = False
    n = len(report.layers)
    width = max(700, min(1400, 60 + 8 * n))
    if log:
        lo = 10 ** math.floor(math.log10(min(positive)))
        hi = 10 ** math.ceil(math.log10(max(positive)) + 1e-9)
        ax = _Axes(width, 280, -0.5, n - 0.5, lo, hi if hi > lo else lo * 10, True)
    else:
        ax = _Axes(width, 280, -0.5, n - 0.5, 0.0, max(ys) * 1.1 if max(ys) > 0 else 1.0, False)
    ticks = [t for t in _nice_ticks(0, max(n - 1, 1), 10) if float(t).is_integer()]
    parts = ax.frame(title, "layer (execution order = table #)", label, ticks)
    worst = set(sorted(range(len(ys)), key=lambda k: ys[k], reverse=True)[:_WORST_MARKED])
    bar = min(max(1.0, 0.8 * (ax.px(1) - ax.px(0))), 24.0)
    base = ax.py(10 ** ax.y0) if log else ax.py(0.0)
    for k, (row, y) in enumerate(zip(rows, ys)):
        if y <= 0:
            continue
        top = ax.py(y)
        color = "#d62728" if k in worst else "#1f77b4"
        parts.append(f'<a href="#{row.anchor}"><rect class="bar" x="{ax.px(row.index) - bar / 2:.1f}" '
                     f'y="{top:.1f}" width="{bar:.1f}" height="{max(base - top, 0.5):.1f}" fill="{color}">'
                     f'<title>#{row.index} {_e(row.name)}: {y:.3g}</title></rect></a>')
        if k in worst:
            parts.append(f'<text x="{ax.px(row.index) + 3:.1f}" y="{max(top - 3, _TOP + 9):.1f}" font-size="8" '
                         f'fill="#a00">{_e(row.name[-28:])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram_plot(h: Histogram) -> str:
    """The histogram of one layer's quantized input (log counts) with its range marked."""
    edges, counts = h.edges, h.counts
    top = max(counts) if counts and max(counts) > 0 else 1
    ax = _Axes(380, 230, edges[0], edges[-1], 0.5, 10 ** math.ceil(math.log10(top) + 1e-9), True)
    title = f"{h.layer[-34:]}: {100 * h.saturation:.3g} % outside"
    parts = ax.frame(title, "FP value (end bins hold all beyond)", "count", _nice_ticks(edges[0], edges[-1], 4))
    base = ax.py(0.5)
    for a, b, c in zip(edges[:-1], edges[1:], counts):
        if c <= 0:
            continue
        y = ax.py(c)
        parts.append(f'<rect x="{ax.px(a):.1f}" y="{y:.1f}" width="{max(ax.px(b) - ax.px(a) - 0.3, 0.5):.1f}" '
                     f'height="{max(base - y, 0.5):.1f}" fill="#7f7f7f"/>')
    for x in (h.low, h.high):
        p = ax.px(x)
        parts.append(f'<line x1="{p:.1f}" x2="{p:.1f}" y1="{_TOP}" y2="{ax.h - _BOTTOM}" stroke="#d62728" '
                     f'stroke-width="1.5"><title>range bound {x:.4g}</title></line>')
    parts.append("</svg>")
    return "".join(parts)


def weight_range_plot(w: ChannelRanges) -> str:
    """The representable weight range per output channel (a band around zero)."""
    n = len(w.low)
    lo, hi = min(min(w.low), 0.0), max(max(w.high), 0.0)
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    ax = _Axes(760, 230, -0.5, n - 0.5, lo - pad, hi + pad, False)
    parts = ax.frame(f"{w.layer[-60:]}: weight range per output channel ({n})", "output channel", "weight",
                     [t for t in _nice_ticks(0, max(n - 1, 1), 8) if float(t).is_integer()])
    up = " ".join(f"{ax.px(k - 0.5):.1f},{ax.py(v):.1f} {ax.px(k + 0.5):.1f},{ax.py(v):.1f}"
                  for k, v in enumerate(w.high))
    down = " ".join(f"{ax.px(k + 0.5):.1f},{ax.py(v):.1f} {ax.px(k - 0.5):.1f},{ax.py(v):.1f}"
                    for k, v in reversed(list(enumerate(w.low))))
    parts.append(f'<polygon points="{up} {down}" fill="#2ca02c" fill-opacity="0.55" stroke="#1a7a1a" '
                 f'stroke-width="0.5"/>')
    parts.append(f'<line x1="{_LEFT}" x2="{ax.w - _RIGHT}" y1="{ax.py(0):.1f}" y2="{ax.py(0):.1f}" stroke="#000" '
                 f'stroke-width="0.6"/>')
    parts.append("</svg>")
    return "".join(parts)
