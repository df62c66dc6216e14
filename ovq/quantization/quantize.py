"""``ovq.quantize``: DefaultQuantization from an FP model and calibration samples.

The work is done by the named phases of :mod:`.phases` (placement, statistics,
smooth_quant, ranges, overflow_fix, bias_correction, compress), each timed in the
:class:`QuantizeReport`. The call signature follows ``nncf.quantize`` so that code
written for it needs only the import changed; the enums below accept NNCF's names.
"""

from __future__ import annotations

import enum
import logging
import os
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ovq.quantization.advanced_parameters import check_mode, merge_options, quantize_options_from
from ovq.quantization.dataset import Dataset
from ovq.quantization.phases import QuantizeOptions, QuantizeSession
from ovq.quantization.report import QuantizeReport

if TYPE_CHECKING:
    from ovq.ir.graph import Graph
    from ovq.pipeline import Pass
    from ovq.pipeline.context import PassContext

log = logging.getLogger("ovq.quantization")

ADVANCED_DEFAULTS: dict[str, Any] = {"overflow_fix": None, "fast_bias_correction": True,
                                     "activations_range": "mean_minmax", "outlier_prob": 1e-4, "preset": None,
                                     "smooth_quant": None}
"""The :func:`quantize` options ``advanced_parameters`` can set, at their defaults."""


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
    range_search: str | None = None,
    smooth_quant: float | bool | str | None = None,
    channel_split: bool | None = None,
    quantize_recurrent: bool = False,
    seed: int = 0,
    progress: bool | None = None,
    strict: bool = False,
    ctx: PassContext | None = None,
) -> QuantizeReport:
    """Quantize ``graph`` in place (see :func:`quantize` for the options)."""
    check_not_quantized(graph)
    options = QuantizeOptions.build(
        target_device=target_device, preset=preset, subset_size=subset_size,
        fast_bias_correction=fast_bias_correction, model_type=model_type, ignored_scope=ignored_scope,
        compress_weights=compress_weights, activations_range=activations_range, outlier_prob=outlier_prob,
        overflow_fix=overflow_fix, range_search=range_search, smooth_quant=smooth_quant,
        channel_split=channel_split, quantize_recurrent=quantize_recurrent, seed=seed, progress=progress,
        strict=strict)
    return QuantizeSession(graph, calibration_dataset, options, fp_model=fp_model, ctx=ctx).run()




def check_not_quantized(graph: Graph) -> None:
    """Refuse a model that is already quantized: a FakeQuantize on an activation (data
    computed from the inputs). Weight-only forms are accepted: FakeQuantize on constant
    weights and low-precision weight constants (an int8 TFLite or weight-compressed
    model), whose 8-bit paths placement folds and requantizes and whose other paths it
    leaves with a reason.

    Raises:
        AlreadyQuantizedError: naming what was found.
    """
    from ovq.errors import AlreadyQuantizedError

    constant: dict[int, bool] = {}

    def is_constant(node: int) -> bool:
        stack = [node]
        while stack:  # iterative post-order: weight paths can be long
            n = stack[-1]
            if n in constant:
                stack.pop()
                continue
            op = graph.op(n)
            if op.const is not None or op.type == "Const":
                constant[n] = True
                stack.pop()
                continue
            inputs = [src[0] for k in range(len(op.inputs)) if (src := graph.producer(n, k)) is not None]
            if not inputs or op.type in ("Parameter", "ReadValue"):
                constant[n] = not inputs and op.type not in ("Parameter", "ReadValue")
                stack.pop()
                continue
            todo = [i for i in inputs if i not in constant]
            if todo:
                stack.extend(todo)
                continue
            constant[n] = all(constant[i] for i in inputs)
            stack.pop()
        return constant[node]

    fqs = sum(1 for n, op in graph.ops()
              if op.type == "FakeQuantize" and (src := graph.producer(n, 0)) is not None and not is_constant(src[0]))
    if fqs:
        found = f"{fqs} FakeQuantize ops on activations"
        raise AlreadyQuantizedError(f"{graph.source}: the model is already quantized ({found}); "
                                    "quantize its floating-point original")


