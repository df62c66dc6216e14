"""The worked custom-pass example in examples/ runs and is numerically exact."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as op

import ovq
from ovq import runtime

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_pass.py"


def model_with_neutral_ops() -> ov.Model:
    x = op.parameter([2, 3], np.float32, name="x")
    y = op.multiply(x, op.constant(np.ones((1, 3), np.float32)), name="times_one")
    z = op.add(op.relu(y, name="relu"), op.constant(np.float32(0)), name="plus_zero")
    big = op.add(z, op.constant(np.zeros((4, 2, 3), np.float32)), name="broadcasting_zero")  # must stay
    return ov.Model([op.result(z), op.result(big)], [x], "neutral")


def test_example_pass_removes_neutral_ops(tmp_path):
    spec = importlib.util.spec_from_file_location("custom_pass_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    graph = ovq.Graph.from_ov(model_with_neutral_ops())
    ovq.run_pipeline(graph, "drop-neutral-arithmetic,eliminate-dead-code")
    names = {o.name for _, o in graph.ops()}
    assert "times_one" not in names and "plus_zero" not in names and "broadcasting_zero" in names
    model = model_with_neutral_ops()
    x = runtime.random_inputs(model)
    assert runtime.outputs_equal(runtime.infer(runtime.compile_model(model), x),
                                 runtime.infer(runtime.compile_model(graph), x))


def test_example_script_from_the_shell(tmp_path):
    source = ovq.save_model(model_with_neutral_ops(), tmp_path / "in.xml")
    proc = subprocess.run([sys.executable, str(EXAMPLE), str(source), str(tmp_path / "out.xml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "drop-neutral-arithmetic: changed" in proc.stdout
    assert ovq.read_model(tmp_path / "out.xml").op_histogram().get("Multiply", 0) == 0
