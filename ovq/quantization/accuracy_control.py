"""Accuracy control: quantize, then leave the fewest layers in floating point that bring
the metric back within ``max_drop`` of the FP model.

:func:`quantize_with_accuracy_control` follows ``nncf.quantize_with_accuracy_control``:
the user's ``validation_fn(compiled_model, validation_data) -> float`` (higher is
better; NNCF's ``(value, per_sample_values)`` tuples are accepted, the first element is
used) is the judge, and ``drop_type`` is ``absolute`` (``fp - int8``) or ``relative``
(``(fp - int8) / |fp|``).

The algorithm:

1. Quantize once (:class:`~ovq.quantization.phases.QuantizeSession`), validate the FP
   and the INT8 model (2 calls). Done if the drop is within ``max_drop``.
2. **Rank** the quantized layers by the error their quantization adds, worst first,
   from one streamed pass over the calibration data (:func:`rank_layers`; no
   ``validation_fn`` call).
3. **Bisect** over the ranking: the model with the first ``k`` ranked layers in float
   is re-made from the calibrated session state (``QuantizeSession.requantize``: the
   phases after ``statistics`` run again, the data is not), and validated; the smallest
   ``k`` that meets ``max_drop`` is searched in ``O(log n)`` calls, assuming that
   reverting more of the ranking never hurts (the result is always a model that was
   validated). All layers in float is tried first, so a model that cannot reach
   ``max_drop`` at all is known after one more call: the best model seen is returned
   with a warning and the numbers.

``max_num_iterations`` bounds the ``validation_fn`` calls of steps 2–3. Every call,
metric and reverted layer set is in the :class:`AccuracyControlReport`.
"""

from __future__ import annotations

import enum
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ovq.errors import CalibrationDataError, OptionError, OvqError
from ovq.quantization.report import QuantizeReport

log = logging.getLogger("ovq.quantization")

DROP_TYPES = ("absolute", "relative")


class DropType(str, enum.Enum):
    """How the drop is measured (NNCF's ``DropType``)."""

    ABSOLUTE = "absolute"
    RELATIVE = "relative"


class ValidationError(OvqError):
    """``validation_fn`` returned something that is not a finite number."""


class AccuracyControlWarning(UserWarning):
    """The metric could not be brought within ``max_drop``; the best model found is returned."""


@dataclass(frozen=True)
class Validation:
    """One ``validation_fn`` call."""

    call: int
    float_layers: int
    metric: float
    seconds: float


@dataclass
class AccuracyControlReport:
    """What :func:`quantize_with_accuracy_control` did.

    Attributes:
        fp_metric: The FP model's metric.
        int8_metric: The fully quantized model's metric.
        metric: The returned model's metric.
        drop: The returned model's drop (``drop_type`` units).
        max_drop: The allowed drop.
        drop_type: ``absolute`` or ``relative``.
        met: Whether the returned model is within ``max_drop``.
        ranking: Quantized layers, the one whose quantization adds most error first.
        float_layers: The layers the returned model keeps in floating point.
        validations: Every ``validation_fn`` call in order.
        quantize: The report of the fully quantized model.
        phases: Seconds per step (``quantize``, ``validate``, ``rank``, ``search``).
    """

    fp_metric: float = math.nan
    int8_metric: float = math.nan
    metric: float = math.nan
    drop: float = math.nan
    max_drop: float = 0.01
    drop_type: str = "absolute"
    met: bool = False
    ranking: list[str] = field(default_factory=list)
    float_layers: list[str] = field(default_factory=list)
    validations: list[Validation] = field(default_factory=list)
    quantize: QuantizeReport | None = None
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        """``validation_fn`` calls made."""
        return len(self.validations)

    def format(self) -> str:
        """A few human-readable lines."""
        unit = "" if self.drop_type == "absolute" else " (relative)"
        lines = [
            f"metric: FP {self.fp_metric:.6g}, INT8 {self.int8_metric:.6g}, result {self.metric:.6g}; "
            f"drop {self.drop:.4g}{unit}, allowed {self.max_drop:g}: {'met' if self.met else 'NOT met'}",
            f"layers in floating point: {len(self.float_layers)} of {len(self.ranking)} quantized"
            + (f" ({', '.join(self.float_layers[:6])}{' ...' if len(self.float_layers) > 6 else ''})"
               if self.float_layers else ""),
            f"validation_fn calls: {self.calls}",
            "time: " + ", ".join(f"{k} {v:.2f} s" for k, v in self.phases.items()),
        ]
        return "\n".join(lines)


def compute_drop(fp_metric: float, metric: float, drop_type: str) -> float:
    """The drop of ``metric`` from ``fp_metric`` (positive: worse than FP)."""
    if drop_type == "absolute":
        return fp_metric - metric
    return (fp_metric - metric) / abs(fp_metric) if fp_metric else (math.inf if metric < fp_metric else 0.0)


