"""``ovq quantize``: the command-line job around :func:`calibrate_and_quantize`.

Reads the model, opens the calibration data (images with preprocessing options, or
``.npy``/``.npz`` files; see docs/quantize-data.md), quantizes, writes the IR atomically
(nothing is written on any failure), then reports INT8 coverage at runtime, the size
before and after, and the time per phase. ``--config`` takes a POT-style JSON config
whose DefaultQuantization (or AccuracyAwareQuantization) settings apply unless overridden
on the command line. With ``--validate module:function`` (and ``--max-drop``, or an
AccuracyAwareQuantization config) the job runs accuracy control
(:func:`~ovq.quantization.accuracy_control.quantize_with_accuracy_control`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovq.errors import OptionError


@dataclass
class QuantizeJob:
    """Everything ``ovq quantize`` was asked to do, after merging ``--config``."""

    model: Path
    output: Path
    data: Path
    target_device: str = "ANY"
    preset: str | None = None
    subset_size: int = 300
    fast_bias_correction: bool | None = True
    model_type: str | None = None
    ignored_scope: Any = None
    compress_weights: bool = True
    smooth_quant: float | bool | str | None = None
    overflow_fix: str | None = None
    range_search: str | None = None
    channel_split: bool | None = None
    quantize_recurrent: bool = False
    seed: int = 0
    data_options: dict[str, Any] | None = None
    audit: bool = True
    progress: bool | None = None
    pipeline: str | None = None
    dump_after: tuple[str, ...] = ()
    validate: str | None = None
    validation_data: Path | None = None
    accuracy_control: Any = None  # pot_config.AccuracyAwareSettings when accuracy control runs
    activations_range: str = "mean_minmax"
    outlier_prob: float = 1e-4
    shuffle_data: bool | None = None
    """POT's subset rule (a POT config): False the first ``subset_size`` samples, True a
    seeded random choice; None: ovq's seeded draw (``select_subset``)."""
    model_name: str | None = None
    """The written model's name (POT's ``model.model_name``); None keeps the source's."""
    report: Path | None = None  # --report: the HTML report to write


def parse_ignored_scope(text: str | None) -> Any:
    """``--ignored-scope``: JSON (``{"names": [...], "types": [...], "patterns": [...]}``),
    a ``.json`` file holding that, or comma-separated op names."""
    if not text:
        return None
    candidate = Path(text)
    if text.endswith(".json") and candidate.is_file():
        try:
            return json.loads(candidate.read_text())
        except json.JSONDecodeError as exc:
            raise OptionError(f"{candidate}:{exc.lineno}:{exc.colno}: --ignored-scope: {exc.msg}") from None
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise OptionError(f"--ignored-scope: not valid JSON ({exc.msg} at column {exc.colno})") from None
    return {"names": [n.strip() for n in text.split(",") if n.strip()]}


def parse_smooth_quant(text: str | None) -> float | bool | str | None:
    """``--smooth-quant``: an alpha in [0, 1], ``search``, or ``off``."""
    if text is None:
        return None
    if text.strip().lower() in ("off", "none", "false", "no"):
        return False
    if text.strip().lower() in ("search", "auto"):
        return "search"
    try:
        alpha = float(text)
    except ValueError:
        raise OptionError(f"--smooth-quant: {text!r} is not an alpha in [0, 1], 'search' or 'off'") from None
    if not 0.0 <= alpha <= 1.0:
        raise OptionError(f"--smooth-quant: alpha {alpha} is outside [0, 1]")
    return alpha


def _model_inputs(ov_model: Any) -> list[tuple[str, list[int], Any]]:
    out = []
    for port in ov_model.inputs:
        name = port.get_any_name() if port.get_names() else port.get_node().get_friendly_name()
        pshape = port.get_partial_shape()
        if pshape.rank.is_dynamic:
            raise OptionError(f"input {name!r} has a dynamic rank; give --input-shape")
        out.append((name, [d.get_length() if d.is_static else -1 for d in pshape], port.get_element_type().to_dtype()))
    return out


def _bin_size(path: Path) -> int:
    b = path.with_suffix(".bin")
    return b.stat().st_size if b.is_file() else 0


