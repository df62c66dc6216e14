"""Read OpenVINO IR (``.xml`` + ``.bin``) into a :class:`~ovq.ir.graph.Graph`.

The reader is strict about anything that would make the model wrong and lenient about
what OpenVINO itself treats as informational (port dims and precisions on non-I/O
layers). It refuses DTDs outright, which defeats entity-expansion ("billion laughs")
and external-entity attacks: IR never carries a DTD. It reads only regular files, an
``.xml`` of at most :func:`ovq.files.max_xml_bytes` nested at most
:data:`ovq.files.MAX_XML_DEPTH` deep, and checks an ovq-written ``.xml`` against its
``.bin`` (:mod:`ovq.ir.pairing`). Weights are not read: each Const
keeps a view onto the memory-mapped ``.bin`` (see :mod:`ovq.ir.constants`).

IR v11 is mirrored directly. IR v10 is first converted by OpenVINO itself (its reader
applies v10's naming rules), then mirrored, so a v10 model is written back as v11.
"""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.etree.ElementTree import Element

import defusedxml
import defusedxml.ElementTree as SafeET

from ovq.errors import IRError
from ovq.ir.constants import BinFile, ConstData
from ovq.ir.element_types import ELEMENT_TYPES
from ovq.ir.graph import BODY_TAGS, Graph, Op, Port

SUPPORTED_IR_VERSIONS = ("10", "11")


_XML_DECL_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_PLAIN_ENCODINGS = {b"utf-8", b"utf8", b"us-ascii", b"ascii"}


def _is_plain_xml(data: bytes) -> bool:
    """True when ``data`` is UTF-8/ASCII XML with no DTD and no entity declaration.

    Such a document cannot declare entities, so it can neither expand ("billion
    laughs") nor pull in external ones; the fast C parser is safe on it. Anything
    else (a DOCTYPE anywhere, a BOM other than UTF-8's, NUL bytes, a declared
    non-UTF-8 encoding) goes through defusedxml, which refuses DTDs.
    """
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data or b"\x00" in data[:4096]:
        return False
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    match = _XML_DECL_ENCODING.match(data[:200])
    return match is None or match.group(1).lower() in _PLAIN_ENCODINGS


def read_xml_bytes(path: Path) -> bytes:
    """The bytes of an ``.xml`` to parse: a regular file no larger than the cap.

    Raises:
        IRError: missing, not a regular file (device, FIFO, folder), or larger than
            :func:`ovq.files.max_xml_bytes`.
    """
    from ovq.files import max_xml_bytes, read_input

    return read_input(path, IRError, limit=max_xml_bytes(), what="model .xml")


