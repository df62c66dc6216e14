"""The batch journal: one SQLite database in the output folder, in WAL mode.

One row per job output (the output path is the row's identity) with the job's key,
status, attempts, timings, result (JSON) and error, plus the staging folder and output
digests while an output is being committed. Every status change is its own transaction
with ``synchronous=FULL``, so after a kill -9 of any process the journal holds the last
change made, and a rerun can tell a finished job (skip it), a job caught committing
(finish the commit) and a job caught running (run it again).

Statuses: ``running`` (a worker has it), ``committing`` (the outputs are staged and being
renamed into place), ``done``, ``failed``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["JOURNAL_NAME", "Journal", "JournalEntry"]

JOURNAL_NAME = "journal.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    output TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    started REAL,
    finished REAL,
    seconds REAL,
    result TEXT,
    error TEXT,
    staging TEXT,
    digests TEXT
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class JournalEntry:
    """One job's row."""

    output: str
    name: str
    key: str
    status: str
    attempts: int
    started: float | None
    finished: float | None
    seconds: float | None
    result: dict[str, Any] | None
    error: str | None
    staging: str | None
    digests: dict[str, str] | None


class Journal:
    """The journal of one output folder (created on first use)."""

    def __init__(self, outdir: Path) -> None:
        self.path = Path(outdir) / JOURNAL_NAME
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def get(self, output: str) -> JournalEntry | None:
        row = self.db.execute("SELECT * FROM jobs WHERE output = ?", (output,)).fetchone()
        return _entry(row) if row else None

    def entries(self) -> list[JournalEntry]:
        return [_entry(r) for r in self.db.execute("SELECT * FROM jobs ORDER BY rowid")]

    def running(self, output: str, name: str, key: str) -> None:
        """A worker took the job (a new attempt; a changed key resets the attempt count)."""
        now = time.time()
        self.db.execute(
            "INSERT INTO jobs(output, name, key, status, attempts, started) VALUES (?, ?, ?, 'running', 1, ?) "
            "ON CONFLICT(output) DO UPDATE SET name=excluded.name, status='running', started=excluded.started, "
            "attempts = CASE WHEN key = excluded.key AND status != 'done' THEN attempts + 1 ELSE 1 END, "
            "key=excluded.key, finished=NULL, seconds=NULL, result=NULL, error=NULL, staging=NULL, digests=NULL",
            (output, name, key, now))

    def committing(self, output: str, staging: str, digests: dict[str, str], result: dict[str, Any]) -> None:
        """The outputs are staged in ``staging`` with these digests; renames follow."""
        self.db.execute("UPDATE jobs SET status='committing', staging=?, digests=?, result=? WHERE output=?",
                        (staging, json.dumps(digests), json.dumps(result, default=str), output))

    def done(self, output: str, seconds: float | None = None) -> None:
        self.db.execute("UPDATE jobs SET status='done', staging=NULL, finished=?, "
                        "seconds=COALESCE(?, seconds) WHERE output=?", (time.time(), seconds, output))

    def failed(self, output: str, name: str, key: str, error: str, seconds: float | None = None) -> None:
        self.db.execute(
            "INSERT INTO jobs(output, name, key, status, error, finished, seconds) VALUES (?, ?, ?, 'failed', ?, ?, ?) "
            "ON CONFLICT(output) DO UPDATE SET status='failed', key=excluded.key, error=excluded.error, "
            "finished=excluded.finished, seconds=excluded.seconds, staging=NULL",
            (output, name, key, error, time.time(), seconds))

    def set_seconds(self, output: str, seconds: float) -> None:
        self.db.execute("UPDATE jobs SET seconds=? WHERE output=?", (seconds, output))

    def meta(self, name: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return row[0] if row else default

    def set_meta(self, name: str, value: str) -> None:
        self.db.execute("INSERT INTO meta(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                        (name, value))


def _entry(row: tuple) -> JournalEntry:
    output, name, key, status, attempts, started, finished, seconds, result, error, staging, digests = row
    return JournalEntry(output, name, key, status, attempts, started, finished, seconds,
                        json.loads(result) if result else None, error, staging,
                        json.loads(digests) if digests else None)
