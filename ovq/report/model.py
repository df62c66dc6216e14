"""The typed records of an HTML/JSON quantization report.

:class:`ModelReport` is what :mod:`.collect` gathers and :mod:`.html` renders: a
:class:`ReportSummary` (model, target, options, phase times, sizes, INT8 coverage,
latencies), one :class:`LayerRow` per compute layer of the INT8 model in execution
order, the activation histograms of the worst layers (:class:`Histogram`), the
per-channel weight ranges (:class:`ChannelRanges`) and the notes the collector left
(what was not measured and why). :meth:`ModelReport.to_dict` is the JSON twin's content.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

JSON_FORMAT = "ovq.report/1"


@dataclass
class LayerRow:
    """One compute layer of the INT8 model (a row of the report's table).

    Attributes:
        index: Position in execution order (0-based, over compute layers).
        name: The op's friendly name.
        type: The op type.
        quantized: The layer has an input through a FakeQuantize or quantized weights.
        reason: Why it is left in floating point (empty when quantized).
        act_fq: Name of the FakeQuantize on its first quantized activation input.
        act_low: That FakeQuantize's lowest ``input_low`` (over channels).
        act_high: Its highest ``input_high``.
        act_levels: Its ``levels``.
        weight_levels: Levels of the quantized weights.
        weight_granularity: ``per-channel`` or ``per-tensor``.
        weight_dtype: Storage type of the weights (``i8``, or ``f32`` under a FakeQuantize).
        weight_low: Lowest representable weight (over channels).
        weight_high: Highest representable weight.
        runtime_precision: What the CPU plugin runs the layer in (``u8``, ``i8``, ``f32``).
        runtime_kernel: The plugin's ``primitiveType`` (``jit_avx2_1x1_I8``, ...).
        runtime_type: The plugin's ``layerType``.
        int8: Runs with an 8-bit integer kernel.
        bias_shift: Mean |shift| bias correction added to its bias (None: not corrected).
        bias_note: ``applied`` or ``skipped (ratio r)`` when bias correction looked at it.
        saturation: Share of FP activation values outside the range (sampled or analysed).
        nmse: Error at the layer's output with only it quantized (analysis).
        output_nmse: Error at the model's output with only it quantized (analysis).
        sqnr_db: −10 log10 of ``nmse``.
    """

    index: int
    name: str
    type: str
    quantized: bool
    reason: str = ""
    act_fq: str | None = None
    act_low: float | None = None
    act_high: float | None = None
    act_levels: int | None = None
    weight_levels: int | None = None
    weight_granularity: str | None = None
    weight_dtype: str | None = None
    weight_low: float | None = None
    weight_high: float | None = None
    runtime_precision: str | None = None
    runtime_kernel: str | None = None
    runtime_type: str | None = None
    int8: bool = False
    bias_shift: float | None = None
    bias_note: str | None = None
    saturation: float | None = None
    nmse: float | None = None
    output_nmse: float | None = None
    sqnr_db: float | None = None

    @property
    def anchor(self) -> str:
        """The HTML id of the layer's table row."""
        return f"layer-{self.index}"


@dataclass
class Histogram:
    """An activation histogram of one layer's quantized input, with the chosen range."""

    layer: str
    fq: str
    edges: list[float]
    counts: list[int]
    low: float
    high: float
    saturation: float
    samples: int


@dataclass
class ChannelRanges:
    """The per-output-channel weight range of one layer (what its quantizer represents)."""

    layer: str
    low: list[float]
    high: list[float]


@dataclass
class ReportSummary:
    """The report's head: what model, how it was quantized, what it costs to run.

    Sizes are the bytes of the models' constants; latencies are median milliseconds of
    one synchronous inference (CPU, f32 inference precision, LATENCY hint) on this machine.
    """

    model: str
    ovq_version: str
    source: str  # "ovq quantize", "ovq.quantize", "ovq report"
    target: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    fp_bytes: int | None = None
    int8_bytes: int = 0
    compute_layers: int = 0
    quantized_layers: int = 0
    fake_quantize_ops: int = 0
    runtime_audited: int = 0
    runtime_int8: int = 0
    cpu: str = ""
    fp32_latency_ms: float | None = None
    int8_latency_ms: float | None = None
    metric: float | None = None
    analysis_samples: int = 0
    histogram_samples: int = 0
    report_seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step of gathering the report


@dataclass
class GraphView:
    """The model graph as SVG: one picture, or blocks with one picture each.

    Attributes:
        overview: The SVG shown first (the whole graph, or the block overview).
        blocks: Per block, its expanded SVG (empty when the graph is shown whole or was
            too large for any detail).
        note: What was collapsed or left out, and why.
    """

    overview: str
    blocks: list[str] = field(default_factory=list)
    note: str = ""


@dataclass
class ModelReport:
    """Everything one report page shows (:func:`ovq.report.write_report` renders it)."""

    summary: ReportSummary
    layers: list[LayerRow] = field(default_factory=list)
    histograms: list[Histogram] = field(default_factory=list)
    weight_ranges: list[ChannelRanges] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    graph: GraphView | None = None
    rank_by: str = ""  # what "worst" means in the plots

    def to_dict(self) -> dict[str, Any]:
        """The JSON twin: summary, layers (same rows and fields as the table), notes."""
        return {"format": JSON_FORMAT, "summary": _clean(asdict(self.summary)),
                "layers": [_clean(asdict(r)) for r in self.layers],
                "histograms": [_clean(asdict(h)) for h in self.histograms],
                "weight_ranges": [_clean(asdict(w)) for w in self.weight_ranges],
                "notes": list(self.notes), "rank_by": self.rank_by,
                "graph_note": self.graph.note if self.graph else ""}


def _clean(x: Any) -> Any:
    """JSON-safe: non-finite floats become the strings ``inf``/``nan``."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x
