"""Job keys change with the model bytes, the data, the options and the output, and only then."""

from __future__ import annotations

import dataclasses

import numpy as np

from ovq.batch.keys import job_key
from ovq.batch.manifest import load_manifest


def test_key_follows_model_data_and_options(workspace, manifest):
    path = manifest("""
        [[job]]
        model = "models/tiny.xml"
        data = "calib.npy"
    """)
    (job,) = load_manifest(path, workspace / "out")
    k0 = job_key(job)
    assert job_key(load_manifest(path, workspace / "out")[0]) == k0
    assert job_key(dataclasses.replace(job, options={"subset_size": 5})) != k0
    assert job_key(dataclasses.replace(job, output=workspace / "x.xml")) != k0
    np.save(workspace / "calib.npy", np.zeros((4, 1, 1, 8, 8), np.float32))
    k1 = job_key(job)
    assert k1 != k0
    with open(workspace / "models" / "tiny.bin", "r+b") as f:
        f.write(b"\xff")
    assert job_key(job) not in (k0, k1)


def test_loader_key_follows_its_source(workspace, manifest):
    (workspace / "loaders.py").write_text("def samples():\n    return []\n")
    path = manifest("""
        [[job]]
        model = "models/tiny.xml"
        data = "loaders:samples"
    """)
    (job,) = load_manifest(path, workspace / "out")
    k0 = job_key(job)
    (workspace / "loaders.py").write_text("def samples():\n    return [1]\n")
    assert job_key(job) != k0
