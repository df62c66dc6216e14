"""The .xml records which .bin it was written with; a mismatched pair is refused on read."""

from __future__ import annotations

import os

import numpy as np
import openvino as ov
import openvino.opset13 as op
import pytest

import ovq
from ovq import runtime
from ovq.errors import IRError
from ovq.ir import pairing
from ovq_testing.cli import run_cli


def model(scale: float, width: int = 4) -> ov.Model:
    x = op.parameter([1, width], np.float32, name="x")
    w = op.constant((np.arange(width * 2, dtype=np.float32) * scale).reshape(width, 2), name="weights")
    return ov.Model([op.relu(op.matmul(x, w, False, False, name="mm"), name="act")], [x], "m")


def written(tmp_path, name, scale, width=4):
    path = tmp_path / f"{name}.xml"
    ovq.save_model(ovq.Graph.from_ov(model(scale, width)), path)
    return path


def test_the_record_is_written_checked_and_kept_out_of_the_mirror(tmp_path):
    path = written(tmp_path, "a", 1.0)
    text = path.read_text()
    size = path.with_suffix(".bin").stat().st_size
    assert f'<ovq_weights value="size={size} crc32=' in text
    graph = ovq.read_model(path)
    assert graph.rt_info is None or graph.rt_info.find(pairing.TAG) is None
    assert "ovq_weights" not in graph.to_ov().get_rt_info()
    again = tmp_path / "again.xml"
    ovq.save_model(graph, again)
    assert again.read_bytes() == text.encode()  # re-writing is byte-identical (one record, same digests)
    np.testing.assert_array_equal(
        runtime.infer(runtime.compile_model(str(path)), [np.ones((1, 4), np.float32)])[0],
        runtime.infer(runtime.compile_model(model(1.0)), [np.ones((1, 4), np.float32)])[0],
    )


@pytest.mark.parametrize("width, problem", [(4, "its CRC-32 is"), (6, "it has 48 bytes")])
def test_a_mismatched_pair_is_refused_by_the_reader_and_the_cli(tmp_path, width, problem):
    a, b = written(tmp_path, "a", 1.0), written(tmp_path, "b", 2.0, width)
    os.replace(b.with_suffix(".bin"), a.with_suffix(".bin"))  # a's .xml beside b's .bin
    with pytest.raises(IRError, match=rf"a\.bin is not the weights file this \.xml was written with \({problem}"):
        ovq.read_model(a)
    for command in (("inspect", a), ("convert", a, "-o", tmp_path / "c.xml")):
        proc = run_cli(*command, check=False)
        assert proc.returncode == 2 and "mismatched pair" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "c.xml").exists()


def test_a_record_another_tool_carried_over_is_ignored(tmp_path):
    path = written(tmp_path, "a", 1.0)
    resaved = tmp_path / "resaved.xml"
    ov.save_model(ov.Core().read_model(path), resaved)  # FP16 weights: another .bin, record carried over
    assert "ovq_weights" in resaved.read_text()
    graph = ovq.read_model(resaved)
    assert graph.op_histogram()["MatMul"] == 1


def test_a_kill_between_the_renames_never_leaves_the_old_xml_with_the_new_bin(tmp_path, monkeypatch):
    path = written(tmp_path, "a", 1.0)
    renames = []
    real_replace = os.replace

    def replace(src, dst):
        renames.append(dst)
        if len(renames) == 2:  # the .xml rename: the process dies here
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        ovq.save_model(ovq.Graph.from_ov(model(3.0)), path)
    monkeypatch.undo()
    assert not path.exists()  # no model at the path, rather than a mismatched one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]  # and no temporaries


def test_a_missing_xml_beside_a_killed_writers_temporary_says_so(tmp_path):
    from ovq import files

    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = tmp_path / f".a.xml.ovq-{files.host_tag()}-{dead.pid}-x1y2.tmp"  # as a kill -9 leaves it
    left.write_text("<net/>")
    with pytest.raises(IRError, match=rf"a.xml: no such file \(an interrupted ovq save left {left.name} beside it"):
        ovq.read_model(tmp_path / "a.xml")
    left.rename(tmp_path / f".a.xml.ovq-{files.host_tag()}-{os.getpid()}-x1y2.tmp")  # a live writer
    with pytest.raises(IRError, match=r"a.xml: no such file \(an ovq save is writing it now"):
        ovq.read_model(tmp_path / "a.xml")


def test_a_large_bin_is_checked_by_samples(tmp_path, monkeypatch):
    # Above the whole-file limit the digest covers 256 spread blocks: lower the limit to
    # exercise that path on a small model (the real one is 64 MiB).
    monkeypatch.setattr(pairing, "WHOLE_FILE_LIMIT", 16)
    monkeypatch.setattr(pairing, "_BLOCK", 8)
    a, b = written(tmp_path, "a", 1.0, width=64), written(tmp_path, "b", 2.0, width=64)
    assert ovq.read_model(a).op_histogram()["MatMul"] == 1
    os.replace(b.with_suffix(".bin"), a.with_suffix(".bin"))
    with pytest.raises(IRError, match="its CRC-32 is"):
        ovq.read_model(a)
    fd = os.open(a.with_suffix(".bin"), os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        assert size == 64 * 2 * 4 and pairing.bin_digest(fd, size) != pairing._crc_range(fd, 0, size, 0)
    finally:
        os.close(fd)
