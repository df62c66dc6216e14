"""Memory estimates: grow with the model and inputs, learn from measured peaks, gate admission."""

from __future__ import annotations

import dataclasses

from ovq.batch.journal import Journal
from ovq.batch.manifest import load_manifest
from ovq.batch.memory import PROCESS_BASE, MemoryModel, _input_bytes, raw_estimate


def test_estimate_learns_from_finished_jobs_and_persists(workspace, manifest, tmp_path):
    path = manifest("""
        [[job]]
        model = "models/*.xml"
        data = "calib.npy"
        output = "{outdir}/{stem}.xml"
    """)
    digits, tiny = load_manifest(path, workspace / "out")
    assert _input_bytes(digits.model) == 1 * 1 * 8 * 8 * 4
    assert raw_estimate(digits) > raw_estimate(tiny) > PROCESS_BASE
    assert raw_estimate(dataclasses.replace(digits, options={"subset_size": 1000})) > raw_estimate(digits)
    journal = Journal(tmp_path)
    memory = MemoryModel(journal, budget=10 * raw_estimate(digits))
    assert memory.estimate(digits) == raw_estimate(digits)
    memory.learn(digits, 2 * raw_estimate(digits))
    assert memory.estimate(tiny) == int(2 * raw_estimate(tiny))
    assert MemoryModel(journal, budget=1).scale == 2.0  # a rerun starts from what was learnt
    assert memory.admits(memory.estimate(digits), [])
    assert memory.admits(memory.estimate(digits), [3 * memory.estimate(digits)])
    assert not memory.admits(memory.estimate(digits), [5 * memory.estimate(digits)])
    assert MemoryModel(None, budget=1).admits(10**12, [])  # a lone job always starts
