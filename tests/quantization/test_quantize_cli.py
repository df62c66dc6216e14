"""``ovq quantize`` end to end on the demo model: data files, images, POT config, failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ovq.data import demo_model_path, load_demo_data
from ovq_testing.cli import run_cli

run = run_cli


@pytest.fixture(scope="module")
def calib(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("calib") / "calib.npy"
    np.save(path, load_demo_data("calib")[0])
    return path


def _accuracy(xml: Path) -> float:
    from ovq import runtime

    x, labels = load_demo_data("test")
    out = runtime.infer(runtime.compile_model(str(xml)), [x])[0]
    return float((out.argmax(1) == labels).mean())


def test_quantize_npy_end_to_end(calib, tmp_path):
    out = tmp_path / "q.xml"
    proc = run("quantize", demo_model_path(), "-o", out, "--data", calib, "--subset-size", 100)
    assert "INT8: 5/5 layers" in proc.stdout
    assert "calibration samples: 100" in proc.stdout
    assert "MiB -> " in proc.stdout and "time: read" in proc.stdout
    assert out.with_suffix(".bin").stat().st_size < demo_model_path().with_suffix(".bin").stat().st_size / 3
    assert _accuracy(out) >= 0.9844 - 0.005


def test_quantize_options_reach_the_quantizer(calib, tmp_path):
    out = tmp_path / "q.xml"
    proc = run("quantize", demo_model_path(), "-o", out, "--data", calib, "--subset-size", 50, "--preset", "mixed",
               "--bias-correction", "none", "--no-compress-weights", "--target-device", "CPU", "--no-audit")
    assert "bias correction: 0 layers corrected" in proc.stdout
    assert "runtime (CPU)" not in proc.stdout
    text = out.read_text()
    assert text.count('type="FakeQuantize"') == 11  # 6 activation + 5 weight FQs kept


def test_quantize_image_folder(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    x, _ = load_demo_data("calib")
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(20):
        pil.fromarray((x[i, 0] * 255 / x.max()).astype(np.uint8)).save(folder / f"{i:03}.png")
    out = tmp_path / "q.xml"
    proc = run("quantize", demo_model_path(), "-o", out, "--data", folder, "--scale-values", "[16]")
    assert "calibration samples: 20" in proc.stdout and "INT8: 5/5" in proc.stdout


def test_quantize_pot_config(calib, tmp_path):
    npz = tmp_path / "calib.npz"
    np.savez(npz, x=np.load(calib)[:64])
    config = tmp_path / "pot.json"
    config.write_text(json.dumps({
        "model": {"model_name": "digits", "model": str(demo_model_path()),
                  "weights": str(demo_model_path().with_suffix(".bin"))},
        "compression": {"target_device": "CPU", "algorithms": [{
            "name": "DefaultQuantization", "params": {"preset": "performance", "stat_subset_size": 32}}]},
    }))
    out = tmp_path / "q.xml"
    proc = run("quantize", "--config", config, "--data", calib, "-o", out)
    assert "calibration samples: 32" in proc.stdout


@pytest.mark.parametrize(("make", "match"), [
    (lambda d: np.save(d / "bad.npy", np.zeros((4, 1, 7, 7), np.float32)), "expects shape"),
    (lambda d: np.save(d / "bad.npy", np.full((4, 1, 8, 8), np.nan, np.float32)), "NaN or Inf"),
    (lambda d: (d / "bad.txt").write_text("x"), "bad.txt"),
])
def test_bad_data_is_one_line_and_writes_nothing(tmp_path, make, match):
    make(tmp_path)
    data = next(tmp_path.iterdir())
    out = tmp_path / "out" / "q.xml"
    out.parent.mkdir()
    proc = run("quantize", demo_model_path(), "-o", out, "--data", data, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ovq: error:") and match in lines[0], proc.stderr
    assert list(out.parent.iterdir()) == []


def test_missing_data_and_unknown_target(calib, tmp_path):
    proc = run("quantize", demo_model_path(), "-o", tmp_path / "q.xml", check=False)
    assert proc.returncode == 2 and "--data" in proc.stderr
    proc = run("quantize", demo_model_path(), "-o", tmp_path / "q.xml", "--data", calib, "--target-device", "tpu",
               check=False)
    assert proc.returncode == 2 and "valid targets" in proc.stderr
    assert not (tmp_path / "q.xml").exists()


def test_keyboard_interrupt_leaves_no_output(calib, tmp_path, monkeypatch):
    from ovq import cli
    from ovq.quantization import quantize as quantize_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(quantize_module, "calibrate_and_quantize", interrupted)
    out = tmp_path / "q.xml"
    assert cli.main(["quantize", str(demo_model_path()), "-o", str(out), "--data", str(calib)]) == 130
    assert list(tmp_path.iterdir()) == []


def test_smooth_quant_option(calib, tmp_path):
    out = tmp_path / "q.xml"
    proc = run("quantize", demo_model_path(), "-o", out, "--data", calib, "--subset-size", 50,
               "--model-type", "transformer", "--smooth-quant", "0.8", "--no-audit")
    assert "SmoothQuant: 1 MatMuls smoothed, alpha 0.8" in proc.stdout
    assert "smooth_quant" in out.read_text()  # the scaling Multiply is in the written model
    proc = run("quantize", demo_model_path(), "-o", out, "--data", calib, "--subset-size", 50,
               "--model-type", "transformer", "--smooth-quant", "off", "--no-audit")
    assert "SmoothQuant" not in proc.stdout
    proc = run("quantize", demo_model_path(), "-o", tmp_path / "bad.xml", "--data", calib, "--smooth-quant", "1.5",
               check=False)
    assert proc.returncode == 2 and "--smooth-quant" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.xml").exists()


def test_parse_smooth_quant():
    from ovq.errors import OptionError
    from ovq.quantization.quantize_cli import parse_smooth_quant

    assert parse_smooth_quant(None) is None
    assert parse_smooth_quant("off") is False
    assert parse_smooth_quant("search") == "search"
    assert parse_smooth_quant("0.75") == 0.75
    for bad in ("x", "-0.1", "2"):
        with pytest.raises(OptionError, match="--smooth-quant"):
            parse_smooth_quant(bad)


def test_bad_ignored_scope_is_an_option_error(tmp_path):
    from ovq.errors import OptionError
    from ovq.quantization.quantize_cli import parse_ignored_scope

    assert parse_ignored_scope("a, b") == {"names": ["a", "b"]}
    with pytest.raises(OptionError, match=r"--ignored-scope: not valid JSON"):
        parse_ignored_scope('{"names": [')
    scope = tmp_path / "scope.json"
    scope.write_text('{"types": }')
    with pytest.raises(OptionError, match=r"scope.json:1:11: --ignored-scope"):
        parse_ignored_scope(str(scope))


@pytest.mark.parametrize(("missing", "match"), [("model", "no model"), ("output", "no output"),
                                                ("data", "no calibration data")])
def test_missing_model_output_or_data_is_an_option_error(tmp_path, missing, match):
    from ovq.errors import OptionError
    from ovq.quantization.quantize_cli import job_from_options

    paths = {"model": tmp_path / "m.xml", "output": tmp_path / "q.xml", "data": tmp_path / "calib.npy"}
    paths[missing] = None
    with pytest.raises(OptionError, match=match):
        job_from_options(paths["model"], paths["output"], paths["data"], None, {})


def test_dynamic_rank_input_is_an_option_error():
    import openvino as ov
    import openvino.opset13 as ops

    from ovq.errors import OptionError
    from ovq.quantization.quantize_cli import _model_inputs

    x = ops.parameter(ov.PartialShape.dynamic(), np.float32, name="x")
    model = ov.Model([ops.relu(x)], [x], "dynamic_rank")
    with pytest.raises(OptionError, match="input 'x' has a dynamic rank; give --input-shape"):
        _model_inputs(model)


def test_dump_after_ranges_and_a_pipeline_from_the_cli(calib, tmp_path):
    out = tmp_path / "q.xml"
    proc = run("quantize", demo_model_path(), "-o", out, "--data", calib, "--subset-size", 20, "--no-audit",
               "--pipeline", "fold-constants", "--dump-after", "ranges", "--dump-after", "fold-constants")
    assert "time: read" in proc.stdout and "pipeline" in proc.stdout and "overflow_fix" in proc.stdout
    dumps = sorted(p.name.split("-", 1)[1] for p in tmp_path.glob("0*.xml"))
    assert dumps == ["fold-constants.xml", "ranges.xml"]
    import openvino as ov

    ov.Core().compile_model(str(next(tmp_path.glob("*-ranges.xml"))), "CPU")  # a complete IR
    bad = run("quantize", demo_model_path(), "-o", tmp_path / "r.xml", "--data", calib, "--dump-after", "rangez",
              check=False)
    assert bad.returncode == 2 and "rangez" in bad.stderr and not (tmp_path / "r.xml").exists()


def test_accuracy_control_from_the_cli_with_a_metric_hook(calib, tmp_path):
    hook = tmp_path / "metric.py"
    hook.write_text(
        "import numpy as np\n"
        "from ovq.data import load_demo_data\n"
        "x, y = load_demo_data('test')\n"
        "def accuracy(compiled, data):\n"
        "    return float((compiled([x])[0].argmax(1) == y).mean())\n")
    out = tmp_path / "q.xml"
    proc = run("quantize", demo_model_path(), "-o", out, "--data", calib, "--subset-size", 50, "--no-audit",
               "--validate", f"{hook}:accuracy", "--max-drop", "0.5")
    assert "validation_fn calls: 2" in proc.stdout and ": met" in proc.stdout
    assert out.exists()
    bad = run("quantize", demo_model_path(), "-o", tmp_path / "r.xml", "--data", calib, "--validate",
              f"{hook}:nope", check=False)
    assert bad.returncode == 2 and "has no function 'nope'" in bad.stderr


def test_the_target_option_has_both_names_in_both_commands(calib, tmp_path):
    out = tmp_path / "q.xml"
    proc = run("quantize", demo_model_path(), "-o", out, "--data", calib, "--subset-size", 8, "--target", "cpu",
               "--bias-correction", "none", "--no-audit")
    assert proc.returncode == 0 and out.exists()
    for name in ("--target", "--target-device"):
        proc = run("run-passes", demo_model_path(), "-p", "eliminate-dead-code", "-o", tmp_path / "p.xml", name, "cpu")
        assert proc.returncode == 0


def test_help_explains_model_type_and_that_mean_values_only_touch_calibration_images():
    text = " ".join(run("quantize", "--help").stdout.split())
    assert "--model-type [transformer] transformer: NNCF's transformer rules" in text
    assert "--data-mean-values, --mean-values TEXT Calibration images only" in text
    assert "the model is not changed (to embed it: `ovq preprocess`)" in text
    assert "Embedded in the model" in " ".join(run("preprocess", "--help").stdout.split())


def test_config_and_a_different_positional_model_is_an_error(calib, tmp_path):
    config = tmp_path / "pot.json"
    config.write_text(json.dumps({
        "model": {"model": str(demo_model_path())},
        "compression": {"algorithms": [{"name": "DefaultQuantization", "params": {}}]},
    }))
    other = tmp_path / "other.xml"
    run("convert", demo_model_path(), "-o", other)
    proc = run("quantize", other, "--config", config, "--data", calib, "-o", tmp_path / "q.xml", check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("ovq: error: give MODEL or --config, not both:") and "other.xml" in proc.stderr
    same = run("quantize", demo_model_path(), "--config", config, "--data", calib, "-o", tmp_path / "q.xml",
               "--subset-size", 8, "--no-audit")  # the same model twice is not ambiguous
    assert same.returncode == 0


def test_requantizing_an_int8_model_says_it_is_already_quantized(calib, tmp_path):
    q = tmp_path / "q.xml"
    run("quantize", demo_model_path(), "-o", q, "--data", calib, "--subset-size", 8, "--no-audit")
    proc = run("quantize", q, "-o", tmp_path / "q2.xml", "--data", calib, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (f"ovq: error: {q}: the model is already quantized (6 FakeQuantize ops and 5 low-precision "
                           "weight constants); quantize its floating-point original\n")


def test_usage_errors_are_one_line_in_the_ovq_style(tmp_path):
    for args, text in [(("quantize", demo_model_path(), "--subset-size", "many"), "'many' is not a valid integer"),
                       (("convert", demo_model_path()), "Missing option '-o' / '--output'"),
                       (("inspect",), "Missing argument 'MODEL'"),
                       (("nosuch",), "No such command 'nosuch'")]:
        proc = run(*args, check=False)
        assert proc.returncode == 2
        assert proc.stderr.startswith("ovq: error: ") and text in proc.stderr and "--help')" in proc.stderr
        assert len(proc.stderr.splitlines()) == 1, proc.stderr