def quantize(
    model: Any,
    calibration_dataset: Iterable[Any],
    *,
    mode: Any = None,
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
    range_search: str | None = None,
    smooth_quant: float | bool | str | None = None,
    channel_split: bool | None = None,
    quantize_recurrent: bool = False,
    seed: int = 0,
    progress: bool | None = None,
    strict: bool = False,
    pipeline: str | Sequence[Pass] | None = None,
    dump_after: Iterable[str] = (),
    dump_dir: str | os.PathLike[str] | None = None,
    return_report: bool = False,
    advanced_parameters: Any = None,
    report: str | os.PathLike[str] | None = None,
) -> Any:
    """Quantize ``model`` to INT8 with ranges and bias correction from calibration data.

    Args:
        model: ``openvino.Model`` (a new Model is returned), :class:`ovq.Graph` (a new
            Graph is returned; the input is untouched) or a model path (a Graph).
        calibration_dataset: Any iterable of samples — arrays, tuples of arrays, or dicts
            by input name — or ``ovq.Dataset(data_source, transform_func)`` (an
            ``nncf.Dataset`` is read through its public methods).
        mode: NNCF's FP8 ``QuantizationMode``: not supported (``None`` only).
        target_device: ``ANY`` (default), ``CPU``, ``GPU``, ``NPU``, ``CPU_SPR``, ``GNA``,
            ``GNA3``, or a hardware descriptor file.
        preset: ``performance`` (symmetric activations; default for CNNs) or ``mixed``
            (asymmetric activations; default for transformers).
        subset_size: Samples to calibrate on (a seeded draw when the data is larger;
            ``None`` for all).
        fast_bias_correction: ``True`` fast bias correction, ``False`` the full
            (propagating) one, ``None`` none.
        model_type: ``None`` or ``transformer``.
        ignored_scope: :class:`ovq.IgnoredScope` (or an ``nncf.IgnoredScope``) or a dict
            (names, types, patterns, subgraphs, validate).
        compress_weights: Fold weight FQs into int8 constants (~4× smaller weights);
            ``False`` keeps FakeQuantize on FP32 weights.
        activations_range: ``mean_minmax`` (default), ``minmax`` or ``quantile``.
        outlier_prob: Outlier probability for ``activations_range="quantile"``.
        overflow_fix: 7-bit effective weights (an 8-bit weight FQ with a doubled range)
            where u8×s8 pair sums would saturate the 16-bit intermediates of x86 INT8
            kernels without VNNI (AVX2, AVX-512 without VNNI). ``auto`` (default):
            measured per output channel on the first calibration samples, halved only
            where saturation costs more than the coarser grid (``report.overflow_decisions``);
            ``first_layer`` (NNCF's default: the first plain Convolution on each path
            from an input), ``enable`` (every Convolution-like and MatMul layer) or
            ``disable``. See docs/accuracy.md for the figures per CPU.
        range_search: ``"activations"``, ``"weights"`` or ``"all"``: after the ranges
            from the statistics, search narrower per-tensor activation ranges and/or
            per-channel weight ranges that lower each layer's quantized output error on
            the first 4 calibration samples (``report.range_search``; seconds of numpy
            work on a transformer). ``None``/``"none"`` (default): off.
        smooth_quant: SmoothQuant for MatMuls. ``None`` (default): NNCF's alpha 0.95
            for ``model_type="transformer"``, off otherwise. ``"search"``: each group's
            alpha from (0.5, 0.6, 0.7, 0.8, 0.9, 0.95), the one whose quantized
            projections best reproduce the FP ones on the first 16 samples (no extra
            inference, but seconds of numpy work: MiniLM cosine 0.9978 vs 0.9971). A
            float in ``[0, 1]``: that alpha everywhere. ``True``: 0.95. ``False`` or a
            negative value: off.
        channel_split: Where SmoothQuant left a few input channels of a group's weights
            far larger than the rest, split each into equal parts (a ``Gather`` copies
            the activation channel; ``report.channel_splits``): a finer 8-bit weight grid
            for every other channel. ``None``/``True`` (default): on wherever SmoothQuant
            runs; ``False``: off. MiniLM: see docs/accuracy.md.
        quantize_recurrent: Quantize LSTM/GRU sequences and cells where the target's
            descriptor allows (the CPU plugin runs LSTMSequence and GRUSequence in INT8,
            faster, but its single range for input and hidden state loses accuracy:
            docs/accuracy.md). ``False`` (default): they stay in float and are listed
            in ``report.skipped``.
        seed: Seed of the subset draw.
        progress: Progress bar (``None``: on a terminal only).
        strict: An ignored-scope entry that matches nothing is an error, not a warning.
        pipeline: Passes to run on the model before placement (a textual pipeline such
            as ``"fold-constants,fuse-batchnorm"`` or pass objects); calibration then
            runs the transformed FP model.
        dump_after: Phase names (:data:`~ovq.quantization.phases.PHASE_NAMES`) and
            pipeline pass names after which the IR is written into ``dump_dir``.
        dump_dir: Folder for those dumps (default: the current directory).
        return_report: Return ``(model, QuantizeReport)``.
        advanced_parameters: An ``AdvancedQuantizationParameters`` (ovq's or NNCF's),
            mapped onto the options above by
            :func:`~ovq.quantization.advanced_parameters.quantize_options_from`; a field
            ovq does not support, at a non-default value, is an ``OptionError``.
        report: Also write an HTML report of the result here (``.html``; a JSON twin
            goes next to it; its folder must exist): per-layer ranges, runtime precision
            and kernel, latency FP32 vs INT8, activation histograms on the first
            calibration samples, the graph (docs/report.md).

    Raises:
        AlreadyQuantizedError: the model already holds FakeQuantize ops or compressed
            low-precision weights.
        CalibrationDataError: empty data, or samples that do not fit the model's inputs.
        NonFiniteError: NaN/Inf in an observed tensor (the op is named).
        OptionError: a bad option value (``subset_size`` not a positive integer, ...), or
            ``dump_after`` naming no phase or pass.
        HardwareDescriptorError / PlacementError: unknown target, preset or model type.
        ReportError: ``report`` is in a missing folder or is not a regular file.
    """
    import openvino as ov

    from ovq.ir import Graph, read_model

    check_mode(mode)
    if advanced_parameters is not None:
        explicit = {"overflow_fix": overflow_fix, "fast_bias_correction": fast_bias_correction,
                    "activations_range": activations_range, "outlier_prob": outlier_prob, "preset": preset,
                    "smooth_quant": smooth_quant}
        merged = merge_options(explicit, ADVANCED_DEFAULTS,
                               quantize_options_from(advanced_parameters, model_type=model_type))
        overflow_fix, fast_bias_correction = merged["overflow_fix"], merged["fast_bias_correction"]
        activations_range, outlier_prob = merged["activations_range"], merged["outlier_prob"]
        preset, smooth_quant = merged["preset"], merged["smooth_quant"]
    if report is not None:
        from ovq.report import check_target

        check_target(report)
    t0 = time.perf_counter()
    graph = read_model(model)
    if graph is model or isinstance(model, Graph):
        graph = graph.copy()
    fp_model = model if isinstance(model, ov.Model) else None
    read_time = time.perf_counter() - t0
    ctx, pipeline_time = run_before_placement(graph, pipeline, dump_after, dump_dir)
    if pipeline is not None:
        fp_model = None  # calibrate the transformed model
    if report is not None and fp_model is None:
        fp_model = graph.to_ov()  # the phases would build it anyway; the report needs it after them
    qreport = calibrate_and_quantize(
        graph, calibration_dataset, fp_model=fp_model, target_device=target_device, preset=preset,
        subset_size=subset_size, fast_bias_correction=fast_bias_correction, model_type=model_type,
        ignored_scope=ignored_scope, compress_weights=compress_weights, activations_range=activations_range,
        outlier_prob=outlier_prob, overflow_fix=overflow_fix, range_search=range_search, smooth_quant=smooth_quant,
        channel_split=channel_split, quantize_recurrent=quantize_recurrent, seed=seed,
        progress=progress, strict=strict, ctx=ctx)
    qreport.phases = {"read": read_time, **({"pipeline": pipeline_time} if pipeline is not None else {}),
                     **qreport.phases}
    result: Any = graph
    if isinstance(model, ov.Model):
        t0 = time.perf_counter()
        result = graph.to_ov()
        qreport.phases["to_ov"] = time.perf_counter() - t0
    if report is not None:
        from ovq.report import report_model

        t0 = time.perf_counter()
        options = {"target_device": target_device, "preset": preset, "subset_size": subset_size,
                   "fast_bias_correction": fast_bias_correction, "model_type": model_type,
                   "compress_weights": compress_weights, "activations_range": activations_range,
                   "overflow_fix": overflow_fix, "range_search": range_search, "smooth_quant": smooth_quant,
                   "channel_split": channel_split, "quantize_recurrent": quantize_recurrent or None}
        report_model(result, report, fp_model=fp_model, data=calibration_dataset, quantize_report=qreport,
                     options={k: _value(v) for k, v in options.items() if v is not None}, source="ovq.quantize",
                     model_name=str(model) if isinstance(model, (str, os.PathLike)) else graph.name)
        qreport.phases["report"] = time.perf_counter() - t0
    return (result, qreport) if return_report else result


