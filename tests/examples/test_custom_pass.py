"""The worked custom-pass example in examples/ runs and is numerically exact.

Numerics run through OpenVINO CPU at ``INFERENCE_PRECISION_HINT: f32``
(``ovq.runtime.compile_model``'s default), before vs after the pass.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as op
import pytest

import ovq
from ovq import runtime
from ovq.pipeline import Pipeline, get_pass
from ovq.rewrite import MatchTracer, OpPattern, RewritePass, apply_rules

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_pass.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("custom_pass_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def model_with_neutral_ops() -> ov.Model:
    x = op.parameter([2, 3], np.float32, name="x")
    y = op.multiply(x, op.constant(np.ones((1, 3), np.float32)), name="times_one")
    z = op.add(op.relu(y, name="relu"), op.constant(np.float32(0)), name="plus_zero")
    big = op.add(z, op.constant(np.zeros((4, 2, 3), np.float32)), name="broadcasting_zero")  # must stay
    return ov.Model([op.result(z), op.result(big)], [x], "neutral")


def model_with_near_neutral_ops() -> ov.Model:
    x = op.parameter([1, 4], np.float32, name="x")
    one = op.constant(np.array([[1.0, 1.0, 1.0, 1.0 + 1e-7]], np.float32))
    y = op.multiply(one, x, name="almost_one")  # constant first: the pattern is commutative
    return ov.Model([op.sigmoid(y, name="out")], [x], "near")


def assert_same_outputs(model: ov.Model, graph: ovq.Graph) -> None:
    x = runtime.random_inputs(model)
    before = runtime.infer(runtime.compile_model(model, f32=True), x)
    after = runtime.infer(runtime.compile_model(graph, f32=True), x)
    assert runtime.outputs_equal(before, after)


def test_example_pass_removes_neutral_ops(example, tmp_path):
    graph = ovq.Graph.from_ov(model_with_neutral_ops())
    ovq.run_pipeline(graph, "drop-neutral-arithmetic,eliminate-dead-code")
    names = {o.name for _, o in graph.ops()}
    assert "times_one" not in names and "plus_zero" not in names and "broadcasting_zero" in names
    model = model_with_neutral_ops()
    x = runtime.random_inputs(model)
    assert runtime.outputs_equal(runtime.infer(runtime.compile_model(model), x),
                                 runtime.infer(runtime.compile_model(graph), x))


def test_example_pass_is_a_rewrite_pass_with_a_pattern(example):
    pass_ = get_pass("drop-neutral-arithmetic")()
    assert isinstance(pass_, RewritePass)
    (rule,) = pass_.make_rules()
    assert isinstance(rule.pattern, OpPattern) and rule.pattern.type_set() == {"Multiply", "Add"}
    graph = ovq.Graph.from_ov(model_with_neutral_ops())
    assert pass_(graph).modified
    assert not pass_(graph).modified, "a second run finds nothing"
    # The driver removed the dropped ops and their constants; the output names stayed.
    assert graph.op_histogram().get("Multiply", 0) == 0 and graph.op_histogram()["Add"] == 1
    assert_same_outputs(model_with_neutral_ops(), graph)


def test_refusals_are_explained_by_the_tracer(example):
    graph = ovq.Graph.from_ov(model_with_neutral_ops())
    tracer = MatchTracer()
    apply_rules(graph, [example.DropNeutralOperand()], tracer=tracer)
    explained = tracer.explain("drop-neutral-operand")
    assert "times_one: success" in explained and "plus_zero: success" in explained
    assert "broadcasting_zero: condition-failed: the constant [4, 2, 3] broadcasts x [2, 3]" in explained


def test_tolerance_option_from_a_textual_pipeline(example):
    graph = ovq.Graph.from_ov(model_with_near_neutral_ops())
    assert not Pipeline("drop-neutral-arithmetic").run(graph).modified
    ovq.run_pipeline(graph, "drop-neutral-arithmetic{tolerance=1e-6},eliminate-dead-code")
    assert "almost_one" not in {o.name for _, o in graph.ops()}
    x = runtime.random_inputs(model_with_near_neutral_ops())
    before = runtime.infer(runtime.compile_model(model_with_near_neutral_ops()), x)[0]
    after = runtime.infer(runtime.compile_model(graph), x)[0]
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-7)


def test_example_script_from_the_shell(tmp_path):
    source = ovq.save_model(model_with_neutral_ops(), tmp_path / "in.xml")
    proc = subprocess.run([sys.executable, str(EXAMPLE), str(source), str(tmp_path / "out.xml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "drop-neutral-arithmetic: changed" in proc.stdout
    assert ovq.read_model(tmp_path / "out.xml").op_histogram().get("Multiply", 0) == 0
