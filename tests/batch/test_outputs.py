"""Staged commits: the .bin then the .xml renamed into place, idempotent, digests checked."""

from __future__ import annotations

from ovq.batch.outputs import commit, digests, outputs_match, staging_dir, sweep_staging


def _stage(tmp_path, text: bytes = b"<net/>"):
    out = tmp_path / "m" / "int8.xml"
    stage = staging_dir(out, "ab" * 32, 1)
    stage.mkdir(parents=True)
    (stage / "int8.xml").write_bytes(text)
    (stage / "int8.bin").write_bytes(b"\1\2\3")
    return out, stage


def test_commit_moves_both_files_and_removes_the_staging_folder(tmp_path):
    out, stage = _stage(tmp_path)
    expected = digests(stage / "int8.xml")
    commit(stage / "int8.xml", out)
    assert out.read_bytes() == b"<net/>" and out.with_suffix(".bin").read_bytes() == b"\1\2\3"
    assert not stage.exists() and outputs_match(out, expected)
    out.with_suffix(".bin").write_bytes(b"\0")
    assert not outputs_match(out, expected)


def test_commit_interrupted_between_the_renames_rolls_forward(tmp_path):
    out, stage = _stage(tmp_path)
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(b"<old/>")
    expected = digests(stage / "int8.xml")
    (stage / "int8.bin").replace(out.with_suffix(".bin"))  # the kill came after the first rename
    assert not outputs_match(out, expected)
    commit(stage / "int8.xml", out)
    assert outputs_match(out, expected) and not stage.exists()


def test_sweep_removes_only_staging_folders(tmp_path):
    out, stage = _stage(tmp_path)
    (out.parent / "keep").mkdir()
    assert sweep_staging({out.parent, tmp_path / "absent"}) == 1
    assert not stage.exists() and (out.parent / "keep").is_dir()
