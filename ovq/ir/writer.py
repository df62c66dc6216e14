"""Write a :class:`~ovq.ir.graph.Graph` as IR v11 ``.xml`` + ``.bin``, atomically.

Both files are written to temporary names in the destination folder and renamed into
place only when complete (``.bin`` first, then ``.xml``), so an interrupted or failed
save never leaves a half-written pair and never harms an existing model of that name.

Constants are written back to back with no alignment, like OpenVINO's serializer, and
deduplicated: payloads with identical bytes share one range. Payloads still in their
source ``.bin`` are copied file-to-file (``copy_file_range``) in the kernel, and hashed
through a small reusable buffer, so saving a large model does not map its weights into
this process.
"""

from __future__ import annotations

import copy
import os
import tempfile
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from xml.etree.ElementTree import Element

from ovq.errors import IRError
from ovq.ir.constants import ConstData
from ovq.ir.graph import BODY_TAGS, Graph, Op, Port

_CHUNK = 4 << 20
_DEFAULT_CHILD_ORDER = ("data", "rt_info", "input", "output")


class ConstantWriter:
    """Appends constant payloads to an open ``.bin`` descriptor, deduplicating them."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pos = 0
        self._by_source: dict[tuple[int, int, int], int] = {}
        self._by_hash: dict[tuple[int, int], list[int]] = {}
        self._buf = bytearray(_CHUNK)
        self._cmp = bytearray(_CHUNK)

    def add(self, data: ConstData) -> tuple[int, int]:
        """Write ``data`` (or find an identical payload already written); return (offset, size)."""
        size = data.size
        if size == 0:
            return self.pos, 0
        source_key = (id(data.bin), data.offset, size) if data.in_file else None
        if source_key is not None and source_key in self._by_source:
            return self._by_source[source_key], size
        digest = self._crc(data)
        for offset in self._by_hash.get((size, digest), ()):
            if self._equal_to_written(data, offset):
                if source_key is not None:
                    self._by_source[source_key] = offset
                return offset, size
        offset = self.pos
        self._copy(data)
        self.pos += size
        self._by_hash.setdefault((size, digest), []).append(offset)
        if source_key is not None:
            self._by_source[source_key] = offset
        return offset, size

    def _chunks(self, data: ConstData):
        """Yield the payload as memoryviews over a reused buffer (no full copy)."""
        if not data.in_file:
            yield memoryview(data.owned)  # type: ignore[arg-type]
            return
        assert data.bin is not None
        done = 0
        view = memoryview(self._buf)
        while done < data.size:
            n = min(_CHUNK, data.size - done)
            got = data.bin.pread_into(view[:n], data.offset + done)
            if got != n:
                raise IRError(f"{data.bin.path}: short read at byte {data.offset + done} (file changed?)")
            yield view[:n]
            done += n

    def _crc(self, data: ConstData) -> int:
        crc = 0
        for chunk in self._chunks(data):
            crc = zlib.crc32(chunk, crc)
        return crc

    def _equal_to_written(self, data: ConstData, offset: int) -> bool:
        pos = offset
        cmp = memoryview(self._cmp)
        for chunk in self._chunks(data):
            n = len(chunk)
            for start in range(0, n, _CHUNK):
                part = chunk[start : start + _CHUNK]
                got = os.preadv(self.fd, [cmp[: len(part)]], pos)
                if got != len(part) or cmp[: len(part)] != part:
                    return False
                pos += len(part)
        return True

    def _copy(self, data: ConstData) -> None:
        if data.in_file and hasattr(os, "copy_file_range"):
            assert data.bin is not None
            try:
                self._copy_range(data.bin.fd, data.offset, data.size)
                return
            except OSError:
                pass  # e.g. a filesystem without copy_file_range: fall back to buffered copy
        pos = self.pos
        for chunk in self._chunks(data):
            self._pwrite_all(chunk, pos)
            pos += len(chunk)

    def _copy_range(self, src_fd: int, src_offset: int, size: int) -> None:
        done = 0
        while done < size:
            n = os.copy_file_range(src_fd, self.fd, size - done, src_offset + done, self.pos + done)
            if n <= 0:
                raise OSError("copy_file_range made no progress")
            done += n

    def _pwrite_all(self, chunk: memoryview, pos: int) -> None:
        view = memoryview(chunk)
        while len(view):
            n = os.pwrite(self.fd, view, pos)
            view = view[n:]
            pos += n


def save_model(graph: Graph, xml_path: str | os.PathLike[str], bin_path: str | os.PathLike[str] | None = None) -> Path:
    """Write ``graph`` as IR v11 to ``xml_path`` (and ``.bin`` beside it), atomically.

    Returns:
        The path of the written ``.xml``.

    Raises:
        IRError: the graph cannot be written (e.g. a cycle) or the folder is not writable;
            nothing is left behind in that case.
    """
    xml_path = Path(xml_path)
    bin_path = Path(bin_path) if bin_path is not None else xml_path.with_suffix(".bin")
    folder = xml_path.parent
    if not folder.is_dir():
        raise IRError(f"{xml_path}: folder {folder} does not exist")
    temps: list[str] = []
    try:
        bin_fd, bin_tmp = tempfile.mkstemp(dir=bin_path.parent, prefix=f".{bin_path.name}.", suffix=".tmp")
        temps.append(bin_tmp)
        try:
            writer = ConstantWriter(bin_fd)
            root = build_net(graph, writer)
            os.ftruncate(bin_fd, writer.pos)
            os.fsync(bin_fd)
        finally:
            os.close(bin_fd)
        text = serialize_xml(root)
        xml_fd, xml_tmp = tempfile.mkstemp(dir=folder, prefix=f".{xml_path.name}.", suffix=".tmp")
        temps.append(xml_tmp)
        with os.fdopen(xml_fd, "wb") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        for tmp in temps:
            os.chmod(tmp, 0o644 & ~_umask())
        os.replace(bin_tmp, bin_path)
        os.replace(xml_tmp, xml_path)
        temps.clear()
    except OSError as exc:
        raise IRError(f"{xml_path}: cannot write: {exc}") from None
    finally:
        for tmp in temps:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return xml_path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def serialize_xml(root: Element) -> bytes:
    """Serialize a ``<net>`` element the way OpenVINO lays it out (tab-indented)."""
    ET.indent(root, space="\t")
    return b'<?xml version="1.0"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n"


def build_net(graph: Graph, writer: ConstantWriter) -> Element:
    """The ``<net>`` element of ``graph``; constant payloads go to ``writer``."""
    net = Element("net", {"name": graph.name, "version": "11", **graph.net_attrs})
    _fill_graph(net, graph, writer)
    return net


def _fill_graph(parent: Element, graph: Graph, writer: ConstantWriter) -> None:
    layers = ET.SubElement(parent, "layers")
    order = layer_order(graph)
    for node in order:
        op = graph.op(node)
        for out_index, port in enumerate(op.outputs):
            if port.precision is None:
                port.precision = _placeholder_precision(graph, node, out_index)
        layers.append(_layer(node, op, writer))
    edges = ET.SubElement(parent, "edges")
    position = {n: i for i, n in enumerate(order)}
    # OpenVINO's serializer lists edges by producer position, then ports.
    # (networkx keeps edges in insertion order, i.e. file order for a graph just read).
    edge_list = sorted(graph.nx.edges(keys=True), key=lambda e: (position[e[0]], e[2][0]))
    for src, dst, (out_i, in_i) in edge_list:
        ET.SubElement(
            edges,
            "edge",
            {
                "from-layer": str(src),
                "from-port": str(graph.op(src).outputs[out_i].id),
                "to-layer": str(dst),
                "to-port": str(graph.op(dst).inputs[in_i].id),
            },
        )
    if graph.rt_info is not None:
        parent.append(copy.deepcopy(graph.rt_info))


def layer_order(graph: Graph) -> list[int]:
    """The order layers are written in: topological, keeping model I/O order.

    OpenVINO numbers a model's inputs and outputs by the file order of its Parameter
    and Result layers, so those must keep their relative (insertion) order. A graph
    just read keeps its exact file order. If edits made the topological order reorder
    Parameters or Results, Parameters move to the front and Results to the end.
    """
    order = graph.topological_order()
    params, results = graph.parameters(), graph.results()
    if [n for n in order if n in set(params)] == params and [n for n in order if n in set(results)] == results:
        return order
    io = set(params) | set(results)
    return params + [n for n in order if n not in io] + results


def _placeholder_precision(graph: Graph, node: int, out_index: int) -> str:
    """A precision for an output nobody set yet (OpenVINO requires the attribute).

    OpenVINO re-infers every non-Parameter port when it reads IR, so this only has to
    be plausible: a Convert's destination type, else the first input's precision.
    ``Graph.infer_shapes()`` replaces it with the inferred one.
    """
    from ovq.ir.element_types import ELEMENT_TYPES

    op = graph.op(node)
    destination = (op.attrs or {}).get("destination_type")
    if destination in ELEMENT_TYPES:
        return ELEMENT_TYPES[destination].precision
    for producer in graph.inputs_of(node):
        if producer is not None:
            src_port = graph.op(producer[0]).outputs[producer[1]]
            if src_port.precision:
                return src_port.precision
    return "FP32"


def _layer(node: int, op: Op, writer: ConstantWriter) -> Element:
    layer = Element("layer", {"id": str(node), "name": op.name, "type": op.type, "version": op.version, **op.layer_attrs})
    pending: dict[str, list[Element]] = {}

    def queue(tag: str, elem: Element) -> None:
        pending.setdefault(tag, []).append(elem)

    if op.attrs is not None:
        attrs = dict(op.attrs)
        if op.const is not None:
            offset, size = writer.add(op.const)
            attrs["offset"], attrs["size"] = str(offset), str(size)
        queue("data", Element("data", attrs))
    if op.rt_info is not None:
        queue("rt_info", copy.deepcopy(op.rt_info))
    if op.inputs:
        queue("input", _ports("input", op.inputs, output=False))
    if op.outputs:
        queue("output", _ports("output", op.outputs, output=True))
    for extra in op.extras:
        queue(extra.tag, copy.deepcopy(extra))
    for tag in BODY_TAGS:
        if tag in op.bodies:
            body = Element(tag)
            _fill_graph(body, op.bodies[tag], writer)
            queue(tag, body)
    for tag in op.child_order:
        if pending.get(tag):
            layer.append(pending[tag].pop(0))
    for tag in (*_DEFAULT_CHILD_ORDER, *pending):
        for elem in pending.get(tag, []):
            layer.append(elem)
        pending[tag] = []
    return layer


def _ports(tag: str, ports: list[Port], *, output: bool) -> Element:
    group = Element(tag)
    for port in ports:
        attrs = {"id": str(port.id)}
        if port.precision is not None:
            attrs["precision"] = port.precision
        if output and port.names:
            attrs["names"] = ",".join(n.replace(",", "\\,") for n in port.names)
        attrs.update(port.attrs)
        elem = ET.SubElement(group, "port", attrs)
        for dim in port.shape or ():
            ET.SubElement(elem, "dim").text = str(dim)
        for extra in port.extra:
            elem.append(copy.deepcopy(extra))
    return group
