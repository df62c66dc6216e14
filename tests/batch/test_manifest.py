"""Manifest reading: fields, defaults, globs, templates, and errors naming file, line and field."""

from __future__ import annotations

import json

import pytest

from ovq.batch.manifest import load_manifest
from ovq.errors import ManifestError


def test_minimal_form_with_defaults(workspace, manifest):
    path = manifest("""
        [defaults]
        subset_size = 300
        [[job]]
        model = "models/digits.xml"
        data = "calib.npy"
    """)
    (job,) = load_manifest(path, workspace / "out")
    assert job.model == workspace / "models" / "digits.xml"
    assert job.data == str(workspace / "calib.npy")
    assert job.options == {"subset_size": 300}
    assert job.output == workspace / "out" / "digits" / "int8.xml"
    assert job.kind == "quantize" and job.error is None
    assert job.where == f"{path}:3: job[0]"


def test_job_overrides_defaults_and_data_options_are_separate(workspace, manifest):
    path = manifest("""
        [defaults]
        subset_size = 100
        preset = "mixed"
        data = "calib.npy"
        [[job]]
        model = "models/digits.xml"
        subset_size = 10
        input_shape = "1,1,8,8"
        [job.ignored_scope]
        types = ["MatMul"]
    """)
    (job,) = load_manifest(path, workspace / "out")
    assert job.options == {"subset_size": 10, "preset": "mixed", "ignored_scope": {"types": ["MatMul"]}}
    assert job.data_options == {"input_shape": "1,1,8,8"}


def test_glob_expands_to_one_job_per_model_in_sorted_order(workspace, manifest):
    path = manifest("""
        [[job]]
        model = "models/*.xml"
        data = "calib.npy"
        output = "{outdir}/{stem}-{index}.xml"
    """)
    jobs = load_manifest(path, workspace / "out")
    assert [j.model.name for j in jobs] == ["digits.xml", "tiny.xml"]
    assert [j.output.name for j in jobs] == ["digits-0.xml", "tiny-1.xml"]


def test_unknown_option_names_file_line_and_field(workspace, manifest):
    path = manifest("""
        [[job]]
        model = "models/digits.xml"
        data = "calib.npy"

        [[job]]
        model = "models/tiny.xml"
        data = "calib.npy"
        subset_sise = 3
    """)
    with pytest.raises(ManifestError, match=rf"^{path}:8: job\[1\]\.subset_sise: not a job field nor an option of "
                                            r"ovq\.quantization\.quantize\.quantize"):
        load_manifest(path, workspace / "out")


def test_unknown_option_in_defaults_points_at_the_defaults_line(workspace, manifest):
    path = manifest("""
        [defaults]
        bias = 1
        [[job]]
        model = "models/digits.xml"
        data = "calib.npy"
    """)
    with pytest.raises(ManifestError, match=rf"^{path}:2: defaults\.bias: not a job field"):
        load_manifest(path, workspace / "out")


def test_sub_table_option_points_at_its_header(workspace, manifest):
    path = manifest("""
        [[job]]
        model = "models/digits.xml"
        data = "calib.npy"
        [job.ignored_scop]
        types = ["MatMul"]
    """)
    with pytest.raises(ManifestError, match=rf"^{path}:4: job\[0\]\.ignored_scop: not a job field"):
        load_manifest(path, workspace / "out")


def test_planned_kinds_are_refused_clearly_and_unknown_kinds_listed(workspace, manifest, monkeypatch):
    from ovq.batch import kinds

    monkeypatch.setitem(kinds.PLANNED_KINDS, "prune", "pruning is not in this ovq version")
    path = manifest("""
        [[job]]
        model = "models/digits.xml"
        data = "calib.npy"
        kind = "prune"
    """)
    with pytest.raises(ManifestError, match=r":4: job\[0\]\.kind: job kind 'prune' is not available yet: pruning"):
        load_manifest(path, workspace / "out")
    path = manifest("""
        [[job]]
        model = "models/digits.xml"
        data = "calib.npy"
        kind = "distil"
    """)
    with pytest.raises(ManifestError, match=r"unknown job kind 'distil' \(kinds: compress, quantize, "
                                            r"quantize-with-accuracy-control\)"):
        load_manifest(path, workspace / "out")


def test_compress_jobs_take_compress_weights_options_and_need_no_data(workspace, manifest):
    path = manifest("""
        [[job]]
        model = "models/digits.xml"
        kind = "compress"
        mode = "int4_asym"
        group_size = -1
        ratio = 0.5
    """)
    [job] = load_manifest(path, workspace / "out")
    assert job.data is None and job.options == {"mode": "int4_asym", "group_size": -1, "ratio": 0.5}
    path = manifest("""
        [[job]]
        model = "models/digits.xml"
        kind = "compress"
        subset_size = 3
        preset = "mixed"
    """)
    with pytest.raises(ManifestError, match=r":5: job\[0\]\.preset: not a job field nor an option of "
                                            r"ovq\.compression\.compress\.compress_weights \(options: .*group_size"):
        load_manifest(path, workspace / "out")
    path = manifest("""
        [[job]]
        model = "models/digits.xml"
        kind = "compress"
        spill_dir = "/tmp"
    """)
    with pytest.raises(ManifestError, match=r"job\[0\]\.spill_dir: not a job field"):
        load_manifest(path, workspace / "out")


