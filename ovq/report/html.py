"""Render a :class:`~ovq.report.model.ModelReport` as one self-contained HTML page and
its JSON twin, written atomically.

The page needs nothing from the network: CSS and JavaScript are inline, plots and the
graph are inline SVG. The table has one row per compute layer (``id="layer-N"``, the
fields of :class:`~ovq.report.model.LayerRow`), sortable by clicking a header and
filtered by a text box and a selector; the JSON twin (``report.json`` next to
``report.html``) holds the same rows. Both files are rendered in full before anything is
written, then each goes to a temporary file in the target folder and is renamed over
the target, so a failure leaves no half-written page.
"""

from __future__ import annotations

import html
import json
import math
import os
import tempfile
from pathlib import Path

from ovq.report.model import LayerRow, ModelReport

_CSS = """
body{font:13px/1.4 system-ui,sans-serif;margin:16px 24px;color:#222}
h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:22px 0 8px;border-bottom:1px solid #ddd}
table.kv td{padding:1px 10px 1px 0;vertical-align:top}table.kv td:first-child{color:#666}
table.layers{border-collapse:collapse;font-size:12px}
table.layers th{background:#eee;position:sticky;top:0;cursor:pointer;text-align:left;padding:3px 6px;white-space:nowrap}
table.layers td{border-top:1px solid #e4e4e4;padding:2px 6px;white-space:nowrap}
table.layers td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.float td{background:#fff4e8}tr.rt-float td.rt{color:#b35900;font-weight:600}
tr:target td{background:#ffef9e!important}
.plots{display:flex;flex-wrap:wrap;gap:8px}.plots svg{max-width:100%;height:auto}
.graphbox{overflow:auto;max-height:720px;border:1px solid #ddd;padding:4px}
.legend span{display:inline-block;width:12px;height:12px;border:1px solid #555;margin:0 4px 0 12px;vertical-align:middle}
.note{color:#8a5a00}.block-detail-box{display:none;border-left:3px solid #999;margin:6px 0;padding-left:6px}
.block-detail-box.open{display:block}a.node:hover rect{stroke:#000;stroke-width:2}
"""

_JS = r"""
window.addEventListener('error', function(e){document.body.dataset.errors=(document.body.dataset.errors||'')+e.message+';';});
(function(){
var table=document.getElementById('layers');var body=table.tBodies[0];
var rows=Array.prototype.slice.call(body.rows);
var heads=table.tHead.rows[0].cells;var dir={};
function key(tr,k){var c=tr.cells[k];var v=c.getAttribute('data-v');if(v===null)v=c.textContent;
 var n=parseFloat(v);return isNaN(n)?v.toLowerCase():n;}
Array.prototype.forEach.call(heads,function(th,k){th.addEventListener('click',function(){
 dir[k]=-(dir[k]||-1);var d=dir[k];
 rows.sort(function(a,b){var x=key(a,k),y=key(b,k);
  if(typeof x!==typeof y){return (typeof x==='number'?-1:1)*d;}return (x<y?-1:x>y?1:0)*d;});
 rows.forEach(function(r){body.appendChild(r);});});});
var text=document.getElementById('filter');var sel=document.getElementById('show');
function apply(){var q=text.value.toLowerCase();var s=sel.value;var shown=0;
 rows.forEach(function(r){var ok=r.textContent.toLowerCase().indexOf(q)>=0;
  if(s==='quantized')ok=ok&&r.dataset.quantized==='1';
  if(s==='float')ok=ok&&r.dataset.quantized==='0';
  if(s==='rt-float')ok=ok&&r.dataset.int8==='0';
  r.style.display=ok?'':'none';if(ok)shown++;});
 document.getElementById('shown').textContent=shown;}
text.addEventListener('input',apply);sel.addEventListener('change',apply);apply();
Array.prototype.forEach.call(document.querySelectorAll('g.block'),function(g){
 g.addEventListener('click',function(){var box=document.getElementById('block-'+g.dataset.block);
  if(box){box.classList.toggle('open');if(box.classList.contains('open'))box.scrollIntoView({block:'nearest'});}});});
var pick=document.getElementById('wpick');
if(pick){var show=function(){Array.prototype.forEach.call(document.querySelectorAll('.wrange'),function(d){
  d.style.display=d.dataset.k===pick.value?'':'none';});};pick.addEventListener('change',show);show();}
document.body.dataset.ready='1';
})();
"""


def _e(x: object) -> str:
    return html.escape(str(x))


def _num(x: float | None, fmt: str = ".3g") -> tuple[str, str]:
    """(shown text, sort value) of a number that may be missing."""
    if x is None:
        return "–", ""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x), "1e308" if x > 0 else "-1e308"
    return format(x, fmt), repr(float(x))


