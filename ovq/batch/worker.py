"""Running one batch job in a worker: the code that loads OpenVINO.

:func:`run_job` runs one job spec (:meth:`Job.to_spec`) and writes its outputs into a
staging folder; it is what a local worker process (``python -m ovq.batch.worker``, started
by :mod:`ovq.batch.local`) and a Ray task (:mod:`ovq.batch.ray_engine`) call. It returns a
plain dict (the job's figures), never weights: the driver commits the staged files.

As a process, the worker reads one JSON task per line on stdin and answers with JSON
lines (``ready``, ``phase``, ``result``) on the file descriptor that was its stdout;
anything else printing to stdout goes to stderr. It dies with its parent (Linux
``PR_SET_PDEATHSIG``), so a killed driver leaves no worker writing behind it.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["configure_threads", "run_job"]

Phase = Callable[[str], None]


def configure_threads(threads: int) -> None:
    """Use ``threads`` OpenVINO inference threads and native-kernel threads in this process.

    CPU pinning is turned off: OpenVINO pins each process's inference threads to cores
    chosen without regard to other processes, so two one-thread workers on two cores
    both pinned to the same core and ran at about half a core each.
    """
    from ovq.ir.bridge import core
    from ovq.kernels import set_num_threads

    core().set_property("CPU", {"INFERENCE_NUM_THREADS": int(threads), "ENABLE_CPU_PINNING": False})
    try:
        set_num_threads(int(threads))
    except Exception:  # noqa: BLE001 - numba/numpy backends have no thread setting of their own here
        pass


def _load_callable(spec: str, base: Path, what: str) -> Callable[..., Any]:
    """``module:function`` (imported with the manifest's folder on the path) or ``file.py:function``."""
    import importlib
    import importlib.util

    from ovq.errors import OptionError

    module_name, _, attr = spec.rpartition(":")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name) if Path(module_name).is_absolute() else base / module_name
            if not path.is_file():
                raise OptionError(f"{what} {spec!r}: no file {path}")
            loader_spec = importlib.util.spec_from_file_location(f"ovq_batch_{path.stem}", path)
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            if str(base) not in sys.path:
                sys.path.insert(0, str(base))
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise OptionError(f"{what} {spec!r}: cannot import {module_name!r}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise OptionError(f"{what} {spec!r}: {module_name!r} has no function {attr!r}")
    return fn


def _open_data(data: str, spec: dict[str, Any], fp_model: Any, what: str) -> Any:
    """Calibration samples from a path (as ``ovq quantize --data``) or a loader's return value."""
    from ovq.batch.manifest import is_loader
    from ovq.errors import CalibrationDataError, OvqError
    from ovq.quantization.data_sources import load_calibration_data
    from ovq.quantization.quantize_cli import _model_inputs

    base = Path(spec["base"])
    if not is_loader(data, base):
        return load_calibration_data(data, _model_inputs(fp_model), **spec["data_options"])
    fn = _load_callable(data, base, f"{what} loader")
    try:
        samples = fn()
        samples = list(samples)
    except OvqError:
        raise
    except Exception as exc:  # noqa: BLE001 - user code: its error becomes the job's
        raise CalibrationDataError(f"{what} loader {data!r} raised {type(exc).__name__}: {exc}") from None
    if not samples:
        raise CalibrationDataError(f"{what} loader {data!r} returned no samples")
    return _Checked(samples, data)


class _Checked(list):
    """A loader's samples; remembers the loader so shape errors can name it."""

    def __init__(self, samples: list[Any], origin: str) -> None:
        super().__init__(samples)
        self.origin = origin


class _PhaseInstrument:
    """Reports each quantize phase as it starts."""

    def __init__(self, phase: Phase) -> None:
        self.phase = phase

    def before_pass(self, pass_: Any, graph: Any, ctx: Any) -> None:
        self.phase(getattr(pass_, "name", str(pass_)))

    def after_pass(self, pass_: Any, graph: Any, ctx: Any, result: Any) -> None:
        pass


def _file_bytes(xml: Path) -> int:
    return sum(p.stat().st_size for p in (xml, xml.with_suffix(".bin")) if p.is_file())


def _with_loader_name(data: Any, exc: Exception) -> Exception:
    from ovq.errors import CalibrationDataError

    if isinstance(data, _Checked) and isinstance(exc, CalibrationDataError) and data.origin not in str(exc):
        return CalibrationDataError(f"data loader {data.origin!r}: {exc}")
    return exc


def _quantize_session(spec: dict[str, Any], phase: Phase, *, dumps: bool = True, collect: Any = None) -> Any:
    """The job's model read, its pipeline run, its data opened: a quantize session (not run)
    as :func:`ovq.quantization.quantize.calibrate_and_quantize` builds it."""
    from ovq.ir import read_model
    from ovq.quantization.phases import QuantizeOptions, QuantizeSession
    from ovq.quantization.quantize import check_not_quantized, run_before_placement

    options = dict(spec["options"])
    phase("read")
    graph = read_model(spec["model"])
    pipeline, dump_after = options.pop("pipeline", None), options.pop("dump_after", ())
    ctx, _ = run_before_placement(graph, pipeline, dump_after if dumps else (), Path(spec["output"]).parent)
    ctx.instruments.append(_PhaseInstrument(phase))
    fp_model = graph.to_ov()
    phase("data")
    data = _open_data(spec["data"], spec, fp_model, "data")
    check_not_quantized(graph)
    opts = QuantizeOptions.build(progress=False, **options)
    try:
        session = QuantizeSession(graph, data, opts, fp_model=fp_model, ctx=ctx, collect=collect)
    except Exception as exc:
        raise _with_loader_name(data, exc) from None
    return session, data


def run_quantize(spec: dict[str, Any], staged: Path, phase: Phase) -> dict[str, Any]:
    """``kind = "quantize"``: :func:`ovq.quantize` with the job's options.

    With ``spec["statistics"]`` (the merged statistics of a sharded job, a file the
    driver wrote), the statistics pass is replaced by those statistics.
    """
    from ovq.ir import save_model

    collect = None
    if spec.get("statistics"):
        from ovq.batch.shards import merged_collector

        collect = merged_collector(Path(spec["statistics"]))
    session, data = _quantize_session(spec, phase, collect=collect)
    try:
        report = session.run()
    except Exception as exc:
        raise _with_loader_name(data, exc) from None
    phase("write")
    save_model(session.state.graph, staged, fsync=True)
    return {"report": report, "graph": session.state.graph, "metric": None, "fp_model": session.state.fp_model,
            "data": data}


def run_shard(spec: dict[str, Any], staging: Path, phase: Phase) -> dict[str, Any]:
    """One slice of a sharded quantize job: placement, then the statistics pass over
    samples ``shard`` of ``shards`` of the subset; writes the
    :class:`~ovq.quantization.shards.PartialStatistics` into the staging folder."""
    from ovq.batch.shards import partial_path, write_partial
    from ovq.quantization.shards import collect_partial_statistics, shard_slices

    index, count = int(spec["shard"]), int(spec["shards"])
    session, data = _quantize_session(spec, phase, dumps=False)
    try:
        observations = session.observations()
        state = session.state
        piece = shard_slices(state.subset.count, count)[index]
        phase(f"statistics {piece.start}..{piece.stop - 1}")
        partial = collect_partial_statistics(state.fp_model, observations, state.subset, piece)
    except Exception as exc:
        raise _with_loader_name(data, exc) from None
    path = partial_path(staging, index, count)
    write_partial(path, partial)
    return {"partial": str(path), "samples": piece.count, "seconds_infer": partial.report.seconds_infer}


def run_compress(spec: dict[str, Any], staged: Path, phase: Phase) -> dict[str, Any]:
    """``kind = "compress"``: :func:`ovq.compress_weights` with the job's options (the
    job's ``data``, if any, is passed as ``dataset``)."""
    from ovq.compression.compress import compress_weights
    from ovq.ir import read_model, save_model

    options = dict(spec["options"])
    phase("read")
    graph = read_model(spec["model"])
    if spec.get("data"):
        phase("data")
        options["dataset"] = _open_data(spec["data"], spec, graph.to_ov(), "data")
    phase("compress")
    result, report = compress_weights(graph, progress=False, spill_dir=staged.parent, return_report=True,
                                      **options)
    phase("write")
    save_model(result, staged, fsync=True)
    return {"report": None, "graph": result, "metric": None, "compression": report, "fp_model": graph}


def run_accuracy_control(spec: dict[str, Any], staged: Path, phase: Phase) -> dict[str, Any]:
    """``kind = "quantize-with-accuracy-control"``: :func:`ovq.quantize_with_accuracy_control`."""
    from ovq.ir import read_model, save_model
    from ovq.quantization.accuracy_control import quantize_with_accuracy_control

    phase("read")
    graph = read_model(spec["model"])
    fp_model = graph.to_ov()
    phase("data")
    data = _open_data(spec["data"], spec, fp_model, "data")
    validation = _open_data(spec["validation_data"], spec, fp_model, "validation data") \
        if spec.get("validation_data") else data
    metric = _load_callable(spec["metric"], Path(spec["base"]), "metric")
    phase("accuracy-control")
    try:
        result, report = quantize_with_accuracy_control(graph, data, list(validation), metric, progress=False,
                                                         return_report=True, **spec["options"])
    except Exception as exc:
        raise _with_loader_name(data, exc) from None
    phase("write")
    save_model(result, staged, fsync=True)
    return {"report": report.quantize, "graph": result, "metric": report.metric, "fp_metric": report.fp_metric,
            "metric_met": report.met, "fp_model": fp_model, "data": data}


def _reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_rss() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_job(spec: dict[str, Any], staging: str, phase: Phase = lambda name: None) -> dict[str, Any]:
    """Run one job; write its outputs into ``staging``; return its figures.

    Returns ``{"ok": True, "staged": xml, "result": {...}}`` or ``{"ok": False, "error": msg}``
    (the message starts with the job's manifest location).
    """
    import importlib

    from ovq.batch.kinds import get_kind
    from ovq.errors import OvqError

    t0 = time.perf_counter()
    _reset_peak_rss()
    staged = Path(staging) / Path(spec["output"]).name
    try:
        if spec.get("shard") is not None:  # one statistics slice of a sharded job: no model written
            Path(staging).mkdir(parents=True, exist_ok=True)
            result = run_shard(spec, Path(staging), phase)
            result.update(seconds=time.perf_counter() - t0, peak_rss=_peak_rss(),
                          node=f"{os.uname().nodename}:{os.getpid()}")
            return {"ok": True, "result": result}
        kind = get_kind(spec["kind"])
        if isinstance(kind, str):
            raise OvqError(kind)
        module, _, attr = kind.runner.partition(":")
        runner = getattr(importlib.import_module(module), attr)
        Path(staging).mkdir(parents=True, exist_ok=True)
        out = runner(spec, staged, phase)
        compiled = report_seconds = None
        if spec.get("report"):  # the HTML report and its twin beside the staged .xml
            from ovq.batch.reports import write_job_report

            phase("report")
            compiled, report_seconds = write_job_report(spec, staged, out)
        for held in ("fp_model", "data"):  # only the report needs them; free them before the audit
            out.pop(held, None)
        report = out["report"]
        result = {
            "size_before": sum(p.stat().st_size for p in _model_files(Path(spec["model"]))),
            "size_after": _file_bytes(staged),
            "samples": report.samples if report else None,
            "phases": {k: round(v, 4) for k, v in (report.phases if report else {}).items()},
            "metric": out.get("metric"), "fp_metric": out.get("fp_metric"),
        }
        compression = out.get("compression")
        if compression is not None:  # weight-only: layers per precision instead of a runtime INT8 audit
            result["precisions"] = compression.counts()
            result["phases"] = {"compress": round(compression.seconds, 4)}
        else:
            phase("audit")
            from ovq.quantization.audit import runtime_audit

            audit = runtime_audit(out["graph"], compiled=compiled)
            result.update(int8_layers=audit.int8_count, audited_layers=len(audit.entries),
                          int8_coverage=audit.int8_count / len(audit.entries) if audit.entries else None)
        if report_seconds is not None:
            result["phases"]["report"] = round(report_seconds, 4)
        result["seconds"] = time.perf_counter() - t0
        result["peak_rss"] = _peak_rss()
        result["node"] = f"{os.uname().nodename}:{os.getpid()}"
        return {"ok": True, "staged": str(staged), "result": result}
    except OvqError as exc:
        return {"ok": False, "error": f"{spec['where']}: {exc}", "seconds": time.perf_counter() - t0}
    except MemoryError:
        return {"ok": False, "error": f"{spec['where']}: out of memory", "seconds": time.perf_counter() - t0}
    except Exception as exc:  # noqa: BLE001 - any failure fails this job only
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        at = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
        return {"ok": False, "error": f"{spec['where']}: {type(exc).__name__}: {exc}{at}",
                "seconds": time.perf_counter() - t0}


def _model_files(model: Path) -> list[Path]:
    from ovq.batch.keys import model_files

    return [p for p in model_files(model) if p.is_file()]


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no orphan workers)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(os.environ.get("OVQ_BATCH_PARENT", os.getppid())):
        os._exit(1)  # the parent died before prctl took effect


def main() -> None:
    """The worker process: tasks on stdin, events on the original stdout."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _die_with_parent()

    def send(event: dict[str, Any]) -> None:
        proto.write(json.dumps(event, default=str) + "\n")
        proto.flush()

    configure_threads(int(os.environ.get("OVQ_BATCH_THREADS", "1")))
    send({"event": "ready", "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        task = json.loads(line)
        outcome = run_job(task["spec"], task["staging"], lambda name: send({"event": "phase", "phase": name}))
        send({"event": "result", **outcome})


if __name__ == "__main__":
    main()
