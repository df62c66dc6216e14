"""The quantize flow as named phases over one typed state.

``ovq.quantize`` runs :data:`PHASES` in order on a :class:`QuantizeState`:

========================  =====================================================
``placement``             FakeQuantize placement for the target (:mod:`.placement`)
``statistics``            one streamed pass over the calibration subset through an
                          instrumented copy of the FP model (:mod:`.statistics`),
                          measuring what the later phases ask for
``smooth_quant``          SmoothQuant scales moved from activations into MatMul
                          weights (:mod:`.smooth_quant`; transformers)
``channel_split``         outlier input channels of smoothed MatMul weights split
                          into equal parts (:mod:`.channel_split`)
``ranges``                activation ranges from the statistics (:mod:`.ranges`)
``range_search``          optional: narrower activation/weight ranges where they lower
                          the layers' quantized output error (:mod:`.range_search`)
``overflow_fix``          7-bit effective weights where 8-bit products saturate
                          (``auto``: measured per output channel, :mod:`.saturation`)
``bias_correction``       fast (analytic) or full bias correction (:mod:`.bias_correction`)
``pair_spread``           the saturating convolutions with few input channels that
                          ``overflow_fix`` chose read each channel beside a zero
                          (:mod:`.pair_spread`)
``compress``              weight FakeQuantize ops folded into integer constants
                          (:mod:`.compress`)
========================  =====================================================

A phase reads and writes the state's typed fields (the quantizer records, the
statistics, the smoothed groups, ...), never string-keyed dicts. Phases that need
statistics say so through :meth:`Phase.observations`, which the ``statistics`` phase
collects in one pass before any of them runs.

:class:`QuantizeSession` runs the phases with the pipeline's instruments: per-phase
timing (``QuantizeReport.phases`` and ``PassContext.records``), ``dump_after`` (an IR
written after a named phase: ``ovq quantize --dump-after ranges``), verification of the
graph after each phase that changed it, and :class:`~ovq.pipeline.context.Instrument`
hooks. After a run it keeps the calibrated state, so :meth:`QuantizeSession.requantize`
re-runs the phases after ``statistics`` with some layers left in floating point,
without running the calibration data again.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ovq.errors import CalibrationDataError, OptionError
from ovq.quantization.dataset import Dataset, Subset, select_subset
from ovq.quantization.records import META_KEY, QUANTIZED_OPS_KEY, Quantizer, QuantizerTable
from ovq.quantization.report import QuantizeReport

if TYPE_CHECKING:
    from ovq.ir.graph import Graph
    from ovq.pipeline.context import PassContext
    from ovq.quantization.bias_correction import BiasLayer
    from ovq.quantization.placement import PlacementPlan
    from ovq.quantization.saturation import SaturationLayer
    from ovq.quantization.smooth_quant import Smoothed, SmoothGroup
    from ovq.quantization.statistics import CollectionReport, Observation, TensorStats

log = logging.getLogger("ovq.quantization")

OVERFLOW_FIX = ("auto", "disable", "first_layer", "enable")
NONNEGATIVE_OPS = {"ReLU", "Relu", "Sigmoid", "SoftMax", "Softmax", "Abs", "Exp", "SoftPlus", "Sqrt"}
REPORT_KEY = "ovq.quantize_report"
"""``graph.meta`` key of the :class:`QuantizeReport` of the last run."""


def _value(x: Any) -> Any:
    import enum

    return x.value if isinstance(x, enum.Enum) else x


def smooth_quant_alpha(smooth_quant: float | bool | str | None, model_type: str | None) -> float | str | None:
    """The MatMul SmoothQuant alpha to use, ``"search"``, or None (off). ``None`` means
    the default: NNCF's 0.95 for transformers, off otherwise."""
    if smooth_quant is None:
        return 0.95 if model_type == "transformer" else None
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
        raise OptionError(f"smooth_quant must be an alpha in [0, 1], 'search', or False / a negative value to "
                          f"disable; got {smooth_quant!r}")
    return alpha if alpha >= 0 else None


def _check_flag(name: str, value: Any, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, (bool, np.bool_)):
        raise OptionError(f"{name} must be True or False, got {value!r}")
    return bool(value)


