"""Hostile inputs and outputs: only regular files are read or replaced, reads are capped,
temporaries never outlive a failure (and a kill -9's are swept by the next run)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

import numpy as np
import openvino as ov
import openvino.opset13 as op
import pytest

import ovq
from ovq import files
from ovq.errors import IRError
from ovq_testing.cli import run_cli


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail instead of hanging (the bugs these tests catch were hangs)."""

    def expired(signum, frame):
        raise AssertionError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def model_xml(tmp_path):
    x = op.parameter([1, 4], np.float32, name="x")
    w = op.constant(np.arange(8, dtype=np.float32).reshape(4, 2), name="weights")
    path = tmp_path / "m.xml"
    ov.save_model(ov.Model([op.matmul(x, w, False, False, name="mm")], [x], "m"), path, compress_to_fp16=False)
    return path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ----------------------------------------------------------------------------- inputs

_HOSTILE_INPUTS = """
import resource, sys
# A regression (reading /dev/zero to the end) must fail here with MemoryError, not grow
# to the machine's memory: 2 GiB of heap is ample for ovq and OpenVINO.
resource.setrlimit(resource.RLIMIT_DATA, (2 << 30, 2 << 30))
from ovq.cli import main
for path in sys.argv[1:]:
    print(main(["inspect", path]), flush=True)
"""


