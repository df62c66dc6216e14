"""``ovq quantize --report`` and ``ovq report``: the files written, the one-line errors."""

from __future__ import annotations

import json

import openvino as ov
import pytest

from ovq.data import demo_model_path
from ovq_testing.cli import run_cli


def test_quantize_with_report(digits_files, tmp_path):
    _fp, _q, data = digits_files
    out, page = tmp_path / "q.xml", tmp_path / "q.html"
    proc = run_cli("quantize", demo_model_path(), "-o", out, "--data", data, "--subset-size", 32, "--report", page,
                   "-q")
    assert "INT8: 5/5 layers" in proc.stdout and f"wrote report {page}" in proc.stdout
    twin = json.loads(page.with_suffix(".json").read_text())
    assert twin["summary"]["source"] == "ovq quantize" and twin["summary"]["options"]["subset_size"] == 32
    assert twin["summary"]["runtime_int8"] == 5 and "statistics" in twin["summary"]["phases"]
    assert twin["summary"]["histogram_samples"] > 0 and twin["histograms"]


def test_quantize_report_in_missing_folder_does_nothing(digits_files, tmp_path):
    _fp, _q, data = digits_files
    out = tmp_path / "q.xml"
    proc = run_cli("quantize", demo_model_path(), "-o", out, "--data", data, "--report", tmp_path / "no" / "r.html",
                   check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "does not exist" in proc.stderr
    assert not out.exists()  # checked before quantizing


def test_report_of_a_model_on_disk(digits_files, tmp_path):
    fp, q, data = digits_files
    proc = run_cli("report", q, "-o", tmp_path / "plain.html")
    twin = json.loads((tmp_path / "plain.json").read_text())
    assert twin["summary"]["fp32_latency_ms"] is None and any("no FP model" in n for n in twin["notes"])
    assert "6 layers" in proc.stdout
    run_cli("report", q, "--fp", fp, "--data", data, "--subset-size", 16, "-o", tmp_path / "full.html", "-q")
    twin = json.loads((tmp_path / "full.json").read_text())
    assert twin["rank_by"] == "output_nmse" and twin["summary"]["analysis_samples"] == 16
    assert all(row["output_nmse"] is not None for row in twin["layers"])
    assert "error added per layer" in (tmp_path / "full.html").read_text()


def test_report_errors(digits_files, tmp_path):
    fp, q, data = digits_files
    proc = run_cli("report", fp, "-o", tmp_path / "r.html", check=False)
    assert proc.returncode == 2 and "nothing quantized" in proc.stderr
    other = ov.Core().read_model(str(fp))
    other.reshape([3, 1, 8, 8])
    ov.save_model(other, tmp_path / "other.xml", compress_to_fp16=False)
    proc = run_cli("report", q, "--fp", tmp_path / "other.xml", "-o", tmp_path / "r.html", check=False)
    assert proc.returncode == 2 and "does not match" in proc.stderr
    proc = run_cli("report", tmp_path / "missing.xml", check=False)
    assert proc.returncode == 2 and "no such file" in proc.stderr
    assert not list(tmp_path.glob("r.*"))


def test_api_report_argument(digits_samples, tmp_path):
    import ovq

    from ovq.report import ReportError

    with pytest.raises(ReportError, match="does not exist"):
        ovq.quantize(str(demo_model_path()), digits_samples, report=tmp_path / "no" / "r.html")
    q = ovq.quantize(ov.Core().read_model(str(demo_model_path())), digits_samples, subset_size=16, progress=False,
                     report=tmp_path / "r.html")
    assert isinstance(q, ov.Model)
    twin = json.loads((tmp_path / "r.json").read_text())
    assert twin["summary"]["source"] == "ovq.quantize" and len(twin["layers"]) == 6
