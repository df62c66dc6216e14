"""Hardware descriptors: every shipped target loads and matches the reference tables; bad files fail clearly."""

from __future__ import annotations

import json

import pytest

from ovq.hw import HardwareDescriptorError, list_targets, load_descriptor, validate_file
from ovq_testing.cli import run_cli


def test_shipped_targets():
    assert list_targets() == ["any", "cpu", "cpu_spr", "gna", "gna3", "gpu", "npu"]


@pytest.mark.parametrize("target", ["any", "cpu", "cpu_spr", "gna", "gna3", "gpu", "npu", "CPU", "CPU_SPR", "vpu",
                                    "GNA3.5"])
def test_every_descriptor_loads(target):
    d = load_descriptor(target)
    assert d.ops and d.spaces
    for rule in d.ops:
        for space in (*rule.activations, *rule.weights, *rule.outputs):
            assert d.spaces[space.name] is space


def names(spaces):
    return [s.name for s in spaces]


def test_cpu_table():
    cpu = load_descriptor("cpu")
    conv = cpu.rule_for("Convolution")
    assert names(conv.activations) == ["q8_a"] and names(conv.weights) == ["q8_w_sym", "q8_w_asym"]
    assert cpu.rule_for("MatMul") is conv
    assert conv.weights[0].levels(weights=True) == 255
    assert conv.activations[0].levels(weights=False) == 256
    assert conv.activations[0].modes == ("symmetric", "asymmetric")
    assert names(cpu.rule_for("DepthWiseConvolution").activations) == ["q8_a_ch"]
    assert cpu.rule_for("LSTMSequence").unified_scales == ((0, 1), (4, 5))
    assert cpu.rule_for("GRUSequence").unified_scales == ((0, 1), (3, 4))
    assert cpu.rule_for("Concat").unified_scales == "all" and cpu.is_agnostic("Concat")
    assert names(cpu.rule_for("MVN").activations) == ["q8_a"] and not cpu.rule_for("MVN").weights
    assert cpu.is_agnostic("MaxPool") and cpu.is_agnostic("Gather") and not cpu.is_agnostic("Relu")
    assert cpu.rule_for("Relu") is None  # not quantized and not agnostic


def test_gpu_is_cpu_without_sequences_and_any_is_cpu():
    gpu, cpu, any_ = load_descriptor("gpu"), load_descriptor("cpu"), load_descriptor("any")
    assert gpu.rule_for("LSTMSequence") is None and gpu.rule_for("GRUSequence") is None
    assert set(gpu.quantizable_types()) == set(cpu.quantizable_types()) - {"LSTMSequence", "GRUSequence"}
    assert any_.quantizable_types() == cpu.quantizable_types() and any_.agnostic == cpu.agnostic


def test_npu_table():
    npu = load_descriptor("vpu")
    assert npu.target == "npu"
    conv = npu.rule_for("Convolution")
    assert names(conv.activations) == ["q8_tn", "q4_tn", "q8_tn"]
    assert names(conv.weights) == ["q8_ch", "q4_ch", "q2_ch", "q8_a_ch"]
    assert npu.spaces["q8_a_ch"].unified_zeropoint and npu.spaces["q8_tn"].modes == ("asymmetric",)
    assert npu.rule_for("Add").unified_scales == "all"
    assert names(npu.rule_for("DepthWiseConvolution").activations) == ["q8_ch"]


def test_gna_16_bit_tables():
    gna = load_descriptor("gna")
    assert gna.primary_bitwidth == 16
    q16_a, q16_w, q8_w = gna.spaces["q16_a"], gna.spaces["q16_w"], gna.spaces["q8_w"]
    assert q16_a.levels(weights=False) == 65536 and q16_w.levels(weights=True) == 65535
    assert q8_w.levels(weights=True) == 255 and q8_w.granularities == ("perchannel",)
    mm = gna.rule_for("MatMul")
    assert names(mm.activations) == ["q16_a"] and names(mm.weights) == ["q8_w", "q16_w"]
    assert names(mm.outputs) == ["q32_o"]
    relu = gna.rule_for("Relu")
    assert names(relu.activations) == ["q32_a"] and names(relu.outputs) == ["q16_o"]
    assert names(gna.rule_for("Parameter").outputs) == ["q16_o"]
    assert not gna.rule_for("Subtract").outputs
    gna3 = load_descriptor("gna3")
    assert names(gna3.rule_for("Convolution").activations) == ["q8_a", "q16_a"]
    assert names(gna3.rule_for("Subtract").outputs) == ["q32_o"]
    assert gna3.input_priority_types == ("Convolution",)
    assert gna3.spaces["q8_a"].levels(weights=False) == 255


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = """
schema_version = 1
target = "mine"
[spaces.q8]
bits = 8
mode = "symmetric"
granularity = "perchannel"
[[ops]]
types = ["Convolution"]
activations = ["q8"]
weights = ["q8"]
"""