def within_drop(drop: float, max_drop: float) -> bool:
    """Whether ``drop`` meets ``max_drop``, up to the rounding of the subtraction that
    made it: 297 of 300 right is a drop of exactly 0.01 from 1.0, although
    ``1.0 - 0.99`` is ``0.010000000000000009`` in floating point."""
    return drop <= max_drop or math.isclose(drop, max_drop, rel_tol=1e-9)


class _Validator:
    """Compiles a model and calls ``validation_fn`` on it, counting and checking calls."""

    def __init__(self, validation_fn: Callable[..., Any], data: Any, report: AccuracyControlReport,
                 max_calls: int | None) -> None:
        self.fn, self.data, self.report, self.max_calls = validation_fn, data, report, max_calls

    @property
    def exhausted(self) -> bool:
        return self.max_calls is not None and self.report.calls >= self.max_calls

    def __call__(self, model: Any, float_layers: int, what: str) -> float:
        from ovq.runtime import compile_model

        call = self.report.calls + 1
        compiled = compile_model(model)
        t0 = time.perf_counter()
        try:
            value = self.fn(compiled, self.data)
        except Exception as exc:
            exc.add_note(f"ovq: raised by validation_fn on call {call} ({what})")
            raise
        seconds = time.perf_counter() - t0
        metric = _as_metric(value, call, what)
        self.report.validations.append(Validation(call, float_layers, metric, seconds))
        log.info("validation_fn call %d (%s): %.6g", call, what, metric)
        return metric


def _as_metric(value: Any, call: int, what: str) -> float:
    if isinstance(value, tuple) and value:  # NNCF: (metric, per-sample values)
        value = value[0]
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim != 0:
        raise ValidationError(f"validation_fn must return one number (higher is better); call {call} ({what}) "
                              f"returned {_short(value)}")
    metric = float(arr)
    if not math.isfinite(metric):
        raise ValidationError(f"validation_fn returned {metric} on call {call} ({what}); it must be a finite number")
    return metric


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Transformed:
    """An ``ovq.Dataset``'s transformed items, re-iterable (a fresh pass per call)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __iter__(self) -> Any:
        return self.dataset.get_inference_data()


def _validation_data(validation_dataset: Any) -> Any:
    """What ``validation_fn`` is given: the dataset's transformed items, re-iterable."""
    from ovq.quantization.dataset import Dataset, as_dataset

    validation_dataset = as_dataset(validation_dataset)
    data = _Transformed(validation_dataset) if isinstance(validation_dataset, Dataset) else validation_dataset
    if not isinstance(validation_dataset, Dataset):
        if not isinstance(data, Iterable) or iter(data) is data:
            raise CalibrationDataError("validation_dataset must be re-iterable (a list or ovq.Dataset): it is "
                                       f"iterated once per validation_fn call; got {type(data).__name__}")
    if next(iter(data), _EMPTY) is _EMPTY:
        raise CalibrationDataError("validation_dataset is empty")
    return data


_EMPTY = object()


def _other_quantized_ops(graph: Any, layers: Sequence[str]) -> list[str]:
    """Ops outside ``layers`` that read an activation FakeQuantize (residual Adds,
    Concats, ...), in graph order: reverted after every ranked layer, so that the last
    candidate of the search is the model with no quantizer left."""
    from ovq.quantization.records import META_KEY

    table = graph.meta.get(META_KEY)
    if table is None:
        return []
    seen, extra = set(layers), []
    for q in table.activations(graph):
        for op, _port in graph.consumers(q.node, 0):
            name = graph.op(op).name
            if name not in seen:
                seen.add(name)
                extra.append(name)
    return extra


def rank_layers(fp_model: Any, int8_model: Any, samples: Iterable[Any], layers: Sequence[str], *,
                progress: bool | None = None) -> list[str]:
    """``layers`` (quantized compute ops) ordered by the error their quantization adds,
    worst first, from one streamed pass of ``samples`` (:func:`ovq.analyze`: the model
    output's error with only that layer quantized, measured on a few samples, then the
    layer's own output error); layers the analysis does not cover keep their order at the
    end."""
    from ovq.quantization.analyze import analyze

    table = analyze(fp_model, int8_model, samples, subset_size=None, progress=progress)
    wanted = set(layers)
    ranked = [row.name for row in table.worst() if row.name in wanted]
    seen = set(ranked)
    return ranked + [name for name in layers if name not in seen]