def _range(lo: float | None, hi: float | None) -> str:
    return "–" if lo is None or hi is None else f"[{lo:.4g}, {hi:.4g}]"


COLUMNS = ("#", "layer", "type", "quantized", "activation range", "act levels", "weights", "weight range",
           "runtime", "kernel", "saturation %", "NMSE (layer)", "NMSE (model out)", "SQNR dB", "bias shift")
"""The table's headers, in order (the tests read the page by them)."""


def _row(r: LayerRow) -> str:
    cells: list[str] = []

    def cell(text: str, sort: str | None = None, cls: str = "") -> None:
        attrs = (f' data-v="{_e(sort)}"' if sort is not None else "") + (f' class="{cls}"' if cls else "")
        cells.append(f"<td{attrs}>{text}</td>")

    cell(str(r.index), str(r.index), "num")
    cell(_e(r.name))
    cell(_e(r.type))
    cell("yes" if r.quantized else f"no: {_e(r.reason)}")
    cell(_range(r.act_low, r.act_high), "" if r.act_low is None else repr(r.act_high - r.act_low))
    cell("–" if r.act_levels is None else str(r.act_levels), "" if r.act_levels is None else str(r.act_levels), "num")
    weights = "–" if r.weight_levels is None and r.weight_dtype is None else \
        " ".join(str(x) for x in (r.weight_levels, r.weight_granularity, r.weight_dtype) if x is not None)
    cell(_e(weights))
    cell(_range(r.weight_low, r.weight_high))
    cell(_e(r.runtime_precision or "–"), cls="rt")
    cell(_e(r.runtime_kernel or "–"))
    t, v = _num(None if r.saturation is None else 100.0 * r.saturation)
    cell(t, v, "num")
    for x in (r.nmse, r.output_nmse):
        t, v = _num(x, ".3e")
        cell(t, v, "num")
    t, v = _num(r.sqnr_db, ".1f")
    cell(t, v, "num")
    t, v = _num(r.bias_shift)
    cell(t if r.bias_note is None or r.bias_shift is not None else _e(r.bias_note), v, "num")
    classes = ("" if r.quantized else "float") + ("" if r.int8 or r.runtime_precision is None else " rt-float")
    return (f'<tr id="{r.anchor}" class="{classes.strip()}" data-name="{_e(r.name)}" '
            f'data-quantized="{int(r.quantized)}" data-int8="{int(r.int8)}">{"".join(cells)}</tr>')


def _summary(report: ModelReport) -> str:
    s = report.summary
    items: list[tuple[str, str]] = [("model", s.model), ("made by", f"{s.source}, ovq {s.ovq_version}")]
    if s.target:
        items.append(("target", s.target))
    if s.options:
        items.append(("options", ", ".join(f"{k}={v}" for k, v in s.options.items())))
    items.append(("compute layers", f"{s.compute_layers}, {s.quantized_layers} quantized; "
                                    f"{s.fake_quantize_ops} FakeQuantize ops"))
    items.append(("INT8 at runtime (CPU)", f"{s.runtime_int8}/{s.runtime_audited} Convolution/MatMul layers"
                                           + (f" ({100 * s.runtime_int8 / s.runtime_audited:.0f} %)"
                                              if s.runtime_audited else "")))
    size = f"{s.int8_bytes / 2**20:.2f} MiB"
    if s.fp_bytes:
        size = f"{s.fp_bytes / 2**20:.2f} MiB → {size} ({s.int8_bytes / s.fp_bytes:.2f}×)"
    items.append(("weights (constants)", size))
    if s.fp32_latency_ms is not None or s.int8_latency_ms is not None:
        parts = []
        if s.fp32_latency_ms is not None:
            parts.append(f"FP32 {s.fp32_latency_ms:.2f} ms")
        if s.int8_latency_ms is not None:
            parts.append(f"INT8 {s.int8_latency_ms:.2f} ms")
        if s.fp32_latency_ms and s.int8_latency_ms:
            parts.append(f"speed-up {s.fp32_latency_ms / s.int8_latency_ms:.2f}×")
        items.append(("latency (median of ≥ 3 runs in 0.1 s, 1 request, this machine)", ", ".join(parts)))
    items.append(("CPU", s.cpu))
    if s.phases:
        items.append(("time per phase", ", ".join(f"{k} {v:.2f} s" for k, v in s.phases.items())
                      + f" (total {sum(s.phases.values()):.2f} s)"))
    if s.metric is not None:
        items.append(("metric", f"{s.metric:.4g}"))
    if s.analysis_samples:
        items.append(("per-layer error", f"analysed on {s.analysis_samples} samples"))
    if s.histogram_samples:
        items.append(("histograms, saturation", f"{s.histogram_samples} samples"))
    steps = ", ".join(f"{k} {v:.2f} s" for k, v in s.timings.items())
    items.append(("report", f"gathered in {s.report_seconds:.2f} s" + (f" ({steps})" if steps else "")))
    return '<table class="kv">' + "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in items) + "</table>"


