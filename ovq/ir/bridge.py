"""Conversions between :class:`~ovq.ir.graph.Graph` and ``openvino.Model``.

Both directions go through IR v11 in a private temporary folder: OpenVINO's own
``Serialize`` pass (which, unlike ``save_model``, neither compresses weights nor strips
rt_info) writes the model, and ovq mirrors it; the other way ovq writes IR and
OpenVINO reads it. The weights file is opened (and memory-mapped) before the folder is
removed, so no copy of the weights stays in memory or on disk.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from ovq.errors import IRError
from ovq.files import private_tempdir

if TYPE_CHECKING:
    import openvino as ov

    from ovq.ir.graph import Graph


@functools.lru_cache(maxsize=1)
def core() -> ov.Core:
    """The process-wide ``openvino.Core`` ovq uses for reading and compiling."""
    import openvino as ov

    return ov.Core()


def _first_line(exc: BaseException) -> str:
    """OpenVINO's reason without its source locations, on one line."""
    lines = [line.strip() for line in str(exc).splitlines()]
    kept = [
        line for line in lines
        if line and not line.startswith(("Exception from", "Check '")) and "src/" not in line
    ]
    return "; ".join(kept) if kept else (lines[0] if lines else type(exc).__name__)


def graph_from_ov(model: ov.Model, *, source: str = "<openvino.Model>") -> Graph:
    """Mirror an ``openvino.Model`` without changing it."""
    from openvino import passes

    from ovq.ir.reader import mirror_ir, parse_xml

    with private_tempdir() as tmp:
        xml_path, bin_path = tmp / "model.xml", tmp / "model.bin"
        manager = passes.Manager()
        manager.register_pass(passes.Serialize(str(xml_path), str(bin_path)))
        try:
            manager.run_passes(model)
        except RuntimeError as exc:
            raise IRError(f"{source}: OpenVINO cannot serialize the model: {_first_line(exc)}") from None
        root = parse_xml(xml_path)
        graph = mirror_ir(root, xml_path, bin_path, unlink_bin=True)
    _set_source(graph, source)
    graph.shapes_revision = graph.revision  # serialized with the shapes OpenVINO inferred
    return graph


def _set_source(graph: Graph, source: str) -> None:
    graph.source = source
    for _node, op in graph.ops():
        for tag, body in op.bodies.items():
            _set_source(body, f"{source}: {op.name}/{tag}")


def graph_to_ov(graph: Graph) -> ov.Model:
    """Build an ``openvino.Model`` from ``graph``.

    Raises:
        IRError: OpenVINO rejects the graph (unknown op without its extension, type
            mismatch, ...), with OpenVINO's reason.
    """
    from ovq.ir.writer import save_model

    with private_tempdir() as tmp:
        xml_path = tmp / "model.xml"
        save_model(graph, xml_path, pairing_record=False)
        try:
            return core().read_model(str(xml_path))
        except RuntimeError as exc:
            raise IRError(f"{graph.source}: OpenVINO cannot build the model: {_first_line(exc)}") from None


def read_with_openvino(path: Path, bin_path: Path | None = None) -> Graph:
    """Read any format OpenVINO reads (ONNX, TFLite, IR v10, ...) and mirror it."""
    try:
        if bin_path is not None:
            model = core().read_model(str(path), str(bin_path))
        else:
            model = core().read_model(str(path))
    except RuntimeError as exc:
        raise IRError(f"{path}: OpenVINO cannot read it: {_first_line(exc)}") from None
    return graph_from_ov(model, source=str(path))


def infer_shapes(graph: Graph) -> None:
    """Fill every output port's precision and shape with what OpenVINO infers.

    Runs OpenVINO's own shape and type inference on a copy of the graph whose layers
    are temporarily named by id, then copies the results back (top level only; body
    ports are informational and left as they are).
    """
    probe = graph.copy()
    for node, op in probe.ops():
        op.name = f"__ovq_id_{node}"
    model = graph_to_ov(probe)
    for ov_op in model.get_ops():
        name = ov_op.get_friendly_name()
        if not name.startswith("__ovq_id_"):
            continue
        node = int(name[len("__ovq_id_"):])
        if node not in graph:
            continue
        ports = graph.op(node).outputs
        for index, output in enumerate(ov_op.outputs()):
            if index >= len(ports):
                break
            et = output.get_element_type().get_type_name()
            from ovq.ir.element_types import ELEMENT_TYPES

            if et in ELEMENT_TYPES:
                ports[index].precision = ELEMENT_TYPES[et].precision
            pshape = output.get_partial_shape()
            if pshape.rank.is_static:
                ports[index].shape = [d.get_length() if d.is_static else -1 for d in pshape]
