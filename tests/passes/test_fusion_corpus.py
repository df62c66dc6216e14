"""The cleanup + fusion pipeline on real models: outputs before/after within tolerance.

Pipeline: ``fold-constants,fuse-pad,fuse-batchnorm,merge-linear-chains,fold-linear,
eliminate-dead-code``. Reference and result run on OpenVINO CPU at the f32 hint on the
asset's example inputs; the check is ``max|after − before| ≤ ATOL + RTOL·max|before|``
with ``RTOL = 1e-5``, ``ATOL = 1e-5`` (folding rounds each new weight once). Each test
prints the max abs diff and the op counts that changed (run with ``-s`` to see them).

The onnx light zoo stores its convolution weights as ConstantOfShape fills, so the
real graphs compute constant outputs (softmax = 0.001 everywhere) and any rewrite would
"agree". For those models the reference is the graph after ``fold-constants`` with the
Conv/GroupConv/MatMul weights replaced by seeded He-normal values; the BN statistics
and everything else stay as shipped.
"""

from __future__ import annotations

import numpy as np
import pytest

import ovq
from ovq import runtime
from ovq.pipeline import Pipeline
from ovq_testing import assets

PIPELINE = "fold-constants,fuse-pad,fuse-batchnorm,merge-linear-chains,fold-linear,eliminate-dead-code"
RTOL = 1e-5
ATOL = 1e-5

FAST = ["digits", "resnet_like"]
ZOO = ["efficientnet_lite0", "minilm"] + [
    f"onnx_light/{m}" for m in ("resnet50", "inception_v1", "inception_v2", "densenet121", "shufflenet",
                                "squeezenet", "bvlc_alexnet", "vgg19", "zfnet512")
]


def load(name: str) -> ovq.Graph:
    try:
        src = assets.asset_path(name)
    except assets.AssetUnavailable as exc:
        pytest.skip(str(exc))
    graph = ovq.read_model(src)
    if name.startswith("onnx_light/"):
        ovq.run_pipeline(graph, "fold-constants,eliminate-dead-code")
        randomize_weights(graph, seed=0)
    return graph


def randomize_weights(graph: ovq.Graph, seed: int) -> None:
    """He-normal weights for every Conv/GroupConv/MatMul whose weights are a float Const."""
    rng = np.random.default_rng(seed)
    for node in graph.nodes_of_type("Convolution", "GroupConvolution", "MatMul"):
        producer = graph.producer(node, 1)
        if producer is None or not graph.op(producer[0]).is_const:
            continue
        w = graph.const_value(producer[0])
        if w.dtype != np.float32 or w.ndim < 2:
            continue
        kind = graph.op(node).type
        fan_in = w.shape[-2] if kind == "MatMul" else int(np.prod(w.shape[1:] if kind == "Convolution" else w.shape[2:]))
        graph.set_const_value(producer[0], (rng.standard_normal(w.shape) * np.sqrt(2.0 / fan_in)).astype(np.float32))


def changed_counts(before: dict[str, int], after: dict[str, int]) -> dict[str, tuple[int, int]]:
    return {k: (before.get(k, 0), after.get(k, 0)) for k in sorted(set(before) | set(after))
            if before.get(k, 0) != after.get(k, 0)}


def check_pipeline(name: str) -> tuple[float, dict[str, tuple[int, int]]]:
    graph = load(name)
    inputs = assets.example_inputs(name)
    reference = runtime.infer(runtime.compile_model(graph), inputs)
    before = graph.op_histogram()
    ovq.run_pipeline(graph, PIPELINE)
    graph.verify()
    after = graph.op_histogram()
    result = runtime.infer(runtime.compile_model(graph), inputs)
    diff = runtime.max_abs_diff(reference, result)
    scale = max(float(np.max(np.abs(r))) for r in reference)
    counts = changed_counts(before, after)
    print(f"\n{name}: max abs diff {diff:.3g} (output max {scale:.3g}); ops {sum(before.values())} -> "
          f"{sum(after.values())}; changed {counts}")
    assert diff <= ATOL + RTOL * scale, f"{name}: max abs diff {diff} over {ATOL} + {RTOL}·{scale}"
    return diff, counts


@pytest.mark.parametrize("name", FAST)
def test_fusion_pipeline_fast(name):
    check_pipeline(name)


@pytest.mark.zoo
@pytest.mark.parametrize("name", ZOO)
def test_fusion_pipeline_zoo(name):
    _, counts = check_pipeline(name)
    if name in ("onnx_light/resnet50", "onnx_light/inception_v2", "onnx_light/shufflenet"):
        # Every BN in these follows a convolution.
        assert counts["BatchNormInference"][1] == 0


@pytest.mark.parametrize("name", FAST)
def test_fusion_pipeline_is_idempotent(name):
    graph = load(name)
    ovq.run_pipeline(graph, PIPELINE)
    assert not Pipeline(PIPELINE).run(graph).modified
