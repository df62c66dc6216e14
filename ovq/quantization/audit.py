"""The CPU runtime audit: which Convolution/MatMul layers really run in INT8.

Compiles the model on CPU with ``INFERENCE_PRECISION_HINT=f32`` (so float fallbacks
show as f32, not bf16) and reads each runtime node's rt_info from
``compiled.get_runtime_model()``: ``layerType``, ``runtimePrecision``,
``primitiveType`` and ``originalLayersNames``.

Audited plugin layer types: Convolution, GroupConvolution, Deconvolution,
FullyConnected(Compressed), MatMul, and the recurrent ``RNNSeq``/``RNNCell`` nodes
(LSTMSequence/GRUSequence run ``u8`` with a ``ref_any_I8`` kernel when quantized).
On AVX-512 machines the plugin fuses attention (``Q x K^T``, Softmax, ``x V``, or a
decomposed ScaledDotProductAttention) into one snippets ``Subgraph`` (e.g. ``i8``,
``jit_avx512_i8``); such a Subgraph is audited when one of its original layers is a
MatMul-like IR op, and it counts as INT8 like any other node.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

AUDITED_LAYER_TYPES = {"Convolution", "GroupConvolution", "Deconvolution", "FullyConnected", "MatMul",
                       "FullyConnectedCompressed", "RNNSeq", "RNNCell"}
INT8_PRECISIONS = {"u8", "i8"}
COMPRESSED_WEIGHT_PRECISIONS = {"u8", "i8", "u4", "i4", "nf4", "f4e2m1"}
MATMUL_LIKE_IR_TYPES = {"MatMul", "Convolution", "GroupConvolution", "ConvolutionBackpropData",
                        "GroupConvolutionBackpropData", "ScaledDotProductAttention"}


@dataclass(frozen=True)
class AuditEntry:
    """One runtime Convolution/MatMul-like (or recurrent) node."""

    name: str
    layer_type: str
    runtime_precision: str
    primitive_type: str
    original_layers: tuple[str, ...]

    @property
    def int8(self) -> bool:
        """True if the layer executes with an 8-bit integer kernel."""
        return self.runtime_precision in INT8_PRECISIONS and self.primitive_type.upper().endswith("_I8")

    @property
    def compressed_weights(self) -> bool:
        """True for a FullyConnected that keeps integer weights and computes in float
        (weight-only compression, ``ovq.compress_weights``)."""
        return (not self.int8 and self.layer_type == "FullyConnected"
                and self.runtime_precision in COMPRESSED_WEIGHT_PRECISIONS)


@dataclass
class AuditReport:
    """Per-layer runtime precisions and the INT8 summary.

    Attributes:
        entries: Every runtime Convolution/GroupConvolution/Deconvolution/FullyConnected/MatMul.
        expected: IR layer names that were meant to run INT8 (empty: every audited layer).
    """

    entries: list[AuditEntry] = field(default_factory=list)
    expected: tuple[str, ...] = ()
    float_model: bool = False
    """The model holds no quantization at all (no FakeQuantize, no i8/u8/i4/u4 weights):
    its layers are labelled ``float``, not ``fallback``."""

    def label(self, entry: AuditEntry) -> str:
        """``INT8``; ``float`` for a layer of a float model; else ``fallback`` (a layer of a
        quantized model that runs in floating point)."""
        if entry.int8:
            return "INT8"
        return "float" if self.float_model else "fallback"

    @property
    def int8_count(self) -> int:
        """Audited layers running INT8."""
        return sum(e.int8 for e in self.entries)

    @property
    def fallbacks(self) -> list[AuditEntry]:
        """Audited layers not running INT8."""
        return [e for e in self.entries if not e.int8]

    def missing(self) -> list[str]:
        """Expected IR layers that do not run INT8.

        A layer is found by its IR name in a runtime node's name or
        ``originalLayersNames``. The CPU plugin sometimes renames a convolution (a fused
        Multiply lends its name); expected names found nowhere are then matched, by
        count, against INT8 runtime layers that carry no expected name.
        """
        expected = set(self.expected)
        int8_hits: set[str] = set()
        fallback_hits: set[str] = set()
        spare = 0
        for e in self.entries:
            names = {_ir_name(n) for n in (e.name, *e.original_layers)} & expected
            (int8_hits if e.int8 else fallback_hits).update(names)
            if e.int8 and not names:
                spare += 1
        unresolved = [n for n in self.expected if n not in int8_hits and n not in fallback_hits]
        return [n for n in self.expected if n in fallback_hits and n not in int8_hits] + unresolved[spare:]

    @property
    def ok(self) -> bool:
        """Every expected layer (or, with none given, every audited layer) runs INT8."""
        return not self.missing() if self.expected else not self.fallbacks

    def summary(self) -> str:
        """``INT8: k/n layers`` (plus the expected-layer check when one was given)."""
        text = f"INT8: {self.int8_count}/{len(self.entries)} layers"
        if self.float_model:
            text += " (a float model: nothing in it is quantized)"
        if self.expected:
            miss = self.missing()
            text += f" (expected {len(self.expected) - len(miss)}/{len(self.expected)} quantized layers in INT8)"
        return text

    def format(self) -> str:
        """A table, one line per audited layer, fallbacks marked, then the summary."""
        lines = []
        width = max([len(e.name) for e in self.entries] + [5])
        lines.append(f"{'layer':<{width}}  {'type':<16} {'precision':<9} kernel")
        for e in self.entries:
            label = self.label(e)
            mark = ("" if label == "INT8" else "   (float model)" if label == "float"
                    else "   (integer weights, float compute)" if e.compressed_weights
                    else "   <- fallback: " + ",".join(e.original_layers))
            lines.append(f"{e.name:<{width}}  {e.layer_type:<16} {e.runtime_precision:<9} {e.primitive_type}{mark}")
        for n in self.missing() if self.expected else []:
            lines.append(f"expected INT8 but not: {n}")
        lines.append(self.summary())
        return "\n".join(lines)


def _ir_name(name: str) -> str:
    # LPT renames a quantized MatMul to "<name>/DequantizationMultiply".
    for suffix in ("/DequantizationMultiply", "/DequantizationSubtract"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _rt(info: Any, key: str) -> str:
    try:
        value = info[key]
    except (KeyError, RuntimeError, IndexError):
        return ""
    for conv in ("astype",):
        if hasattr(value, conv):
            try:
                return str(value.astype(str))
            except Exception:  # noqa: BLE001 - OVAny of another type
                pass
    return str(value.value if hasattr(value, "value") else value)


def runtime_audit(model: Any, *, expected: Iterable[str] | None = None, config: dict | None = None,
                  compiled: Any = None) -> AuditReport:
    """Compile ``model`` on CPU (f32 hint) and report each Conv/MatMul's runtime precision.

    Args:
        model: ``openvino.Model``, :class:`ovq.Graph` or a model path.
        expected: IR layer names meant to run INT8; defaults to the names
            ``place_fake_quantize`` recorded on a Graph (``graph.meta``), else none.
        config: Extra compile options.
        compiled: ``model`` already compiled on CPU with the f32 precision hint (not
            compiled again).
    """
    from ovq.ir import Graph
    from ovq.runtime import as_ov_model, compile_model

    if expected is None and isinstance(model, Graph):
        expected = model.meta.get("ovq.quantized_ops")
    ov_model = as_ov_model(model)
    matmul_like = {op.get_friendly_name() for op in ov_model.get_ops() if op.get_type_name() in MATMUL_LIKE_IR_TYPES}
    quantized = quantized_layers(ov_model)
    if compiled is None:
        compiled = compile_model(ov_model, config=config)
    entries = []
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        layer_type = _rt(info, "layerType")
        originals = tuple(x for x in _rt(info, "originalLayersNames").split(",") if x)
        fused_attention = layer_type == "Subgraph" and not matmul_like.isdisjoint(originals)
        if layer_type not in AUDITED_LAYER_TYPES and not fused_attention:
            continue
        entries.append(AuditEntry(op.get_friendly_name(), layer_type, _rt(info, "runtimePrecision"),
                                  _rt(info, "primitiveType"), originals))
    return AuditReport(entries, tuple(expected or ()), float_model=not quantized)


LOW_PRECISION_WEIGHTS = {"i8", "u8", "i4", "u4"}
_THROUGH = {"Convert", "Subtract", "Multiply", "Reshape", "Transpose", "Unsqueeze", "Squeeze"}


def quantized_layers(ov_model: Any) -> set[str]:
    """Names of the ops the model gives a quantized input: a FakeQuantize or a
    low-precision constant, reached through at most 4 dequantization/layout ops.

    (Which runtime node carries which IR name varies with the plugin's fusions, so the
    audit uses this only to tell a float model, where it is empty, from a quantized one.)"""

    def quantized_source(node: Any, depth: int) -> bool:
        kind = node.get_type_name()
        if kind == "FakeQuantize":
            return True
        if kind == "Constant":
            return node.get_element_type().get_type_name() in LOW_PRECISION_WEIGHTS
        if depth and kind in _THROUGH:
            return any(quantized_source(i.get_source_output().get_node(), depth - 1) for i in node.inputs())
        return False

    return {op.get_friendly_name() for op in ov_model.get_ops()
            if op.get_type_name() not in {"FakeQuantize", "Result"} | _THROUGH
            and any(quantized_source(i.get_source_output().get_node(), 4) for i in op.inputs())}
