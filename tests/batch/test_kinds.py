"""The ``compress`` job kind (``ovq.compress_weights`` in a batch worker), run in-process
through :func:`ovq.batch.worker.run_job` as a worker runs it."""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

from ovq.batch.manifest import load_manifest
from ovq.batch.worker import run_job


@pytest.fixture
def matmuls(workspace):
    """``models/mlp.xml``: x[1, 64] -> MatMul 64x128 -> ReLU -> MatMul 128x32 (FP32 weights)."""
    rng = np.random.default_rng(1)
    x = ops.parameter([1, 64], np.float32, name="x")
    x.output(0).set_names({"x"})
    h = ops.relu(ops.matmul(x, ops.constant((rng.standard_normal((64, 128)) * 0.1).astype(np.float32)), False, False))
    y = ops.matmul(h, ops.constant((rng.standard_normal((128, 32)) * 0.1).astype(np.float32)), False, False)
    path = workspace / "models" / "mlp.xml"
    ov.save_model(ov.Model([y], [x], "mlp"), path, compress_to_fp16=False)
    np.save(workspace / "mlp.npy", rng.standard_normal((4, 1, 64)).astype(np.float32))
    return path


def _infer(xml, x):
    core = ov.Core()
    return core.compile_model(core.read_model(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})([x])[0]


def test_compress_job_writes_a_smaller_model_that_computes_the_same_function(workspace, manifest, matmuls):
    path = manifest("""
        [defaults]
        data = "calib.npy"
        [[job]]
        model = "models/mlp.xml"
        kind = "compress"
        mode = "int4_sym"
        group_size = 32
        all_layers = true
    """)
    [job] = load_manifest(path, workspace / "out")
    assert job.data is None  # [defaults] data is for quantize jobs: a compress job reads only its own
    outcome = run_job(job.to_spec(), str(workspace / "staging"))
    assert outcome["ok"], outcome
    result = outcome["result"]
    assert result["precisions"] == {"int4_sym g32": 2}
    assert "int8_coverage" not in result  # no runtime INT8 audit for weight-only compression
    assert result["size_after"] < result["size_before"] / 3  # 4-bit weights; the .xml does not shrink
    staged = workspace / "staging" / "int8.xml"
    assert staged.with_suffix(".bin").is_file() and not (workspace / "out").exists()  # the driver commits
    x = np.load(workspace / "mlp.npy")[0]
    fp, q = _infer(matmuls, x), _infer(staged, x)
    assert not np.array_equal(fp, q)
    assert np.abs(q - fp).max() < 0.15 * np.abs(fp).max()


def test_compress_job_data_goes_to_compress_weights_as_dataset(workspace, manifest, matmuls):
    path = manifest("""
        [[job]]
        model = "models/mlp.xml"
        kind = "compress"
        data = "mlp.npy"
    """)
    [job] = load_manifest(path, workspace / "out")
    outcome = run_job(job.to_spec(), str(workspace / "staging"))
    # int8_asym (the default) takes no dataset, as nncf.compress_weights: the option error names the job
    assert not outcome["ok"]
    assert outcome["error"].startswith(f"{path}:1: job[0]: ") and "dataset" in outcome["error"]


@pytest.mark.slow
def test_a_manifest_can_quantize_some_models_and_compress_others(workspace, manifest, matmuls):
    from ovq.batch import run

    path = manifest("""
        [defaults]
        data = "calib.npy"
        subset_size = 16
        output = "{outdir}/{name}/int8.xml"
        [[job]]
        name = "q"
        model = "models/digits.xml"
        [[job]]
        name = "c"
        model = "models/mlp.xml"
        kind = "compress"
        mode = "int4_asym"
        group_size = 16
    """)
    result = run(path, workspace / "out", jobs=2, progress=False)
    q, c = result.records
    assert q.status == c.status == "done", result.table()
    assert q.int8_layers == 5 and q.precisions is None
    assert c.int8_layers is None and c.precisions == {"int4_asym g16": 1, "int8_asym": 1}  # the last MatMul stays 8-bit
    table = result.table().splitlines()
    assert table[0].split()[-3:] == ["weights", "per", "precision"] and "int4_asym g16: 1, int8_asym: 1" in table[3]
    assert "int4_asym g16: 1, int8_asym: 1" in result.summary_csv.read_text()
    x = np.load(workspace / "mlp.npy")[0]
    assert np.abs(_infer(workspace / "out" / "c" / "int8.xml", x) - _infer(matmuls, x)).max() > 0
    again = run(path, workspace / "out", progress=False)
    assert [r.status for r in again.records] == ["skipped", "skipped"]