def quantize_with_accuracy_control(
    model: Any,
    calibration_dataset: Iterable[Any],
    validation_dataset: Iterable[Any],
    validation_fn: Callable[..., Any],
    max_drop: float = 0.01,
    drop_type: str = "absolute",
    *,
    preset: Any = None,
    target_device: Any = "ANY",
    subset_size: int | None = 300,
    fast_bias_correction: bool | None = True,
    model_type: Any = None,
    ignored_scope: Any = None,
    max_num_iterations: int | None = None,
    ranking_subset_size: int | None = None,
    progress: bool | None = None,
    return_report: bool = False,
    advanced_quantization_parameters: Any = None,
    advanced_accuracy_restorer_parameters: Any = None,
    **quantize_options: Any,
) -> Any:
    """Quantize ``model`` and keep the fewest layers in float that bring the metric within
    ``max_drop`` of the FP model's (see the module docstring for the algorithm).

    Args:
        model: ``openvino.Model`` (a new Model is returned), :class:`ovq.Graph` (a new
            Graph) or a model path (a Graph); the input is never modified.
        calibration_dataset: Calibration samples, as :func:`ovq.quantize` takes them.
        validation_dataset: A re-iterable of validation items (a list or
            :class:`ovq.Dataset`, whose transformed items are passed on).
        validation_fn: ``validation_fn(compiled_model, validation_data) -> float``,
            higher is better; the compiled model is an ``openvino.CompiledModel`` on CPU
            at the f32 precision hint.
        max_drop: The largest acceptable drop (``>= 0``).
        drop_type: ``absolute`` (``fp - int8``) or ``relative`` (``(fp - int8) / |fp|``).
        max_num_iterations: At most this many ``validation_fn`` calls after the first two
            (FP and fully quantized); ``None``: as many as the bisection needs.
        ranking_subset_size: Calibration samples the ranking pass uses (default: the
            calibration subset, at most 300).
        return_report: Return ``(model, AccuracyControlReport)``.
        advanced_quantization_parameters: NNCF's ``AdvancedQuantizationParameters`` (or
            ovq's), as ``advanced_parameters`` of :func:`ovq.quantize`.
        advanced_accuracy_restorer_parameters: NNCF's
            ``AdvancedAccuracyRestorerParameters`` (or ovq's): ``max_num_iterations`` and
            ``ranking_subset_size`` map onto the arguments above; other fields only at
            their defaults.
        **quantize_options: Any other :func:`ovq.quantize` option (``overflow_fix``,
            ``activations_range``, ``smooth_quant``, ...).

    Raises:
        OptionError: ``max_drop < 0``, an unknown ``drop_type``, a bad iteration bound.
        CalibrationDataError: an empty or one-shot validation dataset.
        ValidationError: ``validation_fn`` returned NaN, infinity or not one number.
        Exception: whatever ``validation_fn`` raised, with a note saying which call.
    """
    import openvino as ov

    from ovq.ir import Graph, read_model
    from ovq.quantization.dataset import select_subset
    from ovq.quantization.phases import QuantizeOptions, QuantizeSession
    from ovq.quantization.records import QUANTIZED_OPS_KEY

    from ovq.quantization.advanced_parameters import accuracy_options_from, merge_options, quantize_options_from
    from ovq.quantization.quantize import ADVANCED_DEFAULTS

    if advanced_quantization_parameters is not None:
        explicit = {"fast_bias_correction": fast_bias_correction, "preset": preset, **quantize_options}
        merged = merge_options(explicit, ADVANCED_DEFAULTS,
                               quantize_options_from(advanced_quantization_parameters, model_type=model_type,
                                                     where="advanced_quantization_parameters"),
                               "advanced_quantization_parameters")
        fast_bias_correction, preset = merged.pop("fast_bias_correction"), merged.pop("preset")
        quantize_options = merged
    restorer = accuracy_options_from(advanced_accuracy_restorer_parameters)
    if restorer:
        merged = merge_options({"max_num_iterations": max_num_iterations, "ranking_subset_size": ranking_subset_size},
                               {"max_num_iterations": None, "ranking_subset_size": None}, restorer,
                               "advanced_accuracy_restorer_parameters")
        max_num_iterations, ranking_subset_size = merged["max_num_iterations"], merged["ranking_subset_size"]
    drop_type = getattr(drop_type, "value", drop_type)
    if isinstance(drop_type, str):
        drop_type = drop_type.lower()
    if drop_type not in DROP_TYPES:
        raise OptionError(f"unknown drop_type {drop_type!r}; choose absolute or relative")
    try:
        max_drop = float(max_drop)
    except (TypeError, ValueError):
        raise OptionError(f"max_drop must be a number >= 0, got {max_drop!r}") from None
    if not max_drop >= 0:
        raise OptionError(f"max_drop must be a number >= 0, got {max_drop!r}")
    if max_num_iterations is not None and (not isinstance(max_num_iterations, int) or max_num_iterations < 0):
        raise OptionError(f"max_num_iterations must be a whole number >= 0, got {max_num_iterations!r}")
    if not callable(validation_fn):
        raise OptionError("validation_fn must be callable as validation_fn(compiled_model, validation_data)")
    data = _validation_data(validation_dataset)
    options = QuantizeOptions.build(target_device=target_device, preset=preset, subset_size=subset_size,
                                    fast_bias_correction=fast_bias_correction, model_type=model_type,
                                    ignored_scope=ignored_scope, progress=progress, **quantize_options)

    report = AccuracyControlReport(max_drop=max_drop, drop_type=drop_type)
    timer = _Phases(report)
    with timer("quantize"):
        graph = read_model(model)
        if graph is model or isinstance(model, Graph):
            graph = graph.copy()
        fp_model = model if isinstance(model, ov.Model) else graph.to_ov()
        session = QuantizeSession(graph, calibration_dataset, options, fp_model=fp_model)
        report.quantize = session.run()
    budget = None if max_num_iterations is None else 2 + max_num_iterations
    validate = _Validator(validation_fn, data, report, budget)
    with timer("validate"):
        report.fp_metric = validate(fp_model, 0, "the FP model")
        report.int8_metric = validate(graph.to_ov(), 0, "the fully quantized model")
    best = _Candidate(graph, [], report.int8_metric)
    layers = list(graph.meta.get(QUANTIZED_OPS_KEY, []))
    layers += _other_quantized_ops(graph, layers)
    if not within_drop(compute_drop(report.fp_metric, report.int8_metric, drop_type), max_drop) and layers \
            and not validate.exhausted:
        with timer("rank"):
            samples = select_subset(calibration_dataset, ranking_subset_size or min(options.subset_size or 300, 300),
                                    seed=options.seed)
            report.ranking = rank_layers(fp_model, graph.to_ov(), samples, layers, progress=progress)
        with timer("search"):
            best = _bisect(session, report, validate, best)
    else:
        report.ranking = layers
    report.metric = best.metric
    report.float_layers = best.float_layers
    report.drop = compute_drop(report.fp_metric, best.metric, drop_type)
    report.met = within_drop(report.drop, max_drop)
    if not report.met:
        warnings.warn(f"accuracy control: drop {report.drop:.4g} is above max_drop {max_drop:g} "
                      f"(FP {report.fp_metric:.6g}, INT8 {report.int8_metric:.6g}, best {best.metric:.6g} with "
                      f"{len(best.float_layers)} of {len(report.ranking)} layers in float); returning the best "
                      f"model found", AccuracyControlWarning, stacklevel=2)
    result: Any = best.graph
    if isinstance(model, ov.Model):
        result = best.graph.to_ov()
    return (result, report) if return_report else result


