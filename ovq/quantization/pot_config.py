"""POT (Post-training Optimization Tool) JSON configs as ``ovq quantize`` jobs.

:func:`read_pot_config` reads the config a ``pot -c FILE.json`` run would take and
returns a :class:`PotJob`: the model files, the calibration data and the
DefaultQuantization parameters, validated and with paths resolved against the config
file's folder. ``ovq quantize --config FILE.json`` runs it.

What is read (the mapping is tabulated in ``docs/quantize-data.md``)::

    {
      "model": {"model_name": "m", "model": "m.xml", "weights": "m.bin"},
      "engine": {"type": "simplified", "data_source": "images/",   // folder, glob or .txt
                 "layout": "NCHW", "central_fraction": 0.875},
      // or the Accuracy Checker engine: {"launchers": [...], "datasets": [{"data_source": ...,
      //   "reader": ..., "preprocessing": [...]}]} or {"config": "ac.yml"}
      "compression": {
        "target_device": "CPU", "model_type": "transformer",
        "algorithms": [{"name": "DefaultQuantization", "params": {   // or AccuracyAwareQuantization
          "preset": "performance", "stat_subset_size": 300, "use_fast_bias": true,
          "shuffle_data": false, "seed": 0,
          "activations": {"range_estimator": {"preset": "quantile"}},
          "ignored": {"scope": ["node"], "operations": [{"type": "Add"},
                                                        {"type": "Convolution", "attributes": {"group": 1}}]}}}]}
    }

Like POT (which reads configs with ``jstyleson``), ``//`` and ``/* */`` comments and
trailing commas are accepted (:mod:`ovq.lenient_json`). The Accuracy Checker engine is translated by
:mod:`.pot_accuracy_checker`; images are read and resized with OpenCV as POT did
(:mod:`.image_pipeline`). Anything ovq cannot honour is refused with a
:class:`~ovq.errors.PotConfigError` naming the file and the key: other algorithms than
DefaultQuantization and AccuracyAwareQuantization, the data-free engine, manual
``weights`` / ``activations`` quantization parameters other than range estimators ovq
computes, and unknown keys. Keys that only tune POT's own runtime
(``stat_requests_number``, ``dump_intermediate_model``, ...) are accepted and unused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovq import lenient_json
from ovq.errors import PotConfigError

__all__ = ["AccuracyAwareSettings", "PotConfigError", "PotJob", "read_pot_config"]

PRESETS = ("performance", "mixed", "accuracy")
MODEL_TYPES = (None, "transformer")

_TOP_KEYS = ("model", "engine", "compression")
_MODEL_KEYS = ("model_name", "model", "weights")
_SIMPLIFIED_KEYS = ("type", "data_source", "layout", "central_fraction")
# POT engine keys about its own inference requests: accepted, nothing to do in ovq.
_ENGINE_RUNTIME_KEYS = ("device", "stat_requests_number", "eval_requests_number")
_COMPRESSION_KEYS = ("target_device", "model_type", "algorithms")
_COMPRESSION_RUNTIME_KEYS = ("dump_intermediate_model", "inplace_statistics", "inplase_statistics")
_PARAMS = ("preset", "stat_subset_size", "use_fast_bias", "model_type", "ignored", "shuffle_data", "seed",
           "target_device", "activations", "weights", "saturation_fix")
# POT's saturation_fix values as ovq's overflow_fix
_SATURATION_FIX = {"first_layer": "first_layer", "all": "enable", "no": "disable"}
# Of POT's manual "activations" / "weights" quantization parameters, ovq reads the range estimator.
_QUANT_PARAMS = ("range_estimator",)
_ESTIMATOR_KEYS = ("preset", "min", "max")
_BOUND_KEYS = ("type", "aggregator", "outlier_prob", "clipping_value")
_ALGORITHM = "DefaultQuantization"
_ACCURACY_AWARE = "AccuracyAwareQuantization"
# AccuracyAwareQuantization parameters ovq honours (besides DefaultQuantization's) ...
_AAQ_PARAMS = ("maximal_drop", "drop_type", "max_iter_num", "ranking_subset_size", "base_algorithm")
# ... and those accepted because ovq's search already does what they ask: it validates on
# the whole validation set and never returns a model worse than one it has validated.
_AAQ_ACCEPTED = ("metric_subset_ratio", "use_prev_if_drop_increase")


@dataclass(frozen=True)
class AccuracyAwareSettings:
    """The AccuracyAwareQuantization parameters of a POT config.

    Attributes:
        max_drop: ``maximal_drop`` (default 0.01).
        drop_type: ``drop_type``: ``absolute`` (default) or ``relative``.
        max_iterations: ``max_iter_num`` (``validation_fn`` calls after the first two),
            or None (unbounded, POT's default).
        ranking_subset_size: ``ranking_subset_size``, or None (the calibration subset).
    """

    max_drop: float = 0.01
    drop_type: str = "absolute"
    max_iterations: int | None = None
    ranking_subset_size: int | None = None


@dataclass(frozen=True)
class PotJob:
    """One DefaultQuantization run described by a POT config.

    Attributes:
        config: The config file.
        model_xml: The model's ``.xml``.
        model_bin: The model's ``.bin`` (``model.weights``; default: next to the ``.xml``).
        data_source: Images (folder, glob pattern or ``.txt`` list) from
            ``engine.data_source``, or None when the config has no engine (the data
            must then come from elsewhere, e.g. ``--data``).
        target_device: ``compression.target_device`` (default ``ANY``).
        preset: ``performance``, ``mixed``, ``accuracy``, or None when not given (the
            quantizer's default applies).
        subset_size: ``stat_subset_size`` (default 300).
        fast_bias_correction: ``use_fast_bias`` (default True).
        ignored_scope: ``{"names": [...], "types": [...]}`` from ``ignored``, or None.
        model_type: None or ``"transformer"``.
        model_name: ``model.model_name``, if given.
        layout: ``engine.layout`` (``NCHW``...), or None to let the loader guess.
        central_fraction: ``engine.central_fraction``, or None.
        reverse_input_channels: Always True: POT's engines read images with OpenCV,
            i.e. in BGR order; the OpenCV reader of :meth:`data_options`'s pipeline gives
            that order (kept for callers that build their own loading).
        image_pipeline: The Accuracy Checker engine's reader and preprocessing, or None
            (the simplified engine: OpenCV read, ``central_fraction`` crop, OpenCV
            bilinear resize to the input size, as POT did).
        shuffle_data: ``shuffle_data``: False (POT's default) calibrates on the first
            ``stat_subset_size`` samples in file order, True on a random choice of them
            (``CalibrationSource.subset(size, shuffle=True)``).
        seed: Seed of that random pick (``seed``, default 0; passed to the loader by
            :meth:`data_options`).
        overflow_fix: ``saturation_fix`` as ovq's ``overflow_fix`` (``all`` is
            ``enable``, ``no`` is ``disable``), or None when not given: ovq's default,
            ``auto``, applies (POT's own default was ``first_layer``).
        activations_range: ovq's estimator for ``activations.range_estimator``
            (``mean_minmax``, ``minmax`` or ``quantile``), or None (the default).
        outlier_prob: ``outlier_prob`` of a quantile estimator, or None.
    """

    config: Path
    model_xml: Path
    model_bin: Path
    data_source: Path | None = None
    target_device: str = "ANY"
    preset: str | None = None
    subset_size: int = 300
    fast_bias_correction: bool = True
    ignored_scope: dict[str, list[str]] | None = None
    model_type: str | None = None
    model_name: str | None = None
    layout: str | None = None
    central_fraction: float | None = None
    reverse_input_channels: bool = True
    shuffle_data: bool = False
    seed: int = 0
    overflow_fix: str | None = None
    accuracy_control: AccuracyAwareSettings | None = None
    activations_range: str | None = None
    outlier_prob: float | None = None
    image_pipeline: Any = None

    def quantize_options(self) -> dict[str, Any]:
        """Keyword arguments for ``ovq.quantize`` (besides the model and the data)."""
        out = {
            "target_device": self.target_device, "preset": self.preset, "subset_size": self.subset_size,
            "fast_bias_correction": self.fast_bias_correction, "model_type": self.model_type,
            "ignored_scope": self.ignored_scope, "overflow_fix": self.overflow_fix,
        }
        if self.activations_range is not None:
            out["activations_range"] = self.activations_range
        if self.outlier_prob is not None:
            out["outlier_prob"] = self.outlier_prob
        return out

    def data_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`~ovq.quantization.data_sources.load_calibration_data`:
        the image pipeline POT's engine ran (see :attr:`image_pipeline`)."""
        from ovq.quantization.image_pipeline import Crop, ImagePipeline, Resize

        pipeline = self.image_pipeline
        if pipeline is None:
            crop = (Crop(central_fraction=self.central_fraction),) if self.central_fraction is not None else ()
            pipeline = ImagePipeline("opencv", (*crop, Resize()))
        return {"layout": self.layout, "seed": self.seed, "image_pipeline": pipeline}


def read_pot_config(path: str | os.PathLike[str]) -> PotJob:
    """Read a POT JSON config into a :class:`PotJob`.

    Relative paths in the config resolve against the config file's folder; the model
    files and a data source that is not a glob pattern must exist.

    Raises:
        PotConfigError: the file cannot be read or parsed (``file:line:column``), a key
            is unknown or has a bad value, a file is missing, or the config asks for
            something ovq does not support yet (see the module docstring).
    """
    cfg = Path(path)
    doc = lenient_json.read(cfg, PotConfigError, what="config")
    r = _Reader(cfg)
    top = r.mapping(doc, "", "the config")
    r.known(top, "", _TOP_KEYS, what="top-level key")
    for key in ("model", "compression"):
        if key not in top:
            raise PotConfigError(f"{cfg}: missing the {key!r} section")

    model = r.mapping(top["model"], "model")
    if "cascade" in model:
        raise PotConfigError(f"{cfg}: model.cascade: cascaded models are not supported yet")
    r.known(model, "model", _MODEL_KEYS)
    model_xml = r.file(r.string(model, "model", "model", required=True), "model.model")
    weights = r.string(model, "model", "weights")
    model_bin = r.file(weights, "model.weights") if weights else model_xml.with_suffix(".bin")
    if not weights and not model_bin.is_file():
        raise PotConfigError(f"{cfg}: model.weights: not given and {model_bin} does not exist")

    algo = _read_compression(r, top["compression"])  # first: an algorithm refusal names the algorithm
    engine = _read_engine(r, top.get("engine"))
    return PotJob(
        config=cfg, model_xml=model_xml, model_bin=model_bin,
        model_name=r.string(model, "model", "model_name"),
        **engine, **algo,
    )


def _read_engine(r: _Reader, raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    engine = r.mapping(raw, "engine")
    kind = engine.get("type", "accuracy_checker")
    if kind == "accuracy_checker":
        from ovq.quantization.pot_accuracy_checker import read_accuracy_checker_engine

        return read_accuracy_checker_engine(r, engine)
    if kind == "data_free":
        raise PotConfigError(f"{r.cfg}: engine.type: the data-free engine is not supported yet")
    if kind != "simplified":
        raise PotConfigError(f"{r.cfg}: engine.type: unknown engine type {kind!r} (ovq reads \"simplified\")")
    r.known(engine, "engine", _SIMPLIFIED_KEYS + _ENGINE_RUNTIME_KEYS)
    source = r.string(engine, "engine", "data_source", required=True)
    data = r.resolve(source)
    if not any(ch in source for ch in "*?[") and not data.exists():
        raise PotConfigError(f"{r.cfg}: engine.data_source: no such file or folder {data}")
    out: dict[str, Any] = {"data_source": data, "layout": r.string(engine, "engine", "layout")}
    fraction = engine.get("central_fraction")
    if fraction is not None:
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise PotConfigError(f"{r.cfg}: engine.central_fraction: expected a number in (0, 1], got {fraction!r}")
        out["central_fraction"] = float(fraction)
    return out


def _read_compression(r: _Reader, raw: Any) -> dict[str, Any]:
    comp = r.mapping(raw, "compression")
    r.known(comp, "compression", _COMPRESSION_KEYS + _COMPRESSION_RUNTIME_KEYS)
    algorithms = comp.get("algorithms")
    if not isinstance(algorithms, list) or not algorithms:
        raise PotConfigError(f"{r.cfg}: compression.algorithms: expected a non-empty list of algorithms")
    for i, item in enumerate(algorithms):
        name = r.mapping(item, f"compression.algorithms[{i}]").get("name")
        if name not in (_ALGORITHM, _ACCURACY_AWARE):
            raise PotConfigError(
                f"{r.cfg}: compression.algorithms[{i}]: algorithm {name!r} is not supported "
                f"(ovq runs {_ALGORITHM} and {_ACCURACY_AWARE})"
            )
    if len(algorithms) > 1:
        raise PotConfigError(
            f"{r.cfg}: compression.algorithms: {len(algorithms)} algorithms; ovq runs a single {_ALGORITHM}"
        )
    where = "compression.algorithms[0]"
    r.known(algorithms[0], where, ("name", "params"))
    params = r.mapping(algorithms[0].get("params", {}), f"{where}.params")
    where += ".params"
    out: dict[str, Any] = {}
    if algorithms[0].get("name") == _ACCURACY_AWARE:
        r.known(params, where, _PARAMS + _AAQ_PARAMS + _AAQ_ACCEPTED, what="parameter", unsupported=True)
        out["accuracy_control"] = _accuracy_aware(r, params, where)
    else:
        r.known(params, where, _PARAMS, what="parameter", unsupported=True)

    device = r.string(comp, "compression", "target_device")
    algo_device = r.string(params, where, "target_device")
    if device and algo_device and device != algo_device:
        raise PotConfigError(f"{r.cfg}: {where}.target_device: {algo_device!r} contradicts "
                             f"compression.target_device {device!r}")
    if device or algo_device:
        out["target_device"] = device or algo_device

    model_type = _model_type(r, comp, "compression")
    algo_type = _model_type(r, params, where)
    if "model_type" in comp and "model_type" in params and model_type != algo_type:
        raise PotConfigError(f"{r.cfg}: {where}.model_type: {algo_type!r} contradicts "
                             f"compression.model_type {model_type!r}")
    out["model_type"] = model_type or algo_type

    preset = r.string(params, where, "preset")
    if preset is not None:
        if preset not in PRESETS:
            raise PotConfigError(f"{r.cfg}: {where}.preset: {preset!r} is not one of {', '.join(PRESETS)}")
        out["preset"] = preset
    size = params.get("stat_subset_size")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise PotConfigError(f"{r.cfg}: {where}.stat_subset_size: expected a positive integer, got {size!r}")
        out["subset_size"] = size
    for key, field in (("use_fast_bias", "fast_bias_correction"), ("shuffle_data", "shuffle_data")):
        value = params.get(key)
        if value is not None:
            if not isinstance(value, bool):
                raise PotConfigError(f"{r.cfg}: {where}.{key}: expected true or false, got {value!r}")
            out[field] = value
    seed = params.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise PotConfigError(f"{r.cfg}: {where}.seed: expected an integer, got {seed!r}")
        out["seed"] = seed
    fix = params.get("saturation_fix")
    if fix is not None:
        if fix not in _SATURATION_FIX:
            raise PotConfigError(f"{r.cfg}: {where}.saturation_fix: {fix!r} is not one of {', '.join(_SATURATION_FIX)}")
        out["overflow_fix"] = _SATURATION_FIX[fix]
    if "ignored" in params:
        out["ignored_scope"] = _ignored(r, params["ignored"], f"{where}.ignored")
    if "activations" in params:
        out.update(_activations(r, params["activations"], f"{where}.activations"))
    if "weights" in params:
        _weights(r, params["weights"], f"{where}.weights")
    return out


def _bounds(r: _Reader, raw: Any, where: str) -> dict[str, tuple[str | None, str | None, float | None]]:
    """``{"min": (type, aggregator, outlier_prob), "max": ...}`` of a range_estimator."""
    est = r.mapping(raw, where)
    r.known(est, where, _ESTIMATOR_KEYS, what="key", unsupported=True)
    preset = est.get("preset")
    if preset is not None and preset not in ("default", "quantile"):
        raise PotConfigError(f"{r.cfg}: {where}.preset: {preset!r} is not default or quantile")
    out: dict[str, tuple[str | None, str | None, float | None]] = {}
    for side in ("min", "max"):
        if side not in est:
            continue
        here = f"{where}.{side}"
        bound = r.mapping(est[side], here)
        r.known(bound, here, _BOUND_KEYS)
        if "clipping_value" in bound:
            raise PotConfigError(f"{r.cfg}: {here}.clipping_value: clipping statistics is not supported "
                                 "(ovq never clips ranges)")
        prob = bound.get("outlier_prob")
        if prob is not None and (isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0 < prob < 0.5):
            raise PotConfigError(f"{r.cfg}: {here}.outlier_prob: expected a number in (0, 0.5), got {prob!r}")
        out[side] = (r.string(bound, here, "type"), r.string(bound, here, "aggregator"),
                     None if prob is None else float(prob))
    if preset == "quantile":
        for side in ("min", "max"):
            kind, agg, prob = out.get(side, (None, None, None))
            out[side] = (kind or "quantile", agg or "mean", prob)
    return out


def _activations(r: _Reader, raw: Any, where: str) -> dict[str, Any]:
    """``activations.range_estimator`` as ovq's ``activations_range`` / ``outlier_prob``.

    POT's own defaults (min: min or mean of per-sample minima, max: mean of per-sample
    (abs-)maxima) are ovq's ``mean_minmax``: a symmetric quantizer reads its min only for
    the sign. Global min/max aggregation is ``minmax``; quantile statistics aggregated
    by mean are ``quantile``. Anything else is refused naming the key.
    """
    section = r.mapping(raw, where)
    r.known(section, where, _QUANT_PARAMS, what="parameter", unsupported=True)
    if "range_estimator" not in section:
        return {}
    here = f"{where}.range_estimator"
    bounds = _bounds(r, section["range_estimator"], here)
    if not bounds:
        return {}
    (min_type, min_agg, min_prob) = bounds.get("min", (None, None, None))
    (max_type, max_agg, max_prob) = bounds.get("max", (None, None, None))
    min_type, max_type = min_type or "min", max_type or "max"
    min_agg, max_agg = min_agg or "mean", max_agg or "mean"
    quantile = {"quantile", "abs_quantile"}
    if min_type in quantile or max_type in quantile:
        # POT's quantile preset keeps the min statistic for symmetric quantizers (sign only).
        ok = max_type in quantile and max_agg == "mean" and (min_type in quantile and min_agg == "mean"
                                                              or min_type == "min")
        if not ok:
            raise PotConfigError(f"{r.cfg}: {here}: min ({min_type}, {min_agg}) / max ({max_type}, {max_agg}) is not "
                                 "supported; quantile ranges are quantile statistics aggregated by mean")
        probs = {p for p in (min_prob, max_prob) if p is not None}
        if len(probs) > 1:
            raise PotConfigError(f"{r.cfg}: {here}: min and max outlier_prob differ; ovq uses one")
        return {"activations_range": "quantile", "outlier_prob": probs.pop() if probs else 1e-4}
    if min_prob is not None or max_prob is not None:
        raise PotConfigError(f"{r.cfg}: {here}: outlier_prob applies to quantile estimators only")
    if min_type != "min" or max_type not in ("max", "abs_max"):
        raise PotConfigError(f"{r.cfg}: {here}: statistic types min {min_type!r} / max {max_type!r} are not "
                             "supported (min with max or abs_max, or quantile)")
    if max_agg == "mean" and min_agg in ("mean", "min"):
        return {"activations_range": "mean_minmax"}
    if (min_agg, max_agg) == ("min", "max"):
        return {"activations_range": "minmax"}
    raise PotConfigError(f"{r.cfg}: {here}: aggregators min {min_agg!r} / max {max_agg!r} are not supported "
                         "(mean/mean, min/mean or min/max)")


def _weights(r: _Reader, raw: Any, where: str) -> None:
    """``weights.range_estimator``: only POT's default (per-channel abs-max / max) is ovq's."""
    section = r.mapping(raw, where)
    r.known(section, where, _QUANT_PARAMS, what="parameter", unsupported=True)
    if "range_estimator" not in section:
        return
    here = f"{where}.range_estimator"
    for side, (kind, agg, prob) in _bounds(r, section["range_estimator"], here).items():
        ok_types = ("min",) if side == "min" else ("max", "abs_max")
        if (kind is not None and kind not in ok_types) or (agg is not None and agg != side) or prob is not None:
            raise PotConfigError(f"{r.cfg}: {here}.{side}: weight ranges are the per-channel {side} "
                                 f"(ovq reads no other weight estimator), got type {kind!r}, aggregator {agg!r}")


def _accuracy_aware(r: _Reader, params: Mapping[str, Any], where: str) -> AccuracyAwareSettings:
    base = params.get("base_algorithm", _ALGORITHM)
    if base != _ALGORITHM:
        raise PotConfigError(f"{r.cfg}: {where}.base_algorithm: {base!r} is not supported (only {_ALGORITHM})")
    drop = params.get("maximal_drop", 0.01)
    if isinstance(drop, bool) or not isinstance(drop, (int, float)) or not drop >= 0:
        raise PotConfigError(f"{r.cfg}: {where}.maximal_drop: expected a number >= 0, got {drop!r}")
    drop_type = params.get("drop_type", "absolute")
    if drop_type not in ("absolute", "relative"):
        raise PotConfigError(f"{r.cfg}: {where}.drop_type: {drop_type!r} is not absolute or relative")
    counts = {}
    for key in ("max_iter_num", "ranking_subset_size"):
        value = params.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise PotConfigError(f"{r.cfg}: {where}.{key}: expected a positive integer, got {value!r}")
        counts[key] = value
    return AccuracyAwareSettings(float(drop), drop_type, counts["max_iter_num"], counts["ranking_subset_size"])


def _model_type(r: _Reader, section: Mapping[str, Any], where: str) -> str | None:
    value = section.get("model_type")
    if value in (None, "None", "none"):  # POT's template spells the default "None"
        return None
    if value not in MODEL_TYPES:
        raise PotConfigError(f"{r.cfg}: {where}.model_type: {value!r} is not supported (None or \"transformer\")")
    return value


def _ignored(r: _Reader, raw: Any, where: str) -> dict[str, Any] | None:
    ignored = r.mapping(raw, where)
    r.known(ignored, where, ("scope", "operations"))
    names = ignored.get("scope", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise PotConfigError(f"{r.cfg}: {where}.scope: expected a list of node names")
    ops = ignored.get("operations", [])
    if not isinstance(ops, list):
        raise PotConfigError(f"{r.cfg}: {where}.operations: expected a list of {{\"type\": ...}} entries")
    types: list[str] = []
    operations: list[dict[str, Any]] = []
    for i, op in enumerate(ops):
        here = f"{where}.operations[{i}]"
        entry = r.mapping(op, here)
        r.known(entry, here, ("type", "attributes"))
        kind = r.string(entry, here, "type", required=True)
        if "attributes" not in entry:
            types.append(kind)
            continue
        attrs = r.mapping(entry["attributes"], f"{here}.attributes")
        for key, value in attrs.items():
            scalar = (str, int, float, bool)
            if not (isinstance(value, scalar) or (isinstance(value, list) and all(isinstance(v, scalar) for v in value))):
                raise PotConfigError(f"{r.cfg}: {here}.attributes.{key}: expected a string, number, boolean or "
                                     f"a list of them, got {_kind(value)}")
        operations.append({"type": kind, "attributes": dict(attrs)})
    if not names and not types and not operations:
        return None
    scope: dict[str, Any] = {"names": list(names), "types": types}
    if operations:
        scope["operations"] = operations
    scope["validate"] = False  # POT warned about entries matching nothing
    return scope


class _Reader:
    """Typed access to config sections; every error names the file and the key path."""

    def __init__(self, cfg: Path) -> None:
        self.cfg = cfg

    def mapping(self, value: Any, where: str, label: str | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise PotConfigError(f"{self.cfg}: {label or where}: expected an object {{...}}, got {_kind(value)}")
        return value

    def known(self, section: Mapping[str, Any], where: str, keys: tuple[str, ...], *, what: str = "key",
              unsupported: bool = False) -> None:
        for key in section:
            if key not in keys:
                at = f"{where}.{key}" if where else key
                shown = ", ".join(k for k in keys if k != "inplase_statistics")
                if unsupported:
                    raise PotConfigError(f"{self.cfg}: {at}: not supported yet (ovq reads {shown})")
                raise PotConfigError(f"{self.cfg}: {at}: unknown {what} (expected {shown})")

    def string(self, section: Mapping[str, Any], where: str, key: str, *, required: bool = False) -> str | None:
        value = section.get(key)
        at = f"{where}.{key}" if where else key
        if value is None:
            if required:
                raise PotConfigError(f"{self.cfg}: {at}: missing")
            return None
        if not isinstance(value, str) or not value:
            raise PotConfigError(f"{self.cfg}: {at}: expected a non-empty string, got {value!r}")
        return value

    def resolve(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else self.cfg.parent / p

    def file(self, value: str | None, where: str) -> Path:
        assert value is not None
        p = self.resolve(value)
        if not p.is_file():
            raise PotConfigError(f"{self.cfg}: {where}: no such file {p}")
        return p


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")
