"""The quantization report: one self-contained HTML page per INT8 model, with a JSON twin.

```python
import ovq

int8 = ovq.quantize(model, samples, report="report.html")          # during quantization
ovq.report.report_model("int8.xml", "report.html", fp_model="fp32.xml", data=samples, analyze=True)
```

:func:`report_model` is the one call other commands use (``ovq quantize --report``,
``ovq report``): gather (:mod:`.collect`), lay out, plot and write atomically
(:mod:`.html`). See docs/report.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from ovq.report.collect import ModelMismatchError, NothingQuantizedError, ReportError, collect
from ovq.report.html import check_target, json_path_for, render, write_report
from ovq.report.model import ChannelRanges, GraphView, Histogram, LayerRow, ModelReport, ReportSummary


def report_model(
    int8_model: Any,
    path: str | os.PathLike[str],
    *,
    fp_model: Any = None,
    data: Iterable[Any] | None = None,
    analyze: bool = False,
    subset_size: int | None = 300,
    quantize_report: Any = None,
    options: dict[str, Any] | None = None,
    source: str = "ovq report",
    model_name: str | None = None,
    progress: bool | None = None,
    echo: Callable[[str], None] | None = None,
    compiled_int8: Any = None,
) -> ModelReport:
    """Gather the report of ``int8_model`` and write ``path`` (HTML) and its JSON twin.

    Args:
        int8_model: The quantized model (path, ``openvino.Model`` or :class:`ovq.Graph`).
        path: The page to write (``.html``); the JSON twin goes next to it (``.json``).
            Its folder must exist; checked before any work.
        fp_model: The FP model: FP32 latency, size before, and with ``data`` the
            activation histograms.
        data: Samples (as ``ovq.quantize`` takes them).
        analyze: Also run :func:`ovq.analyze` (needs ``fp_model`` and ``data``) for the
            per-layer error; ``subset_size`` samples are streamed.
        quantize_report: The :class:`~ovq.quantization.report.QuantizeReport` of the run.
        options: The options of the run, shown as given.
        source: What made the report.
        model_name: The name the page shows.
        progress: Progress bar of the analysis.
        echo: Receives one line naming the files written.
        compiled_int8: ``int8_model`` already compiled on CPU (f32 and LATENCY hints).

    Raises:
        ReportError: a bad path; :class:`NothingQuantizedError`, :class:`ModelMismatchError`.
        OptionError: ``analyze`` without ``fp_model`` and ``data``.
    """
    from ovq.errors import OptionError

    check_target(path)
    table = None
    if analyze:
        if fp_model is None or data is None:
            raise OptionError("report: the per-layer analysis needs the FP model and data (--fp and --data)")
        from ovq.quantization.analyze import analyze as run_analysis

        table = run_analysis(fp_model, int8_model, data, subset_size=subset_size, progress=progress)
    report = collect(int8_model, fp_model=fp_model, samples=data, quantize_report=quantize_report, options=options,
                     analysis=table, source=source, model_name=model_name, compiled_int8=compiled_int8)
    t0 = time.perf_counter()
    html_path, json_path = write_report(report, path)
    report.summary.timings["render and write"] = time.perf_counter() - t0
    if echo is not None:
        echo(f"wrote report {html_path} (+ {json_path.name}): {report.summary.compute_layers} layers, "
             f"{report.summary.runtime_int8}/{report.summary.runtime_audited} INT8 at runtime")
    return report


__all__ = ["ChannelRanges", "GraphView", "Histogram", "LayerRow", "ModelMismatchError", "ModelReport",
           "NothingQuantizedError", "ReportError", "ReportSummary", "check_target", "collect", "json_path_for",
           "render", "report_model", "write_report"]