def render(report: ModelReport) -> str:
    """The whole page as a string (the plots are drawn here)."""
    from ovq.report.graph_svg import legend
    from ovq.report.plots import error_plot, histogram_plot, weight_range_plot

    s = report.summary
    out = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>ovq report: {_e(s.model)}</title><style>{_CSS}</style></head><body>",
           f"<h1>ovq quantization report: {_e(Path(s.model).name if os.sep in s.model else s.model)}</h1>",
           _summary(report)]
    notes = list(report.notes) + ([report.graph.note] if report.graph and report.graph.note else [])
    if notes:
        out.append('<ul class="notes">' + "".join(f'<li class="note">{_e(n)}</li>' for n in notes) + "</ul>")
    out.append('<h2 id="plots">Plots</h2>')
    err = error_plot(report)
    out.append(f'<div class="plots" id="error-plot">{err}</div>' if err else
               '<p class="note">No per-layer error: give the FP model and data (--fp, --data) to analyse it.</p>')
    if report.histograms:
        out.append(f"<h3>Activation histograms of the worst layers (by {_e(report.rank_by)}), chosen range in red</h3>")
        out.append('<div class="plots" id="histograms">' + "".join(histogram_plot(h) for h in report.histograms)
                   + "</div>")
    if report.weight_ranges:
        options = "".join(f'<option value="{k}">{_e(w.layer)}</option>' for k, w in enumerate(report.weight_ranges))
        out.append(f'<h3>Per-channel weight ranges <select id="wpick">{options}</select></h3><div class="plots" '
                   'id="weight-ranges">' + "".join(f'<div class="wrange" data-k="{k}">{weight_range_plot(w)}</div>'
                                                   for k, w in enumerate(report.weight_ranges)) + "</div>")
    if report.graph is not None:
        out.append('<h2 id="graph">Graph</h2><div class="legend">'
                   + "".join(f'<span style="background:{c}"></span>{_e(t)}' for c, t in legend()) + "</div>")
        out.append(f'<div class="graphbox">{report.graph.overview}</div>')
        for k, svg in enumerate(report.graph.blocks):
            out.append(f'<div class="block-detail-box" id="block-{k}"><b>block {k + 1}</b><div class="graphbox">'
                       f"{svg}</div></div>")
    out.append(f'<h2 id="table">Layers (<span id="shown">{len(report.layers)}</span> of {len(report.layers)})</h2>')
    out.append('<p><input id="filter" placeholder="filter: name, type, kernel…" size="40"> <select id="show">'
               '<option value="all">all layers</option><option value="quantized">quantized</option>'
               '<option value="float">left in floating point</option><option value="rt-float">not INT8 at '
               'runtime</option></select> click a header to sort</p>')
    out.append('<table class="layers" id="layers"><thead><tr>' + "".join(f"<th>{_e(c)}</th>" for c in COLUMNS)
               + "</tr></thead><tbody>" + "".join(_row(r) for r in report.layers) + "</tbody></table>")
    out.append(f"<script>{_JS}</script></body></html>")
    return "".join(out)


def json_path_for(path: str | os.PathLike[str]) -> Path:
    """The JSON twin of a report page: same folder and stem, ``.json``."""
    return Path(path).with_suffix(".json")


def check_target(path: str | os.PathLike[str]) -> Path:
    """The report path, checked before any work: its folder exists, and neither it nor its
    JSON twin is something other than a regular file."""
    from ovq.report.collect import ReportError

    p = Path(path)
    if p.suffix.lower() not in (".html", ".htm"):
        raise ReportError(f"report {p}: give a path ending in .html (the JSON twin is written next to it)")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ReportError(f"report {p}: folder {parent} does not exist")
    for target in (p, json_path_for(p)):
        if target.exists() and not target.is_file():
            raise ReportError(f"report {p}: {target} exists and is not a regular file")
    return p


def write_report(report: ModelReport, path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write the page and its JSON twin atomically; return both paths."""
    p = check_target(path)
    page = render(report)
    twin = json.dumps(report.to_dict(), indent=1) + "\n"
    j = json_path_for(p)
    _atomic_write(j, twin)
    _atomic_write(p, page)
    return p, j


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make the page private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
