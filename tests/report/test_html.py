"""``ovq.report.html``: the page and its JSON twin agree; writes are atomic; bad paths."""

from __future__ import annotations

import json
import os
from html.parser import HTMLParser

import pytest

from ovq.report import ReportError, collect, write_report
from ovq.report import html as report_html


class _Rows(HTMLParser):
    """Table rows of the page: the cells of each ``<tr id="layer-N">`` as text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self.current: str | None = None
        self.heads: list[str] = []
        self.in_th = False
        self.svgs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and (a.get("id") or "").startswith("layer-"):
            self.current = a["id"]
            self.rows[self.current] = []
        elif tag == "td" and self.current:
            self.rows[self.current].append("")
        elif tag == "th":
            self.in_th = True
            self.heads.append("")
        elif tag == "svg":
            self.svgs.append(a.get("class", ""))

    def handle_endtag(self, tag):
        if tag == "tr":
            self.current = None
        elif tag == "th":
            self.in_th = False

    def handle_data(self, data):
        if self.current and self.rows[self.current]:
            self.rows[self.current][-1] += data
        elif self.in_th:
            self.heads[-1] += data


def parse(text: str) -> _Rows:
    p = _Rows()
    p.feed(text)
    return p


@pytest.fixture(scope="module")
def report(digits_int8, digits_samples):
    fp, graph, qreport = digits_int8
    return collect(graph, fp_model=fp, samples=digits_samples[:4], quantize_report=qreport, measure_latency=False)


def test_page_and_twin_agree(report, tmp_path):
    page, twin = write_report(report, tmp_path / "r.html")
    assert twin == tmp_path / "r.json"
    parsed = parse(page.read_text())
    data = json.loads(twin.read_text())
    assert parsed.heads == list(report_html.COLUMNS)
    assert list(parsed.rows) == [f"layer-{r['index']}" for r in data["layers"]]
    col = {h: k for k, h in enumerate(parsed.heads)}
    for row in data["layers"]:
        cells = parsed.rows[f"layer-{row['index']}"]
        assert cells[col["layer"]] == row["name"] and cells[col["type"]] == row["type"]
        assert cells[col["runtime"]] == (row["runtime_precision"] or "–")
        if row["act_low"] is not None:
            assert cells[col["activation range"]] == f"[{row['act_low']:.4g}, {row['act_high']:.4g}]"
    assert "plot" in parsed.svgs and any("graph" in c for c in parsed.svgs)
    assert "http://" not in page.read_text().replace("http://www.w3.org/2000/svg", "")  # nothing fetched
    assert oct(page.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_missing_folder(report, tmp_path):
    with pytest.raises(ReportError, match="does not exist"):
        write_report(report, tmp_path / "nope" / "r.html")
    assert not (tmp_path / "nope").exists()


def test_not_a_regular_file(report, tmp_path):
    (tmp_path / "r.json").mkdir()
    with pytest.raises(ReportError, match="not a regular file"):
        write_report(report, tmp_path / "r.html")
    with pytest.raises(ReportError, match=r"\.html"):
        write_report(report, tmp_path / "r.txt")


def test_failed_render_leaves_the_old_page(report, tmp_path, monkeypatch):
    page, _ = write_report(report, tmp_path / "r.html")
    before = page.read_bytes()

    def broken(_report):
        raise RuntimeError("boom")

    monkeypatch.setattr(report_html, "render", broken)
    with pytest.raises(RuntimeError):
        report_html.write_report(report, page)
    assert page.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.json"]  # no temporary left
