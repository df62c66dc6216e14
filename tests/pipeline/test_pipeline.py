"""Pass contract, registry, textual pipelines and the pass manager."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import openvino as ov
import openvino.opset13 as op
import pytest

import ovq
from ovq.pipeline import (
    Pass,
    PassContext,
    PassError,
    Pipeline,
    format_pipeline,
    get_pass,
    parse_pipeline,
    register_pass,
    registered_passes,
    split_spec,
)


@register_pass
@dataclass(frozen=True)
class _OptionsPass(Pass):
    """Test pass with typed options; changes nothing."""

    name = "test-options"
    input: str = "x"
    mean: tuple[float, ...] = ()
    reverse_channels: bool = False
    count: int = 1

    def run(self, graph, ctx):
        pass


@register_pass
@dataclass(frozen=True)
class _AddReluPass(Pass):
    """Test pass: append a Relu after the first Result's producer (a real edit)."""

    name = "test-add-relu"

    def run(self, graph, ctx):
        result = graph.results()[0]
        src, k = graph.producer(result, 0)
        relu = graph.add_op("Relu", f"extra_relu_{graph.revision}", num_inputs=1)
        graph.connect(src, k, relu, 0)
        graph.replace_output(src, k, relu, 0)


@register_pass
@dataclass(frozen=True)
class _BreakGraphPass(Pass):
    """Test pass: leaves an input unconnected."""

    name = "test-break"

    def run(self, graph, ctx):
        result = graph.results()[0]
        graph.disconnect(result, 0)


@register_pass
@dataclass(frozen=True)
class _CrashPass(Pass):
    """Test pass: raises."""

    name = "test-crash"

    def run(self, graph, ctx):
        raise ZeroDivisionError("boom")


@register_pass
@dataclass(frozen=True)
class _TouchOnceThenStopPass(Pass):
    """Test pass: renames the first op until it carries a suffix (converges in one step)."""

    name = "test-converge"

    def run(self, graph, ctx):
        node = graph.parameters()[0]
        if not graph.op(node).name.endswith("_done"):
            graph.op(node).name += "_done"
            graph.touch(node)


def tiny_graph() -> ovq.Graph:
    x = op.parameter([1, 4], np.float32, name="x")
    y = op.multiply(x, op.constant(np.full((1, 4), 2.0, np.float32)), name="y")
    return ovq.Graph.from_ov(ov.Model([op.relu(y, name="out")], [x], "tiny"))


def test_textual_pipeline_roundtrips():
    spec = "eliminate-dead-code,test-options{input=image;mean=123.675,116.28,103.53;reverse_channels=true},fold-constants"
    passes = parse_pipeline(spec)
    assert passes[1] == _OptionsPass(input="image", mean=(123.675, 116.28, 103.53), reverse_channels=True)
    assert format_pipeline(passes) == spec
    assert format_pipeline(parse_pipeline(format_pipeline(passes))) == spec


def test_spec_errors_are_specific():
    with pytest.raises(PassError, match="unknown pass 'nope'; known passes: .*fold-constants"):
        parse_pipeline("fold-constants,nope")
    with pytest.raises(PassError, match="has no option 'colour'.*options: count, input, mean, reverse_channels"):
        parse_pipeline("test-options{colour=red}")
    with pytest.raises(PassError, match="option count='many'"):
        parse_pipeline("test-options{count=many}")
    with pytest.raises(PassError, match="never closed"):
        split_spec("test-options{count=1")
    with pytest.raises(PassError, match="needs key=value"):
        split_spec("test-options{count}")


def test_modified_flag_is_tracked_not_claimed():
    graph = tiny_graph()
    assert not get_pass("test-options")()(graph).modified
    assert get_pass("test-add-relu")()(graph).modified
    assert not get_pass("eliminate-dead-code")()(graph).modified


def test_pipeline_log_timing_and_verification():
    graph = tiny_graph()
    ctx = PassContext()
    result = Pipeline("test-options,test-add-relu,eliminate-dead-code").run(graph, ctx)
    assert result.modified
    assert [(r.name, r.modified) for r in ctx.records] == [
        ("test-options", False), ("test-add-relu", True), ("eliminate-dead-code", False)]
    assert all(r.seconds >= 0 for r in ctx.records)
    assert set(ctx.timings()) == {"test-options", "test-add-relu", "eliminate-dead-code"}


def test_verifier_catches_a_pass_that_breaks_the_graph():
    with pytest.raises(PassError, match=r"(?s)graph invalid after pass 'test-break' \(passes before: \['test-options'\]\).*not connected"):
        Pipeline("test-options,test-break").run(tiny_graph())
    # With verification off the broken graph goes through (the user asked for it).
    Pipeline("test-break").run(tiny_graph(), PassContext(verify=False))


