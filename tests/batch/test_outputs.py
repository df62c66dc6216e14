"""Staged commits: the report files, the .bin, then the .xml renamed into place, idempotent,
digests checked."""

from __future__ import annotations

from ovq.batch.outputs import commit, digests, outputs_match, report_paths, staging_dir, sweep_staging


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


def _stage_with_report(tmp_path, report: bool):
    out = tmp_path / "m" / "int8.xml"
    stage = staging_dir(out, "cd" * 32, 1)
    stage.mkdir(parents=True)
    (stage / "int8.xml").write_bytes(b"<net/>")
    (stage / "int8.bin").write_bytes(b"\1\2\3")
    if report:
        html, twin = report_paths(stage / "int8.xml")
        html.write_text("<html>page</html>")
        twin.write_text("{}")
    return out, stage


def test_report_files_are_committed_with_the_model_and_checked(tmp_path):
    out, stage = _stage_with_report(tmp_path, report=True)
    expected = digests(stage / "int8.xml", report=True)
    assert set(expected) == {"xml", "bin", "report_html", "report_json"}
    # a kill after the report files and the .bin were renamed: the .xml is still staged, commit rolls forward
    for name in ("int8.report.json", "int8.report.html", "int8.bin"):
        out.parent.mkdir(exist_ok=True)
        (stage / name).replace(out.parent / name)
    assert not outputs_match(out, expected)
    commit(stage / "int8.xml", out)
    assert outputs_match(out, expected) and not stage.exists()
    assert out.with_name("int8.report.html").read_text() == "<html>page</html>"
    out.with_name("int8.report.json").write_text("{ }")  # a changed twin
    assert not outputs_match(out, expected)
    out.with_name("int8.report.json").write_text("{}")
    out.with_name("int8.report.html").unlink()  # a deleted page
    assert not outputs_match(out, expected)
    # a job committed without a report removes the one an earlier run left: it describes another model
    out.with_name("int8.report.html").write_text("old")
    _out, stage = _stage_with_report(tmp_path, report=False)
    plain = digests(stage / "int8.xml")
    commit(stage / "int8.xml", out, drop_report=True)
    assert outputs_match(out, plain) and not any(p.exists() for p in report_paths(out))


def test_sweep_removes_only_staging_folders(tmp_path):
    out, stage = _stage(tmp_path)
    (out.parent / "keep").mkdir()
    assert sweep_staging({out.parent, tmp_path / "absent"}) == 1
    assert not stage.exists() and (out.parent / "keep").is_dir()
