"""``ovq compress`` end to end through the CLI entry point."""

from __future__ import annotations

import os

import numpy as np
import openvino as ov
import pytest

from ovq_testing.cli import run_cli
from tests.compression.models import tiny_lm


@pytest.fixture(scope="module")
def model_xml(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compress_cli")
    ov.save_model(tiny_lm(hidden=256, ffn=512), folder / "m.xml", compress_to_fp16=False)
    return folder / "m.xml"


def test_int4_summary_and_output(model_xml, tmp_path):
    out = tmp_path / "c.xml"
    p = run_cli("compress", model_xml, "-o", out, "--mode", "int4_asym", "--ratio", "0.8", "-q")
    text = p.stdout
    assert "int4_asym g128" in text and "int8_asym" in text and "% of elements" in text
    assert "size:" in text and "x smaller" in text and "time: read" in text
    assert "runtime (CPU): FullyConnected weights u4 3, u8 2" in text
    assert out.is_file() and out.with_suffix(".bin").stat().st_size < model_xml.with_suffix(".bin").stat().st_size / 4
    ids = np.random.default_rng(0).integers(0, 512, (1, 8))
    core = ov.Core()
    ref = core.compile_model(model_xml, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})({"ids": ids})[0]
    y = core.compile_model(out, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})({"ids": ids})[0]
    assert np.corrcoef(ref.ravel(), y.ravel())[0, 1] > 0.99


def test_default_int8_all_layers_and_flags(model_xml, tmp_path):
    p = run_cli("compress", model_xml, "-o", tmp_path / "c.xml", "--no-audit", "-q")
    assert "int8_asym                6" in p.stdout and "runtime" not in p.stdout
    p = run_cli("compress", model_xml, "-o", tmp_path / "d.xml", "--mode", "int4_sym", "--all-layers",
                "--group-size", "64", "--no-audit", "-q")
    assert "int4_sym g64             6" in p.stdout
    p = run_cli("compress", model_xml, "-o", tmp_path / "e.xml", "--mode", "int4_sym", "--ratio", "0.5",
                "--backup-mode", "none", "--no-audit", "-q")
    assert "float" in p.stdout


@pytest.mark.parametrize("args,match", [
    (("--mode", "int4_asym", "--group-size", "100"), "group_size=100 does not divide the input channels of 'MatMul"),
    (("--mode", "int4_asym", "--ratio", "2"), r"ratio=2\.0 is outside \[0, 1\]"),
    (("--mode", "int4_asym", "--scale-estimation"), r"scale_estimation=True needs a dataset"),
    (("--ratio", "0.5",), "int8_asym quantizes every weight per channel and takes no ratio"),
])
def test_bad_input_one_line_nothing_written(model_xml, tmp_path, args, match):
    import re

    p = run_cli("compress", model_xml, "-o", tmp_path / "c.xml", *args, check=False)
    assert p.returncode == 2
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ovq: error: ") and re.search(match, lines[0])
    assert os.listdir(tmp_path) == []


def test_refuses_to_write_over_a_non_regular_file(model_xml, tmp_path):
    (tmp_path / "c.bin").mkdir()  # the weights file beside the output
    p = run_cli("compress", model_xml, "-o", tmp_path / "c.xml", check=False)
    assert p.returncode == 2 and "c.bin: exists and is not a regular file" in p.stderr
    target = tmp_path / "real.xml"
    target.write_text("keep")
    os.symlink(target, tmp_path / "link.xml")
    p = run_cli("compress", model_xml, "-o", tmp_path / "link.xml", check=False)
    assert p.returncode == 2 and "not a regular file" in p.stderr and target.read_text() == "keep"


def test_inspect_runtime_shows_compressed_fully_connected(model_xml, tmp_path):
    out = tmp_path / "c.xml"
    run_cli("compress", model_xml, "-o", out, "--mode", "int4_sym", "--no-audit", "-q")
    text = run_cli("inspect", out, "--runtime").stdout
    rows = [line for line in text.splitlines() if "FullyConnected" in line]
    assert len(rows) == 5
    assert sum(" i4 " in r and "(integer weights, float compute)" in r for r in rows) == 4
    assert sum(" u8 " in r for r in rows) == 1 and "fallback" not in text


def test_report_of_a_compressed_model(model_xml, tmp_path):
    import json

    out, page = tmp_path / "c.xml", tmp_path / "r.html"
    run_cli("compress", model_xml, "-o", out, "--mode", "int4_asym", "--report", page, "-q")
    twin = json.loads(page.with_suffix(".json").read_text())
    assert page.read_text().startswith("<!DOCTYPE html>") and twin["summary"]
    # group-wise INT4 ranges are shown per output channel (one envelope over its groups)
    assert twin["weight_ranges"] and all(len(w["low"]) <= 512 for w in twin["weight_ranges"])
    bad = run_cli("compress", model_xml, "-o", tmp_path / "d.xml", "--report", tmp_path / "missing" / "r.html",
                  check=False)
    assert bad.returncode == 2 and not (tmp_path / "d.xml").exists()


def test_data_aware_options(model_xml, tmp_path):
    """--data with AWQ, scale estimation, a metric and a subset size: statistics on the first
    4 of 6 samples, the layers AWQ rescaled and those scale estimation set in the summary."""
    np.save(tmp_path / "ids.npy", np.random.default_rng(0).integers(0, 512, (6, 1, 8)))
    out = tmp_path / "c.xml"
    p = run_cli("compress", model_xml, "-o", out, "--mode", "int4_asym", "--ratio", "0.8", "--data",
                tmp_path / "ids.npy", "--awq", "--scale-estimation", "--sensitivity-metric", "mean_activation_variance",
                "--subset-size", "4", "--no-audit", "-q")
    text = p.stdout
    assert "(6 samples, first 4 used)" in text
    assert "statistics: 4 samples" in text and "sensitivity mean_activation_variance" in text
    assert "AWQ (data-aware): 2 MatMul(s) rescaled" in text and "scale estimation: 3 weight(s)" in text
    assert "time: read" in text and "statistics" in text and out.is_file()


def test_data_of_the_wrong_shape_writes_nothing(model_xml, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "ids.npy", np.zeros((2, 1, 1, 8), np.int64))
    out = tmp_path / "out"
    out.mkdir()
    p = run_cli("compress", model_xml, "-o", out / "c.xml", "--mode", "int4_asym", "--awq", "--data",
                data / "ids.npy", check=False)
    assert p.returncode == 2 and p.stderr.startswith("ovq: error: ") and "ids" in p.stderr
    assert os.listdir(out) == []