def test_user_file_is_accepted_wherever_a_target_is(tmp_path):
    d = load_descriptor(write(tmp_path, "mine.toml", GOOD))
    assert d.target == "mine" and d.rule_for("Convolution").weights[0].name == "q8"


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('weights = ["q8"]', 'weights = ["q8_x"]'), r"mine.toml: ops\[0\].weights: unknown space 'q8_x'"),
    (lambda t: t.replace('mode = "symmetric"\n', 'mode = "symmetric"\nlevel_low = 5\nlevel_high = 1\n'),
     r"spaces.q8: level_low 5 must be below level_high 1"),
    (lambda t: t.replace('mode = "symmetric"\n', 'mode = "symmetric"\nlevel_low = -300\nlevel_high = 300\n'),
     r"spaces.q8: levels -300..300 do not fit in 8 bits"),
    (lambda t: t.replace('bits = 8\n', 'bits = 7\n'), r"mine.toml: spaces.q8.bits: 7 is not one of"),
    (lambda t: t.replace('granularity = "perchannel"\n', ''), r"mine.toml: spaces.q8: missing field: 'granularity'"),
    (lambda t: t.replace('target = "mine"\n', ''), r"mine.toml: <top>: missing field: 'target'"),
    (lambda t: t.replace('schema_version = 1', 'schema_version = 9'), r"schema_version: 9 is not supported"),
    (lambda t: t + '[[ops]]\ntypes = ["Convolution"]\n', r"ops\[1\].types: 'Convolution' already has a rule in ops\[0\]"),
    (lambda t: t.replace('types = ["Convolution"]', 'typo = 1\ntypes = ["Convolution"]'), r"ops\[0\]: unknown field"),
    (lambda t: t + "[[ops\n", r"mine.toml: not valid TOML"),
])
def test_bad_descriptors_name_file_and_field(tmp_path, edit, message):
    with pytest.raises(HardwareDescriptorError, match=message):
        load_descriptor(write(tmp_path, "mine.toml", edit(GOOD)))


def test_unknown_target_lists_valid_ones():
    with pytest.raises(HardwareDescriptorError, match="unknown target 'tpu'; valid targets: any, cpu, cpu_spr, gna, gna3, gpu, npu"):
        load_descriptor("tpu")


POT_CONFIG = {
    "target_device": "CPU",
    "config": {"quantization": {
        "q8_a": {"bits": 8, "mode": ["symmetric", "asymmetric"], "granularity": "pertensor"},
        "q8_w": {"bits": 8, "mode": "symmetric", "granularity": "perchannel", "level_low": -127, "level_high": 127},
    }},
    "operations": [
        {"type": "Convolution", "quantization": {"activations": "q8_a", "weights": ["q8_w"]}},
        {"type": "MatMul", "quantization": {"activations": "q8_a",
                                            "weights": [{"bits": 8, "mode": "asymmetric", "granularity": "perchannel"}]}},
        {"type": "Concat", "attributes": {"scales": "unified"}},
        {"type": "MaxPool"},
    ],
}


def test_pot_hardware_config_is_imported(tmp_path):
    path = tmp_path / "custom_pot.json"
    path.write_text(json.dumps(POT_CONFIG))
    d = validate_file(path)
    assert d.target == "cpu"
    assert names(d.rule_for("Convolution").weights) == ["q8_w"]
    assert d.rule_for("MatMul").weights[0].modes == ("asymmetric",)
    assert d.rule_for("MatMul").weights[0].name == "MatMul_weights_0"
    assert d.is_agnostic("MaxPool") and d.is_agnostic("Concat")
    assert d.rule_for("Concat").unified_scales == "all"


