"""The IR mirror: read, edit and write OpenVINO models as networkx graphs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Union

from ovq.errors import IRError
from ovq.ir.constants import BinFile, ConstData
from ovq.ir.element_types import ELEMENT_TYPES, ElementType, element_type
from ovq.ir.graph import Graph, Op, Port
from ovq.ir.reader import read_ir
from ovq.ir.writer import save_model as _write_ir

if TYPE_CHECKING:
    import openvino as ov

ModelSource = Union[str, os.PathLike, "ov.Model", Graph]

__all__ = [
    "ELEMENT_TYPES",
    "BinFile",
    "ConstData",
    "ElementType",
    "Graph",
    "ModelSource",
    "Op",
    "Port",
    "element_type",
    "read_ir",
    "read_model",
    "save_model",
]


def read_model(src: ModelSource, *, bin_path: str | os.PathLike[str] | None = None) -> Graph:
    """Mirror a model as an :class:`ovq.Graph`.

    Args:
        src: An IR ``.xml`` path (its ``.bin`` beside it), any other file OpenVINO reads
            (``.onnx``, ``.tflite``, ``.pdmodel``, ...), an ``openvino.Model``, or a Graph
            (returned as is).
        bin_path: The weights file of an IR, when not beside the ``.xml``.

    Raises:
        IRError: the file is missing, unreadable, malformed or hostile.
    """
    if isinstance(src, Graph):
        return src
    if isinstance(src, (str, os.PathLike)):
        from ovq.files import check_input

        path = Path(src)
        check_input(path, IRError)  # a device, FIFO or folder is refused before OpenVINO opens it
        if path.suffix.lower() == ".xml":
            return read_ir(path, bin_path)
        from ovq.ir.bridge import read_with_openvino

        return read_with_openvino(path)
    import openvino as ov

    if isinstance(src, ov.Model):
        return Graph.from_ov(src)
    raise IRError(f"cannot read a model from {type(src).__name__}: expected a path, an openvino.Model or an ovq.Graph")


def save_model(
    model: ModelSource,
    xml_path: str | os.PathLike[str],
    *,
    bin_path: str | os.PathLike[str] | None = None,
    fsync: bool = False,
) -> Path:
    """Write a model as IR v11 ``.xml`` + ``.bin``, atomically (FP32 weights stay FP32).

    Args:
        model: An :class:`ovq.Graph`, an ``openvino.Model`` or a model path.
        xml_path: Where to write; the ``.bin`` goes beside it unless ``bin_path`` is given.
        bin_path: Explicit weights path.
        fsync: Flush both files to disk before the atomic rename.

    Returns:
        The ``.xml`` path written.

    Raises:
        IRError: the model cannot be read or the destination cannot be written; nothing
            is left behind and an existing model at ``xml_path`` is untouched.
    """
    return _write_ir(read_model(model), xml_path, bin_path, fsync=fsync)
