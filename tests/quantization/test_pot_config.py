"""``read_pot_config``: POT JSON configs (with comments) into a PotJob, and every refusal."""

from __future__ import annotations

import copy
import json

import pytest

from ovq.errors import OvqError, PotConfigError
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
        "model_type": None, "ignored_scope": None,
    }
    assert job.data_options() == {"layout": None, "reverse_input_channels": True, "central_fraction": None, "seed": 0}


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
    assert job.ignored_scope == {"names": ["MatMul_1", "Add_2"], "types": ["Softmax", "Add"]}
    assert job.data_options()["seed"] == 7


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
    assert job.ignored_scope == {"names": ["a//b", "c/*d*/", "e,]"], "types": []}


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
    (lambda c: c["engine"].pop("type"), "engine: no \"type\" means POT's Accuracy Checker engine, which is not supported yet"),
    (lambda c: c.update(engine={"type": "accuracy_checker", "config": "ac.yml"}), "Accuracy Checker engine"),
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
    ({"weights": {"bits": 8}}, r"params.weights: not supported yet \(ovq reads preset, stat_subset_size"),
    ({"activations": {}}, "params.activations: not supported yet"),
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
    ({"ignored": {"operations": [{"type": "Add", "attributes": {"axis": 1}}]}},
     r"ignored.operations\[0\].attributes: ignoring operations by attribute is not supported yet"),
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
