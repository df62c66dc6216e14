"""The rewrite driver and RewritePass: worklist runs, rounds, convergence, anchors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import openvino as ov
import openvino.opset13 as op
import pytest

import ovq
from ovq.errors import OvqError, RewriteError
from ovq.pipeline import Pipeline, register_pass
from ovq.rewrite import (
    AnyInput,
    MatchTracer,
    OpPattern,
    RewritePass,
    RewriteRule,
    apply_rules,
    apply_until_stable,
)


def chain_graph() -> ovq.Graph:
    x = op.parameter([1, 4], np.float32, name="x")
    y = op.relu(op.relu(x, name="r1"), name="r2")
    return ovq.Graph.from_ov(ov.Model([op.sigmoid(y, name="out")], [x], "chain"))


class ReluToAbs(RewriteRule):
    """Relu(x) → Abs(x) (a test rule, not value-preserving)."""

    name = "relu-to-abs"
    pattern = OpPattern("Relu", [AnyInput("x")], bind="relu")

    def rewrite(self, rw, match):
        new = rw.clone_op(match.root)
        rw.graph.op(new).type = "Abs"
        rw.graph.connect(*match.outputs["x"], new, 0)
        rw.replace_output(match.root, 0, new, 0)


class AbsToRelu(ReluToAbs):
    """Abs(x) → Relu(x): with ReluToAbs, a rule set that never converges."""

    name = "abs-to-relu"
    pattern = OpPattern("Abs", [AnyInput("x")], bind="relu")

    def rewrite(self, rw, match):
        new = rw.clone_op(match.root)
        rw.graph.op(new).type = "ReLU"  # the IR spelling
        rw.graph.connect(*match.outputs["x"], new, 0)
        rw.replace_output(match.root, 0, new, 0)


def stamps(graph):
    return {o.name: [a.get("value") for a in o.rt_info if a.get("name") == "ovq_rule"]
            for _, o in graph.ops() if o.rt_info is not None}


def test_apply_rules_rewrites_every_match_and_stamps_once():
    graph = chain_graph()
    tracer = MatchTracer()
    assert apply_rules(graph, [ReluToAbs()], tracer=tracer) == 2
    assert graph.op_histogram().get("Relu", 0) == 0 and graph.op_histogram()["Abs"] == 2
    assert stamps(graph) == {"r1": ["relu-to-abs"], "r2": ["relu-to-abs"]}
    assert [e.outcome for e in tracer.entries] == ["success", "success"]
    graph.verify()


def test_a_rule_set_that_does_not_converge_raises_rewrite_error():
    graph = chain_graph()
    with pytest.raises(RewriteError, match=r"rules \[relu-to-abs, abs-to-relu\] do not converge: "
                                           r"more than 50 rewrites \(the last: "):
        apply_rules(graph, [ReluToAbs(), AbsToRelu()], max_rewrites=50)
    assert issubclass(RewriteError, OvqError)


@register_pass
@dataclass(frozen=True)
class _FlipFlopPass(RewritePass):
    """Test pass: two rules that undo each other."""

    name = "test-flip-flop"
    rules = (ReluToAbs, AbsToRelu)
    max_rewrites = 20


def test_non_convergence_inside_a_pipeline_is_a_rewrite_error_naming_the_pass():
    with pytest.raises(RewriteError, match=r"rules \[relu-to-abs, abs-to-relu\] do not converge") as info:
        Pipeline("eliminate-dead-code,test-flip-flop").run(chain_graph())
    assert info.value.pass_name == "test-flip-flop" and info.value.passes_before == ("eliminate-dead-code",)


@register_pass
@dataclass(frozen=True)
class _ReluToAbsPass(RewritePass):
    """Test pass: Relu → Abs everywhere."""

    name = "test-relu-to-abs"
    rules = (ReluToAbs,)


def test_rewrite_pass_is_a_frozen_pass_whose_run_is_the_rules():
    graph = chain_graph()
    result = _ReluToAbsPass()(graph)
    assert result.modified and graph.op_histogram()["Abs"] == 2
    assert not _ReluToAbsPass()(graph).modified
    with pytest.raises(dataclasses.FrozenInstanceError):
        _ReluToAbsPass().max_rounds = 3  # class-level settings, not options
    assert _ReluToAbsPass.option_fields() == [] and _ReluToAbsPass().spec() == "test-relu-to-abs"


def test_rewrite_pass_skips_graphs_without_an_anchor():
    x = op.parameter([1, 4], np.float32, name="x")
    graph = ovq.Graph.from_ov(ov.Model([op.sigmoid(x, name="out")], [x], "no_relu"))
    for _, o in graph.ops():
        for port in o.outputs:
            port.shape = None  # would force shape inference if the pass did not skip
    before = graph.revision
    assert not _ReluToAbsPass()(graph).modified and graph.revision == before
    assert all(port.shape is None for _, o in graph.ops() for port in o.outputs)


class RenameAfterConsumer(RewriteRule):
    """Renames a Relu once the Relu it feeds is renamed: one worklist run renames only the last."""

    name = "rename"
    pattern = OpPattern("Relu", [AnyInput("x")], bind="relu")

    def check(self, graph, match):
        if graph.op(match.root).name.endswith("!"):
            return "renamed already"
        consumer = graph.op(graph.consumers(match.root, 0)[0][0])
        return "its consumer first" if consumer.type == "ReLU" and not consumer.name.endswith("!") else None

    def rewrite(self, rw, match):
        new = rw.clone_op(match.root, name=rw.graph.op(match.root).name + "!")
        rw.graph.connect(*match.outputs["x"], new, 0)
        rw.replace_output(match.root, 0, new, 0)


def relu_chain(n: int) -> ovq.Graph:
    x = op.parameter([1, 4], np.float32, name="x")
    y = x
    for i in range(n):
        y = op.relu(y, name=f"r{i}")
    return ovq.Graph.from_ov(ov.Model([op.sigmoid(y, name="out")], [x], "chain"))


def test_apply_until_stable_repeats_worklist_runs(caplog):
    graph = relu_chain(4)
    assert apply_rules(graph, [RenameAfterConsumer()]) == 1  # the producer of a rewritten op is not re-queued
    assert apply_until_stable(graph, [RenameAfterConsumer()]) == 3
    assert sorted(o.name for _, o in graph.ops() if o.type == "ReLU") == ["r0!", "r1!", "r2!", "r3!"]
    assert apply_until_stable(graph, [RenameAfterConsumer()]) == 0

    graph = relu_chain(4)
    with caplog.at_level("WARNING", logger="ovq.rewrite"):
        assert apply_until_stable(graph, [RenameAfterConsumer()], max_rounds=2) == 2
    assert "still rewrote in run 2 of 2" in caplog.text
    graph.verify()  # stopping early leaves a valid graph
