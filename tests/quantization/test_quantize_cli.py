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


def test_overflow_fix_option(calib, tmp_path):
    out = tmp_path / "q.xml"
    proc = run("quantize", demo_model_path(), "-o", out, "--data", calib, "--subset-size", 20, "--no-audit")
    assert "saturation (x86 without VNNI):" in proc.stdout  # auto, the default, reports its measurement
    proc = run("quantize", demo_model_path(), "-o", out, "--data", calib, "--subset-size", 20, "--no-audit",
               "--overflow-fix", "enable")
    assert "saturation (x86" not in proc.stdout and "overflow fix: 7-bit weights on" in proc.stdout


def test_range_search_option(calib, tmp_path):
    out = tmp_path / "q.xml"
    proc = run("quantize", demo_model_path(), "-o", out, "--data", calib, "--subset-size", 20, "--no-audit",
               "--range-search", "all")
    assert "range search:" in proc.stdout and "range_search" in proc.stdout and _accuracy(out) > 0.9
    proc = run("quantize", demo_model_path(), "-o", out, "--data", calib, "--range-search", "mse", check=False)
    assert proc.returncode != 0 and "mse" in proc.stderr


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


def test_quantize_summary_names_folded_weight_paths_and_float_layers(tmp_path):
    import openvino as ov
    from models import tflite_like

    model = tmp_path / "tflite_like.xml"
    ov.save_model(tflite_like(), model, compress_to_fp16=False)
    data = tmp_path / "calib.npy"
    np.save(data, np.random.default_rng(0).standard_normal((8, 4, 8, 8)).astype(np.float32))
    out = tmp_path / "q.xml"
    proc = run("quantize", model, "-o", out, "--data", data, "--ignored-scope", "fc")
    assert "weight paths: 4 layers had weights computed from constants" in proc.stdout  # the ignored fc too
    assert "left in floating point: fc (ignored scope)" in proc.stdout
    assert "INT8: 3/4 layers" in proc.stdout


@pytest.fixture(scope="module")
def digit_images(tmp_path_factory) -> Path:
    """Ten 16x16 grayscale PNG digits (the demo model takes 8x8): resizing matters."""
    pil = pytest.importorskip("PIL.Image")
    x, _ = load_demo_data("calib")
    folder = tmp_path_factory.mktemp("digits") / "images"
    folder.mkdir()
    for i in range(10):
        big = np.kron(x[i, 0] * 255 / x.max(), np.ones((2, 2)))
        pil.fromarray(big.astype(np.uint8)).save(folder / f"{i:03}.png")
    return folder


def _pot_config(folder: Path, engine: dict, params: dict | None = None, name: str = "pot.json") -> Path:
    config = folder.parent / name
    config.write_text(json.dumps({
        "model": {"model_name": "digits_int8", "model": str(demo_model_path()),
                  "weights": str(demo_model_path().with_suffix(".bin"))},
        "engine": engine,
        "compression": {"target_device": "CPU", "algorithms": [{
            "name": "DefaultQuantization", "params": {"preset": "performance", "stat_subset_size": 300,
                                                      **(params or {})}}]},
    }))
    return config


def test_pot_accuracy_checker_config_end_to_end(digit_images, tmp_path):
    pytest.importorskip("cv2")
    engine = {"launchers": [{"framework": "dlsdk", "adapter": "classification"}], "datasets": [{
        "name": "digits", "data_source": str(digit_images),
        "annotation_conversion": {"converter": "imagenet", "annotation_file": "unused.txt"},
        "preprocessing": [{"type": "resize", "size": 8}, {"type": "normalization", "std": 16}],
        "metrics": [{"name": "accuracy@top1", "type": "accuracy"}]}]}
    out = tmp_path / "q.xml"
    proc = run("quantize", "--config", _pot_config(digit_images, engine), "-o", out)
    assert "calibration samples: 10" in proc.stdout and "INT8: 5/5" in proc.stdout
    bad = dict(engine, datasets=[dict(engine["datasets"][0], preprocessing=[{"type": "resize", "size": 6}])])
    proc = run("quantize", "--config", _pot_config(digit_images, bad, name="bad.json"), "-o", tmp_path / "b.xml",
               check=False)
    assert proc.returncode == 2 and "gives a 6x6 image" in proc.stderr and not (tmp_path / "b.xml").exists()


