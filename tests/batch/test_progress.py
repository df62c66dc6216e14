"""The progress view (plain lines off a terminal, redrawn lines on one) and the summaries."""

from __future__ import annotations

import csv
import io
import json

from ovq.batch.progress import JobRecord, Progress, format_table, write_summary


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    view = Progress(3, 1, out)
    view.start("a", 1)
    view.phase("a", "statistics")
    view.retry("a", "the worker process died of SIGSEGV")
    view.start("a", 2)
    view.finish("a", True, 1.25)
    view.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "start  a"
    assert lines[1] == "retry  a: the worker process died of SIGSEGV"
    assert lines[2] == "start  a (attempt 2)"
    assert lines[3].startswith("done   a (1.2 s)  [2/3 done (1 unchanged), 0 running, 0 failed, ETA ")
    assert lines[4].startswith("batch: 2/3 done (1 unchanged), 0 running, 0 failed in ")
    assert "\x1b" not in out.getvalue()


def test_live_view_redraws_counts_and_phases_in_place():
    out = io.StringIO()
    view = Progress(2, 0, out, live=True)
    view.start("a", 1)
    view.phase("a", "bias_correction")
    view.draw(force=True)
    text = out.getvalue()
    assert "  a: bias_correction (0 s)" in text and "\x1b[F\x1b[K" in text
    assert "0/2 done (0 unchanged), 1 running, 0 failed, ETA -" in text


def test_table_and_summary_files(tmp_path):
    records = [JobRecord("a", "/o/a.xml", "done", seconds=2.0, int8_layers=5, audited_layers=5, size_before=2**20,
                         size_after=2**18, key="k"),
               JobRecord("b", "/o/b.xml", "failed", seconds=0.5, error="m.toml:3: job[1]: boom")]
    table = format_table(records).splitlines()
    assert table[0].split() == ["job", "status", "time", "s", "INT8", "MiB", "before", "MiB", "after", "metric"]
    assert table[2].split() == ["a", "done", "2.0", "5/5", "1.00", "0.25", "-"]
    assert table[-1] == "b: m.toml:3: job[1]: boom"
    js, cs = write_summary(tmp_path, records, {"engine": "local"})
    doc = json.loads(js.read_text())
    assert doc["engine"] == "local" and doc["jobs"][1]["error"] == "m.toml:3: job[1]: boom"
    rows = list(csv.DictReader(cs.open()))
    assert rows[0]["int8_layers"] == "5" and rows[1]["status"] == "failed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.csv", "summary.json"]