@dataclass(frozen=True)
class QuantizeOptions:
    """The validated options of one quantize run (see :func:`ovq.quantize`)."""

    target_device: Any = "ANY"
    preset: str | None = None
    subset_size: int | None = 300
    fast_bias_correction: bool | None = True
    model_type: str | None = None
    ignored_scope: Any = None
    compress_weights: bool = True
    activations_range: str = "mean_minmax"
    outlier_prob: float = 1e-4
    overflow_fix: str = "auto"
    range_search: str = "none"
    channel_split: bool = True
    quantize_recurrent: bool = False
    smooth_quant: float | str | None = None
    """The resolved alpha, ``"search"``, or None (off)."""
    seed: int = 0
    progress: bool | None = None
    strict: bool = False

    @classmethod
    def build(cls, *, target_device: Any = "ANY", preset: Any = None, model_type: Any = None,
              overflow_fix: str | None = None, smooth_quant: float | bool | str | None = None,
              range_search: Any = None, channel_split: Any = None, quantize_recurrent: Any = None,
              **options: Any) -> QuantizeOptions:
        """Validate user-facing options (enums or strings; ``None`` defaults) into options.

        Raises:
            OptionError: an unknown ``overflow_fix`` or ``activations_range``, an
                ``outlier_prob`` outside (0, 0.5), a bad ``smooth_quant``, or a
                ``subset_size`` that is not a positive integer.
        """
        from ovq.quantization.ranges import check_estimator

        overflow_fix = _value(overflow_fix) or "auto"
        if overflow_fix not in OVERFLOW_FIX:
            raise OptionError(f"unknown overflow_fix {overflow_fix!r}; choose one of {', '.join(OVERFLOW_FIX)}")
        outlier_prob = options.get("outlier_prob", 1e-4)
        if not 0 < outlier_prob < 0.5:
            raise OptionError(f"outlier_prob must be in (0, 0.5), got {outlier_prob}")
        check_estimator(options.get("activations_range", "mean_minmax"))
        if "subset_size" in options:
            from ovq.quantization.dataset import check_subset_size

            options["subset_size"] = check_subset_size(options["subset_size"])
        from ovq.quantization.range_search import check_mode

        model_type = _value(model_type)
        return cls(target_device=_value(target_device), preset=_value(preset), model_type=model_type,
                   overflow_fix=overflow_fix, range_search=check_mode(range_search),
                   channel_split=_check_flag("channel_split", channel_split, True),
                   quantize_recurrent=_check_flag("quantize_recurrent", quantize_recurrent, False),
                   smooth_quant=smooth_quant_alpha(smooth_quant, model_type), **options)

    @property
    def full_bias_correction(self) -> bool:
        """``fast_bias_correction=False``: the propagating correction."""
        return self.fast_bias_correction is False


@dataclass
class QuantizeState:
    """Everything the phases hand each other, typed.

    Attributes:
        graph: The model being quantized (edited in place).
        fp_model: The floating-point ``openvino.Model`` calibration runs.
        subset: The chosen calibration samples.
        options: The run's options.
        report: What the phases did so far.
        plan: Placement's plan.
        quantizers: One record per inserted FakeQuantize.
        smooth_groups: MatMul groups SmoothQuant will scale.
        bias_layers: Layers bias correction will correct.
        sources: Per activation quantizer name, the key of its statistics.
        stats: Statistics by observation key.
        collection: What the statistics pass did.
        kept_samples: The first samples, kept for the phases that asked for them.
        smoothed: What SmoothQuant did per group.
        probed: FP tensors of the kept samples by (op name, output), read by the
            saturation analysis (kept for :meth:`QuantizeSession.requantize`).
        spread_layers: Layers ``overflow_fix`` chose to spread (``pair_spread`` rewrites
            them after bias correction, which then sees the layers as they compute).
    """

    graph: Graph
    fp_model: Any
    subset: Subset
    options: QuantizeOptions
    report: QuantizeReport = field(default_factory=QuantizeReport)
    plan: PlacementPlan | None = None
    quantizers: QuantizerTable = field(default_factory=QuantizerTable)
    smooth_groups: list[SmoothGroup] = field(default_factory=list)
    bias_layers: list[BiasLayer] = field(default_factory=list)
    sources: dict[str, Hashable] = field(default_factory=dict)
    stats: dict[Hashable, TensorStats] = field(default_factory=dict)
    collection: CollectionReport | None = None
    kept_samples: list[Any] | None = None
    smoothed: list[Smoothed] = field(default_factory=list)
    probed: dict[tuple[str, int], list[np.ndarray]] = field(default_factory=dict)
    spread_layers: list[SaturationLayer] = field(default_factory=list)

    def activations(self) -> list[Quantizer]:
        """Live activation and output quantizers."""
        return self.quantizers.activations(self.graph)

    def weights(self) -> list[Quantizer]:
        """Live weight quantizers."""
        return self.quantizers.weights(self.graph)