def test_pot_shuffle_data_and_seed_choose_the_subset(digit_images, tmp_path):
    def bin_of(name, **params):
        out = tmp_path / f"{name}.xml"
        cfg = _pot_config(digit_images, {"type": "simplified", "data_source": str(digit_images)},
                          {"stat_subset_size": 3, **params}, name=f"{name}.json")
        proc = run("quantize", "--config", cfg, "-o", out, "--no-audit")
        assert "calibration samples: 3" in proc.stdout
        return out.with_suffix(".bin").read_bytes()

    first_0, first_1 = bin_of("a", shuffle_data=False, seed=0), bin_of("b", shuffle_data=False, seed=1)
    assert first_0 == first_1  # POT: without shuffling the seed changes nothing
    shuffled_0, shuffled_1 = bin_of("c", shuffle_data=True, seed=0), bin_of("d", shuffle_data=True, seed=1)
    assert shuffled_0 != shuffled_1 and first_0 not in (shuffled_0, shuffled_1)
    # shuffle_data=false calibrates on the first three files: the same as a folder holding only those
    only = tmp_path / "first3"
    only.mkdir()
    for f in sorted(digit_images.iterdir())[:3]:
        (only / f.name).write_bytes(f.read_bytes())
    assert bin_of("e", shuffle_data=False) == first_0
    cfg = _pot_config(only, {"type": "simplified", "data_source": str(only)}, {"stat_subset_size": 3},
                      name="first3.json")
    run("quantize", "--config", cfg, "-o", tmp_path / "f.xml", "--no-audit")
    assert (tmp_path / "f.bin").read_bytes() == first_0


def test_pot_model_name_names_the_output(digit_images, tmp_path):
    outdir = tmp_path / "out"
    outdir.mkdir()
    cfg = _pot_config(digit_images, {"type": "simplified", "data_source": str(digit_images)})
    proc = run("quantize", "--config", cfg, "-o", outdir, "--no-audit")
    written = outdir / "digits_int8.xml"
    assert f"wrote {written}" in proc.stdout
    assert '<net name="digits_int8"' in written.read_text()


def test_output_folder_needs_a_config(calib, tmp_path):
    proc = run("quantize", demo_model_path(), "-o", tmp_path, "--data", calib, check=False)
    assert proc.returncode == 2 and "is a folder; give OUT.xml" in proc.stderr


def test_accuracy_aware_config_with_an_accuracy_checker_engine_asks_for_the_metric(digit_images, tmp_path):
    engine = {"datasets": [{"data_source": str(digit_images), "preprocessing": [{"type": "resize", "size": 8}],
                            "metrics": [{"type": "accuracy", "top_k": 1}]}]}
    config = _pot_config(digit_images, engine, name="aaq.json")
    doc = json.loads(config.read_text())
    doc["compression"]["algorithms"][0]["name"] = "AccuracyAwareQuantization"
    config.write_text(json.dumps(doc))
    proc = run("quantize", "--config", config, "-o", tmp_path / "q.xml", check=False)
    assert proc.returncode == 2
    assert "AccuracyAwareQuantization) needs the metric: give --validate" in proc.stderr
    assert "Accuracy Checker's metrics" in proc.stderr and not (tmp_path / "q.xml").exists()


def test_pot_preset_accuracy_runs_as_mixed_on_cpu(digit_images, tmp_path):
    """POT wrote asymmetric 256-level weights for "accuracy"; the CPU plugin runs INT8 only
    with symmetric weights, so the CPU descriptor runs it as "mixed" (docs/quantize-data.md)."""
    def fq_levels(name: str, preset: str) -> list[str]:
        cfg = _pot_config(digit_images, {"type": "simplified", "data_source": str(digit_images)},
                          {"preset": preset}, name=f"{name}.json")
        out = tmp_path / f"{name}.xml"
        run("quantize", "--config", cfg, "-o", out, "--no-audit", "--no-compress-weights")
        return out.read_text(), out.with_suffix(".bin").read_bytes()

    accuracy, mixed = fq_levels("acc", "accuracy"), fq_levels("mix", "mixed")
    assert accuracy == mixed
    assert 'levels="255"' in accuracy[0]  # symmetric weights (asymmetric ones would have 256 levels)


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
    assert proc.stderr == (f"ovq: error: {q}: the model is already quantized (6 FakeQuantize ops on "
                           "activations); quantize its floating-point original\n")


def test_usage_errors_are_one_line_in_the_ovq_style(tmp_path):
    for args, text in [(("quantize", demo_model_path(), "--subset-size", "many"), "'many' is not a valid integer"),
                       (("convert", demo_model_path()), "Missing option '-o' / '--output'"),
                       (("inspect",), "Missing argument 'MODEL'"),
                       (("nosuch",), "No such command 'nosuch'")]:
        proc = run(*args, check=False)
        assert proc.returncode == 2
        assert proc.stderr.startswith("ovq: error: ") and text in proc.stderr and "--help')" in proc.stderr
        assert len(proc.stderr.splitlines()) == 1, proc.stderr
