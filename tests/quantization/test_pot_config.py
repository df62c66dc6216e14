"""``read_pot_config``: POT JSON configs (with comments) into a PotJob, and every refusal."""

from __future__ import annotations

import copy
import json

import pytest

from ovq.errors import OvqError, PotConfigError
from ovq.quantization.image_pipeline import ImagePipeline, Resize
from ovq.quantization.pot_config import PotJob, read_pot_config

BASE = {
    "model": {"model_name": "net", "model": "net.xml", "weights": "net.bin"},
    "engine": {"type": "simplified", "data_source": "images"},
    "compression": {
        "target_device": "CPU",
        "algorithms": [{"name": "DefaultQuantization", "params": {"preset": "performance", "stat_subset_size": 300}}],
    },
}


@pytest.fixture
def job_dir(tmp_path):
    """A folder with the model files and an image folder the config can name."""
    (tmp_path / "net.xml").write_text("<net/>")
    (tmp_path / "net.bin").write_bytes(b"")
    (tmp_path / "images").mkdir()
    return tmp_path


def write(folder, config, name="pot.json"):
    path = folder / name
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    return path


def edited(**sections):
    """BASE with sections replaced; ``params=`` replaces the algorithm's params."""
    cfg = copy.deepcopy(BASE)
    params = sections.pop("params", None)
    if params is not None:
        cfg["compression"]["algorithms"][0]["params"] = params
    for key, value in sections.items():
        if value is None:
            del cfg[key]
        else:
            cfg[key] = value
    return cfg


def error(match):
    return pytest.raises(PotConfigError, match=match)


def test_simplified_config_resolves_paths_against_its_folder(job_dir, monkeypatch, tmp_path_factory):
    cfg = write(job_dir, BASE)
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    job = read_pot_config(cfg)
    assert job == PotJob(config=cfg, model_xml=job_dir / "net.xml", model_bin=job_dir / "net.bin",
                         data_source=job_dir / "images", target_device="CPU", preset="performance",
                         subset_size=300, model_name="net")
    assert job.quantize_options() == {
        "target_device": "CPU", "preset": "performance", "subset_size": 300, "fast_bias_correction": True,
        "model_type": None, "ignored_scope": None, "overflow_fix": None,
    }
    # POT's simplified engine: OpenCV read (BGR), OpenCV bilinear resize to the input size
    assert job.data_options() == {"layout": None, "seed": 0,
                                  "image_pipeline": ImagePipeline("opencv", (Resize(),))}


def test_every_supported_field(job_dir, tmp_path):
    other = tmp_path / "abs"
    other.mkdir()
    cfg = edited(
        engine={"type": "simplified", "data_source": str(other), "layout": "NHWC", "central_fraction": 0.875,
                "stat_requests_number": 4, "device": "CPU"},
        params={"preset": "mixed", "stat_subset_size": 64, "use_fast_bias": False, "shuffle_data": True, "seed": 7,
                "model_type": "transformer", "target_device": "CPU",
                "ignored": {"scope": ["MatMul_1", "Add_2"], "operations": [{"type": "Softmax"}, {"type": "Add"}]}},
    )
    cfg["compression"]["dump_intermediate_model"] = False
    cfg["compression"]["inplace_statistics"] = True
    job = read_pot_config(write(job_dir, cfg))
    assert job.data_source == other and job.layout == "NHWC" and job.central_fraction == 0.875
    assert (job.preset, job.subset_size, job.fast_bias_correction) == ("mixed", 64, False)
    assert (job.shuffle_data, job.seed, job.model_type) == (True, 7, "transformer")
    assert job.ignored_scope == {"names": ["MatMul_1", "Add_2"], "types": ["Softmax", "Add"], "validate": False}
    assert job.data_options()["seed"] == 7


@pytest.mark.parametrize("pot,ovq_value", [("first_layer", "first_layer"), ("all", "enable"), ("no", "disable")])
def test_saturation_fix_maps_onto_overflow_fix(job_dir, pot, ovq_value):
    job = read_pot_config(write(job_dir, edited(params={"saturation_fix": pot})))
    assert job.overflow_fix == ovq_value and job.quantize_options()["overflow_fix"] == ovq_value
    with error(r"saturation_fix: 'some' is not one of first_layer, all, no"):
        read_pot_config(write(job_dir, edited(params={"saturation_fix": "some"})))