class Phase:
    """One named step of the quantize flow.

    Subclasses set ``name`` and implement :meth:`run`; a phase that needs statistics
    also implements :meth:`observations`. The first docstring line is its summary.
    """

    name: ClassVar[str] = ""

    def enabled(self, state: QuantizeState) -> bool:
        """Whether the phase has anything to do for these options (a disabled phase is
        neither run nor timed)."""
        return True

    def observations(self, state: QuantizeState) -> list[Observation]:
        """What the statistics pass must measure for this phase (called after placement)."""
        return []

    def samples_needed(self, state: QuantizeState) -> int:
        """How many of the first calibration samples the statistics pass must keep for
        this phase (called after :meth:`observations`)."""
        return 0

    def run(self, state: QuantizeState) -> None:
        """Do the phase's work on ``state``."""
        raise NotImplementedError


class PlacementPhase(Phase):
    """Insert FakeQuantize ops where the target's descriptor allows.

    First folds the constant subgraphs that feed weights (Transpose/Convert/Reshape/
    Broadcast of Consts, :mod:`.placement.weight_paths`), so such layers can be quantized.
    Emits one FakeQuantize per quantizer of the plan and its :class:`Quantizer` record;
    weight ranges are final, activation ranges placeholders; the report names every
    compute layer left in floating point with its reason. Preserves the FP function up to
    quantization, every output and tensor name.
    """

    name = "placement"

    def run(self, state: QuantizeState) -> None:
        from ovq.quantization.placement import apply_plan, plan_placement

        from ovq.quantization.placement.weight_paths import fold_weight_paths

        graph, opts = state.graph, state.options
        folding = fold_weight_paths(graph)
        graph.infer_shapes()
        if state.fp_model is None:
            state.fp_model = graph.to_ov()
        state.plan = plan_placement(graph, opts.target_device, preset=opts.preset, model_type=opts.model_type,
                                    ignored_scope=opts.ignored_scope, strict=opts.strict,
                                    recurrent=opts.quantize_recurrent)
        state.quantizers = apply_plan(graph, state.plan)
        graph.meta[QUANTIZED_OPS_KEY] = [graph.op(n).name for n in state.plan.quantized_ops]
        report = state.report
        report.weights_folded = folding.ops
        report.skipped = list(state.plan.skipped)
        report.quantized_ops = len(state.plan.quantized_ops)
        report.activation_fqs, report.weight_fqs = len(state.activations()), len(state.weights())


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


class SmoothQuantPhase(Phase):
    """Move activation outliers of MatMul inputs into their weights (SmoothQuant).

    Matches the groups :func:`.smooth_quant.find_groups` finds among the placed
    quantizers; emits a ``Multiply`` by ``1/s`` before each group's FakeQuantize ops and
    scaled weights with recomputed weight ranges; replaces the group's statistics by
    those of the smoothed tensor and rescales bias-correction means. Preserves the FP
    function up to rounding.
    """

    name = "smooth_quant"

    def enabled(self, state: QuantizeState) -> bool:
        return state.options.smooth_quant is not None

    def observations(self, state: QuantizeState) -> list[Observation]:
        from ovq.quantization import smooth_quant as sq

        if state.options.activations_range == "quantile":
            log.warning("SmoothQuant is skipped with activations_range='quantile' (it needs min/max statistics)")
            return []
        state.smooth_groups = sq.find_groups(state.graph, state.quantizers)
        return sq.observations_for(state.smooth_groups, search=state.options.smooth_quant == "search")

    def run(self, state: QuantizeState) -> None:
        from ovq.quantization import smooth_quant as sq

        if not state.smooth_groups:
            return
        smoothed = sq.smooth(state.graph, state.smooth_groups, state.stats, state.quantizers,
                             alpha=state.options.smooth_quant)
        for r in smoothed:
            state.stats[r.group.key] = sq.smoothed_stats(r, state.stats[r.group.key])
        sq.rescale_means(smoothed, state.bias_layers, state.stats)
        state.graph.drop_constant_pages()  # the FP weights just read and replaced by scaled copies
        state.smoothed = smoothed
        state.report.smoothed = sum(len(r.group.members) for r in smoothed)
        state.report.smooth_alphas = [r.alpha for r in smoothed]


class ChannelSplitPhase(Phase):
    """Split the outlier input channels SmoothQuant moved into MatMul weights.

    Matches the groups the ``smooth_quant`` phase rewrote (:mod:`.channel_split`); emits
    a ``Gather`` that copies the split channels before the group's FakeQuantize ops and
    each member's weights divided among the copies (weight ranges recomputed), and copies
    the bias-correction means of the split channels. Preserves the FP function up to
    rounding and every activation statistic.
    """

    name = "channel_split"

    def enabled(self, state: QuantizeState) -> bool:
        return state.options.channel_split and state.options.smooth_quant is not None

    def run(self, state: QuantizeState) -> None:
        from ovq.quantization import channel_split as cs

        if not state.smoothed:
            return
        records, splits = cs.split_channels(state.graph, state.smoothed, state.quantizers)
        if splits:
            state.smoothed = records
            cs.split_means(records, state.bias_layers, state.stats)
            state.graph.drop_constant_pages()
        state.report.channel_splits = splits


