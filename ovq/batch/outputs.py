"""Putting a job's outputs in place so that no kill can leave them partial or mismatched.

A worker writes the job's ``.xml`` and ``.bin`` (and, for a job with ``report``, the
report page ``int8.report.html`` and its twin ``int8.report.json`` for ``int8.xml``) into a staging
folder beside the final output (same filesystem, so renames are atomic):
``.ovq-staging-<stem>-<key>-<attempt>``. The driver then records the staged files'
digests in the journal (``committing``), renames the report files, the ``.bin`` and last
the ``.xml`` into place, and marks the job ``done``. A kill between the renames leaves a
``committing`` row whose digests say what the final files must be; the next run finishes
the renames from the staging folder (roll forward: while anything is left to rename, the
``.xml`` is) or, if the staged files are gone and the final ones do not match, runs the
job again. Staging folders no journal row points at are removed at the start of every run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

__all__ = ["STAGING_PREFIX", "commit", "digests", "fsync_path", "outputs_match", "report_paths", "staging_dir", "sweep_staging"]

STAGING_PREFIX = ".ovq-staging-"


def report_paths(output: Path) -> tuple[Path, Path]:
    """The report page and its JSON twin of the job writing ``output``: for ``int8.xml``,
    ``int8.report.html`` and ``int8.report.json`` beside it."""
    return output.with_suffix(".report.html"), output.with_suffix(".report.json")


def _files(xml: Path) -> dict[str, Path]:
    """A job's files by digest name, in the order they are renamed into place (``.xml`` last)."""
    html, twin = report_paths(xml)
    return {"report_json": twin, "report_html": html, "bin": xml.with_suffix(".bin"), "xml": xml}


def staging_dir(output: Path, key: str, attempt: int) -> Path:
    """The staging folder of one attempt of the job writing ``output``."""
    return output.parent / f"{STAGING_PREFIX}{output.stem}-{key[:16]}-{attempt}"


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def digests(xml: Path, *, report: bool = False) -> dict[str, str]:
    """SHA-256 of an IR's ``.xml`` and ``.bin`` (``bin`` absent when the model has none),
    and with ``report`` of its report page and twin (``report_html``, ``report_json``),
    which must exist."""
    files = _files(xml)
    out = {"xml": _sha(xml)}
    if files["bin"].is_file():
        out["bin"] = _sha(files["bin"])
    if report:
        out.update(report_html=_sha(files["report_html"]), report_json=_sha(files["report_json"]))
    return out


def outputs_match(output: Path, expected: dict[str, str] | None) -> bool:
    """Whether every file the journal recorded for ``output`` is there with its digest
    (the ``.xml``, and the ``.bin`` and report files when recorded)."""
    if not expected or "xml" not in expected:
        return False
    files = _files(output)
    try:
        return all(name in files and files[name].is_file() and _sha(files[name]) == sha
                   for name, sha in expected.items())
    except OSError:
        return False


def fsync_path(path: Path) -> None:
    """Flush ``path`` (a file or a folder's entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fsync_path(folder)
    except OSError:
        pass


def commit(staged_xml: Path, output: Path, *, drop_report: bool = False) -> None:
    """Rename the staged report files, ``.bin`` and then ``.xml`` over ``output`` and
    remove the staging folder.

    With ``drop_report`` (a job that writes no report), report files an earlier run left
    beside ``output`` are removed first: they describe another model.

    Idempotent: a file already moved (by a previous, interrupted commit) is skipped, so
    a rerun can call it again on the same staging folder.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    if drop_report:
        for old in report_paths(output):
            if old.is_file():
                old.unlink()
    staged, final = _files(staged_xml), _files(output)
    for name, src in staged.items():
        dst = final[name]
        if src.exists():
            if dst.exists() and not dst.is_file():
                from ovq.errors import BatchError

                raise BatchError(f"output {dst} exists and is not a regular file")
            os.replace(src, dst)
    _fsync_dir(output.parent)
    shutil.rmtree(staged_xml.parent, ignore_errors=True)


def sweep_staging(folders: set[Path], keep: set[Path] = frozenset()) -> int:
    """Remove every staging folder in ``folders`` except ``keep``; return how many."""
    removed = 0
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.name.startswith(STAGING_PREFIX) and entry.is_dir() and entry not in keep:
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
    return removed
