"""The Accuracy Checker engine section of a POT config, as ovq's image loading.

POT's default engine hands data loading to the Accuracy Checker: a ``datasets`` entry
names an image folder (``data_source``), a ``reader`` and a list of ``preprocessing``
steps; ``launchers``, annotations and ``metrics`` serve its validation. ovq calibrates
without annotations, so :func:`read_accuracy_checker_engine` translates the dataset's
images and preprocessing into an :class:`~ovq.quantization.image_pipeline.ImagePipeline`
and accepts (unused) the sections that only serve evaluation. Everything else is refused
with a :class:`~ovq.errors.PotConfigError` naming the key.

The engine is given inline (``launchers`` + ``datasets``) or as ``"config": FILE`` (the
Accuracy Checker's YAML, ``models: [{name, launchers, datasets}]``; reading YAML needs
PyYAML, in the ``pot`` extra). Preprocessing read:

* ``resize``: ``size`` or ``dst_width``/``dst_height``, ``aspect_ratio_scale``
  (``greater``, ``width``, ``height``, ``fit_to_window``), ``interpolation``
  (NEAREST, LINEAR/BILINEAR, CUBIC/BICUBIC, AREA), ``use_pillow``;
* ``crop``: ``size`` or ``dst_width``/``dst_height`` (central), or ``central_fraction``;
* ``bgr_to_rgb``, ``rgb_to_bgr``;
* ``normalization``: ``mean``, ``std`` (a number, a list, or ``"a, b, c"``).

``reader``: ``opencv_imread`` (the default: BGR pixels) or ``pillow_imread`` (RGB).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ovq.errors import PotConfigError
from ovq.quantization.image_pipeline import (
    ASPECT_RATIO_SCALES,
    INTERPOLATIONS,
    Crop,
    ImagePipeline,
    Normalize,
    Resize,
    Step,
    SwapChannels,
)

if TYPE_CHECKING:
    from ovq.quantization.pot_config import _Reader

__all__ = ["read_accuracy_checker_engine"]

_ENGINE_KEYS = ("type", "config", "launchers", "datasets", "name")
_ENGINE_RUNTIME_KEYS = ("device", "stat_requests_number", "eval_requests_number")
_LAUNCHER_KEYS = ("framework", "device", "adapter", "batch", "cpu_extensions", "model", "weights")
_FRAMEWORKS = ("dlsdk", "openvino")
# Dataset keys that serve the Accuracy Checker's evaluation only: accepted, unused.
_EVALUATION_KEYS = ("name", "annotation", "annotation_conversion", "dataset_meta", "metrics", "postprocessing",
                    "additional_data_source")
_DATASET_KEYS = ("data_source", "reader", "preprocessing")
_READERS = {"opencv_imread": "opencv", "pillow_imread": "pillow"}
_STEP_KEYS = {
    "resize": ("type", "size", "dst_width", "dst_height", "aspect_ratio_scale", "interpolation", "use_pillow"),
    "crop": ("type", "size", "dst_width", "dst_height", "central_fraction", "use_pillow"),
    "bgr_to_rgb": ("type",),
    "rgb_to_bgr": ("type",),
    "normalization": ("type", "mean", "std"),
}


def read_accuracy_checker_engine(r: _Reader, engine: Mapping[str, Any]) -> dict[str, Any]:
    """``{"data_source": Path, "image_pipeline": ImagePipeline}`` for an Accuracy Checker
    engine section (see the module docstring).

    Raises:
        PotConfigError: an unsupported or malformed key (named), or an unreadable file.
    """
    r.known(engine, "engine", _ENGINE_KEYS + _ENGINE_RUNTIME_KEYS, what="key", unsupported=True)
    if "config" in engine:
        if "datasets" in engine or "launchers" in engine:
            raise PotConfigError(f"{r.cfg}: engine: give \"config\" or inline \"launchers\"/\"datasets\", not both")
        where, model, base = _from_yaml(r, r.string(engine, "engine", "config", required=True))
    else:
        where, model, base = "engine", engine, r.cfg.parent
    launchers = model.get("launchers", [])
    if not isinstance(launchers, list):
        raise PotConfigError(f"{r.cfg}: {where}.launchers: expected a list")
    for i, launcher in enumerate(launchers):
        here = f"{where}.launchers[{i}]"
        entry = r.mapping(launcher, here)
        r.known(entry, here, _LAUNCHER_KEYS, unsupported=True)
        if entry.get("framework", "dlsdk") not in _FRAMEWORKS:
            raise PotConfigError(f"{r.cfg}: {here}.framework: {entry.get('framework')!r} is not supported "
                                 "(ovq runs OpenVINO: dlsdk or openvino)")
    datasets = model.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise PotConfigError(f"{r.cfg}: {where}.datasets: expected a list with one dataset")
    if len(datasets) > 1:
        raise PotConfigError(f"{r.cfg}: {where}.datasets: {len(datasets)} datasets; ovq calibrates on one")
    here = f"{where}.datasets[0]"
    dataset = r.mapping(datasets[0], here)
    r.known(dataset, here, _DATASET_KEYS + _EVALUATION_KEYS, unsupported=True)
    source = r.string(dataset, here, "data_source", required=True)
    assert source is not None
    path = Path(source) if Path(source).is_absolute() else base / source
    if not path.exists():
        raise PotConfigError(f"{r.cfg}: {here}.data_source: no such folder {path}")
    reader = dataset.get("reader", "opencv_imread")
    if isinstance(reader, Mapping):
        reader = reader.get("type")
    if reader not in _READERS:
        raise PotConfigError(f"{r.cfg}: {here}.reader: {reader!r} is not supported "
                             f"(ovq reads {', '.join(_READERS)})")
    steps = dataset.get("preprocessing", [])
    if not isinstance(steps, list):
        raise PotConfigError(f"{r.cfg}: {here}.preprocessing: expected a list of steps")
    parsed = tuple(_step(r, step, f"{here}.preprocessing[{i}]") for i, step in enumerate(steps))
    return {"data_source": path, "image_pipeline": ImagePipeline(_READERS[reader], parsed)}


def _from_yaml(r: _Reader, name: str | None) -> tuple[str, Mapping[str, Any], Path]:
    assert name is not None
    path = r.resolve(name)
    try:
        import yaml
    except ImportError:
        raise PotConfigError(f"{r.cfg}: engine.config: reading the Accuracy Checker's YAML needs PyYAML "
                             "(pip install 'ovq[pot]' or pyyaml); or put its launchers/datasets in the engine "
                             "section") from None
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PotConfigError(f"{r.cfg}: engine.config: cannot read {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise PotConfigError(f"{path}: invalid YAML: {exc}") from None
    models = doc.get("models") if isinstance(doc, Mapping) else None
    if not isinstance(models, list) or len(models) != 1 or not isinstance(models[0], Mapping):
        raise PotConfigError(f"{path}: expected \"models\" with one model (name, launchers, datasets)")
    return f"{path}: models[0]", models[0], path.parent


def _step(r: _Reader, raw: Any, where: str) -> Step:
    step = r.mapping(raw, where)
    kind = step.get("type")
    if kind not in _STEP_KEYS:
        raise PotConfigError(f"{r.cfg}: {where}.type: preprocessing {kind!r} is not supported "
                             f"(ovq reads {', '.join(_STEP_KEYS)})")
    r.known(step, where, _STEP_KEYS[kind], unsupported=True)
    if kind in ("bgr_to_rgb", "rgb_to_bgr"):
        return SwapChannels()
    if kind == "normalization":
        return Normalize(_values(r, step.get("mean"), f"{where}.mean"), _values(r, step.get("std"), f"{where}.std"))
    backend = "pillow" if step.get("use_pillow") else "opencv"
    if kind == "crop" and "central_fraction" in step:
        fraction = step["central_fraction"]
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise PotConfigError(f"{r.cfg}: {where}.central_fraction: expected a number in (0, 1], got {fraction!r}")
        return Crop(central_fraction=float(fraction))
    width, height = _size(r, step, where)
    if kind == "crop":
        return Crop(width, height)
    rule = step.get("aspect_ratio_scale")
    if rule not in ASPECT_RATIO_SCALES:
        raise PotConfigError(f"{r.cfg}: {where}.aspect_ratio_scale: {rule!r} is not supported "
                             f"(ovq reads {', '.join(str(a) for a in ASPECT_RATIO_SCALES[1:])})")
    interpolation = str(step.get("interpolation", "LINEAR")).upper()
    if interpolation not in INTERPOLATIONS or (backend == "pillow" and interpolation == "AREA"):
        raise PotConfigError(f"{r.cfg}: {where}.interpolation: {step.get('interpolation')!r} is not supported "
                             f"(ovq reads {', '.join(INTERPOLATIONS)}; AREA with OpenCV only)")
    return Resize(width, height, rule, interpolation, backend)


def _size(r: _Reader, step: Mapping[str, Any], where: str) -> tuple[int, int]:
    def positive(key: str) -> int:
        value = step[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PotConfigError(f"{r.cfg}: {where}.{key}: expected a positive integer, got {value!r}")
        return value

    if "size" in step:
        if "dst_width" in step or "dst_height" in step:
            raise PotConfigError(f"{r.cfg}: {where}: give size or dst_width/dst_height, not both")
        size = positive("size")
        return size, size
    if "dst_width" in step and "dst_height" in step:
        return positive("dst_width"), positive("dst_height")
    raise PotConfigError(f"{r.cfg}: {where}: missing size (or dst_width and dst_height)")


def _values(r: _Reader, raw: Any, where: str) -> tuple[float, ...] | None:
    if raw is None:
        return None
    items: list[Any]
    if isinstance(raw, str):
        items = [p for p in raw.strip("()[] ").split(",") if p.strip()]
    elif isinstance(raw, (list, tuple)):
        items = list(raw)
    else:
        items = [raw]
    try:
        values = tuple(float(v) for v in items if not isinstance(v, bool))
    except (TypeError, ValueError):
        values = ()
    if len(values) != len(items) or len(values) not in (1, 3):
        raise PotConfigError(f"{r.cfg}: {where}: expected one number or three (per channel), got {raw!r}"
                             " (named presets such as 'imagenet' are not supported)")
    if where.endswith(".std") and any(v == 0 for v in values):
        raise PotConfigError(f"{r.cfg}: {where}: a standard deviation of 0")
    return values