class RangesPhase(Phase):
    """Set every activation quantizer's range from the statistics (:mod:`.ranges`).

    Observes each activation quantizer's FP input: per-sample min/max (or quantiles),
    or per-channel min/max for a per-channel quantizer; a quantizer fed by a smoothed
    group reads the group's statistics. Emits the ranges into the FakeQuantize inputs
    and the records.
    """

    name = "ranges"

    def observations(self, state: QuantizeState) -> list[Observation]:
        from ovq.quantization.statistics import Observation

        graph, opts = state.graph, state.options
        smoothed_fq = {fq: g for g in state.smooth_groups for fq in g.fqs}
        quantile = opts.outlier_prob if opts.activations_range == "quantile" else None
        out = []
        for q in state.activations():
            if q.node in smoothed_fq:
                state.sources[q.name] = smoothed_fq[q.node].key
                continue
            src = graph.producer(q.node, 0)
            key: tuple[Any, ...] = (graph.op(src[0]).name, src[1])
            skip_min = q.config.symmetric and _nonnegative(graph, src[0])
            axis = q.per_channel_axis
            if axis is not None:
                key = (*key, "per-channel")
                out.append(Observation(key, key[0], key[1], minmax=False, channel_axis=axis, nonnegative=skip_min))
            else:
                out.append(Observation(key, key[0], key[1], minmax=True, quantile=quantile,
                                       nonnegative=skip_min and quantile is None))
            state.sources[q.name] = key
        return out

    def run(self, state: QuantizeState) -> None:
        from ovq.quantization.ranges import set_activation_ranges

        set_activation_ranges(state.graph, state.activations(), state.stats, state.sources,
                              estimator=state.options.activations_range)


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


class OverflowFixPhase(Phase):
    """Give 8-bit weights a doubled range (7-bit effective weights) where u8×s8 pair sums
    would saturate the 16-bit intermediates of x86 INT8 kernels without VNNI.

    ``auto`` (default): the output channels where the measured saturation error exceeds
    the extra rounding error of 7-bit weights (:mod:`.saturation`, on the first
    :data:`~.saturation.PROBE_SAMPLES` calibration samples); decisions in
    ``QuantizeReport.overflow_decisions``. ``first_layer``: the first plain Convolution on
    each path from an input, as NNCF. ``enable``: every Convolution-like and MatMul
    weight. 16-bit weights (GNA) are left alone.
    """

    name = "overflow_fix"

    def enabled(self, state: QuantizeState) -> bool:
        return state.options.overflow_fix != "disable"

    def observations(self, state: QuantizeState) -> list[Observation]:
        """``auto``: the analysed layers' FP inputs on the first samples, kept whole by the
        statistics pass when they are small enough (else probed by one more compile)."""
        from ovq.quantization import saturation as sat

        if state.options.overflow_fix != "auto":
            return []
        layers = sat.find_layers(state.graph, state.weights(), state.activations(), state.sources)
        return sat.inline_probe(state.fp_model, layers, state.subset.peek(), state.subset.count)

    def samples_needed(self, state: QuantizeState) -> int:
        from ovq.quantization.saturation import PROBE_SAMPLES

        return PROBE_SAMPLES if state.options.overflow_fix == "auto" else 0

    def run(self, state: QuantizeState) -> None:
        from ovq.quantization.placement import WEIGHTED
        from ovq.quantization.ranges import halve_weight_range

        graph = state.graph
        if state.options.overflow_fix == "auto":
            self._auto(state)
            return
        # only multiply-accumulate layers can saturate (an embedding table's Gather cannot)
        owners: dict[int, tuple[Quantizer, int]] = {}
        for q in state.weights():
            users = graph.consumers(q.node, 0)
            if users and graph.op(users[0][0]).type in WEIGHTED:
                owners[q.node] = (q, users[0][0])
        if state.options.overflow_fix == "first_layer":
            # as NNCF: plain Convolutions only, the first one on each path from an input (a
            # walk from the inputs passes through everything else, MatMuls included)
            owners = {fq: (q, op) for fq, (q, op) in owners.items() if graph.op(op).type == "Convolution"}
            first = _first_layers(graph, {op for _q, op in owners.values()})
            owners = {fq: (q, op) for fq, (q, op) in owners.items() if op in first}
        state.report.overflow_fixed = sum(halve_weight_range(graph, q) for q, _op in owners.values())

    def _auto(self, state: QuantizeState) -> None:
        from ovq.kernels import get_kernels
        from ovq.quantization import saturation as sat
        from ovq.quantization.pair_spread import can_spread
        from ovq.quantization.ranges import halve_weight_range

        graph = state.graph
        state.spread_layers = []
        layers = sat.find_layers(graph, state.weights(), state.activations(), state.sources)
        inputs = layer_inputs(state, layers, sat.PROBE_SAMPLES)
        kernels = get_kernels()
        decisions = []
        for layer in layers:
            if layer.name not in inputs:
                continue
            decision, mask = sat.analyse_layer(layer, graph, inputs[layer.name], kernels)
            if mask.any() and can_spread(graph, layer):
                state.spread_layers.append(layer)  # rewritten by PairSpreadPhase, after bias correction
                decision = dataclasses.replace(decision, halved=0, residual_nmse=0.0, spread=True)
            elif mask.any():
                halve_weight_range(graph, layer.weight, mask)
            decisions.append(decision)
        state.report.overflow_decisions = decisions
        state.report.overflow_fixed = sum(d.halved > 0 or d.spread for d in decisions)


