"""Write a :class:`~ovq.ir.graph.Graph` as IR v11 ``.xml`` + ``.bin``, atomically.

Both files are written to temporary names in the destination folder and renamed into
place only when complete (the old ``.xml`` removed, then ``.bin``, then ``.xml``), so an
interrupted or failed save never leaves a half-written file or an old ``.xml`` beside
the new ``.bin``, and a failed save never harms an existing model of that name. The
``.xml`` records which ``.bin`` it was written with (:mod:`ovq.ir.pairing`).

Constants are written back to back with no alignment, like OpenVINO's serializer, and
deduplicated: payloads with identical bytes share one range. Payloads still in their
source ``.bin`` are copied file-to-file (``copy_file_range``) in the kernel, and hashed
through a small reusable buffer, so saving a large model does not map its weights into
this process.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from xml.etree.ElementTree import Element

from ovq.errors import IRError
from ovq.files import check_output, temp_file
from ovq.ir import pairing
from ovq.ir.constants import ConstData
from ovq.ir.graph import BODY_TAGS, Graph, Op, Port

_CHUNK = 4 << 20
_SAMPLE = 64 << 10
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
        """CRC of the payload's first and last 64 KiB: a cheap bucket key.

        Equal keys are always confirmed by a full byte comparison, so sampling only
        costs a comparison on a (rare) false bucket hit, never a wrong merge.
        """
        size = data.size
        if not data.in_file:
            raw = memoryview(data.owned)  # type: ignore[arg-type]
            head, tail = raw[:_SAMPLE], raw[max(0, size - _SAMPLE):]
        else:
            assert data.bin is not None
            view = memoryview(self._buf)
            n = min(_SAMPLE, size)
            data.bin.pread_into(view[:n], data.offset)
            head = bytes(view[:n])
            data.bin.pread_into(view[:n], data.offset + size - n)
            tail = view[:n]
        return zlib.crc32(tail, zlib.crc32(head))

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


def save_model(
    graph: Graph,
    xml_path: str | os.PathLike[str],
    bin_path: str | os.PathLike[str] | None = None,
    *,
    fsync: bool = False,
    pairing_record: bool = True,
) -> Path:
    """Write ``graph`` as IR v11 to ``xml_path`` (and ``.bin`` beside it), atomically.

    The rename makes the write atomic for every process on the machine (no reader ever
    sees a partial file, and a failure or interrupt leaves the old files as they were).
    ``fsync=True`` also flushes both files to the disk before the rename, for
    durability across power loss, at the cost of waiting for the device.

    The ``.xml`` records the ``.bin``'s size and CRC-32 (``pairing_record``, see
    :mod:`ovq.ir.pairing`) so that a reader detects an ``.xml`` beside a ``.bin`` it was
    not written with. The old ``.xml`` is removed before the renames, so a process
    killed between them leaves no ``.xml`` (never an old one with the new ``.bin``);
    its temporaries are swept by the next save into that folder.
    An existing output that is not a regular file (or is a symlink) is refused.

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
    for path in (xml_path, bin_path):
        check_output(path, IRError)
    temps: list[str] = []
    try:
        bin_fd, bin_tmp = temp_file(bin_path)
        temps.append(bin_tmp)
        try:
            writer = ConstantWriter(bin_fd)
            text = render_net(graph, writer)
            os.ftruncate(bin_fd, writer.pos)
            if pairing_record:
                text = pairing.add_record(text, writer.pos, pairing.bin_digest(bin_fd, writer.pos))
            if fsync:
                os.fsync(bin_fd)
        finally:
            os.close(bin_fd)
        xml_fd, xml_tmp = temp_file(xml_path)
        temps.append(xml_tmp)
        with os.fdopen(xml_fd, "wb") as f:
            f.write(text)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        for tmp in temps:
            os.chmod(tmp, 0o644 & ~_umask())
        # The old .xml goes first: until the new one is renamed in, there is no model at
        # the path rather than an old .xml beside the new .bin (a mismatched pair).
        if os.path.lexists(xml_path):
            os.unlink(xml_path)
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


_ESCAPE_ATTR = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                               "\n": "&#10;", "\r": "&#13;", "\t": "&#09;"})
_ESCAPE_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def _emit(elem: Element, depth: int, out: list[str]) -> None:
    """Append ``elem`` to ``out`` tab-indented, without touching the element.

    Whitespace-only text and tails of the source document are dropped (they are layout,
    not content); real text (``<dim>`` values) is kept.
    """
    indent = "\t" * depth
    attrs = "".join(f' {k}="{str(v).translate(_ESCAPE_ATTR)}"' for k, v in elem.attrib.items())
    text = (elem.text or "").strip()
    children = list(elem)
    if not children and not text:
        out.append(f"{indent}<{elem.tag}{attrs} />\n")
    elif not children:
        out.append(f"{indent}<{elem.tag}{attrs}>{text.translate(_ESCAPE_TEXT)}</{elem.tag}>\n")
    else:
        out.append(f"{indent}<{elem.tag}{attrs}>\n")
        for child in children:
            _emit(child, depth + 1, out)
        out.append(f"{indent}</{elem.tag}>\n")


