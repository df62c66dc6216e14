"""Sharded quantize jobs: K statistics tasks, their partials merged on the driver, one
finishing task. The fast tests run the tasks in-process through
:func:`ovq.batch.worker.run_job` (what a worker or a Ray task calls); the ``slow`` one runs
``ovq batch --shards`` with real worker processes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ovq.batch import run
from ovq.batch.manifest import load_manifest
from ovq.batch.shards import MERGED_NAME, merge_files
from ovq.batch.worker import run_job
from ovq.errors import OptionError
from ovq_testing.cli import run_cli

JOB = """
    [[job]]
    model = "models/digits.xml"
    data = "calib.npy"
    subset_size = 13
    output = "{outdir}/{name}/int8.xml"
"""


def _staged_files(staging: Path) -> dict[str, bytes]:
    return {p.suffix: p.read_bytes() for p in sorted(staging.glob("int8.*"))}


def test_statistics_tasks_merged_then_finished_write_the_unsharded_bytes(workspace, manifest):
    [job] = load_manifest(manifest(JOB), workspace / "out")
    spec = job.to_spec()
    plain = run_job(spec, str(workspace / "plain"))
    assert plain["ok"], plain
    staging = workspace / "sharded"
    partials = []
    for k in range(2):
        outcome = run_job({**spec, "shard": k, "shards": 2}, str(staging))
        assert outcome["ok"], outcome
        assert outcome["result"]["samples"] == (7, 6)[k]
        partials.append(Path(outcome["result"]["partial"]))
    assert not list(staging.glob("int8.*"))  # statistics tasks write no model
    merged = merge_files(partials, staging / MERGED_NAME)
    assert merged.report.samples == 13 and merged.shards == 2
    finished = run_job({**spec, "statistics": str(staging / MERGED_NAME)}, str(staging))
    assert finished["ok"], finished
    assert finished["result"]["samples"] == 13
    assert finished["result"]["int8_layers"] == plain["result"]["int8_layers"] == 5
    assert _staged_files(staging) == _staged_files(workspace / "plain")


def test_more_shards_than_samples_fails_the_task_with_the_job_location(workspace, manifest):
    path = manifest(JOB.replace("subset_size = 13", "subset_size = 3"))
    [job] = load_manifest(path, workspace / "out")
    outcome = run_job({**job.to_spec(), "shard": 0, "shards": 4}, str(workspace / "s"))
    assert not outcome["ok"]
    assert outcome["error"] == f"{path}:1: job[0]: shards: 4 slices of 3 calibration samples: at most 3 " \
                               "(one sample per slice)"


def test_statistics_of_another_model_are_refused_by_the_finishing_task(workspace, manifest):
    path = manifest(JOB + JOB.replace("digits", "tiny"))
    digits, tiny = load_manifest(path, workspace / "out")
    staging = workspace / "s"
    parts = [Path(run_job({**tiny.to_spec(), "shard": k, "shards": 2}, str(staging))["result"]["partial"])
             for k in range(2)]
    merge_files(parts, staging / MERGED_NAME)
    outcome = run_job({**digits.to_spec(), "statistics": str(staging / MERGED_NAME)}, str(staging))
    assert not outcome["ok"] and "cover other tensors than this run observes" in outcome["error"]


def test_bad_shard_counts_are_refused_before_anything_runs(workspace, manifest):
    path = manifest(JOB)
    with pytest.raises(OptionError, match="shards: must be a positive integer, got 0"):
        run(path, workspace / "out", shards=0)
    assert not (workspace / "out").exists()


def _digests(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("int8.*"))}


@pytest.mark.slow
def test_batch_shards_gives_the_unsharded_outputs(workspace, manifest):
    path = manifest("""
        [defaults]
        data = "calib.npy"
        subset_size = 24
        output = "{outdir}/{name}/int8.xml"
        [[job]]
        name = "a"
        model = "models/digits.xml"
        [[job]]
        name = "b"
        model = "models/digits.xml"
        preset = "mixed"
        fast_bias_correction = false
        [[job]]
        name = "one"
        model = "models/tiny.xml"
        shards = 1
        [[job]]
        name = "too_many"
        model = "models/tiny.xml"
        subset_size = 2
    """)
    plain = run(path, workspace / "plain", jobs=2, progress=False)
    assert [r.status for r in plain.records] == ["done"] * 4, plain.table()
    sharded = run(path, workspace / "sharded", jobs=2, shards=3, progress=False)
    assert [r.status for r in sharded.records] == ["done", "done", "done", "failed"], sharded.table()
    assert [r.shards for r in sharded.records[:3]] == [3, 3, 1]
    assert sharded.records[3].error.endswith("shard 1/3: shards: 3 slices of 2 calibration samples: at most 2 "
                                             "(one sample per slice)")
    digests = _digests(workspace / "plain")
    del digests["too_many/int8.xml"], digests["too_many/int8.bin"]
    assert _digests(workspace / "sharded") == digests
    assert not [p for p in workspace.rglob(".ovq-staging-*")]
    # shards is not part of a job's key: the outputs are the same, so a rerun unsharded skips them
    again = run(path, workspace / "sharded", jobs=2, progress=False)
    assert [r.status for r in again.records] == ["skipped", "skipped", "skipped", "done"]
    proc = run_cli("batch", path, "-o", workspace / "x", "--shards", "0", check=False)
    assert proc.returncode == 2 and "--shards" in proc.stderr


def _fq_ranges(xml: Path) -> dict[str, list[bytes]]:
    import openvino as ov

    out = {}
    for op in ov.Core().read_model(xml).get_ordered_ops():
        if op.get_type_name() == "FakeQuantize":
            out[op.get_friendly_name()] = [op.input_value(k).get_node().get_data().tobytes() for k in range(1, 5)]
    return out


@pytest.mark.zoo
def test_efficientnet_lite0_two_shards_equal_the_unsharded_run(tmp_path):
    import numpy as np

    from ovq_testing import assets

    try:
        xml = Path(assets.asset_path("efficientnet_lite0"))
        crops = assets.efficientnet_crops(100)
    except assets.AssetUnavailable as exc:
        pytest.skip(str(exc))
    np.save(tmp_path / "crops.npy", np.asarray(crops)[:, None])  # 100 samples of [1, 3, 224, 224]
    path = tmp_path / "batch.toml"
    path.write_text(f'[[job]]\nmodel = "{xml}"\ndata = "crops.npy"\nsubset_size = 100\n')
    plain = run(path, tmp_path / "plain", jobs=2, progress=False)
    sharded = run(path, tmp_path / "sharded", jobs=2, shards=2, progress=False)
    assert plain.records[0].status == sharded.records[0].status == "done", (plain.table(), sharded.table())
    assert sharded.records[0].shards == 2 and plain.records[0].int8_layers == sharded.records[0].int8_layers
    a, b = plain.records[0].output, sharded.records[0].output
    ranges = _fq_ranges(Path(a))
    assert len(ranges) > 50 and ranges == _fq_ranges(Path(b))
    assert _digests(tmp_path / "plain") == _digests(tmp_path / "sharded")