def layer_inputs(state: QuantizeState, layers: Sequence[Any], count: int) -> dict[str, list[np.ndarray]]:
    """Per layer name, the FP tensors its activation FakeQuantize reads on the first
    ``count`` kept calibration samples: kept whole by the statistics pass
    (:func:`.saturation.inline_probe`) or else probed once per session (one compile),
    cached in :attr:`QuantizeState.probed` for requantize runs, and divided by the SmoothQuant
    scales (and copied as :mod:`.channel_split` split them) where a smoothed group's
    FakeQuantize feeds the layer. A smoothed layer
    behind a Reshape is left out (where the scales apply is unknown there)."""
    from ovq.quantization.saturation import probe_activations, probe_key

    samples = (state.kept_samples or [])[:count]
    if not layers or not samples:
        return {}
    for source in {layer.source for layer in layers}:  # kept whole by the statistics pass
        st = state.stats.get(probe_key(source))
        if st is not None and st.whole is not None and len(state.probed.get(source, ())) < len(st.whole):
            state.probed[source] = list(st.whole)
    missing = [layer for layer in layers if len(state.probed.get(layer.source, ())) < len(samples)]
    if missing:
        state.probed.update(probe_activations(state.fp_model, missing, samples))
    smoothing = {fq: r for r in state.smoothed for fq in r.group.fqs}
    out = {}
    for layer in layers:
        xs = state.probed[layer.source][:len(samples)]
        smoothed = smoothing.get(layer.activation.node)
        if smoothed is not None and not layer.direct:
            continue
        if smoothed is not None:  # the FakeQuantize reads the activation divided by the scales
            shape = [1] * xs[0].ndim
            shape[smoothed.group.act_axis] = -1
            xs = [x / smoothed.scales.reshape(shape).astype(np.float32) for x in xs]
            if smoothed.index is not None:  # and copies the split channels (:mod:`.channel_split`)
                xs = [np.take(x, smoothed.index, axis=smoothed.group.act_axis) for x in xs]
        out[layer.name] = xs
    return out


class RangeSearchPhase(Phase):
    """Narrow activation and weight ranges where that lowers the layers' quantized
    output error on the first calibration samples (``range_search``; :mod:`.range_search`).

    Runs after ``ranges`` (it starts from their result) and before ``overflow_fix``
    (whose analysis reads the final grids). Decisions in ``QuantizeReport.range_search``.
    """

    name = "range_search"

    def enabled(self, state: QuantizeState) -> bool:
        return state.options.range_search != "none"

    def samples_needed(self, state: QuantizeState) -> int:
        from ovq.quantization.range_search import SEARCH_SAMPLES

        return SEARCH_SAMPLES

    def run(self, state: QuantizeState) -> None:
        from ovq.quantization import range_search as rs
        from ovq.quantization.saturation import find_layers

        layers = find_layers(state.graph, state.weights(), state.activations(), state.sources, depthwise=True)
        inputs = layer_inputs(state, layers, rs.SEARCH_SAMPLES)
        state.report.range_search = rs.search_ranges(state.graph, layers, inputs, state.options.range_search)