def parse_xml(path: Path, data: bytes | None = None) -> Element:
    """Parse an XML file safely (no DTD, no entities, no external references, bounded depth).

    Args:
        path: The file (read with :func:`read_xml_bytes` unless ``data`` is given).
        data: Its bytes, when already read.

    Raises:
        IRError: unreadable, oversized, malformed or hostile XML, naming the file and position.
    """
    if data is None:
        data = read_xml_bytes(path)
    try:
        if _is_plain_xml(data):
            root = ET.fromstring(data)
        else:
            root = SafeET.fromstring(data, forbid_dtd=True)
    except (defusedxml.DTDForbidden, defusedxml.EntitiesForbidden, defusedxml.ExternalReferenceForbidden):
        raise IRError(
            f"{path}: XML with a DTD or entity declarations is refused "
            "(IR never has one; it is the shape of entity-expansion and external-entity attacks)"
        ) from None
    except ET.ParseError as exc:
        line, col = exc.position
        raise IRError(f"{path}: malformed XML at line {line}, column {col}: {exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise IRError(f"{path}: cannot decode the XML: {exc}") from None
    _check_depth(root, path)
    return root


def _check_depth(root: Element, path: Path) -> None:
    """Refuse nesting deeper than :data:`ovq.files.MAX_XML_DEPTH` (iteratively: no recursion)."""
    from ovq.files import MAX_XML_DEPTH

    stack = [(root, 1)]
    while stack:
        elem, depth = stack.pop()
        if depth > MAX_XML_DEPTH:
            raise IRError(
                f"{path}: elements nested deeper than {MAX_XML_DEPTH} levels (at <{elem.tag}>); refused"
            )
        stack.extend((child, depth + 1) for child in elem)


def ir_version(root: Element, path: Path) -> str:
    """The ``<net version>`` of a parsed IR, checked to be one ovq reads."""
    if root.tag != "net":
        raise IRError(f"{path}: not OpenVINO IR: root element is <{root.tag}>, expected <net>")
    version = root.get("version")
    if version not in SUPPORTED_IR_VERSIONS:
        raise IRError(f"{path}: IR version {version!r} is not supported (only 10 and 11)")
    return version


def read_ir(xml_path: str | os.PathLike[str], bin_path: str | os.PathLike[str] | None = None) -> Graph:
    """Read an IR ``.xml`` (and its ``.bin``) into a Graph.

    Args:
        xml_path: The ``.xml`` file.
        bin_path: The weights file; default: ``xml_path`` with suffix ``.bin``.

    Raises:
        IRError: on any malformed, inconsistent or hostile input, naming the file and
            the layer.
    """
    xml_path = Path(xml_path)
    data = read_xml_bytes(xml_path)
    root = parse_xml(xml_path, data)
    version = ir_version(root, xml_path)
    bin_file_path = Path(bin_path) if bin_path is not None else xml_path.with_suffix(".bin")
    if version == "10":
        from ovq.files import check_input
        from ovq.ir.bridge import read_with_openvino

        if bin_file_path.exists():
            check_input(bin_file_path, IRError, "weights file")
        graph = read_with_openvino(xml_path, bin_file_path if bin_file_path.exists() else None)
        graph.source = str(xml_path)
        return graph
    return mirror_ir(root, xml_path, bin_file_path, xml_text=data)


def mirror_ir(root: Element, xml_path: Path, bin_path: Path, *, unlink_bin: bool = False,
              xml_text: bytes | None = None) -> Graph:
    """Mirror an already parsed v11 ``<net>`` element whose weights are in ``bin_path``.

    With ``xml_text`` (the bytes ``root`` was parsed from), a pairing record ovq's writer
    left in the model rt_info is checked against the ``.bin`` (see :mod:`ovq.ir.pairing`)
    and then dropped from the mirror.
    """
    from ovq.ir import pairing

    needs_bin = any(
        layer.get("type") == "Const" and (data := layer.find("data")) is not None and data.get("size", "0") != "0"
        for layer in root.iter("layer")
    )
    bin_file: BinFile | None = None
    if bin_path.exists():
        try:
            bin_file = BinFile(bin_path, unlink_after_open=unlink_bin)
        except OSError as exc:
            raise IRError(f"{bin_path}: cannot open weights: {exc}") from None
    if xml_text is not None:
        pairing.check_pair(xml_text, xml_path, bin_path, bin_file.fd if bin_file else None,
                           bin_file.size if bin_file else 0)
    if bin_file is None and needs_bin:
        raise IRError(f"{xml_path}: weights file {bin_path.name} is missing")
    reader = _Reader(xml_path, bin_path, bin_file)
    graph = reader.graph(root, where=str(xml_path))
    graph.rt_info = pairing.strip_record(graph.rt_info)
    graph.name = root.get("name", graph.name)
    graph.net_attrs = {k: v for k, v in root.attrib.items() if k not in ("name", "version")}
    graph.ir_version = int(root.get("version", "11"))
    if bin_file is not None:
        graph._bins.append(bin_file)
    return graph


def split_names(value: str) -> list[str]:
    """Split a port ``names`` attribute on unescaped commas (``a\\,b`` is one name)."""
    names, current, i = [], [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value) and value[i + 1] == ",":
            current.append(",")
            i += 2
            continue
        if ch == ",":
            names.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    names.append("".join(current).strip())
    return [n for n in names if n]


class _Reader:
    """Builds Graphs from ``<net>`` / body elements, checking as it goes."""

    def __init__(self, xml_path: Path, bin_path: Path, bin_file: BinFile | None) -> None:
        self.xml_path = xml_path
        self.bin_path = bin_path
        self.bin = bin_file

    def fail(self, where: str, message: str) -> IRError:
        return IRError(f"{where}: {message}")

    def graph(self, elem: Element, where: str) -> Graph:
        graph = Graph(elem.get("name", "model"), source=where)
        layers = elem.find("layers")
        if layers is None:
            raise self.fail(where, "no <layers> element")
        ops_by_id: dict[int, Op] = {}
        for layer in layers:
            if layer.tag != "layer":
                raise self.fail(where, f"unexpected <{layer.tag}> inside <layers>")
            node, op = self.layer(layer, where)
            if node in ops_by_id:
                raise self.fail(
                    where, f"duplicate layer id {node} (layers {ops_by_id[node].name!r} and {op.name!r})"
                )
            ops_by_id[node] = op
            graph._insert(node, op)
        self.edges(elem.find("edges"), graph, ops_by_id, where)
        graph.rt_info = elem.find("rt_info")
        self.check_acyclic(graph, where)
        return graph

    def layer(self, layer: Element, where: str) -> tuple[int, Op]:
        attrs = dict(layer.attrib)
        raw_id = attrs.pop("id", None)
        name = attrs.pop("name", "")
        label = f"layer {name!r} (id {raw_id})"
        try:
            node = int(raw_id)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise self.fail(where, f"{label}: id must be an integer") from None
        op_type = attrs.pop("type", None)
        if not op_type:
            raise self.fail(where, f"{label}: missing type")
        op = Op(type=op_type, version=attrs.pop("version", ""), name=name, layer_attrs=attrs)
        order = []
        for child in layer:
            order.append(child.tag)
            if child.tag == "data":
                op.attrs = dict(child.attrib)
            elif child.tag == "rt_info":
                op.rt_info = child
            elif child.tag == "input":
                op.inputs = [self.port(p, where, label) for p in child if p.tag == "port"]
            elif child.tag == "output":
                op.outputs = [self.port(p, where, label, output=True) for p in child if p.tag == "port"]
            elif child.tag in BODY_TAGS:
                op.bodies[child.tag] = self.graph(child, f"{where}: {name}/{child.tag}")
            else:
                op.extras.append(child)
        op.child_order = tuple(order)
        port_ids = [p.id for p in op.inputs + op.outputs]
        if len(set(port_ids)) != len(port_ids):
            raise self.fail(where, f"{label}: duplicate port ids {port_ids}")
        if op.type == "Const":
            op.const = self.const(op, where, label)
        elif op.type == "Parameter":
            self.element_type_of(op, where, label)
        return node, op

    def port(self, elem: Element, where: str, label: str, *, output: bool = False) -> Port:
        attrs = dict(elem.attrib)
        try:
            port_id = int(attrs.pop("id"))
        except (KeyError, ValueError):
            raise self.fail(where, f"{label}: port without an integer id") from None
        precision = attrs.pop("precision", None)
        names = split_names(attrs.pop("names", "")) if output else []
        dims: list[int] | None = []
        extra = []
        for child in elem:
            if child.tag == "dim":
                try:
                    dims.append(int((child.text or "").strip()))  # type: ignore[union-attr]
                except ValueError:
                    raise self.fail(where, f"{label}: port {port_id} has a non-integer dim {child.text!r}") from None
            else:
                extra.append(child)
        return Port(id=port_id, precision=precision, shape=dims, names=names, attrs=attrs, extra=extra)

    def element_type_of(self, op: Op, where: str, label: str):
        data = op.attrs or {}
        name = data.get("element_type")
        if name is None:
            raise self.fail(where, f"{label}: {op.type} without element_type")
        if name not in ELEMENT_TYPES:
            raise self.fail(where, f"{label}: unknown element_type {name!r}")
        return ELEMENT_TYPES[name]

    def const(self, op: Op, where: str, label: str) -> ConstData:
        et = self.element_type_of(op, where, label)
        data = op.attrs or {}
        try:
            shape_text = data.get("shape", "").strip()
            shape = tuple(int(d) for d in shape_text.split(",")) if shape_text else ()
            offset = int(data["offset"])
            size = int(data["size"])
        except KeyError as exc:
            raise self.fail(where, f"{label}: Const without {exc.args[0]}") from None
        except ValueError:
            raise self.fail(where, f"{label}: Const shape/offset/size must be integers") from None
        if offset < 0 or size < 0 or any(d < 0 for d in shape):
            raise self.fail(where, f"{label}: negative offset, size or dimension")
        if et.name in ("dynamic", "undefined"):
            raise self.fail(where, f"{label}: a Const cannot have element_type {et.name!r}")
        if et.name != "string":
            expected = et.nbytes(shape)
            if size != expected:
                raise self.fail(
                    where, f"{label}: size {size} does not match {et.name}{list(shape)} ({expected} bytes)"
                )
        elif size < 4 * (math.prod(shape) + 2) and math.prod(shape) > 0:
            raise self.fail(where, f"{label}: string Const of {math.prod(shape)} values needs more than {size} bytes")
        if size == 0:
            return ConstData(element_type=et, shape=shape, bin=None, offset=0, size=0, owned=b"")
        if self.bin is None:
            raise self.fail(where, f"{label}: weights file {self.bin_path.name} is missing")
        if offset + size > self.bin.size:
            raise self.fail(
                where,
                f"{label}: reads bytes {offset}..{offset + size} but {self.bin_path.name} has only "
                f"{self.bin.size} bytes (truncated or mismatched .bin)",
            )
        return ConstData(element_type=et, shape=shape, bin=self.bin, offset=offset, size=size)

    def edges(self, edges: Element | None, graph: Graph, ops: dict[int, Op], where: str) -> None:
        if edges is None:
            return
        for i, edge in enumerate(edges):
            if edge.tag != "edge":
                raise self.fail(where, f"unexpected <{edge.tag}> inside <edges>")
            try:
                src, src_port = int(edge.get("from-layer", "")), int(edge.get("from-port", ""))
                dst, dst_port = int(edge.get("to-layer", "")), int(edge.get("to-port", ""))
            except ValueError:
                raise self.fail(where, f"edge #{i}: from-layer/from-port/to-layer/to-port must be integers") from None
            text = f"edge #{i} ({src}:{src_port} -> {dst}:{dst_port})"
            for layer_id in (src, dst):
                if layer_id not in ops:
                    raise self.fail(where, f"{text}: layer {layer_id} does not exist")
            out_index = next((k for k, p in enumerate(ops[src].outputs) if p.id == src_port), None)
            if out_index is None:
                raise self.fail(where, f"{text}: layer {ops[src].name!r} has no output port {src_port}")
            in_index = next((k for k, p in enumerate(ops[dst].inputs) if p.id == dst_port), None)
            if in_index is None:
                raise self.fail(where, f"{text}: layer {ops[dst].name!r} has no input port {dst_port}")
            if graph.producer(dst, in_index) is not None:
                raise self.fail(where, f"{text}: input port {dst_port} of {ops[dst].name!r} has two producers")
            graph.nx.add_edge(src, dst, key=(out_index, in_index))

    def check_acyclic(self, graph: Graph, where: str) -> None:
        import networkx as nx

        if not nx.is_directed_acyclic_graph(graph.nx):
            cycle = nx.find_cycle(graph.nx)
            names = " -> ".join(repr(graph.op(u).name) for u, *_ in cycle)
            raise self.fail(where, f"the graph has a cycle: {names}")
