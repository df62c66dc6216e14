"""Per-job reports and the index page of ``ovq batch``: the ``report`` field and flag,
the key, the worker writing the report files, and ``index.html`` (committing report
files: tests/batch/test_outputs.py; a killed run with reports: tests/batch/test_crash.py).

The fast tests run a job in-process through :func:`ovq.batch.worker.run_job` (as a
worker does) or drive runs whose jobs fail before a worker starts; the ``slow`` one runs
real workers through reruns, the ``browser`` one opens the index in headless Chromium.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
from pathlib import Path

import pytest

from ovq.batch import run
from ovq.batch.keys import job_key
from ovq.batch.manifest import load_manifest
from ovq.batch.outputs import digests, report_paths
from ovq.batch.progress import JobRecord
from ovq.batch.reports import render_index
from ovq.batch.worker import run_job
from ovq.errors import ManifestError


def test_report_field_flag_and_bad_values(workspace, manifest):
    path = manifest("""
        [defaults]
        data = "calib.npy"
        [[job]]
        model = "models/digits.xml"
        [[job]]
        model = "models/tiny.xml"
        report = false
    """)
    assert [j.report for j in load_manifest(path, workspace / "out")] == [False, False]
    on = load_manifest(path, workspace / "out", report=True)
    assert [j.report for j in on] == [True, False]  # the job's own field wins over the flag
    assert "report" not in on[0].options and on[0].to_spec()["report"] is True
    path.write_text(path.read_text().replace("[defaults]\n", "[defaults]\nreport = true\n"))
    assert [j.report for j in load_manifest(path, workspace / "out")] == [True, False]
    path.write_text(path.read_text().replace("report = false", 'report = "yes"'))
    with pytest.raises(ManifestError, match=r"batch\.toml:8: job\[1\]\.report: expected true or false, got 'yes'"):
        load_manifest(path, workspace / "out")
    path.write_text(path.read_text().replace('report = "yes"', "").replace("report = true", "report = 1"))
    with pytest.raises(ManifestError, match=r"batch\.toml:2: defaults\.report: expected true or false, got 1"):
        load_manifest(path, workspace / "out")
    (workspace / "out" / "digits" / "int8.report.html").mkdir(parents=True)
    path.write_text(path.read_text().replace("report = 1", ""))
    with pytest.raises(ManifestError, match=r"int8\.report\.html exists and is not a regular file"):
        load_manifest(path, workspace / "out", report=True)
    assert load_manifest(path, workspace / "out")[0].report is False  # no report: the folder is not in the way


def test_report_is_part_of_the_key(workspace, manifest):
    path = manifest("""
        [[job]]
        model = "models/tiny.xml"
        data = "calib.npy"
    """)
    (job,) = load_manifest(path, workspace / "out")
    (with_report,) = load_manifest(path, workspace / "out", report=True)
    assert job_key(with_report) != job_key(job)
    assert job_key(dataclasses.replace(with_report, report=False)) == job_key(job)


def test_worker_writes_the_report_beside_the_staged_model(workspace, manifest):
    path = manifest("""
        [defaults]
        data = "calib.npy"
        subset_size = 16
        [[job]]
        name = "q"
        model = "models/digits.xml"
        [[job]]
        name = "c"
        model = "models/digits.xml"
        kind = "compress"
        output = "{outdir}/c/int8.xml"
        [[job]]
        name = "nothing"
        model = "models/tiny.xml"
        kind = "compress"
        output = "{outdir}/n/int8.xml"
        [job.ignored_scope]
        types = ["Convolution"]
    """)
    q, c, nothing = load_manifest(path, workspace / "out", report=True)
    outcome = run_job(q.to_spec(), str(workspace / "sq"))
    assert outcome["ok"], outcome
    html, twin = report_paths(Path(outcome["staged"]))
    assert html.parent == workspace / "sq" and html.name == "int8.report.html"
    summary = json.loads(twin.read_text())["summary"]
    result = outcome["result"]
    assert summary["source"] == "ovq batch (quantize)" and summary["model"] == str(q.model)
    assert summary["runtime_int8"] == result["int8_layers"] == summary["runtime_audited"] == 5
    assert summary["histogram_samples"] == 2  # from the job's own calibration data
    assert "report" in result["phases"] and "<html" in html.read_text()[:200]
    assert digests(Path(outcome["staged"]), report=True).keys() == {"xml", "bin", "report_html", "report_json"}

    outcome = run_job(c.to_spec(), str(workspace / "sc"))
    assert outcome["ok"], outcome
    summary = json.loads(report_paths(Path(outcome["staged"]))[1].read_text())["summary"]
    assert summary["source"] == "ovq batch (compress)" and outcome["result"]["precisions"] == {"int8_asym": 5}

    outcome = run_job(nothing.to_spec(), str(workspace / "sn"))  # nothing compressed: no report, the job fails
    assert not outcome["ok"] and outcome["error"].startswith(f"{nothing.where}: report: ")
    assert "nothing quantized" in outcome["error"]


def _record(**fields) -> JobRecord:
    base = {"name": "j", "output": "/o/j/int8.xml", "status": "done", "key": "k", "kind": "quantize"}
    return JobRecord(**{**base, **fields})


def test_index_rows_links_and_escaping(tmp_path):
    out = tmp_path / "out"
    records = [
        _record(name="<script>alert(1)</script>", output=str(out / "a b#1" / "int8.xml"), seconds=1.25,
                int8_layers=4, audited_layers=5, size_before=2**20, size_after=2**18,
                report=str(out / "a b#1" / "int8.report.html")),
        _record(name="c", kind="compress", output=str(tmp_path / "elsewhere" / "c.xml"), status="skipped",
                precisions={"int8_asym": 5, "int4_asym g128": 2}, metric=0.98765),
        _record(name='x" onmouseover="alert(2)', output=str(out / "x" / "int8.xml"), status="failed",
                error='batch.toml:9: job[2]: <img src=x onerror="alert(3)"> & more'),
    ]
    page = render_index(records, out, {"manifest": "/m/<b>.toml", "done": 1, "skipped": 1, "failed": 1,
                                       "seconds": 3.5})
    assert "<script" not in page and "<img" not in page and "<b>" not in page and 'x" on' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=&quot;alert(3)&quot;&gt;" in page
    rows = re.findall(r'<tr class="(\w+)">(.*?)</tr>', page)
    assert [status for status, _ in rows] == ["done", "skipped", "failed"]
    links = [re.findall(r'<a class="(\w+)" href="([^"]*)"', cells) for _, cells in rows]
    assert links[0] == [("report", "a%20b%231/int8.report.html"), ("output", "a%20b%231/int8.xml")]
    assert links[1] == [("output", "../elsewhere/c.xml")]  # no report asked for; an output outside OUTDIR
    assert links[2] == []  # failed: the error, no links
    assert "4/5 (80 %)" in rows[0][1] and "int4_asym g128: 2, int8_asym: 5" in rows[1][1] and "0.9877" in rows[1][1]
    assert "1.00" in rows[0][1] and "0.25" in rows[0][1]  # MiB before, after


def test_index_is_written_when_every_job_fails_before_starting(workspace, manifest):
    path = manifest("""
        [[job]]
        name = "<b>bold</b>"
        model = "models/nope.xml"
        data = "calib.npy"
        [[job]]
        model = "zoo/*.xml"
        data = "calib.npy"
        output = "{outdir}/z.xml"
    """)
    result = run(path, workspace / "out", progress=False, report=True)
    assert result.index_html == workspace / "out" / "index.html"
    page = result.index_html.read_text()
    rows = re.findall(r'<tr class="(\w+)">(.*?)</tr>', page)
    assert [status for status, _ in rows] == ["failed", "failed"]
    assert "&lt;b&gt;bold&lt;/b&gt;" in rows[0][1] and "no model file" in rows[0][1] and "<a " not in page
    assert "matches no file" in rows[1][1]
    assert not [p for p in (workspace / "out").iterdir() if p.name.endswith(".tmp")]
    from ovq.errors import OptionError

    with pytest.raises(OptionError, match="report: expected True or False, got 'yes'"):
        run(path, workspace / "out", report="yes")


def _report_files(out: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(out.rglob("*.report.*"))}


@pytest.mark.slow
def test_batch_reports_reruns_and_the_index(workspace, manifest):
    from ovq_testing.cli import run_cli

    path = manifest("""
        [defaults]
        data = "calib.npy"
        subset_size = 16
        output = "{outdir}/{name}/int8.xml"
        [[job]]
        name = "q"
        model = "models/digits.xml"
        [[job]]
        name = "c"
        model = "models/tiny.xml"
        kind = "compress"
        [[job]]
        name = "bad"
        model = "models/tiny.xml"
        data = "nothing.npz"
    """)
    out = workspace / "out"

    def statuses(result):
        return [r.status for r in result.records]

    def index_links():
        page = (out / "index.html").read_text()
        return {name: re.findall(r'<a class="(\w+)" href="([^"]*)"', cells)
                for name, cells in re.findall(r'<td class="name">([^<]*)</td>(.*?)</tr>', page)}

    first = run(path, out, jobs=1, progress=False)
    assert statuses(first) == ["done", "done", "failed"] and "nothing.npz" in first.records[2].error
    assert _report_files(out) == {} and first.index_html == out / "index.html"
    assert index_links() == {"q": [("output", "q/int8.xml")], "c": [("output", "c/int8.xml")], "bad": []}

    model = (out / "q" / "int8.xml").read_bytes(), (out / "q" / "int8.bin").read_bytes()
    second = run(path, out, jobs=1, progress=False, report=True)  # reports on: a new key, the done jobs run again
    assert statuses(second) == ["done", "done", "failed"]
    assert ((out / "q" / "int8.xml").read_bytes(), (out / "q" / "int8.bin").read_bytes()) == model
    reports = _report_files(out)
    assert set(reports) == {f"{n}/int8.report.{s}" for n in ("q", "c") for s in ("html", "json")}
    links = index_links()
    assert links["q"] == [("report", "q/int8.report.html"), ("output", "q/int8.xml")]
    assert all((out / href).is_file() for rows in links.values() for _, href in rows)
    assert second.records[0].report == str(out / "q" / "int8.report.html")
    digests_of = dict(sqlite3.connect(out / "journal.sqlite").execute("SELECT name, digests FROM jobs"))
    assert set(json.loads(digests_of["q"])) == {"xml", "bin", "report_html", "report_json"}

    third = run(path, out, jobs=1, progress=False, report=True)  # unchanged: skipped, reports kept as they were
    assert statuses(third) == ["skipped", "skipped", "failed"] and _report_files(out) == reports
    assert index_links() == links

    (out / "c" / "int8.report.json").unlink()  # a missing report file: that job runs again
    fourth = run(path, out, jobs=1, progress=False, report=True)
    assert statuses(fourth) == ["skipped", "done", "failed"]
    assert (out / "c" / "int8.report.json").is_file() and _report_files(out)["q/int8.report.html"] == reports[
        "q/int8.report.html"]

    proc = run_cli("batch", path, "-o", out, "--report", check=False)
    assert proc.returncode == 1 and f"index: {out / 'index.html'}" in proc.stdout

    fifth = run(path, out, jobs=1, progress=False)  # reports off: the jobs run again and drop the old pages
    assert statuses(fifth) == ["done", "done", "failed"] and _report_files(out) == {}
    assert index_links() == {"q": [("output", "q/int8.xml")], "c": [("output", "c/int8.xml")], "bad": []}
    assert not [p for p in workspace.rglob("*") if p.name.startswith(".ovq-staging-") or p.name.endswith(".tmp")]


@pytest.mark.browser
def test_index_in_a_browser_links_to_the_report(workspace, manifest):
    from ovq_testing.browser import load

    path = manifest("""
        [[job]]
        name = "<img src=x onerror=\\"document.body.dataset.injected=1\\">"
        model = "models/digits.xml"
        data = "calib.npy"
        subset_size = 16
        output = "{outdir}/digits/int8.xml"
        report = true
        [[job]]
        name = "missing"
        model = "models/nope.xml"
        data = "calib.npy"
    """)
    result = run(path, workspace / "out", jobs=1, progress=False)
    assert [r.status for r in result.records] == ["done", "failed"]
    dom, console = load(result.index_html)
    assert console == [] and "data-injected" not in dom and "&lt;img src=x" in dom
    assert len(re.findall(r'<tr class="(?:done|failed)">', dom)) == 2
    click = "document.querySelector('a.report').click();"
    dom, console = load(result.index_html, extra_script=click)  # the DOM of the page the link leads to
    assert console == [] and 'data-ready="1"' in dom and "<title>ovq report: " in dom
    assert str(workspace / "models" / "digits.xml") in dom
