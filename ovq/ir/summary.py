"""What a model contains: inputs, outputs, op counts, weight bytes, quantizers."""

from __future__ import annotations

from dataclasses import dataclass, field

from ovq.ir.element_types import element_type_from_precision
from ovq.ir.graph import Graph


@dataclass
class TensorInfo:
    """One model input or output."""

    name: str
    element_type: str
    shape: str
    layout: str | None = None


@dataclass
class ModelSummary:
    """A summary of a Graph, printable by ``ovq inspect`` and usable as data."""

    name: str
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    op_counts: dict[str, int] = field(default_factory=dict)
    constant_bytes: dict[str, int] = field(default_factory=dict)
    fake_quantize_count: int = 0

    @property
    def total_ops(self) -> int:
        """Ops including those inside sub-graph bodies."""
        return sum(self.op_counts.values())

    @property
    def total_constant_bytes(self) -> int:
        """Bytes of constant payload (before deduplication)."""
        return sum(self.constant_bytes.values())

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "name": self.name,
            "inputs": [vars(t) for t in self.inputs],
            "outputs": [vars(t) for t in self.outputs],
            "op_counts": self.op_counts,
            "total_ops": self.total_ops,
            "constant_bytes": self.constant_bytes,
            "fake_quantize_count": self.fake_quantize_count,
        }

    def format(self) -> str:
        """Human-readable multi-line report."""
        lines = [f"model {self.name!r}: {self.total_ops} ops"]
        lines.append("inputs:")
        for t in self.inputs:
            layout = f"  layout {t.layout}" if t.layout else ""
            lines.append(f"  {t.name:<30} {t.element_type:<8} [{t.shape}]{layout}")
        lines.append("outputs:")
        for t in self.outputs:
            lines.append(f"  {t.name:<30} {t.element_type:<8} [{t.shape}]")
        lines.append("ops:")
        for op_type, count in self.op_counts.items():
            lines.append(f"  {op_type:<30} {count}")
        lines.append("constants:")
        for et, size in sorted(self.constant_bytes.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {et:<30} {_human_bytes(size)}")
        lines.append(f"  {'total':<30} {_human_bytes(self.total_constant_bytes)}")
        lines.append(f"FakeQuantize: {self.fake_quantize_count}")
        return "\n".join(lines)


def _human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _port_shape(shape: list[int] | None) -> str:
    if shape is None:
        return "?"
    return ",".join("?" if d < 0 else str(d) for d in shape)


def _layout(port) -> str | None:
    for extra in port.extra:
        for attr in extra.iter("attribute"):
            if attr.get("name") == "layout":
                return attr.get("layout")
    return None


def summarize(graph: Graph) -> ModelSummary:
    """Summarize ``graph`` (inputs and outputs in model order)."""
    summary = ModelSummary(name=graph.name)
    for node in graph.parameters():
        op = graph.op(node)
        port = op.outputs[0]
        name = port.names[0] if port.names else op.name
        shape = (op.attrs or {}).get("shape", _port_shape(port.shape))
        summary.inputs.append(
            TensorInfo(name, (op.attrs or {}).get("element_type", "?"), shape or "", _layout(port))
        )
    for node in graph.results():
        op = graph.op(node)
        producer = graph.producer(node, 0)
        names = op.layer_attrs.get("output_names")
        if producer is not None:
            port = graph.op(producer[0]).outputs[producer[1]]
            name = names or (",".join(port.names) if port.names else op.name)
            et = element_type_from_precision(port.precision or "")
            summary.outputs.append(TensorInfo(name, et.name if et else "?", _port_shape(port.shape)))
    summary.op_counts = graph.op_histogram()
    for _node, op in graph.walk():
        if op.const is not None:
            et = op.const.element_type.name
            summary.constant_bytes[et] = summary.constant_bytes.get(et, 0) + op.const.size
    summary.fake_quantize_count = summary.op_counts.get("FakeQuantize", 0)
    return summary
