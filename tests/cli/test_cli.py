"""The ovq command line, end to end through its entry point (``ovq_testing.cli.run_cli``
runs it in-process; ``test_console_script_is_installed`` runs the installed script)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ovq.data import demo_model_path
from ovq_testing.cli import run_cli

run = run_cli


def test_demo_reports_identical_outputs():
    out = run("demo").stdout
    assert "outputs bitwise identical" in out
    assert "FP32 accuracy on 450 held-out digits" in out
    assert "INT8: 5/5 layers" in out
    int8_accuracy = float(out.split("INT8 (")[1].split("accuracy ")[1].split()[0])
    assert int8_accuracy >= 0.9844 - 0.005  # at most half a point below FP32


def test_inspect_json():
    data = json.loads(run("inspect", demo_model_path(), "--json").stdout)
    assert data["op_counts"]["Convolution"] == 3
    assert data["inputs"][0]["shape"] == "?,1,8,8"
    assert data["fake_quantize_count"] == 0
    assert data["constant_bytes"]["f32"] > 100_000


def test_convert_writes_a_loadable_model(tmp_path):
    out = tmp_path / "digits.xml"
    run("convert", demo_model_path(), "-o", out)
    data = json.loads(run("inspect", out, "--json").stdout)
    assert data["op_counts"]["Convolution"] == 3


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("<net version='11'><layers><layer", "malformed XML"),
])
def test_errors_are_one_line_and_non_zero(tmp_path, content, message):
    path = tmp_path / "bad.xml"
    if content is not None:
        path.write_text(content)
    proc = run("inspect", path, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ovq: error:") and message in lines[0]
    assert str(path) in lines[0]


def test_failed_convert_writes_nothing(tmp_path):
    bad = tmp_path / "bad.xml"
    shutil.copy(demo_model_path(), bad)
    bad.with_suffix(".bin").write_bytes(b"\0" * 10)  # truncated weights
    out = tmp_path / "out.xml"
    proc = run("convert", bad, "-o", out, check=False)
    assert proc.returncode == 2 and "has only 10 bytes" in proc.stderr
    assert not out.exists() and not out.with_suffix(".bin").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.bin", "bad.xml"]


def test_console_script_is_installed(tmp_path):
    # The one test in a subprocess, as users run it: the installed script, its exit code.
    exe = shutil.which("ovq", path=str(Path(sys.executable).parent))
    assert exe is not None
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "inspect" in proc.stdout and "demo" in proc.stdout
    proc = subprocess.run([exe, "inspect", str(tmp_path / "missing.xml")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("ovq: error:") and len(proc.stderr.splitlines()) == 1


def test_preprocess_matches_manual_normalisation(tmp_path):
    import numpy as np

    from ovq import runtime
    from ovq.data import load_demo_raw

    out = tmp_path / "pre.xml"
    # The demo model expects pixels/16: embed that as scale 16 and feed raw pixels.
    proc = run("preprocess", demo_model_path(), "-o", out, "--scale-values", "[16]")
    assert "wrote" in proc.stdout
    raw, _ = load_demo_raw("test")
    pixels = raw[:32].astype(np.float32)
    embedded = runtime.infer(runtime.compile_model(str(out)), [pixels])[0]
    reference = runtime.infer(runtime.compile_model(str(demo_model_path())), [pixels / 16])[0]
    np.testing.assert_allclose(embedded, reference, rtol=1e-5, atol=1e-5)
    bad = run("preprocess", demo_model_path(), "-o", tmp_path / "x.xml", "--mean-values", "[1,2,3]", check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("ovq: error:") and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.xml").exists()


def test_inspect_runtime_reports_int8_after_placement(tmp_path):
    import ovq
    from ovq.data import load_demo_data

    x, _ = load_demo_data("calib")
    placed = ovq.place_fake_quantize(str(demo_model_path()), calibration_samples=[x[:16]])
    path = ovq.save_model(placed, tmp_path / "int8.xml")
    text = run("inspect", path, "--runtime").stdout
    assert "FakeQuantize: " in text and "INT8: 5/5 layers" in text
    data = json.loads(run("inspect", path, "--runtime", "--json").stdout)
    assert data["runtime"]["summary"].startswith("INT8: 5/5")
    fp32 = run("inspect", demo_model_path(), "--runtime").stdout
    assert "INT8: 0/5 layers" in fp32


def test_dump_after_a_pass_not_in_the_pipeline_is_an_error(tmp_path):
    proc = run("run-passes", demo_model_path(), "-p", "fold-constants,eliminate-dead-code", "-o", tmp_path / "o.xml",
               "--dump-after", "fuse-batchnorm", check=False)
    assert proc.returncode == 2
    assert proc.stderr == ("ovq: error: --dump-after: 'fuse-batchnorm' is not a pass of the pipeline "
                           "(fold-constants, eliminate-dead-code)\n")
    assert not (tmp_path / "o.xml").exists()
    run("run-passes", demo_model_path(), "-p", "fold-constants", "-o", tmp_path / "o.xml",
        "--dump-after", "fold-constants")
    assert any(p.name.endswith("fold-constants.xml") for p in tmp_path.iterdir())


def test_inspect_runtime_labels_the_layers_of_a_float_model_float(tmp_path):
    out = run("inspect", "--runtime", demo_model_path()).stdout
    assert "fallback" not in out
    assert out.count("(float model)") == 5
    assert "INT8: 0/5 layers (a float model: nothing in it is quantized)" in out
    layers = json.loads(run("inspect", "--runtime", "--json", demo_model_path()).stdout)["runtime"]["layers"]
    assert [e["label"] for e in layers] == ["float"] * 5


def test_a_group_without_a_command_shows_its_help():
    for args in ((), ("hw",)):
        proc = run(*args, check=False)
        assert proc.returncode == 2 and proc.stderr.startswith("Usage: ovq")
        assert "Commands:" in proc.stderr and "ovq: error" not in proc.stderr


def test_inspect_runtime_labels_quantized_layers_that_run_float_fallback(tmp_path):
    import numpy as np

    from ovq.data import load_demo_data

    np.save(tmp_path / "calib.npy", load_demo_data("test")[0][:8])
    q = tmp_path / "gna.xml"  # GNA's 16-bit quantizers: quantized in the model, float on the CPU plugin
    run("quantize", demo_model_path(), "-o", q, "--data", tmp_path / "calib.npy", "--target-device", "gna",
        "--no-audit", "-q", "--bias-correction", "none")
    layers = json.loads(run("inspect", "--runtime", "--json", q).stdout)["runtime"]["layers"]
    assert len(layers) == 5 and {e["label"] for e in layers} == {"fallback"}
    assert "<- fallback" in run("inspect", "--runtime", q).stdout