def test_error_inside_a_pass_names_it_and_the_passes_before():
    with pytest.raises(PassError, match=r"pass 'test-crash' failed after \['test-options', 'test-add-relu'\]: ZeroDivisionError: boom"):
        Pipeline("test-options,test-add-relu,test-crash").run(tiny_graph())


class _ReportedError(ovq.OvqError):
    """An ovq error class a pass raises on purpose."""


@register_pass
@dataclass(frozen=True)
class _RefusePass(Pass):
    """Test pass: raises an OvqError subclass."""

    name = "test-refuse"

    def run(self, graph, ctx):
        raise _ReportedError("input 'x' cannot be used")


@register_pass
@dataclass(frozen=True)
class _NestedPipelinePass(Pass):
    """Test pass: runs a pipeline that fails inside it."""

    name = "test-nested"

    def run(self, graph, ctx):
        Pipeline("test-options,test-refuse").run(graph)


def test_ovq_error_inside_a_pass_keeps_its_class_and_names_the_pass():
    with pytest.raises(_ReportedError) as info:
        Pipeline("test-options,test-refuse").run(tiny_graph())
    exc = info.value
    assert type(exc) is _ReportedError and not isinstance(exc, PassError)  # not wrapped
    assert exc.pass_name == "test-refuse" and exc.passes_before == ("test-options",)
    assert str(exc) == "input 'x' cannot be used"
    assert exc.__notes__ == ["in pass 'test-refuse', after ['test-options']"]
    assert exc.__cause__ is None  # the pass's own exception, not a wrapper


def test_nested_pipeline_error_keeps_the_inner_pass_and_notes_the_outer():
    with pytest.raises(_ReportedError) as info:
        Pipeline("test-add-relu,test-nested").run(tiny_graph())
    exc = info.value
    assert exc.pass_name == "test-refuse" and exc.passes_before == ("test-options",)
    assert exc.__notes__ == ["in pass 'test-refuse', after ['test-options']",
                             "in pass 'test-nested', after ['test-add-relu']"]


def test_a_bug_in_a_pass_becomes_pass_error_with_attributes():
    with pytest.raises(PassError) as info:
        Pipeline("test-options,test-crash").run(tiny_graph())
    assert type(info.value) is PassError and isinstance(info.value.__cause__, ZeroDivisionError)
    assert info.value.pass_name == "test-crash" and info.value.passes_before == ("test-options",)


def test_fixpoint_repeats_until_nothing_changes():
    ctx = PassContext()
    Pipeline("test-converge,eliminate-dead-code", fixpoint=True).run(tiny_graph(), ctx)
    assert [r.iteration for r in ctx.records] == [0, 0, 1, 1]
    with pytest.raises(PassError, match="did not reach a fixpoint in 3 iterations"):
        Pipeline("test-add-relu", fixpoint=True, max_iterations=3).run(tiny_graph())


def test_dump_after_writes_ir(tmp_path):
    ctx = PassContext(dump_after={"test-add-relu"}, dump_dir=tmp_path)
    Pipeline("test-options,test-add-relu").run(tiny_graph(), ctx)
    (dump,) = tmp_path.glob("*.xml")
    assert dump.name == "002-test-add-relu.xml"
    assert ovq.read_model(dump).op_histogram()["Relu"] == 2


def test_run_pipeline_returns_the_same_kind(tmp_path):
    model = ovq.Graph.from_ov(tiny_graph().to_ov()).to_ov()
    out = ovq.run_pipeline(model, "test-add-relu")
    assert isinstance(out, ov.Model) and out is not model
    graph = tiny_graph()
    assert ovq.run_pipeline(graph, "test-add-relu") is graph
    path = ovq.save_model(tiny_graph(), tmp_path / "t.xml")
    assert isinstance(ovq.run_pipeline(path, "test-add-relu"), ovq.Graph)
    written = ovq.run_pipeline(path, "test-add-relu", output=tmp_path / "o.xml")
    assert written == tmp_path / "o.xml" and written.exists()


def test_registration_rules():
    with pytest.raises(PassError, match="kebab-case"):
        @register_pass
        @dataclass(frozen=True)
        class Bad(Pass):
            name = "Bad_Name"

    with pytest.raises(PassError, match="frozen"):
        @register_pass
        class NotFrozen(Pass):
            name = "not-frozen"


def test_builtins_come_from_the_entry_point_group():
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="ovq.passes")}
    assert {"eliminate-dead-code", "fold-constants"} <= names
    assert {"eliminate-dead-code", "fold-constants"} <= set(registered_passes())
