"""Malformed or hostile IR gets a specific IRError naming the file and layer; nothing is written."""

from __future__ import annotations

import os
import re

import numpy as np
import openvino as ov
import openvino.opset13 as op
import pytest

import ovq
from ovq.errors import GraphError, IRError, OvqError


@pytest.fixture
def ir(tmp_path):
    """A valid two-layer IR on disk; returns (xml path, its text)."""
    x = op.parameter([1, 4], np.float32, name="x")
    w = op.constant(np.arange(8, dtype=np.float32).reshape(4, 2), name="weights")
    y = op.matmul(x, w, False, False, name="mm")
    path = tmp_path / "m.xml"
    ov.save_model(ov.Model([op.relu(y, name="act")], [x], "m"), path, compress_to_fp16=False)
    return path, path.read_text()


def rewrite(path, text):
    path.write_text(text)
    return path


def expect(path, pattern):
    with pytest.raises(IRError) as info:
        ovq.read_model(path)
    message = str(info.value)
    assert str(path) in message
    assert re.search(pattern, message), message
    return message


def test_malformed_xml(ir):
    path, text = ir
    expect(rewrite(path, text.replace("</layers>", "</layer>", 1)), r"malformed XML at line \d+")


def test_billion_laughs_is_refused(ir):
    path, text = ir
    bomb = '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i + 1} "{("&lol" + (str(i) if i else "") + ";") * 10}">' for i in range(9)
    ) + "]>\n"
    bad = text.replace('<?xml version="1.0"?>\n', bomb).replace('name="m"', 'name="&lol9;"')
    expect(rewrite(path, bad), "DTD or entity declarations is refused")


def test_external_entity_is_refused(ir, tmp_path):
    path, text = ir
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    xxe = f'<?xml version="1.0"?>\n<!DOCTYPE net [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
    bad = text.replace('<?xml version="1.0"?>\n', xxe).replace('name="m"', 'name="&xxe;"')
    expect(rewrite(path, bad), "DTD or entity declarations is refused")


def test_missing_bin(ir):
    path, _ = ir
    path.with_suffix(".bin").unlink()
    expect(path, r"weights file m\.bin is missing")


def test_truncated_bin(ir):
    path, _ = ir
    bin_path = path.with_suffix(".bin")
    bin_path.write_bytes(bin_path.read_bytes()[:10])
    expect(path, r"layer 'weights' \(id \d+\): reads bytes 0\.\.32 but m\.bin has only 10 bytes")


def test_constant_outside_the_bin(ir):
    path, text = ir
    expect(rewrite(path, text.replace('offset="0" size="32"', 'offset="4096" size="32"')), r"'weights'.*reads bytes 4096")


def test_constant_size_not_matching_its_shape(ir):
    path, text = ir
    expect(rewrite(path, text.replace('offset="0" size="32"', 'offset="0" size="16"')), r"'weights'.*size 16 does not match f32\[4, 2\]")


def test_unknown_element_type(ir):
    path, text = ir
    bad = text.replace('element_type="f32" shape="4, 2"', 'element_type="f33" shape="4, 2"')
    expect(rewrite(path, bad), r"layer 'weights'.*unknown element_type 'f33'")


def test_edge_to_missing_layer(ir):
    path, text = ir
    bad = re.sub(r'to-layer="(\d+)" to-port="0" />', 'to-layer="99" to-port="0" />', text, count=1)
    expect(rewrite(path, bad), r"layer 99 does not exist")


def test_edge_to_missing_port(ir):
    path, text = ir
    bad = re.sub(r'from-port="0" to-layer="(\d+)" to-port="0"', r'from-port="0" to-layer="\1" to-port="7"', text, count=1)
    expect(rewrite(path, bad), r"has no input port 7")


