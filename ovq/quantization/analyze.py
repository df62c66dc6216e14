"""Per-layer quantization error: ``ovq.analyze(fp_model, int8_model, data)``.

For every layer the INT8 model quantizes, the error that quantizing **that layer
alone** adds, measured in one streamed pass over the data (not one inference per
layer), with the saturation share of its quantized inputs, their range and levels,
and its weights' levels and granularity. The result is a :class:`LayerErrorTable`.

How (docs/analyze.md gives the reasoning):

* **Layers** are taken from the INT8 model: every op (Convolution, MatMul, Add, ...)
  with an input that comes through a FakeQuantize (possibly through quantization-
  transparent ops such as MaxPool, Reshape or Concat) or from a quantized constant
  (a weight FakeQuantize, or a ``Const(i8/u8) → Convert → [Subtract] → Multiply``
  dequantization chain). Works on ovq, NNCF and POT models alike, in memory or on disk.
* **Shadow layers.** The analysis model is the FP model plus a clone of the INT8 model
  in which every edge entering a quantized layer's "island" (the layer, the
  FakeQuantize ops and transparent ops in front of it, its weight subgraph and its
  bias Add) is rewired to the FP model's tensor of the same name. Each island then
  computes the layer with only its own quantizers applied, fed by the FP model's
  activations; OpenVINO compiles it as it would the INT8 model (a real INT8 kernel
  where the CPU runs one), so the measured error includes the kernel's own effects.
* **In-graph reductions** give, per sample, per output channel Σ(y_q − y_fp)² and
  Σ y_fp² of each layer (its output after the bias Add when it has one), and per
  activation FakeQuantize the count of its FP input's values outside the range, its
  noise Σ(FQ(x) − x)², Σ x², and the observed min/max. They are packed into three
  outputs (sums, minima, maxima) and folded into float64 running sums as requests
  complete; nothing per sample is kept.
* Layers are matched between the two models by op friendly name (ovq and NNCF keep
  names); the INT8 layers without an FP counterpart are listed in
  :attr:`LayerErrorTable.unmatched` with the reason.

NMSE = Σ(y_q − y_fp)² / Σ y_fp² over every sample and element; SQNR = −10 log10 NMSE.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ovq.errors import CalibrationDataError, InferenceError, IRError, OvqError

JSON_FORMAT = "ovq.layer_errors/1"

# Ops between a FakeQuantize and the layer it quantizes that do not change values
# (or only select, reorder or pool them): a walk back from a layer's input goes
# through them to find the FakeQuantize.
TRANSPARENT_TYPES = frozenset({
    "MaxPool", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Concat", "StridedSlice", "Slice", "Split",
    "VariadicSplit", "Gather", "Broadcast", "DepthToSpace", "SpaceToDepth", "ShuffleChannels", "Pad", "Tile",
    "Convert", "ReduceMax", "Interpolate", "Identity",
})
CONV_TYPES = frozenset({"Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData",
                        "DeformableConvolution"})
LINEAR_TYPES = CONV_TYPES | {"MatMul"}
LOW_PRECISION = {"i8": 256, "u8": 256, "i4": 16, "u4": 16, "i16": 65536, "u16": 65536, "nf4": 16, "u1": 2}
_MAX_WALK = 8  # transparent ops walked through between a layer and its FakeQuantize
PREFIX = "__ovq_analyze/"


class AnalysisError(OvqError):
    """``ovq.analyze`` cannot compare the two models it was given."""


class NotQuantizedError(AnalysisError):
    """The model given as INT8 has no quantized layer (no FakeQuantize, no low-precision weights)."""


class ModelMismatchError(AnalysisError):
    """The FP and INT8 models share no quantized layer (matched by op name and type)."""


@dataclass
class InputError:
    """One quantized activation input of a layer: its FakeQuantize and what it did to the data.

    Attributes:
        fq: The FakeQuantize op's name (in the INT8 model).
        levels: Its ``levels``.
        low: The smallest ``input_low`` (per-channel ranges: over channels).
        high: The largest ``input_high``.
        per_channel: The range has more than one value.
        saturation: Share of the FP input's values outside ``[input_low, input_high]``.
        nmse: Σ(FQ(x) − x)² / Σ x² of the FP input x.
        seen_min: The smallest FP input value seen.
        seen_max: The largest FP input value seen.
    """

    fq: str
    levels: int
    low: float
    high: float
    per_channel: bool
    saturation: float = 0.0
    nmse: float = 0.0
    seen_min: float = 0.0
    seen_max: float = 0.0


@dataclass
class LayerError:
    """One quantized layer of the INT8 model and the error quantizing it alone adds.

    Attributes:
        name: The op's friendly name (the same in both models).
        type: The op type (``Convolution``, ``MatMul``, ...).
        nmse: Σ(y_q − y_fp)² / Σ y_fp² of the layer's output (after its bias Add when it
            has one) with only this layer quantized, over every sample and element.
        sqnr_db: −10 log10(nmse) (``inf`` when the error is zero).
        worst_channel_nmse: The largest per-output-channel NMSE (Convolution and MatMul
            layers), else None.
        saturation: The largest share, over the layer's quantized activation inputs, of
            FP values outside the FakeQuantize range (0 without such inputs).
        act_low: Range of the first quantized activation input (None without one).
        act_high: See ``act_low``.
        act_levels: ``levels`` of that FakeQuantize.
        weight_levels: Levels of the quantized weights (FakeQuantize ``levels``, or 2^bits
            of the integer constant), None without quantized weights.
        weight_granularity: ``per-channel`` or ``per-tensor`` (weights only).
        weight_dtype: The integer type of compressed weights (``i8``), ``f32`` for a
            FakeQuantize on float weights.
        weight_nmse: Σ(w_q − w)² / Σ w² of the weights alone (None without quantized weights).
        runtime_precision: The precision the CPU plugin ran the (shadow) layer in
            (``u8``, ``i8``, ``f32``), when it could be read.
        with_bias: The measured output is the layer's bias Add.
        inputs: Every quantized activation input.
        output_nmse: The NMSE of the **model's outputs** (averaged over its real-valued
            outputs) with only this layer quantized, measured on the table's
            ``impact_samples`` samples; None when not measured.
        output_sqnr_db: −10 log10(output_nmse).
    """

    name: str
    type: str
    nmse: float
    sqnr_db: float
    worst_channel_nmse: float | None = None
    saturation: float = 0.0
    act_low: float | None = None
    act_high: float | None = None
    act_levels: int | None = None
    weight_levels: int | None = None
    weight_granularity: str | None = None
    weight_dtype: str | None = None
    weight_nmse: float | None = None
    runtime_precision: str | None = None
    with_bias: bool = False
    inputs: list[InputError] = field(default_factory=list)
    output_nmse: float | None = None
    output_sqnr_db: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in _FLOAT_KEYS:
            d[key] = _json_float(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerError:
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["inputs"] = [InputError(**i) for i in d.get("inputs", [])]
        for key in _FLOAT_KEYS:
            if isinstance(d.get(key), str):
                d[key] = float(d[key])
        return cls(**d)


_FLOAT_KEYS = ("nmse", "sqnr_db", "worst_channel_nmse", "weight_nmse", "output_nmse", "output_sqnr_db")


def _json_float(x: float | None) -> float | str | None:
    if x is None or math.isfinite(x):
        return x
    return str(x)  # "inf" / "nan": JSON has no literal for them


@dataclass
class LayerErrorTable:
    """The per-layer errors of one INT8 model against its FP model.

    Rows are sorted worst first: by ``output_nmse`` (the error at the model output with
    only that layer quantized) when it was measured, else by the local ``nmse``
    (:attr:`rank_by` says which). ``table["name"]`` finds a row by layer name; iterating
    yields the rows.

    Attributes:
        rows: One :class:`LayerError` per analysed layer, worst first.
        unmatched: ``(INT8 layer name, reason)`` for every quantized layer that could not
            be analysed (no FP op of that name and type, an input without FP counterpart).
        samples: Samples streamed.
        seconds: Wall time of the analysis (build, compile and the pass).
        fp_model: Where the FP model came from (a path, or a description).
        int8_model: Where the INT8 model came from.
        timings: Seconds per step: ``build`` (reading the models, building the
            analysis model, the weight statistics), ``compile``, ``infer`` (the pass),
            ``impact`` (the output-impact runs).
        impact_samples: Samples ``output_nmse`` was measured on (0: not measured).
    """

    rows: list[LayerError] = field(default_factory=list)
    unmatched: list[tuple[str, str]] = field(default_factory=list)
    samples: int = 0
    seconds: float = 0.0
    fp_model: str = ""
    int8_model: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    impact_samples: int = 0

    def __post_init__(self) -> None:
        key = self.rank_by  # (a list being sorted reads as empty)
        self.rows.sort(key=lambda r: _nan_low(getattr(r, key)), reverse=True)

    @property
    def rank_by(self) -> str:
        """``output_nmse`` when every row has it, else ``nmse``."""
        if self.rows and all(r.output_nmse is not None for r in self.rows):
            return "output_nmse"
        return "nmse"

    def __iter__(self) -> Iterator[LayerError]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, name: str) -> LayerError:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(row.name == name for row in self.rows)

    def names(self) -> list[str]:
        """Layer names, worst first."""
        return [row.name for row in self.rows]

    def worst(self, k: int | None = None, *, by: str | None = None) -> list[LayerError]:
        """The ``k`` worst layers (all with ``None``) by ``by``: :attr:`rank_by` (default),
        ``output_nmse``, ``nmse``, ``saturation``, ``weight_nmse`` or
        ``worst_channel_nmse`` (larger is worse; rows without the value come last)."""
        keys = ("output_nmse", "nmse", "saturation", "weight_nmse", "worst_channel_nmse")
        if by is not None and by not in keys:
            raise ValueError(f"worst(by={by!r}): use one of {', '.join(keys)}")
        rows = self.rows if by is None or by == self.rank_by else sorted(
            self.rows, key=lambda r: _nan_low(getattr(r, by)), reverse=True)
        return list(rows if k is None else rows[:k])

    def to_dict(self) -> dict[str, Any]:
        return {"format": JSON_FORMAT, "fp_model": self.fp_model, "int8_model": self.int8_model,
                "samples": self.samples, "impact_samples": self.impact_samples, "seconds": self.seconds,
                "timings": self.timings, "rank_by": self.rank_by,
                "layers": [r.to_dict() for r in self.rows],
                "unmatched": [{"name": n, "reason": why} for n, why in self.unmatched]}

    def to_json(self, path: str | Path | None = None, *, indent: int | None = 1) -> str:
        """The table as JSON (written to ``path`` too when given). Infinite or NaN
        values are written as the strings ``"inf"`` / ``"nan"``."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> LayerErrorTable:
        """Read a table written by :meth:`to_json` (JSON text or a file path)."""
        text = str(text_or_path)
        if isinstance(text_or_path, Path) or not text.lstrip().startswith("{"):
            try:
                text = Path(text_or_path).read_text()
            except OSError as exc:
                raise AnalysisError(f"cannot read layer-error table {text_or_path}: {exc.strerror}") from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AnalysisError(f"layer-error table is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(d, dict) or d.get("format") != JSON_FORMAT:
            raise AnalysisError(f"not a layer-error table (expected format {JSON_FORMAT!r})")
        return cls(rows=[LayerError.from_dict(r) for r in d.get("layers", [])],
                   unmatched=[(u["name"], u["reason"]) for u in d.get("unmatched", [])],
                   samples=int(d.get("samples", 0)), seconds=float(d.get("seconds", 0.0)),
                   fp_model=d.get("fp_model", ""), int8_model=d.get("int8_model", ""),
                   timings={k: float(v) for k, v in d.get("timings", {}).items()},
                   impact_samples=int(d.get("impact_samples", 0)))

    def format(self, top: int | None = None) -> str:
        """A terminal table of the ``top`` worst layers (all by default)."""
        rows = self.worst(top)
        head = ("#", "layer", "type", "out SQNR", "SQNR dB", "NMSE", "sat %", "act range", "lv", "weights",
                "w SQNR", "rt")
        lines = []
        for i, r in enumerate(rows, 1):
            act = f"[{_g(r.act_low)}, {_g(r.act_high)}]" if r.act_low is not None else "-"
            weights = "-"
            if r.weight_levels is not None:
                weights = f"{r.weight_levels} {r.weight_granularity or ''}".strip()
            wsq = f"{_db(r.weight_nmse):.1f}" if r.weight_nmse is not None else "-"
            out = f"{r.output_sqnr_db:.1f}" if r.output_sqnr_db is not None else "-"
            lines.append((str(i), _clip(r.name, 48), r.type, out, f"{r.sqnr_db:.1f}", f"{r.nmse:.2e}",
                          f"{100 * r.saturation:.2f}", act, str(r.act_levels or "-"), weights, wsq,
                          r.runtime_precision or "-"))
        widths = [max(len(h), *(len(line[k]) for line in lines)) if lines else len(h) for k, h in enumerate(head)]
        right = {0, 3, 4, 5, 6, 10}

        def fmt(cells: Sequence[str]) -> str:
            return "  ".join(c.rjust(w) if k in right else c.ljust(w)
                             for k, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

        out = [fmt(head), *(fmt(line) for line in lines)]
        shown = f"{len(rows)} of {len(self.rows)}" if len(rows) < len(self.rows) else str(len(self.rows))
        order = (f"by the model-output SQNR with only that layer quantized ({self.impact_samples} samples)"
                 if self.rank_by == "output_nmse" else "by the layer's own SQNR")
        out.append(f"{shown} quantized layers, worst first {order}; SQNR dB and NMSE: the layer's output "
                   f"({self.samples} samples); {self.seconds:.1f} s")
        if self.unmatched:
            names = ", ".join(n for n, _ in self.unmatched[:5]) + (" ..." if len(self.unmatched) > 5 else "")
            out.append(f"not analysed ({len(self.unmatched)}): {names}")
        return "\n".join(out)


def _nan_low(x: float | None) -> float:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return -math.inf
    return x


def _db(nmse: float | None) -> float:
    if nmse is None:
        return math.nan
    return math.inf if nmse <= 0 else -10.0 * math.log10(nmse)


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else "…" + s[-(n - 1):]


# ---------------------------------------------------------------------------- models


def _load(model: Any, what: str) -> tuple[Any, str]:
    """A private ``openvino.Model`` copy of ``model`` (path, Model or ovq Graph) and its description."""
    import openvino as ov

    from ovq.ir.graph import Graph

    if isinstance(model, ov.Model):
        return model.clone(), f"<openvino.Model {model.get_friendly_name()}>"
    if isinstance(model, Graph):
        return model.to_ov(), f"<ovq.Graph {model.name}>"
    if isinstance(model, (str, Path)):
        from ovq.ir.bridge import core

        path = Path(model)
        if not path.is_file():
            raise IRError(f"{what} model {path}: no such file")
        try:
            return core().read_model(str(path)), str(path)
        except RuntimeError as exc:
            raise IRError(f"{what} model {path}: OpenVINO cannot read it: {_first_line(exc)}") from None
    raise AnalysisError(f"{what} model: expected a path, an openvino.Model or an ovq.Graph, "
                        f"got {type(model).__name__}")


def _first_line(exc: BaseException) -> str:
    from ovq.quantization.statistics import _first_line as first

    return first(exc)


def _et(port: Any) -> str:
    return port.get_element_type().get_type_name()


class ConstantSubgraphs:
    """Which nodes of an ``openvino.Model`` compute constants, and which of those hold a
    FakeQuantize or a low-precision constant (quantized weights), memoized per node."""

    def __init__(self) -> None:
        self._const: dict[int, bool] = {}
        self._quantized: dict[int, bool] = {}

    def is_const(self, node: Any) -> bool:
        """True if ``node`` computes a constant (no Parameter or state upstream)."""
        key = node.get_instance_id()
        if key not in self._const:
            t = node.get_type_name()
            if t == "Constant":
                self._const[key] = True
            elif t in ("Parameter", "ReadValue") or node.get_input_size() == 0:
                self._const[key] = False
            else:
                self._const[key] = all(self.is_const(i.get_source_output().get_node()) for i in node.inputs())
        return self._const[key]

    def quantized_const(self, node: Any) -> bool:
        """True if the constant subgraph ``node`` holds a FakeQuantize or a low-precision constant."""
        key = node.get_instance_id()
        if key not in self._quantized:
            t = node.get_type_name()
            if t == "FakeQuantize":
                self._quantized[key] = True
            elif t == "Constant":
                self._quantized[key] = _et(node.output(0)) in LOW_PRECISION
            else:
                self._quantized[key] = any(self.quantized_const(i.get_source_output().get_node())
                                           for i in node.inputs())
        return self._quantized[key]


class _Builder:
    """Builds the analysis model: the FP model plus shadow islands cloned from the INT8 model."""

    def __init__(self, fp: Any, q: Any) -> None:
        self.fp, self.q = fp, q
        self.fp_ops = {op.get_friendly_name(): op for op in fp.get_ordered_ops()}
        self.q_ops = list(q.get_ordered_ops())
        self.q_name = {op.get_instance_id(): op.get_friendly_name() for op in self.q_ops}
        self.constants = ConstantSubgraphs()
        self._walked: dict[tuple[int, int], Any] = {}  # (node id, output) -> (rewired?, quantized FQs)
        self.fqs: dict[str, Any] = {}  # activation FQ name -> the INT8 clone's FQ node (its input rewired)
        for op in self.q_ops:  # the clone's tensor names would clash with the FP model's
            for out in op.outputs():
                out.get_tensor().set_names(set())

    # ---- structure of the INT8 model

    def name(self, node: Any) -> str:
        return self.q_name[node.get_instance_id()]

    def is_const(self, node: Any) -> bool:
        """True if ``node`` computes a constant (no Parameter or state upstream)."""
        return self.constants.is_const(node)

    def quantized_const(self, node: Any) -> bool:
        """True if the constant subgraph ``node`` holds a FakeQuantize or a low-precision constant."""
        return self.constants.quantized_const(node)

    def quantized_inputs(self, node: Any) -> tuple[list[int], list[int]]:
        """(activation inputs reached through a FakeQuantize, quantized constant inputs) of ``node``."""
        act, wts = [], []
        for k, inp in enumerate(node.inputs()):
            src = inp.get_source_output().get_node()
            if self.is_const(src):
                if self.quantized_const(src):
                    wts.append(k)
            elif self._reaches_fq(src, 0):
                act.append(k)
        return act, wts

    def _reaches_fq(self, node: Any, depth: int) -> bool:
        t = node.get_type_name()
        if t == "FakeQuantize":
            return True
        if t in TRANSPARENT_TYPES and depth < _MAX_WALK:
            return any(self._reaches_fq(i.get_source_output().get_node(), depth + 1) for i in node.inputs()
                       if not self.is_const(i.get_source_output().get_node()))
        return False

    def layers(self) -> list[Any]:
        """Every op of the INT8 model with a quantized input (the quantized layers): not the
        transparent ops between a FakeQuantize and a layer, but those reading a quantized
        constant (an embedding Gather from an int8 table)."""
        out = []
        for op in self.q_ops:
            t = op.get_type_name()
            if t in ("FakeQuantize", "Result") or self.is_const(op):
                continue
            act, wts = self.quantized_inputs(op)
            if t in TRANSPARENT_TYPES and not wts:
                continue  # on the way to a layer; but a Gather from a quantized table is one
            if act or wts:
                out.append(op)
        return out

    # ---- rewiring

    def fp_output(self, out: Any) -> Any:
        """The FP model's output matching INT8 output ``out`` (same op name and type), or None."""
        node = out.get_node()
        fp = self.fp_ops.get(self.name(node))
        if fp is None or fp.get_type_name() != node.get_type_name() or fp.get_output_size() <= out.get_index():
            return None
        return fp.output(out.get_index())

    def rewire_input(self, node: Any, k: int, depth: int = 0) -> list[str]:
        """Make input ``k`` of clone op ``node`` read FP data except through quantizers:
        returns the activation FQs on the way. Raises _Unmatched."""
        src = node.input(k).get_source_output()
        prod = src.get_node()
        if self.is_const(prod):
            return []
        key = (prod.get_instance_id(), src.get_index())
        if key in self._walked:
            rewired, fqs = self._walked[key]
            if rewired is not None:
                node.set_argument(k, rewired)
            return fqs
        t = prod.get_type_name()
        fqs: list[str] = []
        replacement = None
        if t == "FakeQuantize":
            name = self.name(prod)
            self._rewire_data(prod, 0, depth + 1)
            self.fqs[name] = prod
            fqs = [name]
        elif t in TRANSPARENT_TYPES and depth < _MAX_WALK and self._reaches_fq(prod, 0):
            for j in range(prod.get_input_size()):
                fqs += self.rewire_input(prod, j, depth + 1)
        else:
            replacement = self.fp_output(src)
            if replacement is None:
                replacement = self._through_new_op(prod, src, depth)
        self._walked[key] = (replacement, fqs)
        if replacement is not None:
            node.set_argument(k, replacement)
        return fqs

    def _rewire_data(self, node: Any, k: int, depth: int) -> None:
        """Input ``k`` of ``node`` (a FakeQuantize's data) reads the FP model's tensor."""
        src = node.input(k).get_source_output()
        prod = src.get_node()
        if self.is_const(prod):
            return
        replacement = self.fp_output(src)
        if replacement is None:
            replacement = self._through_new_op(prod, src, depth)
        if replacement is not None:
            node.set_argument(k, replacement)

    def _through_new_op(self, prod: Any, src: Any, depth: int) -> None:
        """An INT8 op with no FP counterpart (SmoothQuant's scaling Multiply, ...): kept
        if it has one non-constant input, which is rewired in turn."""
        live = [j for j, i in enumerate(prod.inputs()) if not self.is_const(i.get_source_output().get_node())]
        if len(live) != 1 or depth >= _MAX_WALK or prod.get_type_name() in ("Parameter", "FakeQuantize"):
            raise _Unmatched(f"its input {self.name(prod)!r} ({prod.get_type_name()}) has no counterpart "
                             "in the FP model")
        self._rewire_data(prod, live[0], depth + 1)
        return None


class _Unmatched(Exception):
    pass


@dataclass
class _LayerPlan:
    node: Any  # the INT8 clone's op
    fp_node: Any
    y_q: Any
    y_fp: Any
    with_bias: bool
    channels: int | None
    fqs: list[str]
    weight_ports: list[int]
    gated: bool = False  # the FP path can be switched to this layer's quantized output
    sum_at: int = 0  # offset of [Σd² per channel, Σy² per channel] in the sums vector


def _bias_add(node: Any, builder: _Builder | None) -> Any:
    """The Add with a constant other input that is the only consumer of ``node``, or None."""
    targets = list(node.output(0).get_target_inputs())
    if len(targets) != 1:
        return None
    add = targets[0].get_node()
    if add.get_type_name() != "Add":
        return None
    other = add.input(1 - targets[0].get_index()).get_source_output().get_node()
    const = builder.is_const(other) if builder is not None else _fp_is_const(other)
    return add if const else None


def _fp_is_const(node: Any, depth: int = 0) -> bool:
    t = node.get_type_name()
    if t == "Constant":
        return True
    if t in ("Parameter", "ReadValue") or depth > 6 or node.get_input_size() == 0:
        return False
    return all(_fp_is_const(i.get_source_output().get_node(), depth + 1) for i in node.inputs())


def _channel_axis(node: Any, out: Any) -> int | None:
    ps = out.get_partial_shape()
    if ps.rank.is_dynamic or ps.rank.get_length() < 2:
        return None
    rank = ps.rank.get_length()
    t = node.get_type_name()
    axis = 1 if t in CONV_TYPES else rank - 1 if t == "MatMul" else None
    if axis is None or not ps[axis].is_static:
        return None
    return axis


def _build(fp: Any, q: Any, *, gates: bool = False
           ) -> tuple[Any, list[_LayerPlan], dict[str, Any], list[tuple[str, str]], dict[str, Any]]:
    """The analysis model, its layer plans, FQ plans, the unmatched layers and the pack layout.

    ``gates``: the model takes one more input, a vector with one gate per layer plan; the
    FP model's path reads y_fp + gate·(y_q − y_fp) at every layer, and the FP model's
    outputs are outputs too (after the packed reductions)."""
    import openvino as ov
    import openvino.opset13 as ops

    b = _Builder(fp, q)
    layers = b.layers()
    if not layers:
        raise NotQuantizedError("the INT8 model has no quantized layer: no op takes its input through a "
                                "FakeQuantize or from low-precision (i8/u8/i4) weights; is it quantized?")
    plans: list[_LayerPlan] = []
    unmatched: list[tuple[str, str]] = []
    for node in layers:
        name = b.name(node)
        fp_node = b.fp_ops.get(name)
        if fp_node is None:
            unmatched.append((name, "no op of this name in the FP model"))
            continue
        if fp_node.get_type_name() != node.get_type_name():
            unmatched.append((name, f"the FP op of this name is a {fp_node.get_type_name()}, "
                                    f"not a {node.get_type_name()}"))
            continue
        if fp_node.get_input_size() != node.get_input_size():
            unmatched.append((name, "the FP op of this name has another number of inputs"))
            continue
        _, wts = b.quantized_inputs(node)
        try:
            fqs: list[str] = []
            for k in range(node.get_input_size()):
                fqs += b.rewire_input(node, k)
        except _Unmatched as exc:
            unmatched.append((name, str(exc)))
            continue
        y_q, y_fp, with_bias = node.output(0), fp_node.output(0), False
        if node.get_type_name() in LINEAR_TYPES:
            add_q, add_fp = _bias_add(node, b), _bias_add(fp_node, None)
            if add_q is not None and add_fp is not None:
                y_q, y_fp, with_bias = add_q.output(0), add_fp.output(0), True
        if y_q.get_element_type() != y_fp.get_element_type() or not y_fp.get_element_type().is_real():
            unmatched.append((name, f"its output type differs: {_et(y_q)} vs {_et(y_fp)} in the FP model"))
            continue
        plans.append(_LayerPlan(node, fp_node, y_q, y_fp, with_bias,
                                None, list(dict.fromkeys(fqs)), wts))
    if not plans:
        shown = "; ".join(f"{n}: {why}" for n, why in unmatched[:3])
        raise ModelMismatchError(f"the FP and INT8 models share no quantized layer ({len(unmatched)} quantized "
                                 f"layers in the INT8 model, none matched by name and type: {shown})")

    gate_param = None
    if gates:
        # y_fp -> y_fp + g·(y_q − y_fp) for every FP consumer (not the reductions below):
        # with g one-hot, the FP model runs with that layer alone quantized
        gate_param = ops.parameter([len(plans)], np.float32, name=PREFIX + "gates")
        gate_param.set_friendly_name(PREFIX + "gates")
        axis0 = ops.constant(np.array(0, np.int64))
        for i, plan in enumerate(plans):
            if plan.y_fp.get_element_type() != ov.Type.f32 or plan.y_q.get_element_type() != ov.Type.f32:
                continue
            targets = list(plan.y_fp.get_target_inputs())
            g = ops.gather(gate_param, ops.constant(np.array(i, np.int64)), axis0)
            mix = ops.add(plan.y_fp, ops.multiply(g, ops.subtract(plan.y_q, plan.y_fp)))
            mix.set_friendly_name(f"{PREFIX}mix/{i}")
            for t in targets:
                t.get_node().set_argument(t.get_index(), mix.output(0))
            plan.gated = True

    # reductions, packed: sums (additive over samples), mins, maxs
    sums: list[Any] = []
    sum_len = 0
    mins: list[Any] = []
    maxs: list[Any] = []

    def f32(x: Any) -> Any:
        return x if x.get_element_type() == ov.Type.f32 else ops.convert(x, "f32").output(0)

    def flat(x: Any) -> Any:
        return ops.reshape(x, ops.constant(np.array([-1], np.int64)), special_zero=False)

    def all_axes(x: Any) -> tuple[Any, Any]:
        x = x.output(0) if hasattr(x, "outputs") else x
        ps = x.get_partial_shape()
        if ps.rank.is_static and ps.rank.get_length() >= 1:
            return x, ops.constant(np.arange(ps.rank.get_length(), dtype=np.int64))
        return flat(x), ops.constant(np.array([0], np.int64))

    def add_sum(node: Any, size: int) -> int:
        nonlocal sum_len
        sums.append(flat(node))
        at = sum_len
        sum_len += size
        return at

    for plan in plans:
        y_q, y_fp = f32(plan.y_q), f32(plan.y_fp)
        axis = _channel_axis(plan.node, plan.y_fp)
        d2 = ops.squared_difference(y_q, y_fp)
        s2 = ops.multiply(y_fp, y_fp)
        if axis is not None:
            rank = plan.y_fp.get_partial_shape().rank.get_length()
            axes = ops.constant(np.array([a for a in range(rank) if a != axis], np.int64))
            c = plan.y_fp.get_partial_shape()[axis].get_length()
            plan.channels = c
            plan.sum_at = add_sum(ops.reduce_sum(d2, axes, keep_dims=False), c)
            add_sum(ops.reduce_sum(s2, axes, keep_dims=False), c)
        else:
            data, axes = all_axes(d2)
            plan.sum_at = add_sum(ops.reduce_sum(data, axes, keep_dims=False), 1)
            data, axes = all_axes(s2)
            add_sum(ops.reduce_sum(data, axes, keep_dims=False), 1)

    fq_plans: dict[str, dict[str, Any]] = {}
    used = list(dict.fromkeys(fq for p in plans for fq in p.fqs))
    for name in used:
        fq = b.fqs[name]
        x = f32(fq.input_value(0))
        il, ih = fq.input_value(1), fq.input_value(2)
        if il.get_element_type() != ov.Type.f32:
            il, ih = ops.convert(il, "f32"), ops.convert(ih, "f32")
        out = f32(fq.output(0))
        outside = ops.convert(ops.logical_or(ops.less(x, il), ops.greater(x, ih)), "f32")
        entry: dict[str, Any] = {"node": fq}
        data, axes = all_axes(outside)
        entry["outside"] = add_sum(ops.reduce_sum(data, axes, keep_dims=False), 1)
        entry["numel"] = add_sum(ops.convert(ops.reduce_prod(ops.shape_of(x), ops.constant(np.array([0], np.int64)),
                                                             keep_dims=False), "f32"), 1)
        data, axes = all_axes(ops.squared_difference(out, x))
        entry["noise"] = add_sum(ops.reduce_sum(data, axes, keep_dims=False), 1)
        data, axes = all_axes(ops.multiply(x, x))
        entry["power"] = add_sum(ops.reduce_sum(data, axes, keep_dims=False), 1)
        data, axes = all_axes(x)
        entry["minmax"] = len(mins)
        mins.append(flat(ops.reduce_min(data, axes, keep_dims=False)))
        maxs.append(flat(ops.reduce_max(data, axes, keep_dims=False)))
        fq_plans[name] = entry

    results = []
    for label, parts in (("sums", sums), ("mins", mins), ("maxs", maxs)):
        if parts:
            r = ops.result(ops.concat(parts, 0) if len(parts) > 1 else parts[0])
            r.set_friendly_name(f"{PREFIX}{label}")
            results.append(r)
    for op in b.q_ops:  # clone ops get their own names (runtime model, error messages)
        if op.get_type_name() not in ("Parameter", "Result"):
            op.set_friendly_name(PREFIX + b.name(op))
    layout = {"sums": sum_len, "mins": len(mins), "has_minmax": bool(mins), "outputs": [], "first_output": len(results)}
    params = list(fp.get_parameters())
    if gate_param is not None:
        # the FP model's real outputs, for the impact runs
        for k, res in enumerate(fp.get_results()):
            if res.get_output_element_type(0).is_real():
                layout["outputs"].append(len(results))
                results.append(res)
        params.append(gate_param)
    model = ov.Model(results, params, "ovq_analyze")
    return model, plans, fq_plans, unmatched, layout


# ------------------------------------------------------------------------- weights


def _weight_stats(plans: Sequence[_LayerPlan]) -> dict[str, dict[str, Any]]:
    """Levels, granularity and NMSE of each layer's quantized weights (their constant
    subgraphs evaluated in numpy; the FakeQuantize by ovq's bit-exact kernel)."""
    out: dict[str, dict[str, Any]] = {}
    for plan in plans:
        if not plan.weight_ports:
            continue
        port = plan.weight_ports[0]
        wq = plan.node.input_value(port)
        info = _describe_weights(wq.get_node())
        out[plan.node.get_friendly_name()] = info
        wf = plan.fp_node.input_value(port)
        if not _fp_is_const(wf.get_node()):
            continue
        wq_v, wf_v = _const_value(wq), _const_value(wf)
        in_axis = None
        if plan.node.get_type_name() == "MatMul":
            in_axis = -1 if plan.node.get_attributes().get("transpose_b") else -2
        fold_axis = 1 if plan.node.get_type_name() == "Convolution" else in_axis
        if wq_v is not None and wf_v is not None and wq_v.shape != wf_v.shape and fold_axis is not None:
            wq_v = _fold_split_channels(plan.node, wq_v, wf_v.shape, fold_axis)
        if wq_v is None or wf_v is None or wq_v.shape != wf_v.shape:
            continue
        info["nmse"] = _weight_nmse(wq_v, wf_v, in_axis)
    return out


def _fold_split_channels(layer: Any, wq: np.ndarray, shape: tuple[int, ...], in_axis: int) -> np.ndarray | None:
    """Weights whose input channels a constant-index ``Gather`` on the activation (before
    or after its FakeQuantize) copies, summed back onto the original channels: MatMuls
    :mod:`.channel_split` split, convolutions :mod:`.pair_spread` spread (their copies
    hold zeros); None when there is no such Gather or the shapes do not fit."""
    node = layer.input_value(0).get_node()
    for _ in range(3):
        if node.get_type_name() == "Gather":
            break
        if node.get_type_name() != "FakeQuantize":
            return None
        node = node.input_value(0).get_node()
    else:
        return None
    index = _int_const(node.input_value(1))
    if node.get_type_name() != "Gather" or index is None or index.ndim != 1 or index.size != wq.shape[in_axis] \
            or len(shape) != wq.ndim or index.max() >= shape[in_axis]:
        return None
    folded = np.zeros(shape, np.float32)
    np.add.at(np.moveaxis(folded, in_axis, 0), index, np.moveaxis(wq, in_axis, 0))
    return folded


def _const_value(out: Any, depth: int = 0) -> np.ndarray | None:
    """The value of constant subgraph output ``out`` (float32), or None for an op this
    small evaluator does not know (Constant, Convert, the four arithmetic ops,
    FakeQuantize, Reshape, Transpose, Squeeze, Unsqueeze)."""
    node = out.get_node()
    t = node.get_type_name()
    if t == "Constant":
        try:
            return np.asarray(node.get_data(), np.float32)
        except (RuntimeError, TypeError, ValueError):  # i4/u4/nf4 tables: not as numpy
            return None
    if depth > 12:
        return None
    args = [_const_value(i, depth + 1) if t not in ("Reshape", "Transpose", "Squeeze", "Unsqueeze") or k == 0
            else _int_const(i) for k, i in enumerate(node.input_values())]
    if any(a is None for a in args):
        return None
    x = args[0]
    try:
        if t == "Convert":
            return x.astype(np.float32)
        if t in ("Multiply", "Add", "Subtract", "Divide"):
            op = {"Multiply": np.multiply, "Add": np.add, "Subtract": np.subtract, "Divide": np.divide}[t]
            return op(x, args[1]).astype(np.float32)
        if t == "FakeQuantize":
            from ovq.kernels import get_kernels

            return np.asarray(get_kernels().fake_quantize(x, *args[1:], int(node.get_attributes()["levels"])),
                              np.float32)
        if t in ("Reshape", "Squeeze", "Unsqueeze"):
            return x.reshape(tuple(out.get_partial_shape().to_shape()))
        if t == "Transpose":
            return np.transpose(x, args[1].astype(np.int64))
    except (ValueError, RuntimeError, TypeError, OvqError):
        return None
    return None


def _int_const(out: Any) -> np.ndarray | None:
    node = out.get_node()
    return np.asarray(node.get_data()) if node.get_type_name() == "Constant" else None


def _weight_nmse(wq: np.ndarray, wf: np.ndarray, in_axis: int | None) -> float:
    """Σ(w_q − w)² / Σ w². For a MatMul (``in_axis``: its weights' input axis) whose INT8
    weights were rescaled per input channel (SmoothQuant moves a scale ``s`` from the
    activation into the weights: ``w_q ≈ s · w``), ``w`` is first rescaled by the
    least-squares ``s`` of each input channel, so that only the quantization error counts."""
    def sq(a: np.ndarray) -> float:
        flat = a.reshape(-1)
        return float(np.dot(flat, flat))

    nmse = _ratio(sq(wq - wf), sq(wf))
    if in_axis is not None and nmse > 1e-2 and wf.ndim >= 2:
        axes = tuple(a for a in range(wf.ndim) if a != in_axis % wf.ndim)
        with np.errstate(divide="ignore", invalid="ignore"):
            num, den = np.sum(wq * wf, axis=axes, keepdims=True), np.sum(wf * wf, axis=axes, keepdims=True)
            scale = np.where(den > 0, num / np.where(den > 0, den, 1), 1.0).astype(np.float32)
        scaled = wf * scale
        nmse = min(nmse, _ratio(sq(wq - scaled), sq(scaled)))
    return nmse


def _describe_weights(node: Any, depth: int = 0) -> dict[str, Any]:
    """Levels, granularity and storage type of a quantized constant subgraph ending at ``node``."""
    t = node.get_type_name()
    if t == "FakeQuantize":
        lows = node.input_value(1).get_partial_shape()
        n = int(np.prod(lows.to_shape())) if lows.is_static else 1
        return {"levels": int(node.get_attributes()["levels"]), "granularity": "per-channel" if n > 1 else "per-tensor",
                "dtype": _et(node.input_value(0))}
    if t == "Constant":
        et = _et(node.output(0))
        return {"levels": LOW_PRECISION.get(et), "granularity": None, "dtype": et}
    info: dict[str, Any] = {"levels": None, "granularity": None, "dtype": None}
    for inp in node.inputs():
        sub = _describe_weights(inp.get_source_output().get_node(), depth + 1)
        if sub["levels"] is not None and info["levels"] is None:
            info.update(sub)
    if t == "Multiply" and info["levels"] is not None and info["granularity"] is None:
        sizes = [int(np.prod(i.get_partial_shape().to_shape())) for i in node.inputs() if i.get_partial_shape().is_static]
        info["granularity"] = "per-channel" if len(sizes) == 2 and min(sizes) > 1 else "per-tensor"
    return info


# ---------------------------------------------------------------------------- run


def _runtime_precisions(compiled: Any) -> dict[str, str]:
    """Runtime precision of each shadow layer, by INT8 layer name (from the runtime model;
    a compute node that holds the layer wins over a fused one that lists it too)."""
    best: dict[str, tuple[int, str]] = {}
    try:
        runtime = compiled.get_runtime_model()
    except RuntimeError:
        return {}
    for op in runtime.get_ops():
        rt = op.get_rt_info()
        try:
            names = str(rt["originalLayersNames"].astype(str)) if "originalLayersNames" in rt else ""
            precision = str(rt["runtimePrecision"].astype(str)) if "runtimePrecision" in rt else ""
            layer_type = str(rt["layerType"].astype(str)) if "layerType" in rt else ""
        except (RuntimeError, AttributeError, TypeError):
            continue
        if layer_type in ("Reorder", "Input", "Output", "Const"):
            continue
        rank = 0 if layer_type in _COMPUTE_RUNTIME_TYPES else 1
        for name in names.split(","):
            if not name.startswith(PREFIX):
                continue
            name = name[len(PREFIX):]
            if "/Dequantization" in name:  # LPT names a layer it moved a dequantization across so
                name = name[:name.rindex("/Dequantization")]
            if name not in best or rank < best[name][0]:
                best[name] = (rank, precision)
    return {name: precision for name, (_, precision) in best.items()}


_COMPUTE_RUNTIME_TYPES = {"Convolution", "GroupConvolution", "Deconvolution", "FullyConnected",
                          "FullyConnectedCompressed", "MatMul", "Eltwise", "Pooling", "Gather", "RNNSeq", "RNNCell"}


def analyze(
    fp_model: Any,
    int8_model: Any,
    data: Iterable[Any],
    *,
    subset_size: int | None = 300,
    seed: int = 0,
    impact_samples: int = 2,
    progress: bool | None = None,
    requests: int | None = None,
) -> LayerErrorTable:
    """Per-layer quantization error of ``int8_model`` against ``fp_model`` on ``data``.

    One streamed pass: the FP model runs with, next to every quantized layer, a shadow
    copy of it taken from the INT8 model (its activation FakeQuantize ops, quantized
    weights and bias) fed by the FP activations; in-graph reductions give each layer's
    output NMSE with only that layer quantized, and each quantized input's saturation
    share. See the module docstring and docs/analyze.md.

    Args:
        fp_model: The floating-point model: a path (IR, ONNX, ...), ``openvino.Model`` or
            :class:`ovq.Graph` (not modified).
        int8_model: The quantized model, in any of those forms: ovq, NNCF or POT output
            (FakeQuantize on activations; weights as FakeQuantize on floats or as
            compressed integer constants).
        data: Samples as :func:`ovq.quantize` takes them (arrays, tuples, dicts by input
            name, or ``ovq.Dataset``).
        subset_size: Samples to use (a seeded draw when the data is larger; ``None``: all).
        seed: Seed of that draw.
        impact_samples: Also measure, on this many of the samples (the first ones), the
            error at the **model output** when only the layer is quantized: the FP model
            runs once more per sample and layer with the layer's output switched to its
            shadow (one compiled model: a gate vector is an extra input). For a model
            with an ``attention_mask`` input, output positions it masks out (padding
            tokens) are not counted. This ranks layers
            by what they do to the output (``output_nmse``; the table's default order);
            0 skips it (then the local ``nmse`` ranks).
        progress: Progress bar (``None``: on a terminal only).
        requests: Infer requests in flight (default: OpenVINO's optimal number plus one).

    Returns:
        A :class:`LayerErrorTable`, worst layer first.

    Raises:
        NotQuantizedError: ``int8_model`` has no quantized layer.
        ModelMismatchError: no quantized layer of ``int8_model`` has a counterpart (same
            op name and type) in ``fp_model``.
        CalibrationDataError: empty data, or a sample that does not fit the model.
        IRError: a model file is missing or unreadable.
        InferenceError: OpenVINO cannot compile or run the analysis model.
    """
    import openvino as ov

    from ovq.ir.bridge import core
    from ovq.quantization.conv_decompression import fold_conv_weight_decompression
    from ovq.quantization.dataset import InputSpec, select_subset
    from ovq.quantization.statistics import _progress_bar

    t_start = time.perf_counter()
    fp, fp_desc = _load(fp_model, "FP")
    # the FP side only: int8-stored convolution weights of the FP model are folded to f32
    # (an OpenVINO multi-stream bug corrupts them; docs/reliability.md); the INT8 side keeps
    # its compressed weights, which its INT8 kernels read as they are
    fp, _ = fold_conv_weight_decompression(fp)
    q, q_desc = _load(int8_model, "INT8")
    samples = select_subset(data, subset_size, seed=seed)
    spec = InputSpec(fp)
    stream = iter(samples)
    first = next(stream, None)  # checked before anything is built or compiled
    if first is None:
        raise CalibrationDataError("the analysis dataset is empty")
    first_arrays = spec.arrays(first, 0)
    model, plans, fq_plans, unmatched, layout = _build(fp, q, gates=impact_samples > 0)
    gated = [i for i, p in enumerate(plans) if p.gated]
    if impact_samples > 0 and not (gated and layout["outputs"]):
        impact_samples = 0  # no real-valued output, or no layer output the FP path can switch to
    weights = _weight_stats(plans)
    t_compile = time.perf_counter()
    try:
        compiled = core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                       "PERFORMANCE_HINT": "THROUGHPUT"})
    except RuntimeError as exc:
        raise InferenceError(f"OpenVINO cannot compile the analysis model: {_first_line(exc)}") from None
    precisions = _runtime_precisions(compiled)
    del model
    t_infer = time.perf_counter()

    lock = threading.Lock()
    sums = np.zeros(layout["sums"], np.float64)
    mins = np.full(layout["mins"], np.inf)
    maxs = np.full(layout["mins"], -np.inf)
    errors: list[BaseException] = []
    outputs = layout["outputs"]
    baselines: dict[int, list[np.ndarray]] = {}  # impact samples: the FP outputs (no gate open)
    kept_inputs: list[list[np.ndarray]] = []
    kept_masks: list[np.ndarray | None] = []  # the attention mask of each impact sample, if the model takes one
    mask_input = _attention_mask_input(fp)
    out_err = np.zeros((len(plans), len(outputs)), np.float64)  # Σ over impact samples of ‖o_L − o‖²
    out_power = np.zeros(len(outputs), np.float64)  # Σ over impact samples of ‖o‖²
    no_gates = np.zeros(len(plans), np.float32)

    def done(request: Any, index: int) -> None:
        try:
            s = np.asarray(request.get_output_tensor(0).data, np.float64).reshape(-1)
            lo = hi = None
            if layout["has_minmax"]:
                lo = np.array(request.get_output_tensor(1).data).reshape(-1)
                hi = np.array(request.get_output_tensor(2).data).reshape(-1)
            base = None
            if index < impact_samples:
                mask = kept_masks[index]
                base = [_masked(np.array(request.get_output_tensor(k).data, np.float64), mask) for k in outputs]
            with lock:
                sums.__iadd__(s)
                if lo is not None:
                    np.minimum(mins, lo, out=mins)
                    np.maximum(maxs, hi, out=maxs)
                if base is not None:
                    baselines[index] = base
                    out_power.__iadd__([float(np.sum(b * b)) for b in base])
        except BaseException as exc:  # re-raised on the calling thread
            with lock:
                errors.append(exc)

    def impact_done(request: Any, job: tuple[int, int]) -> None:
        index, layer = job
        try:
            mask = kept_masks[index]
            got = [float(np.sum((_masked(np.asarray(request.get_output_tensor(k).data, np.float64), mask) - b) ** 2))
                   for k, b in zip(outputs, baselines[index], strict=True)]
            with lock:
                out_err[layer] += got
        except BaseException as exc:
            with lock:
                errors.append(exc)

    def inputs_of(arrays: list[np.ndarray], gates: np.ndarray | None) -> list[np.ndarray]:
        return arrays if not impact_samples else [*arrays, gates]

    jobs = requests or max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))) + 1
    queue = ov.AsyncInferQueue(compiled, jobs)
    queue.set_callback(done)
    total = (samples.count or 0) + impact_samples * len(gated) if samples.count is not None else None
    bar = _progress_bar(total, progress, "analyze")
    count = 0
    t_impact = None
    try:
        for index, sample in enumerate(itertools.chain([first], stream)):
            if errors:
                break
            arrays = first_arrays if index == 0 else spec.arrays(sample, index)
            if index < impact_samples:
                kept_inputs.append(arrays)
                kept_masks.append(arrays[mask_input] if mask_input is not None else None)
            _start(queue, inputs_of(arrays, no_gates), index)
            count += 1
            bar.update(1)
        _wait(queue)
        if impact_samples and not errors:
            # the impact runs: the first samples again, once per layer with its gate open
            t_impact = time.perf_counter()
            queue.set_callback(impact_done)
            for index, arrays in enumerate(kept_inputs):
                for layer in gated:
                    if errors:
                        break
                    one_hot = no_gates.copy()
                    one_hot[layer] = 1.0
                    _start(queue, inputs_of(arrays, one_hot), (index, layer))
                    bar.update(1)
            _wait(queue)
    finally:
        bar.close()
        del queue, compiled
    if errors:
        raise errors[0]
    if count == 0:
        raise CalibrationDataError("the analysis dataset is empty")
    t_end = time.perf_counter()
    timings = {"build": t_compile - t_start, "compile": t_infer - t_compile,
               "infer": (t_impact or t_end) - t_infer}
    if t_impact is not None:
        timings["impact"] = t_end - t_impact
    impact_count = len(kept_inputs) if impact_samples else 0

    rows = []
    for plan in plans:
        name = plan.node.get_friendly_name()[len(PREFIX):]
        c = plan.channels or 1
        err = sums[plan.sum_at:plan.sum_at + c]
        power = sums[plan.sum_at + c:plan.sum_at + 2 * c]
        nmse = _ratio(float(err.sum()), float(power.sum()))
        worst = None
        if plan.channels:
            with np.errstate(divide="ignore", invalid="ignore"):
                per = np.where(power > 0, err / np.where(power > 0, power, 1), np.where(err > 0, np.inf, 0.0))
            worst = float(per.max())
        inputs = []
        for fq_name in plan.fqs:
            e = fq_plans[fq_name]
            inputs.append(_input_error(fq_name, e, sums, mins, maxs))
        w = weights.get(PREFIX + name, {})
        first = inputs[0] if inputs else None
        output_nmse = None
        if impact_count and plan.gated:
            k = plans.index(plan)
            with np.errstate(divide="ignore", invalid="ignore"):
                per_output = [_ratio(float(e), float(p)) for e, p in zip(out_err[k], out_power, strict=True)]
            output_nmse = float(np.mean(per_output))
        rows.append(LayerError(
            name=name, type=plan.node.get_type_name(), nmse=nmse, sqnr_db=_db(nmse), worst_channel_nmse=worst,
            saturation=max((i.saturation for i in inputs), default=0.0),
            act_low=first.low if first else None, act_high=first.high if first else None,
            act_levels=first.levels if first else None,
            weight_levels=w.get("levels"), weight_granularity=w.get("granularity"), weight_dtype=w.get("dtype"),
            weight_nmse=w.get("nmse"), runtime_precision=precisions.get(name), with_bias=plan.with_bias,
            inputs=inputs, output_nmse=output_nmse, output_sqnr_db=None if output_nmse is None else _db(output_nmse)))
    return LayerErrorTable(rows=rows, unmatched=unmatched, samples=count, seconds=time.perf_counter() - t_start,
                           fp_model=fp_desc, int8_model=q_desc, timings=timings, impact_samples=impact_count)


