"""``ovq.quantize``: DefaultQuantization from an FP model and calibration samples.

Phases (each timed in the :class:`QuantizeReport`):

1. **placement** — FakeQuantize placement for the target (:mod:`.placement`);
2. **statistics** — one streamed pass over the calibration subset through an
   instrumented copy of the FP model (:mod:`.statistics`): per-sample min/max of every
   activation FQ input and per-channel means of every bias-corrected layer's input;
3. **ranges** — activation ranges (:mod:`.ranges`), optional overflow fix on weights;
   **smooth_quant** (transformers) — per-channel scales moved from activations into
   MatMul weights from the same pass's statistics (:mod:`.smooth_quant`);
4. **bias correction** — fast (analytic, one compile) or full (:mod:`.bias_correction`);
5. **compress** — weight FQs folded into int8 constants (:mod:`.compress`).

The call signature follows ``nncf.quantize`` so that code written for it needs only
the import changed; the enums below accept NNCF's names.
"""

from __future__ import annotations

import enum
import logging
import time
from contextlib import contextmanager
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ovq.errors import OvqError
from ovq.quantization.dataset import CalibrationError, Dataset, Subset, select_subset

if TYPE_CHECKING:
    from ovq.ir.graph import Graph

log = logging.getLogger("ovq.quantization")


class TargetDevice(str, enum.Enum):
    """Target devices with a shipped hardware descriptor (``ovq hw list``)."""

    ANY = "ANY"
    CPU = "CPU"
    GPU = "GPU"
    NPU = "NPU"
    CPU_SPR = "CPU_SPR"
    GNA = "GNA"
    GNA3 = "GNA3"


class QuantizationPreset(str, enum.Enum):
    """``performance``: symmetric activations; ``mixed``: asymmetric activations."""

    PERFORMANCE = "performance"
    MIXED = "mixed"


class ModelType(str, enum.Enum):
    """Model families with their own placement rules."""

    TRANSFORMER = "transformer"


OVERFLOW_FIX = ("disable", "first_layer", "enable")


def _value(x: Any) -> Any:
    return x.value if isinstance(x, enum.Enum) else x


@dataclass
class QuantizeReport:
    """What :func:`quantize` did, with the time spent per phase."""

    samples: int = 0
    activation_fqs: int = 0
    weight_fqs: int = 0
    quantized_ops: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    smoothed: int = 0
    smooth_alphas: list[float] = field(default_factory=list)  # per smoothed group
    bias_corrected: int = 0
    bias_skipped: list[tuple[str, float]] = field(default_factory=list)
    compressed: int = 0
    weight_bytes_before: int = 0
    weight_bytes_after: int = 0
    phases: dict[str, float] = field(default_factory=dict)
    requests: int = 0

    def format(self) -> str:
        """A few human-readable lines."""
        lines = [
            f"calibration samples: {self.samples} ({self.requests} infer requests in flight)",
            f"FakeQuantize: {self.activation_fqs} on activations, {self.weight_fqs} on weights; "
            f"{self.quantized_ops} ops quantized",
            *([f"SmoothQuant: {self.smoothed} MatMuls smoothed, alpha {_span(self.smooth_alphas)}"]
              if self.smoothed else []),
            f"bias correction: {self.bias_corrected} layers corrected, {len(self.bias_skipped)} left (shift too large "
            f"or zero bias)",
        ]
        if self.compressed:
            lines.append(f"weights: {self.compressed} tensors to integers, {self.weight_bytes_before / 2**20:.2f} MiB -> "
                         f"{self.weight_bytes_after / 2**20:.2f} MiB")
        if self.skipped:
            shown = ", ".join(f"{n} ({why})" for n, why in self.skipped[:8])
            more = f" and {len(self.skipped) - 8} more" if len(self.skipped) > 8 else ""
            lines.append(f"left in floating point: {shown}{more}")
        lines.append("time: " + ", ".join(f"{k} {v:.2f} s" for k, v in self.phases.items())
                     + f" (total {sum(self.phases.values()):.2f} s)")
        return "\n".join(lines)