def test_defaults_and_optional_sections(job_dir):
    cfg = edited(engine=None, params={})
    del cfg["model"]["weights"]
    del cfg["compression"]["target_device"]
    cfg["compression"]["model_type"] = "None"  # POT's template spells the default this way
    job = read_pot_config(write(job_dir, cfg))
    assert job.data_source is None and job.model_bin == job_dir / "net.bin"
    assert (job.target_device, job.preset, job.subset_size, job.fast_bias_correction) == ("ANY", None, 300, True)
    assert job.model_type is None and job.ignored_scope is None
    cfg = edited(params={"model_type": "transformer", "ignored": {"scope": []}})
    cfg["compression"]["model_type"] = "transformer"
    job = read_pot_config(write(job_dir, cfg))
    assert job.model_type == "transformer" and job.ignored_scope is None


def test_data_source_glob_need_not_exist_yet(job_dir):
    cfg = edited(engine={"type": "simplified", "data_source": "images/*.jpg"})
    assert read_pot_config(write(job_dir, cfg)).data_source == job_dir / "images" / "*.jpg"


def test_comments_and_trailing_commas(job_dir):
    text = """/* POT config, as the templates write them */
{
    "model": {
        "model_name": "net", // the name
        "model": "net.xml",
        "weights": "net.bin", /* trailing comma next */
    },
    "engine": {"type": "simplified", "data_source": "images"},
    "compression": {
        "algorithms": [
            {"name": "DefaultQuantization", "params": {"ignored": {"scope": ["a//b", "c/*d*/", "e,]"]}}},
        ],
    },
}
"""
    job = read_pot_config(write(job_dir, text))
    assert job.model_name == "net"
    assert job.ignored_scope == {"names": ["a//b", "c/*d*/", "e,]"], "types": [], "validate": False}


@pytest.mark.parametrize("text,match", [
    ('{\n  "model": {\n    "model": "net.xml"\n    "weights": "net.bin"}\n}', r"pot.json:4:5: invalid JSON: Expecting ','"),
    ('{"model": 1 /* open', r"pot.json:1: a /\* comment is never closed"),
    ('{"model": {}, "model": {}}', "key 'model' appears twice"),
    ("[1, 2]", r"the config: expected an object \{...\}, got a list"),
    ("", r"pot.json:1:1: invalid JSON"),
])
def test_json_errors_name_file_and_line(job_dir, text, match):
    with error(match):
        read_pot_config(write(job_dir, text))


def test_unreadable_config(tmp_path):
    with error("nope.json: no such config"):
        read_pot_config(tmp_path / "nope.json")


@pytest.mark.parametrize("edit,match", [
    # Structure and unknown keys.
    (lambda c: c.update(optimizer={}), r"optimizer: unknown top-level key \(expected model, engine, compression\)"),
    (lambda c: c.pop("model"), "missing the 'model' section"),
    (lambda c: c.pop("compression"), "missing the 'compression' section"),
    (lambda c: c["model"].update(path="x"), "model.path: unknown key"),
    (lambda c: c["model"].update(cascade=[]), "model.cascade: cascaded models are not supported yet"),
    (lambda c: c["model"].pop("model"), "model.model: missing"),
    (lambda c: c["model"].update(model=3), "model.model: expected a non-empty string, got 3"),
    (lambda c: c["model"].update(model="missing.xml"), r"model.model: no such file .*missing.xml"),
    (lambda c: c["model"].update(weights="missing.bin"), r"model.weights: no such file .*missing.bin"),
    (lambda c: c.update(engine=[]), r"engine: expected an object"),
    (lambda c: c["compression"].update(seed=1), "compression.seed: unknown key"),
    # Engines.
    (lambda c: c["engine"].pop("type"), r"engine.data_source: not supported yet \(ovq reads type, config, launchers"),
    (lambda c: c.update(engine={"type": "accuracy_checker", "config": "ac.yml"}), r"engine.config: cannot read .*ac.yml"),
    (lambda c: c.update(engine={"type": "data_free"}), "engine.type: the data-free engine is not supported yet"),
    (lambda c: c["engine"].update(type="custom"), "engine.type: unknown engine type 'custom'"),
    (lambda c: c["engine"].update(annotation="a.json"), "engine.annotation: unknown key"),
    (lambda c: c["engine"].pop("data_source"), "engine.data_source: missing"),
    (lambda c: c["engine"].update(data_source="nowhere"), r"engine.data_source: no such file or folder .*nowhere"),
    (lambda c: c["engine"].update(central_fraction=0), r"engine.central_fraction: expected a number in \(0, 1\]"),
    (lambda c: c["engine"].update(central_fraction=True), "engine.central_fraction"),
    # Algorithms.
    (lambda c: c["compression"]["algorithms"].__setitem__(
        0, {"name": "AccuracyAwareQuantization", "params": {"tune_hyperparams": True}}),
     r"compression.algorithms\[0\].params.tune_hyperparams"),
    (lambda c: c["compression"]["algorithms"].__setitem__(
        0, {"name": "AccuracyAwareQuantization", "params": {"maximal_drop": -1}}),
     r"params.maximal_drop: expected a number >= 0"),
    (lambda c: c["compression"]["algorithms"].__setitem__(
        0, {"name": "AccuracyAwareQuantization", "params": {"base_algorithm": "MinMaxQuantization"}}),
     r"params.base_algorithm: 'MinMaxQuantization' is not supported"),
    (lambda c: c["compression"]["algorithms"].append({"name": "FastBiasCorrection"}),
     r"algorithms\[1\]: algorithm 'FastBiasCorrection' is not supported \(ovq runs DefaultQuantization and "
     r"AccuracyAwareQuantization\)"),
    (lambda c: c["compression"]["algorithms"].append({"name": "DefaultQuantization"}),
     "2 algorithms; ovq runs a single DefaultQuantization"),
    (lambda c: c["compression"].update(algorithms=[]), "compression.algorithms: expected a non-empty list"),
    (lambda c: c["compression"]["algorithms"][0].update(extra=1), r"algorithms\[0\].extra: unknown key"),
    (lambda c: c["compression"].update(target_device=["CPU"]), "compression.target_device: expected a non-empty string"),
])
def test_config_errors(job_dir, edit, match):
    cfg = copy.deepcopy(BASE)
    edit(cfg)
    with error(match):
        read_pot_config(write(job_dir, cfg))