def run_quantize_job(job: QuantizeJob, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ``job``; return the figures it printed."""
    from ovq.ir import read_model, save_model
    from ovq.quantization.data_sources import load_calibration_data
    from ovq.quantization.quantize import calibrate_and_quantize, check_not_quantized, run_before_placement

    if job.report is not None:
        from ovq.report import check_target

        check_target(job.report)  # before any work
    t0 = time.perf_counter()
    graph = read_model(job.model)
    check_not_quantized(graph)  # before the calibration data is read
    t_read = time.perf_counter() - t0
    ctx, t_pipeline = run_before_placement(graph, job.pipeline, job.dump_after, job.output.parent)
    fp_model = graph.to_ov()
    data = load_calibration_data(job.data, _model_inputs(fp_model), **(job.data_options or {}))
    echo(f"model: {job.model} ({len(graph)} layers); calibration data: {job.data} ({len(data)} samples)")
    if job.shuffle_data is not None:  # POT's rule: the subset is chosen here, then all of it is used
        data = data.subset(job.subset_size, shuffle=job.shuffle_data)
        job = dataclasses.replace(job, subset_size=None)
    if job.accuracy_control is not None:
        graph, report = _with_accuracy_control(job, graph, fp_model, data, echo)
    else:
        report = calibrate_and_quantize(
        graph, data, fp_model=fp_model, target_device=job.target_device, preset=job.preset,
        subset_size=job.subset_size, fast_bias_correction=job.fast_bias_correction, model_type=job.model_type,
            ignored_scope=job.ignored_scope, compress_weights=job.compress_weights, smooth_quant=job.smooth_quant,
            overflow_fix=job.overflow_fix, range_search=job.range_search, channel_split=job.channel_split,
            quantize_recurrent=job.quantize_recurrent, activations_range=job.activations_range,
            outlier_prob=job.outlier_prob, seed=job.seed, progress=job.progress, ctx=ctx)
    report.phases = {"read": t_read, **({"pipeline": t_pipeline} if job.pipeline else {}), **report.phases}
    if job.model_name:
        graph.name = job.model_name
    t0 = time.perf_counter()
    save_model(graph, job.output)
    report.phases["write"] = time.perf_counter() - t0
    echo(report.format())
    source_bin = Path(job.model).with_suffix(".bin")
    before, after = _bin_size(source_bin), _bin_size(job.output)
    if before:
        echo(f"size: {before / 2**20:.2f} MiB -> {after / 2**20:.2f} MiB (.bin)")
    figures: dict[str, Any] = {"report": report, "bin_before": before, "bin_after": after}
    compiled = None
    if job.audit or job.report is not None:
        from ovq.runtime import compile_model

        int8_ov = graph.to_ov()
        compiled = compile_model(int8_ov, config={"PERFORMANCE_HINT": "LATENCY"})  # the audit's and the report's
    if job.audit:
        from ovq.quantization.audit import runtime_audit

        audit = runtime_audit(int8_ov, expected=graph.meta.get("ovq.quantized_ops"), compiled=compiled)
        figures["int8"] = audit.summary()
        echo(f"runtime (CPU): {audit.summary()}")
    echo(f"wrote {job.output}")
    if job.report is not None:
        from ovq.report import report_model

        t0 = time.perf_counter()
        options = {k: v for k, v in (("target_device", job.target_device), ("preset", job.preset),
                                     ("subset_size", job.subset_size), ("bias_correction", {True: "fast", False: "full",
                                                                                            None: "none"}[job.fast_bias_correction]),
                                     ("model_type", job.model_type), ("compress_weights", job.compress_weights),
                                     ("smooth_quant", job.smooth_quant), ("pipeline", job.pipeline))
                   if v is not None}
        figures["html_report"] = report_model(int8_ov, job.report, fp_model=fp_model, data=data,
                                              quantize_report=report, options=options, source="ovq quantize",
                                              model_name=str(job.model), echo=echo, compiled_int8=compiled)
        figures["report_seconds"] = time.perf_counter() - t0
        steps = ", ".join(f"{k} {v:.2f} s" for k, v in figures["html_report"].summary.timings.items())
        echo(f"report time: {figures['report_seconds']:.2f} s ({steps})")
    return figures


def load_hook(spec: str) -> Callable[..., Any]:
    """``module:function`` or ``path/to/file.py:function`` as a callable (the module is
    looked up from the current folder too)."""
    import importlib
    import importlib.util
    import sys

    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise OptionError(f"--validate: expected module:function or file.py:function, got {spec!r}")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise OptionError(f"--validate: no file {path}")
            loader_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise OptionError(f"--validate: cannot import {module_name!r}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise OptionError(f"--validate: {module_name!r} has no function {attr!r}")
    return fn


def _with_accuracy_control(job: QuantizeJob, graph: Any, fp_model: Any, data: Any,
                           echo: Callable[[str], None]) -> tuple[Any, Any]:
    from ovq.quantization.accuracy_control import quantize_with_accuracy_control
    from ovq.quantization.data_sources import load_calibration_data

    if job.validate is None:
        raise OptionError("accuracy control (AccuracyAwareQuantization) needs the metric: give --validate "
                          "module:function (called as function(compiled_model, validation_data) -> float, higher "
                          "is better); ovq does not evaluate the Accuracy Checker's metrics")
    fn = load_hook(job.validate)
    validation = data
    if job.validation_data is not None:
        validation = load_calibration_data(job.validation_data, _model_inputs(fp_model), **(job.data_options or {}))
    settings = job.accuracy_control
    q, ac = quantize_with_accuracy_control(
        graph, data, list(validation), fn, max_drop=settings.max_drop, drop_type=settings.drop_type,
        target_device=job.target_device, preset=job.preset, subset_size=job.subset_size,
        fast_bias_correction=job.fast_bias_correction, model_type=job.model_type, ignored_scope=job.ignored_scope,
        compress_weights=job.compress_weights, smooth_quant=job.smooth_quant, overflow_fix=job.overflow_fix,
        range_search=job.range_search, channel_split=job.channel_split, quantize_recurrent=job.quantize_recurrent,
        seed=job.seed,
        activations_range=job.activations_range,
        outlier_prob=job.outlier_prob,
        max_num_iterations=settings.max_iterations, ranking_subset_size=settings.ranking_subset_size,
        progress=job.progress, return_report=True)
    echo(ac.format())
    return q, ac.quantize


def job_from_options(model: Path | None, output: Path | None, data: Path | None, config: Path | None,
                     given: dict[str, Any]) -> QuantizeJob:
    """Merge the command line over a POT config (options the user gave win)."""
    from ovq.quantization.pot_config import read_pot_config

    settings: dict[str, Any] = {}
    data_options: dict[str, Any] = {}
    if config is not None:
        pot = read_pot_config(config)
        if model is not None and Path(model).resolve() != pot.model_xml.resolve():
            raise OptionError(f"give MODEL or --config, not both: {config} names the model {pot.model_xml} "
                              f"(model.model), the command line {model}")
        model = pot.model_xml
        settings.update(pot.quantize_options())
        settings["accuracy_control"] = pot.accuracy_control
        settings["shuffle_data"] = pot.shuffle_data
        settings["model_name"] = pot.model_name
        if output is not None and output.is_dir():  # POT writes <model_name>.xml into its output folder
            output = output / f"{pot.model_name or pot.model_xml.stem}.xml"
        if data is None and pot.data_source is not None:  # POT's engine options describe its images only
            data = pot.data_source
            data_options.update({k: v for k, v in pot.data_options().items() if v is not None})
    for key in ("target_device", "preset", "subset_size", "fast_bias_correction", "model_type", "ignored_scope",
                "compress_weights", "seed", "overflow_fix", "range_search", "channel_split", "quantize_recurrent"):
        if given.get(key) is not None:
            settings[key] = given[key]
    if given.get("smooth_quant") is not None:
        settings["smooth_quant"] = parse_smooth_quant(given["smooth_quant"])
    if given.get("bias_correction") is not None:
        settings["fast_bias_correction"] = {"fast": True, "full": False, "none": None}[given["bias_correction"]]
    for key in ("input_shape", "layout", "mean_values", "scale_values", "reverse_input_channels"):
        if given.get(key):
            data_options[key] = given[key]
    if model is None:
        raise OptionError("no model: give MODEL or --config")
    if output is None:
        raise OptionError("no output: give -o OUT.xml")
    if output.is_dir():
        raise OptionError(f"-o {output}: is a folder; give OUT.xml (a folder takes <model_name>.xml from --config)")
    if data is None:
        raise OptionError("no calibration data: give --data PATH (a folder of images, .npy/.npz files) "
                          "or an engine.data_source in --config")
    settings = {k: v for k, v in settings.items()
                if v is not None or k in ("preset", "model_type", "fast_bias_correction", "ignored_scope", "smooth_quant")}
    accuracy = _accuracy_settings(settings.pop("accuracy_control", None), given)
    validation_data = given.get("validation_data")
    return QuantizeJob(model=Path(model), output=Path(output), data=Path(data), data_options=data_options,
                       audit=given.get("audit", True), progress=given.get("progress"),
                       pipeline=given.get("pipeline"), dump_after=tuple(given.get("dump_after") or ()),
                       validate=given.get("validate"), accuracy_control=accuracy,
                       validation_data=Path(validation_data) if validation_data else None,
                       report=Path(given["report"]) if given.get("report") else None, **settings)


def _accuracy_settings(from_config: Any, given: dict[str, Any]) -> Any:
    """AccuracyAwareQuantization settings from the config, overridden by ``--max-drop``,
    ``--drop-type`` and ``--max-iterations``; None when no accuracy control was asked for."""
    import dataclasses

    from ovq.quantization.pot_config import AccuracyAwareSettings

    overrides = {k: given[o] for k, o in (("max_drop", "max_drop"), ("drop_type", "drop_type"),
                                           ("max_iterations", "max_iterations")) if given.get(o) is not None}
    if from_config is None and not overrides and not given.get("validate"):
        return None
    settings = dataclasses.replace(from_config or AccuracyAwareSettings(), **overrides)
    if not settings.max_drop >= 0:
        raise OptionError(f"--max-drop must be >= 0, got {settings.max_drop}")
    return settings