class BiasCorrectionPhase(Phase):
    """Correct the biases of quantized layers for the mean shift their weight
    quantization causes (:mod:`.bias_correction`): fast (per-channel input means from
    the statistics pass, no inference) or full (the quantized model re-run on a fifth of
    the samples)."""

    name = "bias_correction"

    def enabled(self, state: QuantizeState) -> bool:
        return state.options.fast_bias_correction is not None

    def observations(self, state: QuantizeState) -> list[Observation]:
        from ovq.quantization import bias_correction as bc

        state.bias_layers = bc.find_bias_layers(state.graph, [q.node for q in state.weights()],
                                                {q.node for q in state.activations()})
        if state.options.fast_bias_correction:
            return bc.observations_for(state.graph, state.bias_layers)
        return []

    def samples_needed(self, state: QuantizeState) -> int:
        if not (state.options.full_bias_correction and state.bias_layers):
            return 0
        return _full_correction_samples(state)

    def run(self, state: QuantizeState) -> None:
        from ovq.quantization import bias_correction as bc

        if state.options.fast_bias_correction:
            decisions = bc.fast_bias_correction(state.graph, state.bias_layers, state.stats)
        elif state.bias_layers and state.kept_samples is not None:
            kept = state.kept_samples[:_full_correction_samples(state)]
            decisions = bc.full_bias_correction(state.graph, state.fp_model, state.bias_layers,
                                                Subset(kept, None, len(kept)), progress=state.options.progress)
        else:
            decisions = []
        state.report.bias_corrected = sum(d.applied for d in decisions)
        state.report.bias_skipped = [(d.layer, d.ratio) for d in decisions if not d.applied]
        state.report.bias_shifts = {d.layer: float(np.mean(np.abs(d.shift))) for d in decisions if d.applied}


class PairSpreadPhase(Phase):
    """Spread the input channels of the layers ``overflow_fix`` chose (:mod:`.pair_spread`):
    a ``Gather`` repeats each channel and the copies get zero weights, so no pair sum
    saturates. It runs after bias correction: the FP function and the 8-bit grid are
    unchanged, so the correction computed on the unspread layer holds."""

    name = "pair_spread"

    def enabled(self, state: QuantizeState) -> bool:
        return bool(state.spread_layers)

    def run(self, state: QuantizeState) -> None:
        from ovq.quantization.pair_spread import spread_pairs

        for layer in state.spread_layers:
            spread_pairs(state.graph, layer)


class CompressPhase(Phase):
    """Fold weight FakeQuantize ops into integer constants (:mod:`.compress`; ~4× smaller
    weights, the form the CPU plugin runs in INT8)."""

    name = "compress"

    def enabled(self, state: QuantizeState) -> bool:
        return state.options.compress_weights

    def run(self, state: QuantizeState) -> None:
        from ovq.quantization.compress import compress_weights

        folded = compress_weights(state.graph, [q.node for q in state.weights()])
        state.report.compressed = len(folded)
        state.report.weight_bytes_before = sum(f.bytes_before for f in folded)
        state.report.weight_bytes_after = sum(f.bytes_after for f in folded)


class _Keep(Iterable):
    """Re-iterable first ``k`` samples of a stream, remembered while the stream is consumed."""

    def __init__(self, stream: Iterable[Any], k: int) -> None:
        self.stream, self.k, self.kept = stream, k, []

    def __iter__(self) -> Iterator[Any]:
        for i, item in enumerate(self.stream):
            if i < self.k:
                self.kept.append(item)
            yield item


def _full_correction_samples(state: QuantizeState) -> int:
    """Samples the full bias correction re-runs: the first fifth of the subset."""
    count = state.subset.count if state.subset.count is not None else (state.options.subset_size or 300)
    return max(int(0.2 * count), 1)


class StatisticsPhase(Phase):
    """One streamed pass of the calibration subset through an instrumented FP model,
    measuring every observation the later phases asked for (:mod:`.statistics`).

    The first samples are kept for the phases that ask for them
    (:meth:`Phase.samples_needed`: the full bias correction, the saturation analysis).
    """

    name = "statistics"

    def __init__(self, later: Sequence[Phase], collect: Collect | None = None) -> None:
        self.later = later
        self.collect = collect

    def planned(self, state: QuantizeState) -> list[Observation]:
        """What the later phases ask to observe (each phase's :meth:`Phase.observations`,
        called once: they record on ``state`` what they will read)."""
        observations: dict[Hashable, Observation] = {}
        for phase in self.later:
            if phase.enabled(state):
                for o in phase.observations(state):
                    observations[o.key] = o
        return list(observations.values())

    def run(self, state: QuantizeState) -> None:
        from ovq.quantization.statistics import collect_statistics

        observations = self.planned(state)
        wanted = max((p.samples_needed(state) for p in self.later if p.enabled(state)), default=0)
        if self.collect is not None:  # measured elsewhere (ovq batch --shards): only the kept samples are read
            state.stats, state.collection = self.collect(state, observations)
            state.report.samples, state.report.requests = state.collection.samples, state.collection.requests
            state.kept_samples = list(itertools.islice(iter(state.subset), wanted)) if wanted else None
            return
        stream: Any = state.subset
        keep = None
        if wanted:
            keep = _Keep(state.subset, wanted)
            stream = Subset(keep, None, state.subset.count)
        state.graph.drop_constant_pages()  # weights read so far: leave RSS room for the compile
        state.stats, state.collection = collect_statistics(state.fp_model, observations, stream,
                                                           progress=state.options.progress)
        state.report.samples, state.report.requests = state.collection.samples, state.collection.requests
        if keep is not None:
            state.kept_samples = keep.kept