def test_cycle(ir):
    path, text = ir
    # Feed the ReLU's output back into the MatMul's first input instead of the Parameter.
    ids = dict(re.findall(r'<layer id="(\d+)" name="(\w+)"', text)[i][::-1] for i in range(4))
    bad = text.replace(
        f'<edge from-layer="{ids["x"]}" from-port="0" to-layer="{ids["mm"]}" to-port="0" />',
        f'<edge from-layer="{ids["act"]}" from-port="1" to-layer="{ids["mm"]}" to-port="0" />',
    )
    assert bad != text
    expect(rewrite(path, bad), r"cycle: .*'mm'")


def test_duplicate_layer_ids(ir):
    path, text = ir
    bad = re.sub(r'<layer id="\d+" name="weights"', '<layer id="0" name="weights"', text)
    expect(rewrite(path, bad), r"duplicate layer id 0 \(layers 'x' and 'weights'\)")


@pytest.mark.parametrize("version", ["9", "12", ""])
def test_unsupported_ir_version(ir, version):
    path, text = ir
    expect(rewrite(path, text.replace('version="11"', f'version="{version}"', 1)), r"IR version .* not supported")


def test_not_ir_at_all(tmp_path):
    path = tmp_path / "x.xml"
    path.write_text("<html><body/></html>")
    expect(path, r"not OpenVINO IR: root element is <html>")


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(IRError, match="no such file"):
        ovq.read_model(tmp_path / "nope.xml")
    with pytest.raises(IRError, match="is a folder"):
        ovq.read_model(tmp_path)


def test_unreadable_format_names_the_file(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x00not a model")
    with pytest.raises(IRError, match="junk.onnx: OpenVINO cannot read it"):
        ovq.read_model(path)


def test_every_error_is_an_ovq_error():
    assert issubclass(IRError, OvqError) and issubclass(GraphError, OvqError)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_failed_save_leaves_nothing_and_keeps_the_old_model(ir, tmp_path):
    path, _ = ir
    graph = ovq.read_model(path)
    target = tmp_path / "out.xml"
    ovq.save_model(graph, target)
    before = (target.read_bytes(), target.with_suffix(".bin").read_bytes())
    mm, act = graph.find("mm"), graph.find("act")
    graph.disconnect(mm, 0)
    graph.connect(act, 0, mm, 0)  # a cycle: not writable
    with pytest.raises(GraphError, match="cycle"):
        ovq.save_model(graph, target)
    assert (target.read_bytes(), target.with_suffix(".bin").read_bytes()) == before
    assert _leftovers(tmp_path) == []


def test_interrupted_save_leaves_nothing(ir, tmp_path, monkeypatch):
    path, _ = ir
    graph = ovq.read_model(path)
    from ovq.ir import writer

    def interrupted(self, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer.ConstantWriter, "add", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ovq.save_model(graph, tmp_path / "out.xml")
    assert not (tmp_path / "out.xml").exists() and not (tmp_path / "out.bin").exists()
    assert _leftovers(tmp_path) == []


def test_save_into_missing_folder(ir, tmp_path):
    graph = ovq.read_model(ir[0])
    with pytest.raises(IRError, match="does not exist"):
        ovq.save_model(graph, tmp_path / "no" / "such" / "m.xml")
    assert os.listdir(tmp_path) == ["m.xml", "m.bin"] or sorted(os.listdir(tmp_path)) == ["m.bin", "m.xml"]


def test_utf16_billion_laughs_is_refused(ir):
    """A DTD hidden from byte searches by another encoding still goes through defusedxml."""
    path, text = ir
    bomb = '<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i + 1} "{("&lol" + (str(i) if i else "") + ";") * 10}">' for i in range(9)
    ) + "]>\n"
    bad = text.replace('<?xml version="1.0"?>\n', bomb).replace('name="m"', 'name="&lol9;"')
    path.write_bytes(bad.encode("utf-16"))
    expect(path, "DTD or entity declarations is refused")


def test_malformed_string_constant_is_an_ir_error():
    from ovq.errors import IRError
    from ovq.ir.element_types import decode_strings

    for raw in (b"\x01", b"\x05\x00\x00\x00", b"\x01\x00\x00\x00\x00\x00\x00\x00\x09\x00\x00\x00ab"):
        with pytest.raises(IRError, match="string constant"):
            decode_strings(raw)