def render_net(graph: Graph, writer: ConstantWriter) -> bytes:
    """The IR ``.xml`` text of ``graph``; constant payloads go to ``writer``."""
    out = ['<?xml version="1.0"?>\n']
    attrs = _attrs({"name": graph.name, "version": "11", **graph.net_attrs})
    out.append(f"<net{attrs}>\n")
    _graph_text(graph, writer, 1, out)
    out.append("</net>\n")
    return "".join(out).encode("utf-8")


def _attrs(attrs: dict[str, str]) -> str:
    return "".join(f' {k}="{str(v).translate(_ESCAPE_ATTR)}"' for k, v in attrs.items())


def _graph_text(graph: Graph, writer: ConstantWriter, depth: int, out: list[str]) -> None:
    tab = "\t" * depth
    out.append(f"{tab}<layers>\n")
    order = layer_order(graph)
    for node in order:
        op = graph.op(node)
        for out_index, port in enumerate(op.outputs):
            if port.precision is None:
                port.precision = _placeholder_precision(graph, node, out_index)
        _layer_text(node, op, writer, depth + 1, out)
    out.append(f"{tab}</layers>\n{tab}<edges>\n")
    position = {n: i for i, n in enumerate(order)}
    # OpenVINO's serializer lists edges by producer position, then output port
    # (networkx keeps edges in insertion order, i.e. file order for a graph just read).
    edge_list = sorted(graph.nx.edges(keys=True), key=lambda e: (position[e[0]], e[2][0]))
    for src, dst, (out_i, in_i) in edge_list:
        out.append(
            f'{tab}\t<edge from-layer="{src}" from-port="{graph.op(src).outputs[out_i].id}" '
            f'to-layer="{dst}" to-port="{graph.op(dst).inputs[in_i].id}" />\n'
        )
    out.append(f"{tab}</edges>\n")
    if graph.rt_info is not None:
        _emit(graph.rt_info, depth, out)


def _layer_text(node: int, op: Op, writer: ConstantWriter, depth: int, out: list[str]) -> None:
    tab = "\t" * depth
    head = {"id": str(node), "name": op.name, "type": op.type, "version": op.version, **op.layer_attrs}
    out.append(f"{tab}<layer{_attrs(head)}>\n")
    pending: dict[str, list[list[str]]] = {}

    def queue(tag: str, text: list[str]) -> None:
        pending.setdefault(tag, []).append(text)

    inner = depth + 1
    if op.attrs is not None:
        attrs = op.attrs
        if op.const is not None:
            offset, size = writer.add(op.const)
            attrs = {**attrs, "offset": str(offset), "size": str(size)}
        queue("data", [f"{tab}\t<data{_attrs(attrs)} />\n"])
    if op.rt_info is not None:
        queue("rt_info", _emitted(op.rt_info, inner))
    if op.inputs:
        queue("input", _ports_text("input", op.inputs, inner, output=False))
    if op.outputs:
        queue("output", _ports_text("output", op.outputs, inner, output=True))
    for extra in op.extras:
        queue(extra.tag, _emitted(extra, inner))
    for tag in BODY_TAGS:
        if tag in op.bodies:
            body = [f"{tab}\t<{tag}>\n"]
            _graph_text(op.bodies[tag], writer, inner + 1, body)
            body.append(f"{tab}\t</{tag}>\n")
            queue(tag, body)
    for tag in op.child_order:
        if pending.get(tag):
            out.extend(pending[tag].pop(0))
    for tag in (*_DEFAULT_CHILD_ORDER, *pending):
        for text in pending.get(tag, []):
            out.extend(text)
        pending[tag] = []
    out.append(f"{tab}</layer>\n")


def _emitted(elem: Element, depth: int) -> list[str]:
    text: list[str] = []
    _emit(elem, depth, text)
    return text


def _ports_text(tag: str, ports: list[Port], depth: int, *, output: bool) -> list[str]:
    tab = "\t" * depth
    text = [f"{tab}<{tag}>\n"]
    for port in ports:
        attrs = {"id": str(port.id)}
        if port.precision is not None:
            attrs["precision"] = port.precision
        if output and port.names:
            attrs["names"] = ",".join(n.replace(",", "\\,") for n in port.names)
        attrs.update(port.attrs)
        dims = port.shape or ()
        if not dims and not port.extra:
            text.append(f"{tab}\t<port{_attrs(attrs)} />\n")
            continue
        text.append(f"{tab}\t<port{_attrs(attrs)}>\n")
        text.extend(f"{tab}\t\t<dim>{d}</dim>\n" for d in dims)
        for extra in port.extra:
            _emit(extra, depth + 2, text)
        text.append(f"{tab}\t</port>\n")
    text.append(f"{tab}</{tag}>\n")
    return text


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