Collect = Callable[[QuantizeState, list["Observation"]], tuple[dict[Hashable, "TensorStats"], "CollectionReport"]]
"""Computes the statistics of ``observations`` over ``state.subset`` in place of the
statistics pass (``ovq batch --shards``: merged from slices run elsewhere)."""


def default_phases(collect: Collect | None = None) -> list[Phase]:
    """The phases of ``ovq.quantize``, in order (``collect``: see :class:`StatisticsPhase`)."""
    later: list[Phase] = [SmoothQuantPhase(), ChannelSplitPhase(), RangesPhase(), RangeSearchPhase(), OverflowFixPhase(),
                          BiasCorrectionPhase(), PairSpreadPhase(), CompressPhase()]
    return [PlacementPhase(), StatisticsPhase(later, collect), *later]


PHASE_NAMES = tuple(p.name for p in default_phases())
"""The phase names, in order (what ``dump_after`` accepts)."""


class QuantizeSession:
    """Runs the quantize phases on a graph with the pipeline's instruments.

    Args:
        graph: The FP model (edited in place).
        calibration_dataset: Calibration samples (see :func:`ovq.quantize`).
        options: The run's options.
        fp_model: The FP ``openvino.Model`` when the caller has it (else built from ``graph``).
        ctx: A :class:`~ovq.pipeline.context.PassContext` whose ``dump_after``,
            ``dump_dir``, ``verify`` and ``instruments`` apply to the phases, and whose
            ``records`` receive one entry per phase.
        collect: Computes the statistics instead of the statistics pass (given the state
            and the observations the phases asked for); the first samples the later
            phases keep (full bias correction, saturation probe) are still read here.
    """

    def __init__(self, graph: Graph, calibration_dataset: Iterable[Any], options: QuantizeOptions, *,
                 fp_model: Any = None, ctx: PassContext | None = None, collect: Collect | None = None) -> None:
        from ovq.pipeline.context import PassContext

        if isinstance(calibration_dataset, Dataset) and calibration_dataset.transform_fn is not None \
                and not callable(calibration_dataset.transform_fn):
            raise CalibrationDataError("ovq.Dataset: transform_fn is not callable")
        self.ctx = ctx or PassContext(verify=False)
        unknown = sorted(set(self.ctx.dump_after) - set(PHASE_NAMES))
        if unknown:
            raise OptionError(f"dump_after: no phase named {', '.join(map(repr, unknown))}; "
                              f"the phases are {', '.join(PHASE_NAMES)}")
        self.phases = default_phases(collect)
        subset = select_subset(calibration_dataset, options.subset_size, seed=options.seed)
        self.state = QuantizeState(graph, fp_model, subset, options)
        self._calibrated: tuple[Graph, QuantizerTable, dict[Hashable, TensorStats]] | None = None

    def run(self) -> QuantizeReport:
        """Run every phase; return the report (also in ``graph.meta``)."""
        for phase in self.phases:
            if phase.name == "smooth_quant":
                self._checkpoint()
            self._run_phase(phase)
        self.state.graph.meta[REPORT_KEY] = self.state.report
        return self.state.report

    def observations(self) -> list[Observation]:
        """Run the phases before ``statistics``; return what that phase would measure
        (the work of one statistics slice: :mod:`.shards`). The session is not run further."""
        for phase in self.phases:
            if isinstance(phase, StatisticsPhase):
                return phase.planned(self.state)
            self._run_phase(phase)
        return []

    def requantize(self, float_ops: Iterable[str]) -> tuple[Graph, QuantizeReport]:
        """The model quantized again from the calibrated state with the ops named in
        ``float_ops`` left in floating point (their weight and input quantizers removed);
        no calibration data is run (the statistics are reused).

        Returns a new graph and its report; the session's own result is untouched.
        """
        if self._calibrated is None:
            raise OptionError("requantize: the session has not run its statistics phase yet")
        graph, table, stats = self._calibrated
        graph, table = graph.copy(), table.copy()
        graph.meta[META_KEY] = table
        names = set(float_ops)
        unknown = names - {op.name for _n, op in graph.ops()}
        if unknown:
            raise OptionError(f"requantize: no op named {', '.join(sorted(map(repr, unknown)))}")
        revert_quantizers(graph, table, names)
        base = self.state
        report = dataclasses.replace(base.report, phases={k: v for k, v in base.report.phases.items()
                                                          if k in ("placement", "statistics")},
                                     activation_fqs=len(table.activations(graph)),
                                     weight_fqs=len(table.weights(graph)))
        live = {q.node for q in table.values()}
        groups = []
        for g in base.smooth_groups:
            fqs = tuple(fq for fq in g.fqs if fq in live)
            members = tuple(m for m in g.members if m.weight_fq in live)
            if fqs and members:
                groups.append(dataclasses.replace(g, fqs=fqs, members=members))
        state = QuantizeState(graph, base.fp_model, base.subset, base.options, report, base.plan, table, groups,
                              [b for b in base.bias_layers if b.weight_fq in live], dict(base.sources), dict(stats),
                              base.collection, base.kept_samples, probed=base.probed)
        start = [p.name for p in self.phases].index("statistics") + 1
        for phase in self.phases[start:]:
            self._run_phase(phase, state)
        graph.meta[REPORT_KEY] = state.report
        return graph, state.report

    def _checkpoint(self) -> None:
        state = self.state
        self._calibrated = (state.graph.copy(), state.quantizers.copy(), dict(state.stats))

    def _run_phase(self, phase: Phase, state: QuantizeState | None = None) -> None:
        from ovq.pipeline.context import PassRecord

        state = state or self.state
        if not phase.enabled(state):
            return
        ctx, graph = self.ctx, state.graph
        for inst in ctx.instruments:
            inst.before_pass(phase, graph, ctx)
        before, ops_before = graph.revision, len(graph)
        t0 = time.perf_counter()
        phase.run(state)
        seconds = time.perf_counter() - t0
        state.report.add_time(phase.name, seconds)
        modified = graph.revision != before
        ctx.log_step(PassRecord(phase.name, phase.name, modified, seconds, ops_before, len(graph)))
        if modified and ctx.verify:
            graph.verify()
        ctx.dump_if_asked(phase.name, graph)
        for inst in ctx.instruments:
            inst.after_pass(phase, graph, ctx, None)