@pytest.mark.parametrize("params,match", [
    ({"weights": {"bits": 8}}, r"params.weights.bits: not supported yet \(ovq reads range_estimator\)"),
    ({"activations": {"mode": "asymmetric"}}, r"params.activations.mode: not supported yet"),
    ({"activations": {"range_estimator": {"max": {"clipping_value": 6}}}},
     r"activations.range_estimator.max.clipping_value: clipping statistics is not supported"),
    ({"activations": {"range_estimator": {"min": {"aggregator": "median"}}}},
     r"activations.range_estimator: aggregators min 'median' / max 'mean' are not supported"),
    ({"activations": {"range_estimator": {"preset": "fancy"}}}, r"range_estimator.preset: 'fancy' is not default"),
    ({"activations": {"range_estimator": {"min": {"type": "quantile", "outlier_prob": 1e-3},
                                          "max": {"type": "quantile", "outlier_prob": 1e-4}}}},
     "min and max outlier_prob differ"),
    ({"weights": {"range_estimator": {"max": {"type": "quantile", "outlier_prob": 1e-4}}}},
     r"weights.range_estimator.max: weight ranges are the per-channel max"),
    ({"preset": "fast"}, "params.preset: 'fast' is not one of performance, mixed, accuracy"),
    ({"stat_subset_size": 0}, "stat_subset_size: expected a positive integer, got 0"),
    ({"stat_subset_size": True}, "stat_subset_size: expected a positive integer"),
    ({"stat_subset_size": 1.5}, "stat_subset_size: expected a positive integer"),
    ({"use_fast_bias": "yes"}, "use_fast_bias: expected true or false, got 'yes'"),
    ({"shuffle_data": 1}, "shuffle_data: expected true or false"),
    ({"seed": "0"}, "seed: expected an integer"),
    ({"model_type": "cnn"}, r"params.model_type: 'cnn' is not supported \(None or \"transformer\"\)"),
    ({"target_device": "GPU"}, "params.target_device: 'GPU' contradicts compression.target_device 'CPU'"),
    ({"ignored": {"scope": "conv1"}}, "ignored.scope: expected a list of node names"),
    ({"ignored": {"operations": {"type": "Add"}}}, "ignored.operations: expected a list"),
    ({"ignored": {"operations": [{"type": "Add", "attributes": {"axis": {"a": 1}}}]}},
     r"ignored.operations\[0\].attributes.axis: expected a string, number, boolean or a list"),
    ({"ignored": {"operations": [{}]}}, r"ignored.operations\[0\].type: missing"),
    ({"ignored": {"operations": ["Add"]}}, r"ignored.operations\[0\]: expected an object"),
    ({"ignored": {"skip": []}}, "ignored.skip: unknown key"),
])
def test_param_errors(job_dir, params, match):
    with error(match):
        read_pot_config(write(job_dir, edited(params=params)))


