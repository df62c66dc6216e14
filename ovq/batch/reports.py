"""Reports in a batch: each job's HTML report (worker side) and the index page (driver side).

A job with ``report`` (the manifest field, or ``ovq batch --report``) writes the page
``ovq quantize --report`` / ``ovq compress --report`` write, with its JSON twin, into its
staging folder (``int8.xml`` -> ``int8.report.html`` and ``int8.report.json``,
:func:`~ovq.batch.outputs.report_paths`); the driver commits them with the ``.xml`` and
``.bin`` (digests in the journal, atomic renames). :func:`write_job_report` makes them
from what the job already has: the INT8 graph and the run's
:class:`~ovq.quantization.report.QuantizeReport`, the FP model, and for quantize kinds
the calibration data (the first 2 samples feed the activation histograms). The INT8
compile is shared with the runtime audit that follows.

:func:`write_index` writes ``OUTDIR/index.html`` at the end of every run: one
self-contained page (inline CSS, no script, nothing fetched) with a row per job and
relative links to its report and its ``.xml``. Every string from the manifest, the
journal or an error is HTML-escaped.
"""

from __future__ import annotations

import html
import os
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ovq.batch.outputs import fsync_path, report_paths

__all__ = ["INDEX_NAME", "render_index", "write_index", "write_job_report"]

INDEX_NAME = "index.html"
"""The index page in the output folder."""


def write_job_report(spec: dict[str, Any], staged: Path, out: dict[str, Any]) -> tuple[Any, float]:
    """Write the report of the job ``spec`` beside its staged ``.xml``; return the
    compiled INT8 model (for the runtime audit) and the seconds the report took.

    ``out`` is the kind runner's return: ``graph`` (the result), ``report`` (the
    :class:`~ovq.quantization.report.QuantizeReport`, ``None`` for compress),
    ``fp_model``, ``data`` (``None``: no histograms) and ``metric``.

    Raises:
        ReportError: the report cannot be made (the message starts with ``report:``).
    """
    from ovq.errors import OvqError
    from ovq.report import ReportError, collect, write_report
    from ovq.runtime import compile_model

    t0 = time.perf_counter()
    page, _twin = report_paths(staged)
    graph = out["graph"]
    compiled = compile_model(graph, config={"PERFORMANCE_HINT": "LATENCY"})  # the audit's too
    try:
        report = collect(graph, fp_model=out.get("fp_model"), samples=out.get("data"),
                         quantize_report=out.get("report"), options=dict(spec["options"]),
                         source=f"ovq batch ({spec['kind']})", model_name=spec["model"], compiled_int8=compiled)
        if out.get("metric") is not None:
            report.summary.metric = float(out["metric"])
        t_write = time.perf_counter()
        html_path, json_path = write_report(report, page)
        report.summary.timings["render and write"] = time.perf_counter() - t_write
    except OvqError as exc:
        raise ReportError(f"report: {exc}") from None
    for path in (json_path, html_path):  # as durable as the staged .xml and .bin before the driver commits
        fsync_path(path)
    return compiled, time.perf_counter() - t0


_CSS = """
body{font:13px/1.4 system-ui,sans-serif;margin:16px 24px;color:#222}
h1{font-size:20px;margin:0 0 8px}p.meta{color:#555;margin:0 0 12px}
table{border-collapse:collapse;font-size:12px}
th{background:#eee;text-align:left;padding:3px 6px;white-space:nowrap;position:sticky;top:0}
td{border-top:1px solid #e4e4e4;padding:2px 6px;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.error{color:#a00;white-space:pre-wrap;max-width:60em;font-family:ui-monospace,monospace;font-size:11px}
tr.failed td.status{color:#a00;font-weight:600}tr.done td.status{color:#060}tr.skipped td.status{color:#555}
"""

COLUMNS = ("#", "job", "kind", "status", "time s", "INT8 / precisions", "MiB before", "MiB after", "metric",
           "report", "output", "error")
"""The index table's headers, in order."""


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _href(target: Path, folder: Path) -> str:
    """``target`` relative to ``folder`` as an escaped URL path (``../x/int8.xml`` works too)."""
    rel = Path(os.path.relpath(target, folder)).as_posix()
    return _e(urllib.parse.quote(rel, safe="/"))


def _mib(n: int | None) -> str:
    return f"{n / 2**20:.2f}" if n is not None else "–"


def _row(number: int, r: Any, folder: Path) -> str:
    if r.precisions:
        coverage = r.precision_text()
    elif r.audited_layers:
        coverage = f"{r.int8_layers}/{r.audited_layers} ({100 * (r.int8_layers or 0) / r.audited_layers:.0f} %)"
    else:
        coverage = "–"
    ok = r.status in ("done", "skipped")
    report = f'<a class="report" href="{_href(Path(r.report), folder)}">report</a>' if ok and r.report else "–"
    output = f'<a class="output" href="{_href(Path(r.output), folder)}">{_e(Path(r.output).name)}</a>' if ok else "–"
    cells = [
        f'<td class="num">{number}</td>', f'<td class="name">{_e(r.name)}</td>', f"<td>{_e(r.kind or '–')}</td>",
        f'<td class="status">{_e(r.status)}</td>',
        f'<td class="num">{f"{r.seconds:.1f}" if r.seconds is not None else "–"}</td>',
        f"<td>{_e(coverage)}</td>", f'<td class="num">{_mib(r.size_before)}</td>',
        f'<td class="num">{_mib(r.size_after)}</td>',
        f'<td class="num">{f"{r.metric:.4g}" if r.metric is not None else "–"}</td>',
        f"<td>{report}</td>", f"<td>{output}</td>", f'<td class="error">{_e(r.error or "")}</td>',
    ]
    return f'<tr class="{_e(r.status)}">{"".join(cells)}</tr>'


def render_index(records: Sequence[Any], folder: Path, meta: dict[str, Any]) -> str:
    """The index page of ``records`` (:class:`~ovq.batch.progress.JobRecord`, manifest
    order), with links relative to ``folder`` and ``meta`` (manifest, counts, seconds)."""
    import ovq

    counts = ", ".join(f"{meta.get(k, 0)} {k}" for k in ("done", "skipped", "failed"))
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime())
    out = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>ovq batch: {_e(folder.name)}</title><style>{_CSS}</style></head><body>",
           f"<h1>ovq batch: {len(records)} jobs</h1>",
           f'<p class="meta">manifest {_e(meta.get("manifest", ""))}; {_e(counts)}; this run '
           f'{float(meta.get("seconds") or 0):.1f} s, written {_e(when)} by ovq {_e(ovq.__version__)}. Skipped jobs '
           f"were done by an earlier run with the same inputs; their figures are that run's.</p>",
           '<table id="jobs"><thead><tr>' + "".join(f"<th>{_e(c)}</th>" for c in COLUMNS) + "</tr></thead><tbody>"]
    out += [_row(i, r, folder) for i, r in enumerate(records)]
    out.append("</tbody></table></body></html>\n")
    return "".join(out)


def write_index(folder: Path, records: Sequence[Any], meta: dict[str, Any]) -> Path:
    """Write ``folder/index.html`` atomically (as the summary files); return its path."""
    from ovq.batch.progress import write_text_atomically

    path = folder / INDEX_NAME
    write_text_atomically(path, render_index(records, folder, meta))
    return path