def _span(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"


@contextmanager
def _timed(report: QuantizeReport, phase: str) -> Iterator[None]:
    """Add the wall time of the ``with`` body to ``report.phases[phase]``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        report.phases[phase] = report.phases.get(phase, 0.0) + time.perf_counter() - t0


NONNEGATIVE_OPS = {"ReLU", "Relu", "Sigmoid", "SoftMax", "Softmax", "Abs", "Exp", "SoftPlus", "Sqrt"}


def _nonnegative(graph: Graph, node: int) -> bool:
    """The op's output can never be negative (so a symmetric range needs no min statistic)."""
    op = graph.op(node)
    if op.type in NONNEGATIVE_OPS:
        return True
    if op.type == "Clamp":
        try:
            return float((op.attrs or {}).get("min", "-1")) >= 0
        except ValueError:
            return False
    return False


def _first_layers(graph: Graph, weighted: set[int]) -> set[int]:
    """Ops of ``weighted`` reachable from a Parameter without passing another one of them."""
    seen: set[int] = set()
    found: set[int] = set()
    work = list(graph.parameters())
    while work:
        n = work.pop()
        if n in seen:
            continue
        seen.add(n)
        for k in range(len(graph.op(n).outputs)):
            for dst, _ in graph.consumers(n, k):
                if dst in weighted:
                    found.add(dst)
                else:
                    work.append(dst)
    return found


def _overflow_fix(graph: Graph, meta: dict[str, dict[str, Any]], mode: str) -> int:
    """Double the 8-bit weight FQ ranges (7-bit effective weights) of the first or all layers."""
    if mode == "disable":
        return 0
    from ovq.quantization.placement import WEIGHTED

    weights = {m["node"]: name for name, m in meta.items() if m["kind"] == "weights" and m["node"] in graph}
    # only multiply-accumulate layers can saturate (an embedding table's Gather cannot)
    owners = {fq: graph.consumers(fq, 0)[0][0] for fq in weights if graph.consumers(fq, 0)}
    owners = {fq: op for fq, op in owners.items() if graph.op(op).type in WEIGHTED}
    if mode == "first_layer":
        # as NNCF: plain Convolutions only, the first one on each path from an input (a
        # walk from the inputs passes through everything else, MatMuls included)
        owners = {fq: op for fq, op in owners.items() if graph.op(op).type == "Convolution"}
        first = _first_layers(graph, set(owners.values()))
        owners = {fq: op for fq, op in owners.items() if op in first}
    from ovq.quantization.ranges import set_fq_range

    for fq in owners:
        levels = int(graph.op(fq).attrs["levels"])
        if levels > 256:  # 16-bit weights (GNA) cannot saturate an 8-bit multiply
            continue
        f = (levels - 1) / ((levels + 1) // 2 - 1)
        lo = np.asarray(graph.const_value(graph.producer(fq, 1)[0]), np.float32) * f
        hi = np.asarray(graph.const_value(graph.producer(fq, 2)[0]), np.float32) * f
        set_fq_range(graph, fq, lo, hi)
    return len(owners)


def _smooth_quant_alpha(smooth_quant: float | bool | str | None, model_type: Any) -> float | str | None:
    """The MatMul SmoothQuant alpha to use, ``"search"``, or None (off). ``None`` means
    the default: NNCF's 0.95 for transformers, off otherwise."""
    if smooth_quant is None:
        return 0.95 if _value(model_type) == ModelType.TRANSFORMER.value else None
    if smooth_quant is True:
        return 0.95
    if smooth_quant is False:
        return None
    if isinstance(smooth_quant, str) and smooth_quant.lower() in ("search", "auto"):
        return "search"
    try:
        alpha = float(smooth_quant)
    except (TypeError, ValueError):
        alpha = float("nan")
    if not alpha <= 1:
        raise OvqError(f"smooth_quant must be an alpha in [0, 1], 'search', or False / a negative value to "
                       f"disable; got {smooth_quant!r}")
    return alpha if alpha >= 0 else None


class _Keep(Iterable):
    """Re-iterable first ``k`` samples of a stream, remembered while the stream is consumed."""

    def __init__(self, stream: Iterable[Any], k: int) -> None:
        self.stream, self.k, self.kept = stream, k, []

    def __iter__(self) -> Iterator[Any]:
        for i, item in enumerate(self.stream):
            if i < self.k:
                self.kept.append(item)
            yield item


def calibrate_and_quantize(
    graph: Graph,
    calibration_dataset: Iterable[Any],
    *,
    fp_model: Any = None,
    target_device: Any = "ANY",
    preset: Any = None,
    subset_size: int | None = 300,
    fast_bias_correction: bool | None = True,
    model_type: Any = None,
    ignored_scope: Any = None,
    compress_weights: bool = True,
    activations_range: str = "mean_minmax",
    outlier_prob: float = 1e-4,
    overflow_fix: str | None = None,
    smooth_quant: float | bool | str | None = None,
    seed: int = 0,
    progress: bool | None = None,
    strict: bool = False,
) -> QuantizeReport:
    """Quantize ``graph`` in place (see :func:`quantize` for the options)."""
    from ovq.quantization import bias_correction as bc
    from ovq.quantization import smooth_quant as sq
    from ovq.quantization.compress import compress_weights as fold_weights
    from ovq.quantization.placement import apply_plan, plan_placement
    from ovq.quantization.ranges import (
        fq_range,
        include,
        observed_range,
        per_channel_fq_range,
        set_fq_range,
        unify,
    )
    from ovq.quantization.statistics import Observation, collect_statistics

    overflow_fix = overflow_fix or "first_layer"
    if overflow_fix not in OVERFLOW_FIX:
        raise OvqError(f"unknown overflow_fix {overflow_fix!r}; choose one of {', '.join(OVERFLOW_FIX)}")
    if not 0 < outlier_prob < 0.5:
        raise OvqError(f"outlier_prob must be in (0, 0.5), got {outlier_prob}")
    if isinstance(calibration_dataset, Dataset) and calibration_dataset.transform_fn is not None \
            and not callable(calibration_dataset.transform_fn):
        raise CalibrationError("ovq.Dataset: transform_fn is not callable")
    alpha = _smooth_quant_alpha(smooth_quant, model_type)
    report = QuantizeReport()
    subset = select_subset(calibration_dataset, subset_size, seed=seed)

    with _timed(report, "placement"):
        graph.infer_shapes()
        if fp_model is None:
            fp_model = graph.to_ov()
        plan = plan_placement(graph, _value(target_device), preset=_value(preset), model_type=_value(model_type),
                              ignored_scope=ignored_scope, strict=strict)
        meta = apply_plan(graph, plan)
        graph.meta["ovq.quantized_ops"] = [graph.op(n).name for n in plan.quantized_ops]
    report.skipped = list(plan.skipped)
    report.quantized_ops = len(plan.quantized_ops)
    acts = {name: m for name, m in meta.items() if m["kind"] != "weights" and m["node"] in graph}
    weight_fqs = [m["node"] for m in meta.values() if m["kind"] == "weights" and m["node"] in graph]
    report.activation_fqs, report.weight_fqs = len(acts), len(weight_fqs)

    groups: list[sq.SmoothGroup] = []
    if alpha is not None:
        if activations_range == "quantile":
            log.warning("SmoothQuant is skipped with activations_range='quantile' (it needs min/max statistics)")
        else:
            groups = sq.find_groups(graph, meta)
    smoothed_fq = {fq: g for g in groups for fq in g.fqs}
    act_nodes = {m["node"] for m in acts.values()}
    layers = bc.find_bias_layers(graph, weight_fqs, act_nodes) if fast_bias_correction is not None else []
    observations: dict[Any, Observation] = {}
    fq_source: dict[str, tuple[str, int]] = {}
    quantile = outlier_prob if activations_range == "quantile" else None
    for o in sq.observations_for(groups, search=alpha == "search"):
        observations[o.key] = o
    for name, m in acts.items():
        if m["node"] in smoothed_fq:
            fq_source[name] = smoothed_fq[m["node"]].key
            continue
        src = graph.producer(m["node"], 0)
        key = (graph.op(src[0]).name, src[1])
        fq_source[name] = key
        axis = m.get("per_channel_axis")
        skip_min = m["mode"] == "symmetric" and _nonnegative(graph, src[0])
        if axis is not None:
            key = (*key, "per-channel")
            fq_source[name] = key
            observations[key] = Observation(key, key[0], key[1], minmax=False, channel_axis=axis, nonnegative=skip_min)
        else:
            skip_min = skip_min and quantile is None
            observations[key] = Observation(key, key[0], key[1], minmax=True, quantile=quantile, nonnegative=skip_min)
    if fast_bias_correction:
        for o in bc.observations_for(graph, layers):
            observations[o.key] = o
    full_bc = fast_bias_correction is False and bool(layers)
    stream: Any = subset
    keep = None
    if full_bc:
        count = subset.count if subset.count is not None else (subset_size or 300)
        keep = _Keep(subset, max(int(0.2 * count), 1))
        stream = Subset(keep, None, subset.count)

    with _timed(report, "statistics"):
        graph.drop_constant_pages()  # weights read so far: leave RSS room for the compile
        stats, collection = collect_statistics(fp_model, list(observations.values()), stream, progress=progress)
    report.samples, report.requests = collection.samples, collection.requests

    if groups:
        with _timed(report, "smooth_quant"):
            smoothed = sq.smooth(graph, groups, stats, meta, alpha=alpha)
            for r in smoothed:
                stats[r.group.key] = sq.smoothed_stats(r, stats[r.group.key])
            sq.rescale_means(smoothed, layers, stats)
            graph.drop_constant_pages()  # the FP weights just read and replaced by scaled copies
        report.smoothed = sum(len(r.group.members) for r in smoothed)
        report.smooth_alphas = [r.alpha for r in smoothed]

    with _timed(report, "ranges"):
        per_tensor = {name: m for name, m in acts.items() if m.get("per_channel_axis") is None}
        ranges = {name: include(observed_range(stats[fq_source[name]], mode=m["mode"], estimator=activations_range),
                                m.get("range_include"), m["mode"])
                  for name, m in per_tensor.items()}
        ranges = unify(ranges, {name: m.get("unified") for name, m in per_tensor.items()})
        for name, m in acts.items():
            if name in per_tensor:
                lo, hi = fq_range(ranges[name], m)
            else:
                lo, hi = per_channel_fq_range(stats[fq_source[name]], m)
            set_fq_range(graph, m["node"], lo, hi)
        _overflow_fix(graph, meta, overflow_fix)

    with _timed(report, "bias_correction"):
        if fast_bias_correction:
            decisions = bc.fast_bias_correction(graph, layers, stats)
        elif full_bc:
            decisions = bc.full_bias_correction(graph, fp_model, layers, Subset(keep.kept, None, len(keep.kept)),
                                                progress=progress)
        else:
            decisions = []
    report.bias_corrected = sum(d.applied for d in decisions)
    report.bias_skipped = [(d.layer, d.ratio) for d in decisions if not d.applied]

    if compress_weights:
        with _timed(report, "compress"):
            folded = fold_weights(graph, weight_fqs)
        report.compressed = len(folded)
        report.weight_bytes_before = sum(f.bytes_before for f in folded)
        report.weight_bytes_after = sum(f.bytes_after for f in folded)
    graph.meta["ovq.quantize_report"] = report
    return report


def quantize(
    model: Any,
    calibration_dataset: Iterable[Any],
    *,
    target_device: TargetDevice | str = "ANY",
    preset: QuantizationPreset | str | None = None,
    subset_size: int | None = 300,
    fast_bias_correction: bool | None = True,
    model_type: ModelType | str | None = None,
    ignored_scope: Any = None,
    compress_weights: bool = True,
    activations_range: str = "mean_minmax",
    outlier_prob: float = 1e-4,
    overflow_fix: str | None = None,
    smooth_quant: float | bool | str | None = None,
    seed: int = 0,
    progress: bool | None = None,
    strict: bool = False,
    return_report: bool = False,
) -> Any:
    """Quantize ``model`` to INT8 with ranges and bias correction from calibration data.

    Args:
        model: ``openvino.Model`` (a new Model is returned), :class:`ovq.Graph` (a new
            Graph is returned; the input is untouched) or a model path (a Graph).
        calibration_dataset: Any iterable of samples — arrays, tuples of arrays, or dicts
            by input name — or ``ovq.Dataset(data, transform_fn)``.
        target_device: ``ANY`` (default), ``CPU``, ``GPU``, ``NPU``, ``CPU_SPR``, ``GNA``,
            ``GNA3``, or a hardware descriptor file.
        preset: ``performance`` (symmetric activations; default for CNNs) or ``mixed``
            (asymmetric activations; default for transformers).
        subset_size: Samples to calibrate on (a seeded draw when the data is larger;
            ``None`` for all).
        fast_bias_correction: ``True`` fast bias correction, ``False`` the full
            (propagating) one, ``None`` none.
        model_type: ``None`` or ``transformer``.
        ignored_scope: :class:`ovq.IgnoredScope` or a dict (names, types, patterns, subgraphs).
        compress_weights: Fold weight FQs into int8 constants (~4× smaller weights);
            ``False`` keeps FakeQuantize on FP32 weights.
        activations_range: ``mean_minmax`` (default), ``minmax`` or ``quantile``.
        outlier_prob: Outlier probability for ``activations_range="quantile"``.
        overflow_fix: ``first_layer`` (default, as NNCF: the first plain Convolution on
            each path from an input; MatMuls never), ``enable`` (all Convolution-like
            and MatMul layers) or ``disable``: 8-bit weight FQs get a doubled range (7-bit effective weights),
            so u8×s8 products cannot saturate the 16-bit intermediates some CPU INT8
            kernels use. Measured here (VNNI CPU): EfficientNet-Lite0's first conv (3
            input channels) saturates without it — top-1 agreement 0.69 vs 0.85.
        smooth_quant: SmoothQuant for MatMuls. ``None`` (default): NNCF's alpha 0.95
            for ``model_type="transformer"``, off otherwise. ``"search"``: each group's
            alpha from (0.5, 0.6, 0.7, 0.8, 0.9, 0.95), the one whose quantized
            projections best reproduce the FP ones on the first 16 samples (no extra
            inference, but seconds of numpy work: MiniLM cosine 0.9978 vs 0.9971). A
            float in ``[0, 1]``: that alpha everywhere. ``True``: 0.95. ``False`` or a
            negative value: off.
        seed: Seed of the subset draw.
        progress: Progress bar (``None``: on a terminal only).
        strict: An ignored-scope entry that matches nothing is an error, not a warning.
        return_report: Return ``(model, QuantizeReport)``.

    Raises:
        CalibrationError: empty data, or samples that do not fit the model's inputs.
        NonFiniteError: NaN/Inf in an observed tensor (the op is named).
        HardwareDescriptorError / PlacementError: unknown target, preset or model type.
    """
    import openvino as ov

    from ovq.ir import Graph, read_model

    t0 = time.perf_counter()
    graph = read_model(model)
    if graph is model or isinstance(model, Graph):
        graph = graph.copy()
    fp_model = model if isinstance(model, ov.Model) else None
    read_time = time.perf_counter() - t0
    report = calibrate_and_quantize(
        graph, calibration_dataset, fp_model=fp_model, target_device=target_device, preset=preset,
        subset_size=subset_size, fast_bias_correction=fast_bias_correction, model_type=model_type,
        ignored_scope=ignored_scope, compress_weights=compress_weights, activations_range=activations_range,
        outlier_prob=outlier_prob, overflow_fix=overflow_fix, smooth_quant=smooth_quant, seed=seed,
        progress=progress, strict=strict)
    report.phases = {"read": read_time, **report.phases}
    result: Any = graph
    if isinstance(model, ov.Model):
        t0 = time.perf_counter()
        result = graph.to_ov()
        report.phases["to_ov"] = time.perf_counter() - t0
    return (result, report) if return_report else result


__all__ = ["Dataset", "ModelType", "QuantizationPreset", "QuantizeReport", "TargetDevice", "quantize",
           "calibrate_and_quantize"]
