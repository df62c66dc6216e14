"""Gather a :class:`~ovq.report.model.ModelReport` for an INT8 model.

Everything structural is read from the INT8 model itself (:mod:`.structure`), so a
model quantized earlier by ovq, NNCF or POT reports like one ovq just made. What only
a quantize run knows — phase times, options, why an op was left in float, bias
correction shifts — comes from its :class:`~ovq.quantization.report.QuantizeReport`
when there is one. OpenVINO measures the rest on this machine: the INT8 model is
compiled once (runtime precision and kernel per layer, INT8 latency), the FP model once
(FP32 latency), and, when samples are given, the FP model once more with the
FakeQuantize inputs as outputs (activation histograms and saturation). A
:class:`~ovq.quantization.analyze.LayerErrorTable` adds the per-layer errors.
"""

from __future__ import annotations

import platform
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ovq.errors import IRError, OvqError
from ovq.report.measure import ObservedInput
from ovq.report.model import ChannelRanges, Histogram, LayerRow, ModelReport, ReportSummary
from ovq.quantization.analyze import LINEAR_TYPES
from ovq.report.structure import ModelStructure, constant_bytes, fq_range

HISTOGRAM_LAYERS = 6
"""Layers whose activation histogram the report plots (the worst)."""
HISTOGRAM_SAMPLES = 2
"""Samples the histograms and sampled saturation are measured on."""
WEIGHT_RANGE_LAYERS = 8
"""Layers whose per-channel weight ranges the report plots."""


class ReportError(OvqError):
    """A report cannot be made: nothing quantized, models that do not match, a bad path."""


class NothingQuantizedError(ReportError):
    """The model given as INT8 has no FakeQuantize and no compressed weights."""


class ModelMismatchError(ReportError):
    """The FP model does not match the INT8 one (different inputs)."""


def _load(model: Any, what: str) -> tuple[Any, str]:
    import openvino as ov

    from ovq.ir.graph import Graph

    if isinstance(model, ov.Model):
        return model, model.get_friendly_name()
    if isinstance(model, Graph):
        return model.to_ov(), model.name
    path = Path(model)
    if not path.is_file():
        raise IRError(f"{what} model {path}: no such file")
    from ovq.ir.bridge import core

    try:
        return core().read_model(str(path)), str(path)
    except RuntimeError as exc:
        raise IRError(f"{what} model {path}: OpenVINO cannot read it: {str(exc).strip().splitlines()[0]}") from None


def _inputs_signature(model: Any) -> list[tuple[str, str]]:
    sig = []
    for port in model.inputs:
        name = port.get_any_name() if port.get_names() else port.get_node().get_friendly_name()
        sig.append((name, str(port.get_partial_shape())))
    return sig


