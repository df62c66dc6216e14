"""The journal: WAL mode, status changes, attempts, metadata, readable by another connection."""

from __future__ import annotations

import sqlite3

from ovq.batch.journal import Journal


def test_wal_mode_and_status_changes(tmp_path):
    j = Journal(tmp_path)
    assert j.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    j.running("/o/a.xml", "a", "k1")
    assert j.get("/o/a.xml").status == "running" and j.get("/o/a.xml").attempts == 1
    j.running("/o/a.xml", "a", "k1")
    assert j.get("/o/a.xml").attempts == 2  # same key, not done: a retry
    j.committing("/o/a.xml", "/o/.stage", {"xml": "x", "bin": "b"}, {"int8_layers": 3})
    e = j.get("/o/a.xml")
    assert e.status == "committing" and e.staging == "/o/.stage" and e.digests == {"xml": "x", "bin": "b"}
    j.done("/o/a.xml", 1.5)
    e = j.get("/o/a.xml")
    assert e.status == "done" and e.staging is None and e.seconds == 1.5 and e.result == {"int8_layers": 3}
    j.running("/o/a.xml", "a", "k2")
    assert j.get("/o/a.xml").attempts == 1 and j.get("/o/a.xml").result is None  # changed key starts over
    j.failed("/o/b.xml", "b", "k3", "broken")
    assert [e.status for e in j.entries()] == ["running", "failed"]
    j.set_meta("memory_ratios", "[1.5]")
    assert j.meta("memory_ratios") == "[1.5]" and j.meta("nothing", "d") == "d"
    # Another process (here: another connection) reads it while this one holds it open.
    other = sqlite3.connect(tmp_path / "journal.sqlite")
    assert other.execute("SELECT status FROM jobs WHERE output='/o/b.xml'").fetchone() == ("failed",)
    other.close()
    j.close()
