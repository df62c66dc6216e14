"""merge-linear-chains: structure and numerics on tiny graphs; the rewrite framework's rules."""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as op

import ovq
from ovq import runtime
from ovq.pipeline import get_pass
from ovq.rewrite import MatchTracer, apply_rules

from passes_fusion_rules import MergeAddChain, MergeMultiplyChain, SwapAddMultiply  # noqa: F401


def chain_model(share_inner: bool = False, broadcast: bool = False) -> ov.Model:
    rng = np.random.default_rng(0)
    x = op.parameter([1, 3, 4, 4], np.float32, name="x")
    c = lambda shape: op.constant(rng.uniform(0.5, 2.0, shape).astype(np.float32))  # noqa: E731
    a = op.multiply(x, c((1, 3, 1, 1)), name="m1")
    b = op.multiply(a, c(() if not broadcast else (2, 1, 3, 1, 1)), name="m2")
    d = op.add(b, c((1, 3, 1, 1)), name="a1")
    e = op.multiply(d, c((1, 3, 1, 1)), name="m3")
    f = op.add(c((1, 3, 1, 1)), e, name="a2")  # constant on the left: commutative match
    outs = [op.relu(f, name="out")]
    if share_inner:
        outs.append(op.result(a))
    return ov.Model(outs, [x], "chain")


def check_numerics(model, graph):
    x = runtime.random_inputs(model)
    a = runtime.infer(runtime.compile_model(model), x)
    b = runtime.infer(runtime.compile_model(graph), x)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-6, atol=1e-6)


def test_chain_collapses_to_one_multiply_and_one_add():
    model = chain_model()
    graph = ovq.Graph.from_ov(model)
    assert get_pass("merge-linear-chains")()(graph).modified
    hist = graph.op_histogram()
    assert hist["Multiply"] == 1 and hist["Add"] == 1
    (result,) = graph.results()
    relu = graph.producer(result, 0)[0]
    add = graph.producer(relu, 0)[0]
    assert graph.op(add).type == "Add" and graph.op(add).name == "a2"
    mul = graph.producer(add, 0)[0]
    assert graph.op(mul).type == "Multiply" and graph.producer(mul, 0)[0] == graph.parameters()[0]
    stamps = {a.get("value") for _, o in graph.ops() if o.rt_info is not None for a in o.rt_info}
    assert stamps <= {"merge-multiply-chain", "merge-add-chain", "swap-add-multiply"} and stamps
    check_numerics(model, graph)
    assert not get_pass("merge-linear-chains")()(graph).modified


def test_shared_intermediate_is_not_fused_away():
    model = chain_model(share_inner=True)
    graph = ovq.Graph.from_ov(model)
    tracer = MatchTracer()
    graph.infer_shapes()
    apply_rules(graph, [MergeMultiplyChain(), MergeAddChain(), SwapAddMultiply()], tracer=tracer)
    assert "'m1' is also used by a model output outside the match" in tracer.explain("merge-multiply-chain")
    assert "m1" in {o.name for _, o in graph.ops()}
    graph.verify()
    x = runtime.random_inputs(model)
    a = runtime.infer(runtime.compile_model(model), x)
    b = runtime.infer(runtime.compile_model(graph), x)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-6)


def test_broadcasting_constant_is_refused():
    model = chain_model(broadcast=True)
    graph = ovq.Graph.from_ov(model)
    tracer = MatchTracer()
    graph.infer_shapes()
    apply_rules(graph, [MergeMultiplyChain()], tracer=tracer)
    assert "broadcast" in tracer.explain("merge-multiply-chain")
    assert "m2" in {o.name for _, o in graph.ops()}