def _attention_mask_input(model: Any) -> int | None:
    """Position of the model input named like ``attention_mask`` (Hugging Face models), or None."""
    for k, port in enumerate(model.inputs):
        names = set(port.get_names()) | {port.get_node().get_friendly_name()}
        if any("attention_mask" in n for n in names):
            return k
    return None


def _masked(out: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``out`` with the positions the attention ``mask`` excludes set to zero, when the
    output's leading dims are the mask's ([batch, tokens]): padding tokens' outputs are
    not used downstream, and quantization changes them wildly (MiniLM: NMSE above 1 on
    padding, 1e-3 on the real tokens)."""
    if mask is None or out.ndim < mask.ndim or out.shape[:mask.ndim] != mask.shape:
        return out
    keep = (mask != 0).reshape(mask.shape + (1,) * (out.ndim - mask.ndim))
    return np.where(keep, out, 0.0)


def _start(queue: Any, inputs: list[np.ndarray], userdata: Any) -> None:
    try:
        queue.start_async(inputs, userdata=userdata)
    except RuntimeError as exc:
        where = userdata if isinstance(userdata, int) else userdata[0]
        raise InferenceError(f"OpenVINO cannot run the analysis model on sample {where}: "
                             f"{_first_line(exc)}") from None


def _wait(queue: Any) -> None:
    try:
        queue.wait_all()
    except RuntimeError as exc:
        raise InferenceError(f"OpenVINO failed running the analysis model: {_first_line(exc)}") from None


def _ratio(err: float, power: float) -> float:
    if power > 0:
        return err / power
    return 0.0 if err == 0 else math.inf


def _input_error(name: str, e: dict[str, Any], sums: np.ndarray, mins: np.ndarray, maxs: np.ndarray) -> InputError:
    fq = e["node"]
    lows = np.asarray(fq.input_value(1).get_node().get_data(), np.float64) \
        if fq.input_value(1).get_node().get_type_name() == "Constant" else np.array([math.nan])
    highs = np.asarray(fq.input_value(2).get_node().get_data(), np.float64) \
        if fq.input_value(2).get_node().get_type_name() == "Constant" else np.array([math.nan])
    numel = sums[e["numel"]]
    return InputError(fq=name, levels=int(fq.get_attributes()["levels"]), low=float(lows.min()),
                      high=float(highs.max()), per_channel=bool(lows.size > 1 or highs.size > 1),
                      saturation=float(sums[e["outside"]] / numel) if numel > 0 else 0.0,
                      nmse=_ratio(float(sums[e["noise"]]), float(sums[e["power"]])),
                      seen_min=float(mins[e["minmax"]]), seen_max=float(maxs[e["minmax"]]))


def run_analyze_cli(fp_model: Path, int8_model: Path, data: Path, *, json_out: Path | None = None,
                    top: int | None = 20, subset_size: int | None = 300, seed: int = 0,
                    progress: bool | None = None, data_options: dict[str, Any] | None = None,
                    echo: Any = print) -> LayerErrorTable:
    """``ovq analyze``: load ``data`` as ``ovq quantize`` does, analyse, print the table
    (and write its JSON atomically)."""
    import os

    from ovq.ir.bridge import core
    from ovq.quantization.data_sources import load_calibration_data
    from ovq.quantization.quantize_cli import _model_inputs

    if not Path(fp_model).is_file():
        raise IRError(f"FP model {fp_model}: no such file")
    try:
        fp = core().read_model(str(fp_model))
    except RuntimeError as exc:
        raise IRError(f"FP model {fp_model}: OpenVINO cannot read it: {_first_line(exc)}") from None
    options = {k: v for k, v in (data_options or {}).items() if v}
    samples = load_calibration_data(data, _model_inputs(fp), **options)
    echo(f"FP: {fp_model}; INT8: {int8_model}; data: {data} ({len(samples)} samples)")
    table = analyze(fp, int8_model, samples, subset_size=subset_size, seed=seed, progress=progress)
    table.fp_model = str(fp_model)
    echo(table.format(top))
    if json_out is not None:
        from ovq.files import check_output, temp_file

        json_out = Path(json_out)
        check_output(json_out, AnalysisError)
        fd, tmp = temp_file(json_out)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(table.to_json() + "\n")
            os.replace(tmp, json_out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        echo(f"wrote {json_out}")
    return table


__all__ = ["AnalysisError", "InputError", "LayerError", "LayerErrorTable", "ModelMismatchError",
           "NotQuantizedError", "analyze"]