def test_cli_hw_commands(tmp_path):
    def run(*args):
        return run_cli(*args, check=False)

    listing = run("hw", "list")
    assert listing.returncode == 0 and "gna3" in listing.stdout
    shown = run("hw", "show", "gna")
    assert shown.returncode == 0 and "q16_w" in shown.stdout and "65535 levels" in shown.stdout
    bad = write(tmp_path, "npu.toml", GOOD.replace('weights = ["q8"]', 'weights = ["q8_x"]'))
    result = run("hw", "validate", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip() == "ovq: error: npu.toml: ops[0].weights: unknown space 'q8_x' (known: q8)"
    good = run("hw", "validate", str(write(tmp_path, "ok.toml", GOOD)))
    assert good.returncode == 0 and "valid descriptor" in good.stdout


@pytest.mark.parametrize(("target", "space"), [("cpu", "q8_w_sym"), ("any", "q8_w_sym"), ("gpu", "q8_w_sym"),
                                               ("cpu_spr", "q8_w_sym"), ("npu", "q8_ch"), ("gna", None), ("gna3", None)])
def test_embedding_pseudo_type_is_weights_only(target, space):
    """NNCF's CPU/GPU/NPU setups quantize embedding tables (weights only); Gather itself stays agnostic."""
    d = load_descriptor(target)
    rule = d.rule_for("Embedding")
    if space is None:
        assert rule is None
        return
    assert names(rule.weights)[0] == space and not rule.activations and not rule.outputs
    assert rule.weights[0].levels(weights=True) == 255
    assert not d.is_agnostic("Embedding") and d.is_agnostic("Gather")


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('types = ["Convolution"]', 'types = ["Convolushun"]'),
     r"mine.toml: ops\[0\].types: unknown op type 'Convolushun' \(did you mean 'Convolution'\?\); "
     r"an op from an OpenVINO extension must be declared in custom_op_types"),
    (lambda t: t.replace('schema_version = 1', 'schema_version = 1\nagnostic = ["maxpool"]'),
     r"agnostic\[0\]: unknown op type 'maxpool' \(did you mean 'MaxPool'\?\)"),
    (lambda t: t.replace('schema_version = 1', 'schema_version = 1\ncustom_op_types = ["MatMul"]'),
     r"custom_op_types\[0\]: 'MatMul' is an OpenVINO op type"),
])
def test_unknown_op_types_are_errors_with_a_did_you_mean(tmp_path, edit, message):
    with pytest.raises(HardwareDescriptorError, match=message):
        load_descriptor(write(tmp_path, "mine.toml", edit(GOOD)))


def test_a_misspelled_op_type_stops_quantize(tmp_path):
    import numpy as np

    from ovq.data import demo_model_path, load_demo_data

    np.save(tmp_path / "calib.npy", load_demo_data("test")[0][:4])
    bad = write(tmp_path, "mine.toml", GOOD.replace('types = ["Convolution"]', 'types = ["Convolushun"]'))
    proc = run_cli("quantize", demo_model_path(), "-o", tmp_path / "q.xml", "--target-device", bad,
                   "--data", tmp_path / "calib.npy", check=False)
    assert proc.returncode == 2 and "unknown op type 'Convolushun' (did you mean 'Convolution'?)" in proc.stderr
    assert not (tmp_path / "q.xml").exists()


def test_custom_op_types_declare_extension_ops(tmp_path):
    text = GOOD.replace('schema_version = 1', 'schema_version = 1\ncustom_op_types = ["MyFusedConv"]')
    text = text.replace('types = ["Convolution"]', 'types = ["Convolution", "MyFusedConv"]')
    d = load_descriptor(write(tmp_path, "mine.toml", text))
    assert d.custom_op_types == {"MyFusedConv"} and d.rule_for("MyFusedConv") is d.rule_for("Convolution")
    child = write(tmp_path, "child.toml", f'schema_version = 1\ntarget = "child"\nextends = "{tmp_path}/mine.toml"\n'
                                         'agnostic = ["Relu"]\nremove_ops = ["MyFusedConv"]\n')
    assert load_descriptor(child).rule_for("MyFusedConv") is None  # inherited declaration


def test_pot_hardware_config_with_an_unknown_op_is_an_error(tmp_path):
    config = json.loads(json.dumps(POT_CONFIG))
    config["operations"][0]["type"] = "Convolushun"
    path = tmp_path / "pot_hw.json"
    path.write_text(json.dumps(config))
    with pytest.raises(HardwareDescriptorError,
                       match=r"pot_hw.json: operations\[0\].type: unknown op type 'Convolushun' \(did you mean 'Convolution'\?\)"):
        validate_file(path)
    config["custom_op_types"] = ["Convolushun"]
    path.write_text(json.dumps(config))
    assert validate_file(path).rule_for("Convolushun") is not None


POT_STYLE_JSON = """{
    // a POT hardware config as POT ships them: comments and trailing commas
    "target_device": "NPU",
    "config": {"quantization": {
        "q8_tn": {"bits": 8, "mode": ["asymmetric"], "granularity": "pertensor"},
        "q8_ch": {"bits": 8, "mode": ["symmetric"], "granularity": "perchannel"}, /* per channel */
    }},
    "operations": [
        {"type": "Convolution", "quantization": {"activations": ["q8_tn"], "weights": ["q8_ch",],}},
        {"type": "DepthWiseConvolution", "quantization": {"activations": "q8_ch", "weights": ["q8_ch"]}},
        {"type": "Power", "quantization": {"activations": "q8_tn"}},
        {"type": "Flatten"},
        {"type": "Crop"},
    ]
}
"""


def test_pot_hardware_config_with_comments_and_trailing_commas_is_accepted(tmp_path):
    path = tmp_path / "npu_pot.json"
    path.write_text(POT_STYLE_JSON)
    d = validate_file(path)
    assert d.target == "npu" and names(d.rule_for("Convolution").weights) == ["q8_ch"]
    assert d.is_agnostic("Flatten") and d.rule_for("Power") is not None
    proc = run_cli("hw", "validate", path)
    assert proc.returncode == 0 and "valid descriptor for target 'npu' (3 op rules" in proc.stdout, proc.stdout