def test_model_type_conflict(job_dir):
    cfg = edited(params={"model_type": "transformer"})
    cfg["compression"]["model_type"] = "None"
    with error(r"params.model_type: 'transformer' contradicts compression.model_type None"):
        read_pot_config(write(job_dir, cfg))


def test_missing_default_weights(job_dir):
    (job_dir / "net.bin").unlink()
    cfg = copy.deepcopy(BASE)
    del cfg["model"]["weights"]
    with error(r"model.weights: not given and .*net.bin does not exist"):
        read_pot_config(write(job_dir, cfg))
    assert issubclass(PotConfigError, OvqError)


def test_accuracy_aware_quantization(job_dir):
    cfg = edited(params={"preset": "mixed", "stat_subset_size": 100, "maximal_drop": 0.02, "drop_type": "relative",
                         "max_iter_num": 5, "ranking_subset_size": 50, "metric_subset_ratio": 0.5,
                         "base_algorithm": "DefaultQuantization"})
    cfg["compression"]["algorithms"][0]["name"] = "AccuracyAwareQuantization"
    job = read_pot_config(write(job_dir, cfg))
    assert job.preset == "mixed" and job.subset_size == 100
    ac = job.accuracy_control
    assert (ac.max_drop, ac.drop_type, ac.max_iterations, ac.ranking_subset_size) == (0.02, "relative", 5, 50)
    assert read_pot_config(write(job_dir, BASE)).accuracy_control is None


AC_DATASET = {
    "name": "imagenet_1000_classes", "data_source": "images", "reader": "pillow_imread",
    "annotation_conversion": {"converter": "imagenet", "annotation_file": "val.txt"},
    "preprocessing": [
        {"type": "bgr_to_rgb"},
        {"type": "resize", "size": 256, "aspect_ratio_scale": "greater", "use_pillow": True,
         "interpolation": "BILINEAR"},
        {"type": "crop", "size": 224, "use_pillow": True},
        {"type": "normalization", "mean": "123.675, 116.28, 103.53", "std": [58.395, 57.12, 57.375]},
    ],
    "metrics": [{"name": "accuracy@top1", "type": "accuracy", "top_k": 1}],
}
AC_ENGINE = {"launchers": [{"framework": "dlsdk", "adapter": "classification"}], "datasets": [AC_DATASET]}


def test_accuracy_checker_engine_inline(job_dir):
    from ovq.quantization.image_pipeline import Crop, Normalize, SwapChannels

    job = read_pot_config(write(job_dir, edited(engine=AC_ENGINE)))
    assert job.data_source == job_dir / "images"
    assert job.data_options()["image_pipeline"] == ImagePipeline("pillow", (
        SwapChannels(), Resize(256, 256, "greater", "BILINEAR", "pillow"), Crop(224, 224),
        Normalize((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))))
    # no "type" means the Accuracy Checker, as in POT
    typed = read_pot_config(write(job_dir, edited(engine={"type": "accuracy_checker", **AC_ENGINE}), "typed.json"))
    assert (typed.data_source, typed.image_pipeline) == (job.data_source, job.image_pipeline)


def test_accuracy_checker_engine_from_yaml(job_dir):
    yaml = pytest.importorskip("yaml")
    dataset = {**AC_DATASET, "reader": "opencv_imread",
               "preprocessing": [{"type": "resize", "dst_width": 32, "dst_height": 24}]}
    (job_dir / "ac.yml").write_text(yaml.safe_dump({"models": [{"name": "m", "launchers": AC_ENGINE["launchers"],
                                                                  "datasets": [dataset]}]}))
    job = read_pot_config(write(job_dir, edited(engine={"config": "ac.yml"})))
    assert job.data_options()["image_pipeline"] == ImagePipeline("opencv", (Resize(32, 24),))
    assert job.data_source == job_dir / "images"