def check_match(fp: Any, q: Any, fp_desc: str, q_desc: str) -> None:
    """Raise :class:`ModelMismatchError` unless ``fp`` and ``q`` take the same inputs
    (names and shapes)."""
    a, b = _inputs_signature(fp), _inputs_signature(q)
    if [n for n, _ in a] != [n for n, _ in b] or [s for _, s in a] != [s for _, s in b]:
        raise ModelMismatchError(
            f"FP model {fp_desc} does not match INT8 model {q_desc}: inputs "
            f"{', '.join(f'{n}{s}' for n, s in a)} vs {', '.join(f'{n}{s}' for n, s in b)}")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                flags = Path("/proc/cpuinfo").read_text()
                isa = [f for f in ("avx512_vnni", "avx_vnni", "amx_int8", "avx512f", "avx2") if f" {f}" in flags]
                return f"{name} ({', '.join(isa[:2]) or 'no AVX2'})"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect(
    int8_model: Any,
    *,
    fp_model: Any = None,
    samples: Iterable[Any] | None = None,
    quantize_report: Any = None,
    options: dict[str, Any] | None = None,
    analysis: Any = None,
    source: str = "ovq report",
    model_name: str | None = None,
    measure_latency: bool = True,
    histogram_samples: int = HISTOGRAM_SAMPLES,
    compiled_int8: Any = None,
) -> ModelReport:
    """Gather the report of ``int8_model``.

    Args:
        int8_model: The quantized model: a path, ``openvino.Model`` or :class:`ovq.Graph`
            (from ``ovq.quantize``: its records give the reasons ops stayed in float).
        fp_model: The FP model it was made from (path, Model or Graph): FP32 latency, size
            before, and with ``samples`` the activation histograms.
        samples: Samples as ``ovq.quantize`` takes them; the first
            ``histogram_samples`` are run through the FP model.
        quantize_report: The run's :class:`~ovq.quantization.report.QuantizeReport`.
        options: The options of the run (shown as given).
        analysis: A :class:`~ovq.quantization.analyze.LayerErrorTable` of this model.
        source: What made the report (``ovq quantize``, ``ovq report``, ...).
        model_name: The name shown (default: the path or model name).
        measure_latency: Time FP32 and INT8 inference.
        histogram_samples: Samples the histograms are measured on.
        compiled_int8: ``int8_model`` already compiled on CPU (f32 precision hint,
            LATENCY hint), to save a compile.

    Raises:
        NothingQuantizedError: no FakeQuantize and no compressed weights in ``int8_model``.
        ModelMismatchError: ``fp_model`` takes other inputs than ``int8_model``, or has
            none of its compute layers (by op name).
        IRError: a model file is missing or unreadable.
    """
    import ovq
    from ovq.ir.graph import Graph
    from ovq.runtime import compile_model

    t_start = time.perf_counter()
    notes: list[str] = []
    if quantize_report is None and isinstance(int8_model, Graph):
        from ovq.quantization.phases import REPORT_KEY

        quantize_report = int8_model.meta.get(REPORT_KEY)
    q, q_desc = _load(int8_model, "INT8")
    structure = ModelStructure(q)
    if structure.nothing_quantized:
        raise NothingQuantizedError(f"INT8 model {q_desc}: nothing quantized (no FakeQuantize op and no "
                                    f"compressed weights)")
    fp = fp_desc = None
    if fp_model is not None:
        fp, fp_desc = _load(fp_model, "FP")
        check_match(fp, q, fp_desc, q_desc)
        fp_names = {op.get_friendly_name() for op in fp.get_ops()}
        if structure.layers and not any(layer.name in fp_names for layer in structure.layers):
            raise ModelMismatchError(f"FP model {fp_desc} does not match INT8 model {q_desc}: none of its "
                                     f"{len(structure.layers)} compute layers is in the FP model (layers are "
                                     f"matched by op name)")

    from ovq.report.measure import latency_ms, runtime_layers

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    compiled = compiled_int8 or compile_model(q, config={"PERFORMANCE_HINT": "LATENCY"})
    runtime = runtime_layers(compiled)
    timings["compile INT8"] = time.perf_counter() - t0
    sample_arrays = _first_samples(samples, fp if fp is not None else q, histogram_samples)
    latency_inputs = sample_arrays[0] if sample_arrays else _random_inputs(q)
    summary = ReportSummary(model=model_name or q_desc, ovq_version=ovq.__version__, source=source,
                            options=dict(options or {}), int8_bytes=constant_bytes(q), cpu=_cpu_name(),
                            fake_quantize_ops=len(structure.fake_quantize), timings=timings)
    if options and options.get("target_device"):
        summary.target = str(options["target_device"])
    report = ModelReport(summary=summary, notes=notes)
    # The FP model compiles (for its latency) in a thread while the histogram model
    # compiles and runs here: OpenVINO's compile is mostly single-threaded.
    with ThreadPoolExecutor(1) as pool:
        t0 = time.perf_counter()
        fp_compile = pool.submit(compile_model, fp, config={"PERFORMANCE_HINT": "LATENCY"}) \
            if fp is not None and measure_latency else None
        observed = _add_histograms(report, structure, fp, sample_arrays, notes)
        timings["histograms"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        fp_compiled = fp_compile.result() if fp_compile is not None else None
        timings["compile FP (rest)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if measure_latency:
        summary.int8_latency_ms = latency_ms(compiled, latency_inputs)
        if fp_compiled is not None:
            summary.fp32_latency_ms = latency_ms(fp_compiled, latency_inputs)
    timings["latency"] = time.perf_counter() - t0
    del compiled, fp_compiled
    if fp is not None:
        summary.fp_bytes = constant_bytes(fp)
    else:
        notes.append("no FP model given: no FP32 latency, size before or activation histograms")
    if quantize_report is not None:
        summary.phases = dict(quantize_report.phases)

    skipped = dict(quantize_report.skipped) if quantize_report is not None else {}
    shifts = dict(getattr(quantize_report, "bias_shifts", {}) or {}) if quantize_report is not None else {}
    bias_skipped = dict(quantize_report.bias_skipped) if quantize_report is not None else {}
    rows: list[LayerRow] = []
    for i, layer in enumerate(structure.layers):
        row = LayerRow(index=i, name=layer.name, type=layer.type, quantized=layer.quantized)
        if not layer.quantized:
            row.reason = skipped.get(layer.name, "no FakeQuantize on its inputs and no quantized weights")
        if layer.act_fq is not None:
            low, high, levels = fq_range(layer.act_fq)
            row.act_fq = layer.act_fq.get_friendly_name()
            row.act_levels = levels
            if low is not None and high is not None:
                row.act_low, row.act_high = float(np.min(low)), float(np.max(high))
        if layer.weight_port is not None:
            row.weight_levels = layer.weight_info.get("levels")
            row.weight_granularity = layer.weight_info.get("granularity")
            row.weight_dtype = layer.weight_info.get("dtype")
            if layer.weight_low is not None:
                row.weight_low, row.weight_high = float(np.min(layer.weight_low)), float(np.max(layer.weight_high))
                if row.weight_granularity is None:
                    row.weight_granularity = "per-channel" if layer.weight_low.size > 1 else "per-tensor"
        rt = runtime.get(layer.name)
        if rt is not None:
            row.runtime_precision, row.runtime_kernel, row.runtime_type = rt.precision, rt.kernel, rt.layer_type
            row.int8 = rt.int8
        if layer.name in shifts:
            row.bias_shift, row.bias_note = float(shifts[layer.name]), "applied"
        elif layer.name in bias_skipped:
            row.bias_note = f"skipped (shift/bias ratio {bias_skipped[layer.name]:.3g})"
        rows.append(row)

    report.layers = rows
    for row in rows:
        obs = observed.get(row.name)
        if obs is not None:
            row.saturation = obs.saturation
    if analysis is not None:
        _add_analysis(report, analysis)
    _rank_and_ranges(report, structure, observed)
    from ovq.report.graph_svg import graph_view

    t0 = time.perf_counter()
    report.graph = graph_view(structure, rows)
    timings["layout"] = time.perf_counter() - t0
    summary.compute_layers = len(rows)
    summary.quantized_layers = sum(r.quantized for r in rows)
    # coverage over the IR's Convolution/MatMul layers (an Add fused into a convolution
    # shows the convolution's runtime entry, but is not a layer of its own at runtime)
    audited = [r for r in rows if r.type in LINEAR_TYPES and r.runtime_type in COMPUTE_TYPES_AUDITED]
    summary.runtime_audited = len(audited)
    summary.runtime_int8 = sum(r.int8 for r in audited)
    summary.report_seconds = time.perf_counter() - t_start
    timings["other"] = summary.report_seconds - sum(timings.values())
    return report


COMPUTE_TYPES_AUDITED = {"Convolution", "GroupConvolution", "Deconvolution", "FullyConnected",
                         "FullyConnectedCompressed", "MatMul", "RNNSeq", "RNNCell"}


def _first_samples(samples: Iterable[Any] | None, model: Any, k: int) -> list[list[np.ndarray]]:
    if samples is None or k <= 0:
        return []
    from ovq.quantization.dataset import InputSpec, select_subset

    spec = InputSpec(model)
    out = []
    for i, sample in enumerate(select_subset(samples, None)):
        if i >= k:
            break
        out.append(spec.arrays(sample, i))
    return out


def _random_inputs(model: Any) -> list[np.ndarray]:
    from ovq.runtime import random_inputs

    return random_inputs(model)


def _add_histograms(report: ModelReport, structure: ModelStructure, fp: Any,
                    samples: Sequence[Sequence[np.ndarray]], notes: list[str]) -> dict[str, ObservedInput]:
    """Sample the activation FakeQuantize inputs; return the observations by layer name."""
    from ovq.report.measure import activation_histograms

    if fp is None:
        return {}
    if not samples:
        notes.append("no samples: no activation histograms or saturation (give data; a generator is used up by "
                     "quantization, pass a list or ovq.Dataset)")
        return {}
    targets = []
    seen = set()
    for layer in structure.layers:
        fq = layer.act_fq
        if fq is None or fq.get_friendly_name() in seen:
            continue
        seen.add(fq.get_friendly_name())
        low, high, _levels = fq_range(fq)
        if low is None or high is None:
            continue
        src = fq.input_value(0)
        targets.append((fq.get_friendly_name(), layer.name, src.get_node().get_friendly_name(), src.get_index(),
                        low, high))
    observed = activation_histograms(fp, targets, samples)
    report.summary.histogram_samples = len(samples)
    by_layer: dict[str, ObservedInput] = {}
    for obs in observed:
        by_layer.setdefault(obs.layer, obs)
    missing = len(targets) - len(observed)
    if missing:
        notes.append(f"{missing} activation FakeQuantize inputs have no FP op of the same name: not sampled")
    return by_layer


def _add_analysis(report: ModelReport, analysis: Any) -> None:
    rows = {r.name: r for r in report.layers}
    for err in analysis:
        row = rows.get(err.name)
        if row is None:
            continue
        row.nmse, row.output_nmse, row.sqnr_db = err.nmse, err.output_nmse, err.sqnr_db
        row.saturation = err.saturation
    report.summary.analysis_samples = analysis.samples
    for name, why in analysis.unmatched:
        report.notes.append(f"not analysed: {name} ({why})")


def _rank_and_ranges(report: ModelReport, structure: ModelStructure, observed: dict[str, ObservedInput]) -> None:
    """Pick the worst layers (by output error, local error, or sampled saturation) for the
    histograms and weight-range plots."""
    rows = [r for r in report.layers if r.quantized]
    if any(r.output_nmse is not None for r in rows):
        key, report.rank_by = (lambda r: r.output_nmse or 0.0), "output_nmse"
    elif any(r.nmse is not None for r in rows):
        key, report.rank_by = (lambda r: r.nmse or 0.0), "nmse"
    elif any(r.saturation is not None for r in rows):
        key, report.rank_by = (lambda r: r.saturation or 0.0), "saturation"
    else:
        key, report.rank_by = (lambda r: -r.index), "execution order"
    worst = sorted(rows, key=key, reverse=True)
    for row in worst:
        obs = observed.get(row.name)
        if obs is None:
            continue
        report.histograms.append(Histogram(row.name, obs.fq, [float(e) for e in obs.edges],
                                           [int(c) for c in obs.counts], float(np.min(obs.low)),
                                           float(np.max(obs.high)), obs.saturation,
                                           report.summary.histogram_samples))
        if len(report.histograms) >= HISTOGRAM_LAYERS:
            break
    by_name = {s.name: s for s in structure.layers}
    for row in worst:
        s = by_name[row.name]
        if s.weight_low is not None and s.weight_low.size > 1:
            report.weight_ranges.append(ChannelRanges(row.name, [float(x) for x in s.weight_low],
                                                      [float(x) for x in s.weight_high]))
        if len(report.weight_ranges) >= WEIGHT_RANGE_LAYERS:
            break
