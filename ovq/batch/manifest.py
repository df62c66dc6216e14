"""Reading an ``ovq batch`` manifest into :class:`Job` records.

A manifest is TOML (or JSON with the same structure): a ``[defaults]`` table and a list
of ``[[job]]`` tables. Every job key is either a job field (:data:`JOB_FIELDS`), a
calibration-data option (:data:`DATA_OPTIONS`, as ``ovq quantize`` takes them) or a
keyword option of the kind's API (``ovq.quantize`` for ``kind = "quantize"``); anything
else is an error naming the file, the line and the field. Paths are relative to the
manifest's folder; ``model`` may be a glob (``models/**/*.xml``), one job per match.

Problems with the manifest itself (syntax, unknown fields, bad templates, two jobs
writing one output) raise :class:`~ovq.errors.ManifestError` before anything runs. A
missing model file or a pattern that matches nothing is the job's own error
(:attr:`Job.error`): that job fails, the others run.
"""

from __future__ import annotations

import glob
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovq.batch.kinds import get_kind
from ovq.batch.outputs import report_paths
from ovq.errors import ManifestError

__all__ = ["DATA_OPTIONS", "DEFAULT_OUTPUT", "JOB_FIELDS", "Job", "load_manifest"]

#: Job fields that are not API options.
JOB_FIELDS = ("name", "model", "data", "kind", "output", "metric", "validation_data", "timeout", "shards",
              "report")
#: Calibration-data options (the ``ovq quantize`` data options, see docs/quantize-data.md).
DATA_OPTIONS = ("input_shape", "layout", "mean_values", "scale_values", "reverse_input_channels",
                "central_fraction")
#: Where a job writes when it names no ``output``.
DEFAULT_OUTPUT = "{outdir}/{stem}/int8.xml"
_TEMPLATE_FIELDS = ("outdir", "stem", "name", "index", "parent", "kind")
_LOADER = re.compile(r"^(?P<module>[A-Za-z_][\w.]*|.+\.py):(?P<fn>[A-Za-z_]\w*)$")


@dataclass(frozen=True)
class Job:
    """One job of a batch, with every path resolved.

    Attributes:
        index: Position in the manifest's expansion order (globs expanded in sorted order).
        name: Display name (``name`` field, default the model's stem; made unique).
        kind: The job kind (:mod:`ovq.batch.kinds`).
        model: The model file.
        data: A calibration-data path (as ``ovq quantize --data`` takes) or a loader
            (``None`` for a kind that needs none: data-free ``compress``)
            ``module:function`` / ``file.py:function`` returning an iterable of samples.
        output: The ``.xml`` the job writes (its ``.bin`` beside it).
        options: Keyword options of the kind's API.
        data_options: Options for reading ``data`` (input_shape, layout, mean_values, ...).
        metric: ``module:function`` validation metric (accuracy control).
        validation_data: Data passed to the metric (default: ``data``).
        timeout: Seconds the job may run (``None``: no limit); for a sharded job, each of
            its tasks.
        shards: Slices of the calibration subset whose statistics run as separate tasks
            (``None``: as the run's ``shards``; 1: unsharded). Quantize jobs only.
        report: Also write the job's HTML report and its JSON twin beside the output
            (:func:`~ovq.batch.outputs.report_paths`): the job's ``report`` field, else
            the run's ``report``.
        where: ``file:line (job[i])`` of the job's table, for messages.
        base: The manifest's folder (loaders are imported from there).
        error: Why the job cannot run (missing model, ...); it then fails without running.
    """

    index: int
    name: str
    kind: str
    model: Path
    data: str | None
    output: Path
    options: dict[str, Any] = field(default_factory=dict)
    data_options: dict[str, Any] = field(default_factory=dict)
    metric: str | None = None
    validation_data: str | None = None
    timeout: float | None = None
    shards: int | None = None
    report: bool = False
    where: str = ""
    base: Path = Path(".")
    error: str | None = None

    @property
    def data_is_loader(self) -> bool:
        """Whether ``data`` names a Python loader rather than a path."""
        return self.data is not None and is_loader(self.data, self.base)

    def to_spec(self) -> dict[str, Any]:
        """The job as plain JSON data (what a worker receives)."""
        return {"index": self.index, "name": self.name, "kind": self.kind, "model": str(self.model),
                "data": self.data, "output": str(self.output), "options": self.options,
                "data_options": self.data_options, "metric": self.metric, "validation_data": self.validation_data,
                "timeout": self.timeout, "shards": self.shards, "report": self.report, "where": self.where,
                "base": str(self.base)}


def is_loader(data: str, base: Path) -> bool:
    """``module:function`` or ``file.py:function`` rather than a path (an existing path wins)."""
    return bool(_LOADER.match(data)) and not (base / data).exists()


