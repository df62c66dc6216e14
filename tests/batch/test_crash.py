"""kill -9 of the driver or of a worker at any moment, then a rerun: every job done once,
outputs equal to an uninterrupted run's, no staging or temporary files, a readable journal.

The driver runs as ``ovq batch`` in a subprocess and is killed with SIGKILL; its workers
die with it (``PR_SET_PDEATHSIG``). Marked ``slow``: each trial runs real quantization.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ovq.batch import run

pytestmark = pytest.mark.slow

SIX_JOBS = """
    [defaults]
    data = "calib.npy"
    output = "{outdir}/{name}/int8.xml"
    [[job]]
    name = "a"
    model = "models/digits.xml"
    subset_size = 16
    [[job]]
    name = "b"
    model = "models/digits.xml"
    subset_size = 32
    [[job]]
    name = "c"
    model = "models/digits.xml"
    preset = "mixed"
    [[job]]
    name = "d"
    model = "models/tiny.xml"
    [[job]]
    name = "e"
    model = "models/digits.xml"
    fast_bias_correction = false
    [[job]]
    name = "f"
    model = "models/tiny.xml"
    preset = "mixed"
"""


def _files(out):
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("int8.*"))}


def _journal(out):
    db = sqlite3.connect(out / "journal.sqlite")
    try:
        return {row[0]: row[1:] for row in db.execute("SELECT name, status, finished, key FROM jobs")}
    finally:
        db.close()


def _leftovers(folder):
    return [p for p in folder.rglob("*") if p.name.startswith(".ovq-staging-") or p.name.endswith(".tmp")]


def _start(path, out, *extra):
    return subprocess.Popen([sys.executable, "-P", "-m", "ovq.cli", "batch", str(path), "-o", str(out), "--jobs", "2",
                             *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _children(pid):
    import psutil

    try:
        return psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []


def _wait_gone(procs, seconds=10.0):
    import psutil

    _, alive = psutil.wait_procs(procs, timeout=seconds)
    return alive


def test_kill_driver_at_random_moments_then_rerun(workspace, manifest):
    path = manifest(SIX_JOBS)
    ref = run(path, workspace / "ref", jobs=2, progress=False)
    assert all(r.status == "done" for r in ref.records), ref.table()
    expected = _files(workspace / "ref")
    for trial, delay in enumerate((2.0, 5.0, 8.5, 12.0)):
        out = workspace / f"out{trial}"  # a fresh folder: every trial has all the work to do
        proc = _start(path, out)
        time.sleep(delay)
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not _wait_gone(workers), "workers outlived the killed driver"
        before = _journal(out) if (out / "journal.sqlite").exists() else {}  # readable after the kill
        for name, (status, _, _) in before.items():
            if status == "done":  # a job the journal calls done has its final files in place
                assert _files(out / name) == {k.split("/", 1)[1]: v for k, v in expected.items()
                                              if k.startswith(name + "/")}
        result = run(path, out, jobs=2, progress=False)
        assert all(r.status in ("done", "skipped") for r in result.records), result.table()
        after = _journal(out)
        for name, (status, finished, key) in before.items():
            if status == "done":  # not recomputed
                assert after[name][1] == finished and after[name][2] == key
                assert next(r for r in result.records if r.name == name).status == "skipped"
        assert _files(out) == expected
        assert not _leftovers(workspace)


def _complete_reports(out):
    """The jobs whose final report is in place; each page and twin is whole (a page ends
    its document, a twin parses). Staging folders are not looked into."""
    pages = sorted(p for p in out.rglob("int8.report.html") if not p.parent.name.startswith(".ovq-staging-"))
    for page in pages:
        assert page.read_text().rstrip().endswith("</html>"), page
        json.loads(page.with_suffix(".json").read_text())
    return [str(p.parent.relative_to(out)) for p in pages]


def test_kill_driver_of_a_run_with_reports_then_rerun(workspace, manifest):
    from ovq.batch.outputs import outputs_match

    path = manifest(SIX_JOBS)
    ref = run(path, workspace / "ref", jobs=2, progress=False)
    expected = {k: v for k, v in _files(workspace / "ref").items() if ".report." not in k}
    for trial, finished in enumerate((1, 4)):  # killed once the journal has this many jobs done
        out = workspace / f"out{trial}"
        proc = _start(path, out, "--report")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                done = [s for s, _, _ in _journal(out).values() if s == "done"]
            except sqlite3.OperationalError:  # not created yet
                done = []
            if len(done) >= finished:
                break
            time.sleep(0.05)
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not _wait_gone(workers), "workers outlived the killed driver"
        before = _journal(out) if (out / "journal.sqlite").exists() else {}
        committed = {name for name, (status, _, _) in before.items() if status in ("done", "committing")}
        assert set(_complete_reports(out)) <= committed  # no report of a job that was not committing or done
        result = run(path, out, jobs=2, progress=False, report=True)
        assert all(r.status in ("done", "skipped") for r in result.records), result.table()
        assert sorted(_complete_reports(out)) == sorted(r.name for r in ref.records)
        db = sqlite3.connect(out / "journal.sqlite")
        for output, digests in db.execute("SELECT output, digests FROM jobs"):
            assert outputs_match(Path(output), json.loads(digests)) and "report_html" in json.loads(digests)
        db.close()
        assert {k: v for k, v in _files(out).items() if ".report." not in k} == expected
        assert not _leftovers(workspace)


def test_kill_a_worker_mid_job_retries_it_in_a_fresh_process(workspace, manifest):
    path = manifest(SIX_JOBS)
    out = workspace / "out"
    proc = _start(path, out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(_children(proc.pid)) < 2:
        time.sleep(0.2)
    time.sleep(0.3)  # into a job: the six jobs take only a few seconds on a quiet machine
    workers = _children(proc.pid)
    assert workers, "the batch ended before a worker could be killed"
    victim = workers[0]
    victim.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=300) == 0
    db = sqlite3.connect(out / "journal.sqlite")
    rows = db.execute("SELECT name, status, attempts FROM jobs").fetchall()
    assert {r[1] for r in rows} == {"done"} and len(rows) == 6
    assert max(r[2] for r in rows) == 2  # the killed worker's job ran again
    assert not _leftovers(workspace)