def revert_quantizers(graph: Graph, table: QuantizerTable, float_ops: set[str]) -> None:
    """Leave the ops named in ``float_ops`` in floating point: remove their weight
    quantizers and their inputs' activation quantizers (an activation quantizer that also
    feeds other ops stays on those edges), from ``graph`` and ``table``."""
    named = {graph.op(n).name: n for n, _op in graph.ops()}
    float_nodes = {named[name] for name in float_ops if name in named}
    for q in list(table.values()):
        if q.node not in graph:
            continue
        reverted = [(op, i) for op, i in graph.consumers(q.node, 0) if op in float_nodes]
        if not reverted:
            continue
        src = graph.producer(q.node, 0)
        for op, i in reverted:
            graph.disconnect(op, i)
            graph.connect(src[0], src[1], op, i)
        q.consumers = tuple(c for c in q.consumers if c not in reverted)
        if not graph.consumers(q.node, 0):
            ranges = [graph.producer(q.node, k) for k in range(1, 5)]
            graph.remove_node(q.node)
            for p in ranges:
                if p is not None and graph.op(p[0]).type == "Const" and not graph.consumers(*p):
                    graph.remove_node(p[0])
            table.remove(q.name)
    if QUANTIZED_OPS_KEY in graph.meta:
        graph.meta[QUANTIZED_OPS_KEY] = [n for n in graph.meta[QUANTIZED_OPS_KEY] if n not in float_ops]


def fill_ranges_minmax(graph: Graph, samples: Iterable[Any], *, fp_model: Any = None) -> int:
    """Set every activation quantizer's range of a placed ``graph`` from the global min
    and max over ``samples``; return how many were set.

    The statistics come from the same engine as ``ovq.quantize`` (the ``minmax``
    estimator, one streamed pass). ``fp_model`` is the FP ``openvino.Model``; without it
    the graph's quantizers are bypassed in a copy. Members of a unified group share min
    of mins / max of maxes.
    """
    table = graph.meta.get(META_KEY)
    if table is None or not table.activations(graph):
        return 0
    if fp_model is None:
        fp, fp_table = graph.copy(), table.copy()
        readers = {fp.op(op).name for q in fp_table.live(fp) for op, _i in fp.consumers(q.node, 0)}
        revert_quantizers(fp, fp_table, readers)
        fp_model = fp.to_ov()
    options = QuantizeOptions(activations_range="minmax", subset_size=None, fast_bias_correction=None,
                              compress_weights=False, overflow_fix="disable")
    state = QuantizeState(graph, fp_model, select_subset(samples, None), options, quantizers=table)
    ranges = RangesPhase()
    StatisticsPhase([ranges]).run(state)
    ranges.run(state)
    return len(state.activations())