@dataclass
class _Candidate:
    graph: Any
    float_layers: list[str]
    metric: float


class _Phases:
    def __init__(self, report: AccuracyControlReport) -> None:
        self.report = report

    def __call__(self, name: str) -> _Timed:
        return _Timed(self.report, name)


class _Timed:
    def __init__(self, report: AccuracyControlReport, name: str) -> None:
        self.report, self.name = report, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.report.phases[self.name] = self.report.phases.get(self.name, 0.0) + time.perf_counter() - self.t0


def _bisect(session: Any, report: AccuracyControlReport, validate: _Validator, best: _Candidate) -> _Candidate:
    """The smallest prefix of the ranking whose reverting meets ``max_drop`` (see module doc)."""
    ranking = report.ranking
    tried: dict[int, _Candidate] = {}

    def attempt(k: int) -> _Candidate:
        graph, _ = session.requantize(ranking[:k])
        metric = validate(graph.to_ov(), k, f"{k} of {len(ranking)} layers in float")
        tried[k] = _Candidate(graph, list(ranking[:k]), metric)
        return tried[k]

    def ok(c: _Candidate) -> bool:
        return within_drop(compute_drop(report.fp_metric, c.metric, report.drop_type), report.max_drop)

    def better(a: _Candidate, b: _Candidate) -> _Candidate:
        if ok(a) != ok(b):
            return a if ok(a) else b
        if ok(a):  # both meet: fewer float layers wins
            return a if len(a.float_layers) < len(b.float_layers) else b
        return a if a.metric > b.metric else b

    n = len(ranking)
    if validate.exhausted:
        return best
    top = attempt(n)
    best = better(top, best)
    if not ok(top):
        return best
    lo, hi = 0, n  # reverting lo layers fails, hi layers meets
    while hi - lo > 1 and not validate.exhausted:
        mid = (lo + hi) // 2
        c = attempt(mid)
        best = better(c, best)
        if ok(c):
            hi = mid
        else:
            lo = mid
    return tried[hi] if hi in tried and ok(tried[hi]) else best
