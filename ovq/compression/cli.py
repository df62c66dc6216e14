"""``ovq compress``: the command-line job around :func:`compress_graph`.

Reads the model (weights stay memory-mapped), opens the calibration data if ``--data``
is given (the forms ``ovq quantize`` reads), compresses its weights one at a time into
a scratch file beside the output, writes the IR atomically (nothing is written on any
failure, and never over something that is not a regular file), then prints the layers
per precision, the ``.bin`` size before and after, the time per phase and, unless
``--no-audit``, the weight precision each FullyConnected runs with on CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovq.errors import OptionError


@dataclass
class CompressJob:
    """Everything ``ovq compress`` was asked to do."""

    model: Path
    output: Path
    mode: str = "int8_asym"
    group_size: int | None = None
    ratio: float | None = None
    all_layers: bool = False
    backup_mode: str | None = None
    group_size_fallback: str | None = None
    ignored_scope: Any = None
    data: Path | None = None
    awq: bool = False
    scale_estimation: bool = False
    sensitivity_metric: str | None = None
    subset_size: int = 128
    audit: bool = True
    progress: bool | None = None


def check_output(output: Path) -> None:
    """Refuse an output path (or its ``.bin``) that exists and is not a regular file."""
    for path in (output, output.with_suffix(".bin")):
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise OptionError(f"{path}: exists and is not a regular file; refusing to write over it")
    if output.suffix.lower() != ".xml":
        raise OptionError(f"-o {output}: the output must be an IR .xml path (its .bin goes beside it)")


def _bin_size(xml: Path) -> int:
    b = xml.with_suffix(".bin")
    return b.stat().st_size if b.is_file() else 0


def run_compress_job(job: CompressJob, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ``job``; return the figures it printed."""
    from ovq.compression.compress import compress_graph
    from ovq.compression.options import resolve_options
    from ovq.ir import read_model, save_model

    check_output(job.output)
    opts = resolve_options(mode=job.mode, ratio=job.ratio, group_size=job.group_size,
                           all_layers=job.all_layers or None, backup_mode=job.backup_mode,
                           sensitivity_metric=job.sensitivity_metric, dataset=job.data, awq=job.awq,
                           scale_estimation=job.scale_estimation, gptq=None, lora_correction=None,
                           group_size_fallback_mode=job.group_size_fallback, subset_size=job.subset_size)
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    graph = read_model(job.model)
    phases["read"] = time.perf_counter() - t0
    data = None
    if job.data is not None:
        from ovq.quantization.data_sources import load_calibration_data
        from ovq.quantization.quantize_cli import _model_inputs

        data = load_calibration_data(job.data, _model_inputs(graph.to_ov()))
    echo(f"model: {job.model} ({len(graph)} layers); mode {opts.primary.label}"
         + (f", ratio {opts.ratio:g}, backup {opts.backup_mode.value}" if not opts.is_int8 else "")
         + (f"; data {job.data} ({len(data)} samples, first {min(len(data), opts.subset_size)} used)"
            if data is not None else ""))
    report = compress_graph(graph, opts, ignored_scope=job.ignored_scope, progress=job.progress,
                            spill_dir=job.output.parent, dataset=data)
    if data is not None:
        phases["statistics"] = report.statistics_seconds
    phases["compress"] = report.seconds - report.statistics_seconds
    t0 = time.perf_counter()
    save_model(graph, job.output)
    phases["write"] = time.perf_counter() - t0
    echo(report.summary())
    before, after = _bin_size(Path(job.model)), _bin_size(job.output)
    if before:
        echo(f"size: {before / 2**20:.2f} MiB -> {after / 2**20:.2f} MiB (.bin, {before / max(after, 1):.2f}x smaller)")
    echo("time: " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()) + f", total {sum(phases.values()):.2f} s")
    figures: dict[str, Any] = {"report": report, "bin_before": before, "bin_after": after, "phases": phases}
    if job.audit:
        from ovq.quantization.audit import runtime_audit

        del graph
        audit = runtime_audit(job.output)
        fc: dict[str, int] = {}
        for e in audit.entries:
            if e.layer_type == "FullyConnected":
                fc[e.runtime_precision] = fc.get(e.runtime_precision, 0) + 1
        figures["fully_connected"] = fc
        echo("runtime (CPU): FullyConnected weights " + (", ".join(f"{k} {v}" for k, v in sorted(fc.items())) or "none"))
    echo(f"wrote {job.output}")
    return figures