def test_devices_and_fifos_are_refused_without_reading_them(tmp_path):
    # A fresh, memory-capped interpreter with a timeout: these inputs used to hang or
    # grow to 24 GB, which a test must not be able to do to a shared machine.
    link = tmp_path / "model.xml"
    link.symlink_to("/dev/zero")
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    proc = subprocess.run([sys.executable, "-c", _HOSTILE_INPUTS, "/dev/zero", str(link), str(fifo)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.stdout.split() == ["2", "2", "2"], proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [
        "ovq: error: /dev/zero: is a device; ovq reads only regular files",
        f"ovq: error: {link} (a symlink to /dev/zero): is a device; ovq reads only regular files",
        f"ovq: error: {fifo}: is a FIFO (named pipe); ovq reads only regular files",
    ]


def test_a_symlink_to_a_regular_model_is_followed(tmp_path, model_xml):
    link = tmp_path / "link.xml"
    link.symlink_to(model_xml)
    (tmp_path / "link.bin").symlink_to(model_xml.with_suffix(".bin"))
    assert ovq.read_model(link).op_histogram()["MatMul"] == 1


def test_a_fifo_bin_is_refused_without_blocking(model_xml):
    bin_path = model_xml.with_suffix(".bin")
    bin_path.unlink()
    os.mkfifo(bin_path)
    with deadline(20), pytest.raises(IRError, match=r"m.bin: is a FIFO \(named pipe\); ovq reads only regular files"):
        ovq.read_model(model_xml)


def test_the_xml_size_is_capped(model_xml, monkeypatch):
    monkeypatch.setenv("OVQ_MAX_XML_BYTES", "1000")
    with pytest.raises(IRError, match=r"m.xml: larger than 1000 bytes, the most ovq reads for a model .xml"):
        ovq.read_model(model_xml)
    monkeypatch.setenv("OVQ_MAX_XML_BYTES", str(model_xml.stat().st_size))
    ovq.read_model(model_xml)


def test_the_xml_depth_is_capped(model_xml):
    text = model_xml.read_text()
    deep = "<a>" * (files.MAX_XML_DEPTH + 5) + "</a>" * (files.MAX_XML_DEPTH + 5)
    model_xml.write_text(text.replace("</net>", f"<rt_info>{deep}</rt_info></net>"))
    with pytest.raises(IRError, match=r"m.xml: elements nested deeper than 256 levels \(at <a>\); refused"):
        ovq.read_model(model_xml)


# ----------------------------------------------------------------------------- outputs

@pytest.mark.parametrize("kind", ["fifo", "folder", "symlink", "bin-folder"])
def test_an_output_that_is_not_a_regular_file_is_refused_and_untouched(tmp_path, model_xml, kind):
    out = tmp_path / "out.xml"
    victim = tmp_path / "victim.xml"
    victim.write_text("keep me")
    if kind == "fifo":
        os.mkfifo(out)
    elif kind == "folder":
        out.mkdir()
    elif kind == "symlink":
        out.symlink_to(victim)
    else:
        out.with_suffix(".bin").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = run_cli("convert", model_xml, "-o", out, check=False)
    assert proc.returncode == 2, proc.stdout
    expected = {"fifo": f"{out}: is a FIFO", "folder": f"Invalid value for '-o' / '--output': File '{out}' is a directory",
                "symlink": f"{out}: is a symlink", "bin-folder": f"{out.with_suffix('.bin')}: is a folder"}[kind]
    assert proc.stderr.startswith(f"ovq: error: {expected}"), proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing replaced, no temporaries
    assert victim.read_text() == "keep me"


def test_a_device_is_refused_as_an_output():
    # Only the check, never a writer: a regression must not be able to replace /dev/null
    # when the suite runs as root. The writers' use of the check is tested on FIFOs.
    with pytest.raises(IRError, match=r"/dev/null: is a device; ovq writes only regular files"):
        files.check_output("/dev/null", IRError)


_SIGTERM_DURING_SAVE = """
import os, signal, sys
from ovq.cli import main
from ovq.ir.writer import ConstantWriter
real_add = ConstantWriter.add
def add(self, data):
    os.kill(os.getpid(), signal.SIGTERM)
    return real_add(self, data)
ConstantWriter.add = add
sys.exit(main(sys.argv[1:]))
"""


def test_a_save_interrupted_by_sigterm_leaves_no_temporaries(tmp_path, model_xml):
    # A fresh interpreter, as a user's `ovq` process: the kill arrives during the .bin write.
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = subprocess.run([sys.executable, "-c", _SIGTERM_DURING_SAVE, "convert", str(model_xml), "-o",
                           str(tmp_path / "out.xml")], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 143 and proc.stderr == "ovq: terminated\n", proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_temporaries_of_dead_processes_are_swept_by_the_next_save(tmp_path, model_xml):
    dead, alive = dead_pid(), os.getpid()
    host = files.host_tag()
    stale = [tmp_path / f".out.bin.ovq-{host}-{dead}-abc123.tmp", tmp_path / f".other.xml.ovq-{host}-{dead}-x_y.tmp"]
    live = tmp_path / f".out.xml.ovq-{host}-{alive}-def456.tmp"
    other_host = tmp_path / f".out.xml.ovq-{int(host, 16) ^ 1:08x}-{dead}-def456.tmp"  # its pid means nothing here
    foreign = tmp_path / ".out.xml.abcdef.tmp"  # not ours: never touched
    for path in (*stale, live, other_host, foreign):
        path.write_bytes(b"partial")
    ovq.save_model(model_xml, tmp_path / "out.xml")
    assert not any(p.exists() for p in stale)
    assert live.exists() and other_host.exists() and foreign.exists()


def test_temp_folders_of_dead_processes_are_swept(tmp_path):
    dead = dead_pid()
    host = files.host_tag()
    stale = tmp_path / f"ovq-{host}-{dead}-k2j3h4"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "model.bin").write_bytes(b"x" * 100)
    live = tmp_path / f"ovq-{host}-{os.getpid()}-abcd"
    live.mkdir()
    other = tmp_path / "ovq-notapid"
    other.mkdir()
    assert files.sweep_temp_dirs(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other.exists()


def test_private_temp_folders_name_their_process():
    with files.private_tempdir() as tmp:
        assert tmp.name.startswith(f"ovq-{files.host_tag()}-{os.getpid()}-") and tmp.is_dir()
    assert not tmp.exists()


def test_calibration_data_that_is_a_fifo_or_a_device_is_refused(tmp_path):
    from ovq.data import demo_model_path

    fifo = tmp_path / "calib.npy"
    os.mkfifo(fifo)
    for data, kind in ((fifo, "a FIFO"), ("/dev/zero", "a device")):
        with deadline(60):
            proc = run_cli("quantize", demo_model_path(), "-o", tmp_path / "q.xml", "--data", data, check=False)
        assert proc.returncode == 2 and proc.stderr.startswith(f"ovq: error: {data}: is {kind}"), proc.stderr


def test_analyze_refuses_a_fifo_as_its_json_output(tmp_path):
    from ovq.data import demo_model_path, load_demo_data

    np.save(tmp_path / "calib.npy", load_demo_data("test")[0][:8])
    q = tmp_path / "q.xml"
    run_cli("quantize", demo_model_path(), "-o", q, "--data", tmp_path / "calib.npy", "--no-audit", "-q",
            "--bias-correction", "none")
    fifo = tmp_path / "errors.json"
    os.mkfifo(fifo)
    proc = run_cli("analyze", demo_model_path(), q, "--data", tmp_path / "calib.npy", "--subset-size", 2,
                   "--json", fifo, "-q", check=False)
    assert proc.returncode == 2
    assert proc.stderr == f"ovq: error: {fifo}: is a FIFO (named pipe); ovq writes only regular files (it would be replaced)\n"
    assert fifo.is_fifo()
