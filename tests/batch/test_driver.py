"""``ovq.batch.run`` and ``ovq batch``: runs, reruns, failures that stay with their job.

Tests that start worker processes (a fresh interpreter loads OpenVINO in 2-3 s on the
2-core CI machine) are marked ``slow``; the fast ones exercise everything decided before
a worker would start.
"""

from __future__ import annotations

import json
import sqlite3
import textwrap

import numpy as np
import pytest

from ovq.batch import run
from ovq.errors import BatchError, ManifestError
from ovq_testing.cli import run_cli

THREE_JOBS = """
    [defaults]
    data = "calib.npy"
    subset_size = 32
    output = "{outdir}/{name}/int8.xml"
    [[job]]
    name = "a"
    model = "models/digits.xml"
    [[job]]
    name = "b"
    model = "models/digits.xml"
    preset = "mixed"
    [[job]]
    name = "t"
    model = "models/tiny.xml"
"""


def _leftovers(folder):
    return [p for p in folder.rglob("*") if p.name.startswith(".ovq-staging-") or p.name.endswith(".tmp")]


def test_bad_manifest_runs_nothing_and_creates_nothing(workspace, manifest):
    path = manifest("[[job]]\nmodel = 'models/digits.xml'\ndata = 'calib.npy'\nsubset = 3\n")
    with pytest.raises(ManifestError, match=r":4: job\[0\]\.subset: not a job field"):
        run(path, workspace / "out")
    assert not (workspace / "out").exists()
    proc = run_cli("batch", path, "-o", workspace / "out", check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("ovq: error: ") and proc.stderr.count("\n") == 1


def test_unusable_output_folder(workspace, manifest):
    path = manifest(THREE_JOBS)
    (workspace / "file").write_text("x")
    with pytest.raises(BatchError, match="cannot create the output folder|not a folder"):
        run(path, workspace / "file")


def test_ray_address_needs_the_ray_engine(workspace, manifest):
    from ovq.errors import OptionError

    with pytest.raises(OptionError, match="needs engine='ray'"):
        run(manifest(THREE_JOBS), workspace / "out", ray_address="auto")


def test_a_second_run_on_the_same_folder_is_refused(workspace, manifest):
    import fcntl

    path = manifest(THREE_JOBS)
    (workspace / "out").mkdir()
    with open(workspace / "out" / ".ovq-batch.lock", "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(BatchError, match="another ovq batch run is using this output folder"):
            run(path, workspace / "out")


def test_jobs_that_cannot_start_fail_alone_and_are_summarised(workspace, manifest):
    path = manifest("""
        [[job]]
        model = "models/nope.xml"
        data = "calib.npy"
        [[job]]
        model = "none/*.xml"
        data = "calib.npy"
        output = "{outdir}/x.xml"
    """)
    result = run(path, workspace / "out", progress=False)
    assert [r.status for r in result.records] == ["failed", "failed"]
    assert "batch.toml:1: job[0]: no model file" in result.records[0].error
    summary = json.loads(result.summary_json.read_text())
    assert summary["failed"] == 2 and summary["jobs"][1]["error"].endswith("matches no file under " + str(workspace))
    assert result.summary_csv.read_text().splitlines()[0].startswith("name,status,seconds")
    db = sqlite3.connect(workspace / "out" / "journal.sqlite")
    assert db.execute("SELECT count(*) FROM jobs WHERE status='failed'").fetchone() == (2,)


@pytest.mark.slow
def test_run_rerun_skips_unchanged_and_redoes_changed(workspace, manifest, capsys):
    import ovq
    from ovq import runtime

    path = manifest(THREE_JOBS)
    out = workspace / "out"
    first = run(path, out, jobs=2, progress=False)
    assert [r.status for r in first.records] == ["done"] * 3, first.table()
    assert not _leftovers(workspace)
    a, b = first.records[0], first.records[1]
    assert a.int8_layers == a.audited_layers == 5 and a.size_after < a.size_before
    # The batch output is the model ovq.quantize writes for the same options, byte for byte.
    x = np.load(workspace / "calib.npy")
    ref = ovq.quantize(str(workspace / "models" / "digits.xml"), list(x[:, None]), subset_size=32, progress=False)
    ovq.save_model(ref, workspace / "ref.xml")
    assert (out / "a" / "int8.xml").read_bytes() == (workspace / "ref.xml").read_bytes()
    assert (out / "a" / "int8.bin").read_bytes() == (workspace / "ref.bin").read_bytes()
    # ... and runs: INT8 digits agree with FP32 on most of the calibration images.
    fp = runtime.infer(runtime.compile_model(str(workspace / "models" / "digits.xml")), [x])[0].argmax(1)
    q = runtime.infer(runtime.compile_model(str(out / "b" / "int8.xml")), [x])[0].argmax(1)
    assert (fp == q).mean() > 0.9
    finished = {e: t for e, t in sqlite3.connect(out / "journal.sqlite").execute(
        "SELECT output, finished FROM jobs")}

    second = run(path, out, jobs=2, progress=False)
    assert [r.status for r in second.records] == ["skipped"] * 3
    assert second.records[0].int8_layers == 5  # results come from the journal

    path.write_text(path.read_text().replace('preset = "mixed"', 'preset = "performance"'))
    third = run(path, out, jobs=2, progress=False)
    assert [r.status for r in third.records] == ["skipped", "done", "skipped"]
    now = dict(sqlite3.connect(out / "journal.sqlite").execute("SELECT output, finished FROM jobs"))
    assert now[str(out / "a" / "int8.xml")] == finished[str(out / "a" / "int8.xml")]

    # A tampered output is not trusted: the job runs again.
    (out / "t" / "int8.bin").write_bytes(b"garbage")
    fourth = run(path, out, progress=False)
    assert [r.status for r in fourth.records] == ["skipped", "skipped", "done"]
    fifth = run(path, out, force=True, progress=False, stream=None)
    assert [r.status for r in fifth.records] == ["done"] * 3
    assert not _leftovers(workspace)


LOADERS = textwrap.dedent('''
    import os, signal, time
    from pathlib import Path
    import numpy as np

    HERE = Path(__file__).parent

    def good():
        return [np.load(HERE / "calib.npy")[i:i + 1] for i in range(8)]

    def raises():
        raise ValueError("the bucket is empty")

    def wrong_shape():
        return [np.zeros((1, 3, 8, 8), np.float32)]

    def crash_once():
        marker = HERE / "crashed"
        if not marker.exists():
            marker.write_text("x")
            os.kill(os.getpid(), signal.SIGSEGV)
        return good()

    def crash_always():
        os.kill(os.getpid(), signal.SIGSEGV)

    def sleep():
        time.sleep(60)

    def top1(compiled, data):
        x = np.concatenate([next(iter(d.values())) if isinstance(d, dict) else d for d in data])
        labels = np.load(HERE / "labels.npy")[: len(x)]
        return float((compiled(x)[0].argmax(1) == labels).mean())
''')


@pytest.mark.slow
def test_failures_stay_with_their_job(workspace, manifest):
    (workspace / "loaders.py").write_text(LOADERS)
    path = manifest("""
        [defaults]
        model = "models/tiny.xml"
        output = "{outdir}/{name}.xml"
        [[job]]
        name = "raises"
        data = "loaders:raises"
        [[job]]
        name = "wrong_shape"
        data = "loaders:wrong_shape"
        [[job]]
        name = "crash_once"
        data = "loaders:crash_once"
        [[job]]
        name = "crash_always"
        data = "loaders:crash_always"
        [[job]]
        name = "sleep"
        data = "loaders:sleep"
        timeout = 4
        [[job]]
        name = "missing_data"
        data = "nothing.npz"
        [[job]]
        name = "good"
        data = "loaders:good"
    """)
    result = run(path, workspace / "out", jobs=2, progress=False)
    by = {r.name: r for r in result.records}
    assert by["raises"].status == "failed"
    assert "data loader 'loaders:raises' raised ValueError: the bucket is empty" in by["raises"].error
    assert by["raises"].error.startswith(f"{path}:4: job[0]")
    assert by["wrong_shape"].status == "failed" and "loaders:wrong_shape" in by["wrong_shape"].error
    assert by["crash_once"].status == "done" and by["crash_once"].attempts == 2
    assert by["crash_always"].status == "failed" and "died of SIGSEGV" in by["crash_always"].error
    assert by["crash_always"].attempts == 2
    assert by["sleep"].status == "failed" and "timed out after 4 s" in by["sleep"].error
    assert by["missing_data"].status == "failed" and "nothing.npz" in by["missing_data"].error
    assert by["good"].status == "done" and (workspace / "out" / "good.xml").is_file()
    assert not _leftovers(workspace)
    proc = run_cli("batch", path, "-o", workspace / "out", check=False)
    assert proc.returncode == 1 and "crash_always" in proc.stdout


@pytest.mark.slow
def test_accuracy_control_job_reports_its_metric(workspace, manifest):
    from ovq.data import load_demo_data

    (workspace / "loaders.py").write_text(LOADERS)
    x, y = load_demo_data("calib")
    np.save(workspace / "labels.npy", y[:64])
    path = manifest("""
        [[job]]
        model = "models/digits.xml"
        data = "calib.npy"
        kind = "quantize-with-accuracy-control"
        metric = "loaders:top1"
        max_drop = 0.05
        subset_size = 32
    """)
    (r,) = run(path, workspace / "out", progress=False).records
    assert r.status == "done", r.error
    assert r.metric is not None and 0.8 < r.metric <= 1.0
