"""Putting a job's outputs in place so that no kill can leave them partial or mismatched.

A worker writes the job's ``.xml`` and ``.bin`` into a staging folder beside the final
output (same filesystem, so renames are atomic): ``.ovq-staging-<stem>-<key>-<attempt>``.
The driver then records the staged files' digests in the journal (``committing``),
renames the ``.bin`` and then the ``.xml`` into place, and marks the job ``done``. A kill
between the two renames leaves a ``committing`` row whose digests say what the final
files must be; the next run finishes the renames from the staging folder (roll forward)
or, if the staged files are gone and the final ones do not match, runs the job again.
Staging folders no journal row points at are removed at the start of every run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

__all__ = ["STAGING_PREFIX", "commit", "digests", "outputs_match", "staging_dir", "sweep_staging"]

STAGING_PREFIX = ".ovq-staging-"


def staging_dir(output: Path, key: str, attempt: int) -> Path:
    """The staging folder of one attempt of the job writing ``output``."""
    return output.parent / f"{STAGING_PREFIX}{output.stem}-{key[:16]}-{attempt}"


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def digests(xml: Path) -> dict[str, str]:
    """SHA-256 of an IR's ``.xml`` and ``.bin`` (``bin`` absent when the model has none)."""
    out = {"xml": _sha(xml)}
    if xml.with_suffix(".bin").is_file():
        out["bin"] = _sha(xml.with_suffix(".bin"))
    return out


def outputs_match(output: Path, expected: dict[str, str] | None) -> bool:
    """Whether the files at ``output`` are the ones the journal recorded."""
    if not expected or not output.is_file():
        return False
    if "bin" in expected and not output.with_suffix(".bin").is_file():
        return False
    try:
        return digests(output) == expected if "bin" in expected else {"xml": _sha(output)} == expected
    except OSError:
        return False


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(staged_xml: Path, output: Path) -> None:
    """Rename the staged ``.bin`` then ``.xml`` over ``output`` and remove the staging folder.

    Idempotent: a file already moved (by a previous, interrupted commit) is skipped, so
    a rerun can call it again on the same staging folder.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    for src, dst in ((staged_xml.with_suffix(".bin"), output.with_suffix(".bin")), (staged_xml, output)):
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