class _Lines:
    """Line numbers of tables and keys in a TOML text (tomllib gives none for values).

    Keys are found by scanning each ``[defaults]`` / ``[[job]]`` block (sub-tables such as
    ``[job.ignored_scope]`` belong to the job above them) for ``key =``.
    """

    _header = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?\s*(#.*)?$")
    _key = re.compile(r"^\s*(?:\"([^\"]+)\"|'([^']+)'|([A-Za-z0-9_-]+))\s*(?:\.|=)")

    def __init__(self, text: str) -> None:
        self.tables: dict[tuple[str, int], int] = {}
        self.keys: dict[tuple[str, int, str], int] = {}
        section, index = "", -1
        counts: dict[str, int] = {}
        for number, line in enumerate(text.splitlines(), 1):
            m = self._header.match(line)
            if m:
                name = m.group(2).strip().strip("\"'")
                top = name.split(".")[0]
                if m.group(1) == "[[" and "." not in name:
                    counts[top] = counts.get(top, -1) + 1
                    section, index = top, counts[top]
                    self.tables[(section, index)] = number
                elif top != section or "." not in name:
                    section, index = top, counts.get(top, 0)
                    self.tables.setdefault((section, index), number)
                if "." in name and top == section:  # [job.ignored_scope]: the key's line
                    self.keys.setdefault((section, index, name.split(".")[1]), number)
                continue
            k = self._key.match(line)
            if k and section:
                key = next(g for g in k.groups() if g)
                self.keys.setdefault((section, index, key), number)

    def line(self, section: str, index: int, key: str | None = None) -> int | None:
        if key is not None and (section, index, key) in self.keys:
            return self.keys[(section, index, key)]
        return self.tables.get((section, index))


def _read(path: Path) -> tuple[dict[str, Any], _Lines | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such manifest file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read the manifest: {exc}") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text), None
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    try:
        return tomllib.loads(text), _Lines(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: not valid TOML: {exc}") from None


def load_manifest(path: str | os.PathLike[str], outdir: str | os.PathLike[str], *, report: bool = False) -> list[Job]:
    """Read the manifest at ``path``; return its jobs with outputs under ``outdir``.

    ``report`` is whether a job that sets no ``report`` field writes its report
    (``ovq batch --report``).

    Raises:
        ManifestError: malformed manifest, unknown field or kind, a bad output template,
            an output (or, with ``report``, a report page) that is not a regular file, or two
            jobs writing the same output.
    """
    path = Path(path)
    doc, lines = _read(path)
    base = path.resolve().parent
    outdir = Path(outdir).resolve()

    def where(section: str, index: int, key: str | None = None) -> str:
        line = lines.line(section, index, key) if lines else None
        label = "defaults" if section == "defaults" else f"job[{index}]"
        loc = f"{path}:{line}" if line else str(path)
        return f"{loc}: {label}.{key}" if key else f"{loc}: {label}"

    if not isinstance(doc, dict):
        raise ManifestError(f"{path}: the manifest must be a table with [defaults] and [[job]] entries")
    unknown_top = sorted(set(doc) - {"defaults", "job", "jobs"})
    if unknown_top:
        raise ManifestError(f"{path}: unknown top-level key {unknown_top[0]!r} (expected [defaults] and [[job]])")
    defaults = doc.get("defaults", {})
    raw_jobs = doc.get("job", doc.get("jobs", []))
    if not isinstance(defaults, dict):
        raise ManifestError(f"{path}: defaults must be a table")
    if not isinstance(raw_jobs, list) or not raw_jobs or not all(isinstance(j, dict) for j in raw_jobs):
        raise ManifestError(f"{path}: the manifest has no [[job]] tables")

    jobs: list[Job] = []
    for i, raw in enumerate(raw_jobs):
        merged = {**defaults, **raw}
        origin = {k: ("job", i) if k in raw else ("defaults", 0) for k in merged}

        def at(key: str | None = None, _i: int = i, _origin: dict = origin) -> str:
            section, index = _origin.get(key, ("job", _i)) if key else ("job", _i)
            return where(section, index, key)

        kind_name = merged.get("kind", "quantize")
        if not isinstance(kind_name, str):
            raise ManifestError(f"{at('kind')}: expected a string")
        kind = get_kind(kind_name)
        if isinstance(kind, str):
            raise ManifestError(f"{at('kind')}: {kind}")
        allowed = set(kind.options())
        for key in merged:
            if key not in JOB_FIELDS and key not in DATA_OPTIONS and key not in allowed:
                raise ManifestError(f"{at(key)}: not a job field nor an option of {kind.api.replace(':', '.')} "
                                    f"(options: {', '.join(sorted(allowed))})")
        for key in ("model", "data") if kind.needs_data else ("model",):
            if key not in merged:
                raise ManifestError(f"{at()}: the job names no {key}")
        for key in kind.required:
            if key not in merged:
                raise ManifestError(f"{at()}: kind {kind_name!r} needs {key} (module:function)")
        for key in ("model", "data", "output", "name", "metric", "validation_data"):
            if key in merged and not isinstance(merged[key], str):
                raise ManifestError(f"{at(key)}: expected a string, got {type(merged[key]).__name__}")
        timeout = merged.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
            raise ManifestError(f"{at('timeout')}: expected a positive number of seconds")
        shards = merged.get("shards")
        if shards is not None:
            if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
                raise ManifestError(f"{at('shards')}: expected a positive number of slices, got {shards!r}")
            if kind_name != "quantize" and shards > 1:
                raise ManifestError(f"{at('shards')}: only quantize jobs can be sharded (this job is {kind_name!r})")
        wants_report = merged.get("report", report)
        if not isinstance(wants_report, bool):
            raise ManifestError(f"{at('report')}: expected true or false, got {wants_report!r}")
        for key in ("metric",):
            if key in merged and not _LOADER.match(merged[key]):
                raise ManifestError(f"{at(key)}: expected module:function or file.py:function, got {merged[key]!r}")

        pattern = merged["model"]
        models, error = _expand(pattern, base)
        # a kind that needs no data (compress) reads only data its own table names, not [defaults]'s
        data = merged.get("data") if kind.needs_data or "data" in raw else None
        if data is not None and not is_loader(data, base):
            data = str(base / data)
        validation_data = merged.get("validation_data")
        if validation_data is not None and not is_loader(validation_data, base):
            validation_data = str(base / validation_data)
        for model in models:
            stem = model.stem if model.name else "model"
            fields = {"outdir": str(outdir), "stem": stem, "index": len(jobs), "parent": model.parent.name,
                      "kind": kind_name}
            name = _render(merged.get("name", "{stem}"), fields | {"name": stem}, at("name"))
            output = Path(_render(merged.get("output", DEFAULT_OUTPUT), fields | {"name": name}, at("output")))
            if not output.is_absolute():
                output = outdir / output
            if output.suffix.lower() != ".xml":
                raise ManifestError(f"{at('output')}: the output must be an .xml path, got {str(output)!r}")
            jobs.append(Job(
                index=len(jobs), name=name, kind=kind_name, model=model, data=data, output=output,
                options={k: v for k, v in merged.items() if k in allowed},
                data_options={k: v for k, v in merged.items() if k in DATA_OPTIONS},
                metric=merged.get("metric"), validation_data=validation_data,
                timeout=float(timeout) if timeout is not None else None, shards=shards, report=wants_report,
                where=at(), base=base, error=error))
    _check_outputs(jobs)
    return _unique_names(jobs)


def _expand(pattern: str, base: Path) -> tuple[list[Path], str | None]:
    """The model files ``pattern`` names (sorted), or ``[pattern]`` with the reason it names none."""
    full = base / pattern
    if glob.has_magic(pattern):
        found = sorted(Path(p) for p in glob.glob(str(full), recursive=True) if Path(p).is_file())
        if not found:
            return [full], f"model pattern {pattern!r} matches no file under {base}"
        return found, None
    if not full.is_file():
        return [full], f"no model file {full}"
    return [full], None


def _render(template: str, fields: dict[str, Any], at: str) -> str:
    try:
        return template.format(**fields)
    except KeyError as exc:
        raise ManifestError(f"{at}: unknown template field {{{exc.args[0]}}} "
                            f"(fields: {', '.join('{' + f + '}' for f in _TEMPLATE_FIELDS)})") from None
    except (ValueError, IndexError) as exc:
        raise ManifestError(f"{at}: malformed template {template!r}: {exc}") from None


def _check_outputs(jobs: list[Job]) -> None:
    seen: dict[Path, Job] = {}
    for job in jobs:
        key = job.output.resolve()
        if key in seen:
            raise ManifestError(f"{job.where} and {seen[key].where} ({seen[key].model.name}) both write {job.output}: "
                                f"use {{name}}, {{index}} or {{parent}} in output")
        seen[key] = job
        for path in (job.output, job.output.with_suffix(".bin"), *(report_paths(job.output) if job.report else ())):
            if path.exists() and not path.is_file():
                raise ManifestError(f"{job.where}: output {path} exists and is not a regular file")


def _unique_names(jobs: list[Job]) -> list[Job]:
    import dataclasses

    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.name] = counts.get(job.name, 0) + 1
    return [dataclasses.replace(j, name=f"{j.name}#{j.index}") if counts[j.name] > 1 else j for j in jobs]