def _value(x: Any) -> Any:
    return x.value if isinstance(x, enum.Enum) else x


def run_before_placement(graph: Graph, pipeline: str | Sequence[Pass] | None, dump_after: Iterable[str],
                         dump_dir: str | os.PathLike[str] | None) -> tuple[PassContext, float]:
    """Run ``pipeline`` on ``graph``; return the context the phases share and its time.

    ``dump_after`` may name pipeline passes and phases; a name that is neither is an error
    before any work is done.
    """
    from pathlib import Path

    from ovq.errors import OptionError
    from ovq.pipeline import PassContext, Pipeline
    from ovq.quantization.phases import PHASE_NAMES

    pipe = Pipeline(pipeline) if pipeline is not None else None
    names = set(dump_after)
    pass_names = {p.name for p in pipe.passes} if pipe is not None else set()
    unknown = sorted(names - pass_names - set(PHASE_NAMES))
    if unknown:
        raise OptionError(f"dump_after: {', '.join(map(repr, unknown))} names no quantize phase "
                          f"({', '.join(PHASE_NAMES)}) and no pass of the pipeline")
    ctx = PassContext(dump_after=names & pass_names,
                      dump_dir=Path(dump_dir) if dump_dir is not None else None)
    seconds = 0.0
    if pipe is not None:
        t0 = time.perf_counter()
        pipe.run(graph, ctx)
        seconds = time.perf_counter() - t0
    ctx.dump_after = names & set(PHASE_NAMES)
    ctx.verify = False  # phases are checked by their tests; a verify per phase costs seconds on large models
    return ctx, seconds


__all__ = ["Dataset", "ModelType", "QuantizationPreset", "QuantizeReport", "TargetDevice", "quantize",
           "calibrate_and_quantize"]
