"""Runtime facts are descriptor fields, not target names: a user's descriptor that
extends a shipped one keeps them, and one that sets them gets the same placement."""

from __future__ import annotations

from ovq.hw import load_descriptor


def test_shipped_targets_declare_their_runtime():
    assert load_descriptor("cpu").low_precision_transformations
    assert load_descriptor("gpu").low_precision_transformations  # extends cpu
    assert not load_descriptor("npu").low_precision_transformations
    assert load_descriptor("cpu").effective_preset("accuracy") == "mixed"
    assert load_descriptor("gna3").effective_preset("mixed") == "accuracy"  # extends gna
    assert load_descriptor("npu").effective_preset("accuracy") == "accuracy"


def test_a_renamed_copy_of_cpu_keeps_lpt_behaviour(tmp_path):
    mine = tmp_path / "my_board.toml"
    mine.write_text('schema_version = 1\ntarget = "my_board"\nextends = "cpu"\n')
    hw = load_descriptor(mine)
    assert hw.low_precision_transformations and hw.effective_preset("accuracy") == "mixed"
    off = tmp_path / "no_lpt.toml"
    off.write_text('schema_version = 1\ntarget = "no_lpt"\nextends = "cpu"\nlow_precision_transformations = false\n'
                   'preset_overrides = { accuracy = "accuracy" }\n')
    hw = load_descriptor(off)
    assert not hw.low_precision_transformations and hw.effective_preset("accuracy") == "accuracy"