def test_shards_must_be_a_positive_count_on_a_quantize_job(workspace, manifest):
    for value, message in (("0", r":4: job\[0\]\.shards: expected a positive number of slices, got 0"),
                           ("true", r"job\[0\]\.shards: expected a positive number of slices, got True"),
                           ("2.5", r"job\[0\]\.shards: expected a positive number of slices, got 2\.5")):
        path = manifest(f"""
            [[job]]
            model = "models/digits.xml"
            data = "calib.npy"
            shards = {value}
        """)
        with pytest.raises(ManifestError, match=message):
            load_manifest(path, workspace / "out")
    path = manifest("""
        [[job]]
        model = "models/digits.xml"
        kind = "compress"
        shards = 2
    """)
    with pytest.raises(ManifestError, match=r"job\[0\]\.shards: only quantize jobs can be sharded \(this job is "
                                            r"'compress'\)"):
        load_manifest(path, workspace / "out")
    path = manifest("""
        [[job]]
        model = "models/digits.xml"
        data = "calib.npy"
        shards = 3
    """)
    assert load_manifest(path, workspace / "out")[0].shards == 3


def test_accuracy_control_needs_a_metric_and_takes_its_options(workspace, manifest):
    path = manifest("""
        [[job]]
        model = "models/digits.xml"
        data = "calib.npy"
        kind = "quantize-with-accuracy-control"
        max_drop = 0.02
    """)
    with pytest.raises(ManifestError, match=r":1: job\[0\]: kind 'quantize-with-accuracy-control' needs metric"):
        load_manifest(path, workspace / "out")
    path.write_text(path.read_text() + 'metric = "metrics:top1"\n')
    (job,) = load_manifest(path, workspace / "out")
    assert job.options == {"max_drop": 0.02} and job.metric == "metrics:top1"


def test_two_jobs_writing_one_output_are_refused(workspace, manifest):
    path = manifest("""
        [[job]]
        model = "models/digits.xml"
        data = "calib.npy"
        [[job]]
        model = "models/digits.xml"
        data = "calib.npy"
        preset = "mixed"
    """)
    with pytest.raises(ManifestError, match=r":4: job\[1\] and .*:1: job\[0\] .*both write .*digits/int8.xml"):
        load_manifest(path, workspace / "out")


def test_output_that_is_a_folder_is_refused(workspace, manifest):
    (workspace / "out" / "digits" / "int8.xml").mkdir(parents=True)
    path = manifest("""
        [[job]]
        model = "models/digits.xml"
        data = "calib.npy"
    """)
    with pytest.raises(ManifestError, match="exists and is not a regular file"):
        load_manifest(path, workspace / "out")


@pytest.mark.parametrize(("text", "message"), [
    ("[[job]]\nmodel = \n", r"not valid TOML: .*line 2"),
    ("[defaults]\nsubset_size = 1\n", "no \\[\\[job\\]\\] tables"),
    ("[[job]]\ndata = 'calib.npy'\n", r":1: job\[0\]: the job names no model"),
    ("[[job]]\nmodel = 'models/digits.xml'\ndata = 'calib.npy'\noutput = '{outdir}/{model}.xml'\n",
     r":4: job\[0\]\.output: unknown template field \{model\}"),
    ("[[job]]\nmodel = 'models/digits.xml'\ndata = 'calib.npy'\noutput = '{outdir}/a.onnx'\n",
     r":4: job\[0\]\.output: the output must be an .xml path"),
    ("[[job]]\nmodel = 'models/digits.xml'\ndata = 'calib.npy'\ntimeout = -1\n",
     r":4: job\[0\]\.timeout: expected a positive number"),
    ("[[job]]\nmodel = 3\ndata = 'calib.npy'\n", r":2: job\[0\]\.model: expected a string"),
    ("[[jobz]]\nmodel = 'a'\n", "unknown top-level key 'jobz'"),
])
def test_malformed_manifests(workspace, manifest, text, message):
    with pytest.raises(ManifestError, match=message):
        load_manifest(manifest(text), workspace / "out")


def test_missing_model_and_empty_glob_are_the_jobs_own_errors(workspace, manifest):
    path = manifest("""
        [[job]]
        model = "models/nope.xml"
        data = "calib.npy"
        [[job]]
        model = "zoo/**/*.xml"
        data = "calib.npy"
        [[job]]
        model = "models/tiny.xml"
        data = "calib.npy"
    """)
    jobs = load_manifest(path, workspace / "out")
    assert jobs[0].error.startswith("no model file") and "nope.xml" in jobs[0].error
    assert "matches no file" in jobs[1].error
    assert jobs[2].error is None


def test_json_manifest_and_loader_data(workspace):
    path = workspace / "batch.json"
    path.write_text(json.dumps({"defaults": {"subset_size": 8},
                                "job": [{"model": "models/tiny.xml", "data": "loaders:samples", "name": "t"}]}))
    (job,) = load_manifest(path, workspace / "out")
    assert job.data == "loaders:samples" and job.data_is_loader and job.name == "t"
    path.write_text(json.dumps({"job": [{"model": "models/tiny.xml", "data": "x", "bogus": 1}]}))
    with pytest.raises(ManifestError, match=r"batch.json: job\[0\]\.bogus: not a job field"):
        load_manifest(path, workspace / "out")