@pytest.mark.parametrize("edit,match", [
    (lambda d: d["preprocessing"].append({"type": "flip"}), r"preprocessing\[4\].type: preprocessing 'flip'"),
    (lambda d: d["preprocessing"][1].update(aspect_ratio_scale="frcnn_keep_aspect_ratio"),
     r"preprocessing\[1\].aspect_ratio_scale: 'frcnn_keep_aspect_ratio' is not supported"),
    (lambda d: d["preprocessing"][1].update(interpolation="LANCZOS"), r"preprocessing\[1\].interpolation"),
    (lambda d: d["preprocessing"][2].pop("size"), r"preprocessing\[2\]: missing size"),
    (lambda d: d["preprocessing"][3].update(mean="imagenet"), r"preprocessing\[3\].mean: .*named presets"),
    (lambda d: d["preprocessing"][1].update(padding=1), r"preprocessing\[1\].padding: not supported"),
    (lambda d: d.update(reader="nifti_reader"), r"datasets\[0\].reader: 'nifti_reader' is not supported"),
    (lambda d: d.update(subsample_size=100), r"datasets\[0\].subsample_size: not supported"),
    (lambda d: d.update(data_source="nowhere"), r"datasets\[0\].data_source: no such folder"),
])
def test_accuracy_checker_refusals_name_the_key(job_dir, edit, match):
    dataset = copy.deepcopy(AC_DATASET)
    edit(dataset)
    with error(match):
        read_pot_config(write(job_dir, edited(engine={**AC_ENGINE, "datasets": [dataset]})))


def test_accuracy_checker_engine_refusals(job_dir):
    with error(r"engine.launchers\[0\].framework: 'tf' is not supported"):
        read_pot_config(write(job_dir, edited(engine={**AC_ENGINE, "launchers": [{"framework": "tf"}]})))
    with error(r"engine.datasets: 2 datasets"):
        read_pot_config(write(job_dir, edited(engine={**AC_ENGINE, "datasets": [AC_DATASET, AC_DATASET]})))


def test_an_algorithm_refusal_is_not_hidden_by_the_engine(job_dir):
    cfg = edited(engine={"type": "data_free"})
    cfg["compression"]["algorithms"][0]["name"] = "TunableQuantization"
    with error("algorithm 'TunableQuantization' is not supported"):
        read_pot_config(write(job_dir, cfg))
    cfg["compression"]["algorithms"][0]["name"] = "AccuracyAwareQuantization"
    cfg["compression"]["algorithms"][0]["params"]["tune_hyperparams"] = True
    with error(r"params.tune_hyperparams: not supported yet"):
        read_pot_config(write(job_dir, cfg))
    # with the Accuracy Checker engine, AccuracyAwareQuantization maps to accuracy control
    cfg = edited(engine=AC_ENGINE)
    cfg["compression"]["algorithms"][0]["name"] = "AccuracyAwareQuantization"
    assert read_pot_config(write(job_dir, cfg)).accuracy_control is not None


@pytest.mark.parametrize("estimator,expected", [
    ({"preset": "quantile"}, {"activations_range": "quantile", "outlier_prob": 1e-4}),
    ({"preset": "quantile", "max": {"outlier_prob": 1e-3}, "min": {"outlier_prob": 1e-3}},
     {"activations_range": "quantile", "outlier_prob": 1e-3}),
    ({"preset": "default"}, {}),
    ({"min": {"type": "min", "aggregator": "min"}, "max": {"type": "abs_max", "aggregator": "mean"}},
     {"activations_range": "mean_minmax"}),
    ({"min": {"type": "min", "aggregator": "min"}, "max": {"type": "max", "aggregator": "max"}},
     {"activations_range": "minmax"}),
    ({"min": {"type": "min"}, "max": {"type": "abs_quantile", "aggregator": "mean", "outlier_prob": 1e-3}},
     {"activations_range": "quantile", "outlier_prob": 1e-3}),
])
def test_activation_range_estimator(job_dir, estimator, expected):
    job = read_pot_config(write(job_dir, edited(params={"activations": {"range_estimator": estimator},
                                                         "weights": {"range_estimator": {
                                                             "max": {"type": "abs_max", "aggregator": "max"}}}})))
    options = job.quantize_options()
    assert {k: options[k] for k in ("activations_range", "outlier_prob") if k in options} == expected


def test_ignored_operations_by_attributes(job_dir):
    job = read_pot_config(write(job_dir, edited(params={"ignored": {"operations": [
        {"type": "Convolution", "attributes": {"strides": [2, 2]}}, {"type": "Add"}]}})))
    assert job.ignored_scope == {"names": [], "types": ["Add"], "validate": False,
                                 "operations": [{"type": "Convolution", "attributes": {"strides": [2, 2]}}]}
