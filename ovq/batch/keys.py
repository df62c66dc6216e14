"""Job keys: what a batch job's result depends on, as one SHA-256.

A job's key hashes the model's bytes (the ``.xml`` and its ``.bin``), a fingerprint of
the calibration data (every file's bytes with its relative path; for a Python loader,
the loader's source file), the job kind, options, data options, metric (and its source),
whether the job writes a report, the output path and the ovq version. Rerunning a batch skips a finished job only when its
key is unchanged. File digests are cached per run by (path, size, mtime), so a model shared
by several jobs is read once.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ovq.batch.manifest import Job

__all__ = ["file_digest", "job_key", "model_files"]

_CACHE: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """SHA-256 of the file's bytes (cached by path, size and mtime)."""
    st = path.stat()
    token = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if token not in _CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _CACHE[token] = h.hexdigest()
    return _CACHE[token]


def model_files(model: Path) -> list[Path]:
    """The files a model consists of: an IR's ``.xml`` and ``.bin``, else the file itself."""
    if model.suffix.lower() == ".xml" and model.with_suffix(".bin").is_file():
        return [model, model.with_suffix(".bin")]
    return [model]


def _tree_digest(paths: list[Path], root: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        try:
            rel = str(p.relative_to(root))
        except ValueError:
            rel = str(p)
        h.update(rel.encode() + b"\0" + file_digest(p).encode() + b"\n")
    return h.hexdigest()


def _module_source(spec: str, base: Path) -> str:
    """Digest of the source file a ``module:function`` or ``file.py:function`` lives in."""
    module = spec.rpartition(":")[0]
    if module.endswith(".py"):
        path = base / module
        return file_digest(path) if path.is_file() else f"missing:{path}"
    sys.path.insert(0, str(base))
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    finally:
        sys.path.remove(str(base))
    origin = getattr(found, "origin", None)
    return file_digest(Path(origin)) if origin and os.path.isfile(origin) else f"unresolved:{module}"


def data_fingerprint(data: str, base: Path, *, loader: bool) -> str:
    """A digest of the calibration data ``data`` names (files' bytes, or a loader's source)."""
    if loader:
        return "loader:" + data + ":" + _module_source(data, base)
    p = Path(data)
    if p.is_file():
        if p.suffix.lower() == ".txt":  # a list of files
            listed = [Path(line.strip()) for line in p.read_text(errors="replace").splitlines() if line.strip()]
            listed = [q if q.is_absolute() else p.parent / q for q in listed]
            return _tree_digest([p] + [q for q in listed if q.is_file()], p.parent)
        return file_digest(p)
    if p.is_dir():
        files = sorted(q for q in p.rglob("*") if q.is_file() and not any(part.startswith(".")
                                                                         for part in q.relative_to(p).parts))
        return _tree_digest(files, p)
    if glob.has_magic(data):
        return _tree_digest(sorted(Path(q) for q in glob.glob(data, recursive=True) if os.path.isfile(q)), Path("/"))
    return f"missing:{data}"


def job_key(job: Job) -> str:
    """The key of ``job`` (hex SHA-256); see the module docstring for what it covers."""
    import ovq

    parts: dict[str, Any] = {
        "ovq": ovq.__version__, "kind": job.kind, "options": job.options, "data_options": job.data_options,
        "output": str(job.output), "metric": job.metric, "validation_data": job.validation_data,
    }
    if job.report:  # only when asked, so a job without a report keeps the key it had before reports existed
        parts["report"] = True
    if job.model.is_file():
        parts["model"] = [(p.name, file_digest(p)) for p in model_files(job.model)]
    else:
        parts["model"] = f"missing:{job.model}"
    parts["data"] = data_fingerprint(job.data, job.base, loader=job.data_is_loader) if job.data is not None else None
    if job.metric:
        parts["metric_source"] = _module_source(job.metric, job.base)
    if job.validation_data:
        parts["validation"] = data_fingerprint(job.validation_data, job.base,
                                               loader=bool(job.validation_data and ":" in job.validation_data
                                                           and not Path(job.validation_data).exists()))
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
