"""Calibration data for ``ovq quantize``: image folders and NumPy files as model inputs.

:func:`load_calibration_data` turns a path into a :class:`CalibrationSource`, a lazy
sequence of samples: ``source[i]`` reads file ``i`` (or row ``i`` of a stacked array),
checks it against the model's inputs and returns ``{input_name: array}`` with the batch
dimension included. Nothing is decoded until a sample is asked for, so a folder of
50 000 images costs one path per image.

Accepted paths (details and examples in ``docs/quantize-data.md``):

* a folder of images (searched recursively, sorted by relative path), a glob pattern
  such as ``"calib/*.png"``, a ``.txt`` file listing image paths (POT's simplified
  engine accepts the same three), or one image file. Images feed a model with one
  image input: they are decoded with Pillow, converted to RGB (or grayscale for a
  one-channel input), optionally center-cropped, resized to the input's height and
  width, optionally channel-reversed (RGB to BGR), normalized as
  ``(x - mean) / scale`` per channel and laid out as the input's layout says;
* a ``.npy`` file (one input) or a ``.npz`` file (one key per input name, or a single
  key for a one-input model) holding stacked samples: an array one rank above the
  input's is a stack of samples; an array of the input's rank is split along axis 0
  into chunks of the input's first dimension (1 when it is dynamic);
* a folder (or pattern, or list) of ``.npy`` / ``.npz`` files holding one sample each.

Every sample is checked: input names, rank, static dimensions and element type. Float
data is cast to a float input's type and integer data to an integer input's type (after
a range check); any other pairing is an error. Errors are
:class:`~ovq.errors.CalibrationDataError` naming the file and the input.
"""

from __future__ import annotations

import dataclasses

import glob
import logging
import os
import random
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, overload

import numpy as np

from ovq.errors import CalibrationDataError, OptionError
from ovq.preprocess import PreprocessingError, parse_layout, parse_mo_layouts, parse_mo_values

if TYPE_CHECKING:
    from types import ModuleType

    from ovq.quantization.image_pipeline import ImagePipeline

__all__ = [
    "ARRAY_SUFFIXES",
    "IMAGE_SUFFIXES",
    "CalibrationDataError",
    "CalibrationSource",
    "ModelInput",
    "load_calibration_data",
]

log = logging.getLogger("ovq.quantization")

#: File suffixes read as images (lower case; matching ignores case).
IMAGE_SUFFIXES = frozenset({
    ".bmp", ".gif", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp",
})
#: File suffixes read as NumPy arrays.
ARRAY_SUFFIXES = frozenset({".npy", ".npz"})

Sample = dict[str, np.ndarray]


# ----------------------------------------------------------------------------- model inputs

@dataclass(frozen=True)
class ModelInput:
    """One model input as the data is checked against it.

    Attributes:
        name: The input's name (the key of its array in every sample).
        shape: One entry per dimension, ``-1`` for a dynamic one.
        dtype: The element type the input takes.
    """

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @classmethod
    def of(cls, spec: ModelInput | tuple[str, Sequence[int | None], Any]) -> ModelInput:
        """Build from a ``(name, shape, dtype)`` triple; ``None`` or a negative dim is dynamic."""
        if isinstance(spec, ModelInput):
            return spec
        try:
            name, shape, dtype = spec
            dims = tuple(-1 if d is None or int(d) < 0 else int(d) for d in shape)
            return cls(str(name), dims, np.dtype(dtype))
        except (TypeError, ValueError):
            raise CalibrationDataError(f"model input {spec!r}: expected (name, shape, dtype)") from None

    def shape_text(self) -> str:
        """The shape as ``[?,3,224,224]`` (``?`` for a dynamic dimension)."""
        return _shape_text(self.shape)


def _shape_text(dims: Sequence[int]) -> str:
    return "[" + ",".join("?" if d < 0 else str(d) for d in dims) + "]"


# ----------------------------------------------------------------------------- the sequence

class _Entry(Protocol):
    """One sample's recipe: where it comes from and how to read it (unchecked)."""

    @property
    def label(self) -> str: ...

    def read(self) -> Mapping[str, Any]: ...


class CalibrationSource(Sequence[Sample]):
    """Calibration samples, read one at a time.

    ``source[i]`` reads and checks sample ``i`` and returns ``{input_name: array}`` in the
    model's input order; iteration reads them in order and can be repeated; a slice or
    :meth:`subset` gives another lazy source. Reading a bad sample raises
    :class:`~ovq.errors.CalibrationDataError` naming its file.

    Attributes:
        inputs: The model inputs samples are checked against (shapes completed by
            ``input_shape``).
        origin: The path or pattern the samples came from.
        seed: Seed of :meth:`subset` with ``shuffle=True``.
    """

    def __init__(self, inputs: Sequence[ModelInput], entries: Sequence[_Entry], *, origin: str,
                 seed: int = 0) -> None:
        self.inputs = tuple(inputs)
        self.origin = origin
        self.seed = seed
        self._entries = tuple(entries)

    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> CalibrationSource: ...

    def __getitem__(self, index: int | slice) -> Sample | CalibrationSource:
        if isinstance(index, slice):
            return self._with(self._entries[index])
        try:
            entry = self._entries[index]
        except IndexError:
            raise IndexError(f"calibration sample {index} out of range ({len(self)} samples)") from None
        return _check_sample(entry.read(), self.inputs, entry.label)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    def label(self, index: int) -> str:
        """Where sample ``index`` comes from: ``calib/img_003.png`` or ``calib.npy[4]``."""
        return self._entries[index].label

    def subset(self, size: int, *, shuffle: bool = False) -> CalibrationSource:
        """At most ``size`` samples: the first ones, or (``shuffle``) a random choice.

        The random choice depends only on :attr:`seed` and the number of samples, and
        keeps the chosen samples in their original order.
        """
        if size < 0:
            raise OptionError(f"subset size must be >= 0, got {size}")
        if not shuffle or size >= len(self):
            return self._with(self._entries[:size])
        picked = sorted(random.Random(self.seed).sample(range(len(self)), size))
        return self._with([self._entries[i] for i in picked])

    def _with(self, entries: Sequence[_Entry]) -> CalibrationSource:
        return CalibrationSource(self.inputs, entries, origin=self.origin, seed=self.seed)

    def __repr__(self) -> str:
        inputs = ", ".join(f"{i.name}: {i.shape_text()} {i.dtype}" for i in self.inputs)
        return f"CalibrationSource({self.origin!r}, {len(self)} samples, inputs {{{inputs}}})"


def _check_sample(sample: Mapping[str, Any], inputs: Sequence[ModelInput], where: str) -> Sample:
    """Check names, rank, static dims and dtype; cast to the inputs' dtypes."""
    names = [inp.name for inp in inputs]
    missing = [n for n in names if n not in sample]
    unexpected = [k for k in sample if k not in names]
    if missing or unexpected:
        parts = [f"missing input(s) {', '.join(map(repr, missing))}"] if missing else []
        parts += [f"unexpected key(s) {', '.join(map(repr, unexpected))}"] if unexpected else []
        raise CalibrationDataError(f"{where}: {'; '.join(parts)} (the model's inputs: {', '.join(map(repr, names))})")
    out: Sample = {}
    for inp in inputs:
        arr = np.asarray(sample[inp.name])
        if arr.ndim != len(inp.shape) or any(d >= 0 and d != a for d, a in zip(inp.shape, arr.shape, strict=False)):
            raise CalibrationDataError(
                f"{where}: input {inp.name!r} expects shape {inp.shape_text()}, got {_shape_text(arr.shape)}"
            )
        out[inp.name] = _coerce(arr, inp, where)
    return out


def _coerce(arr: np.ndarray, inp: ModelInput, where: str) -> np.ndarray:
    src, dst = arr.dtype, inp.dtype
    if src == dst:
        return arr
    if src.kind == "f" and dst.kind == "f":
        return arr.astype(dst)
    if src.kind in "iu" and dst.kind in "iu":
        if not np.can_cast(src, dst) and arr.size:
            info = np.iinfo(dst)
            lo, hi = arr.min(), arr.max()
            if lo < info.min or hi > info.max:
                raise CalibrationDataError(
                    f"{where}: input {inp.name!r} is {dst} but the data holds values in [{lo}, {hi}]"
                )
        return arr.astype(dst)
    raise CalibrationDataError(
        f"{where}: input {inp.name!r} expects {dst} data, got {src} "
        "(float data converts to float inputs, integer data to integer inputs)"
    )


# ----------------------------------------------------------------------------- entry point

def load_calibration_data(
    path: str | os.PathLike[str],
    model_inputs: Sequence[ModelInput | tuple[str, Sequence[int | None], Any]],
    *,
    input_shape: str | Sequence[int] | Mapping[str, Sequence[int]] | None = None,
    layout: str | None = None,
    mean_values: str | None = None,
    scale_values: str | None = None,
    reverse_input_channels: bool = False,
    central_fraction: float | None = None,
    seed: int = 0,
    image_pipeline: ImagePipeline | None = None,
) -> CalibrationSource:
    """Open calibration data for a model; nothing is read until a sample is indexed.

    Args:
        path: A folder, a glob pattern, a ``.txt`` list of files, an image, or a
            ``.npy`` / ``.npz`` file (see the module docstring).
        model_inputs: The model's inputs in order, as ``(name, shape, dtype)`` with
            ``-1`` (or ``None``) for a dynamic dimension, or :class:`ModelInput`.
        input_shape: Completes dynamic dimensions: ``"1,3,224,224"``,
            ``"[1,3,224,224]"``, ``"data[1,3,224,224],mask[1,128]"``, a sequence of
            ints (one-input model) or ``{name: dims}``. A static model dimension must
            agree with it. Images need the height, width and channels to be known.
        layout: Images only: the input's layout, ``"nchw"``, ``"nhwc"``, ``"chw"`` or
            ``"data(nchw)"``. Default: ``NCHW`` when dimension 1 is 3 or 1, else ``NHWC``
            (``CHW`` / ``HWC`` for a rank-3 input).
        mean_values: Images only: ``"[123.675,116.28,103.53]"`` or ``"data[...]"``, one
            value or one per channel, in the model's channel order.
        scale_values: Images only: divisors, same syntax.
        reverse_input_channels: Images only: feed BGR instead of RGB (applied before
            mean and scale, as in Model Optimizer; nothing to do for grayscale inputs).
        central_fraction: Images only: keep this central fraction of each side
            (``0 < f <= 1``) before resizing, as POT's ``central_fraction``.
        seed: Seed of :meth:`CalibrationSource.subset` with ``shuffle=True``.
        image_pipeline: Images only: decode and preprocess with this
            :class:`~ovq.quantization.image_pipeline.ImagePipeline` (a POT config's
            engine) instead of the options above, which must then be unset; the result
            must have the input's height, width and channels.

    Raises:
        CalibrationDataError: the path does not exist, holds nothing usable, mixes
            images and arrays, has an unknown extension, an option is malformed or does
            not fit the model, or Pillow is missing for images.
    """
    inputs = [ModelInput.of(spec) for spec in model_inputs]
    if not inputs:
        raise CalibrationDataError(f"{os.fspath(path)}: the model has no inputs to feed")
    names = [inp.name for inp in inputs]
    if len(set(names)) != len(names):
        raise CalibrationDataError(f"model inputs {names}: an input name appears twice")
    inputs = _apply_input_shape(inputs, input_shape)
    text = os.fspath(path)
    image_opts = {
        "--layout": layout, "--data-mean-values": mean_values, "--data-scale-values": scale_values,
        "--reverse-input-channels": reverse_input_channels or None, "central_fraction": central_fraction,
    }

    p = Path(text)
    if p.is_file() and p.suffix.lower() in ARRAY_SUFFIXES:
        _refuse_image_options(image_opts, text, ignore_layout=True)
        return CalibrationSource(inputs, _stacked_entries(p, inputs), origin=text, seed=seed)

    kind, files = _collect(p, text)
    if kind == "arrays":
        _refuse_image_options(image_opts, text, ignore_layout=True)
        if len(inputs) != 1 and any(f.suffix.lower() == ".npy" for f in files):
            first = next(f for f in files if f.suffix.lower() == ".npy")
            raise CalibrationDataError(
                f"{first}: a .npy file feeds a model with one input; this model has {len(inputs)} "
                f"({', '.join(map(repr, names))}): use .npz files with one key per input"
            )
        entries: list[_Entry] = [_FileEntry(f, tuple(inputs)) for f in files]
        return CalibrationSource(inputs, entries, origin=text, seed=seed)

    if len(inputs) != 1:
        raise CalibrationDataError(
            f"{text}: images feed a model with one input; this model has {len(inputs)} "
            f"({', '.join(map(repr, names))}): give .npz files keyed by input name"
        )
    _pillow(text)
    if image_pipeline is not None and central_fraction is not None:
        raise CalibrationDataError(f"{text}: central_fraction cannot be combined with an image pipeline "
                                   "(give it a Crop step)")
    recipe = _image_recipe(inputs[0], layout, mean_values, scale_values, reverse_input_channels,
                           central_fraction)
    if image_pipeline is not None:
        recipe = dataclasses.replace(recipe, pipeline=image_pipeline)
    return CalibrationSource(inputs, [_ImageEntry(f, recipe) for f in files], origin=text, seed=seed)


def _refuse_image_options(options: Mapping[str, Any], where: str, *, ignore_layout: bool) -> None:
    # A layout describes the model too, so a CLI may pass it along; the others would
    # change the data and cannot be applied to prepared tensors, so silence is wrong.
    given = [k for k, v in options.items() if v is not None and not (ignore_layout and k == "--layout")]
    if given:
        raise CalibrationDataError(
            f"{where}: {', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to images only; "
            "NumPy data is fed as it is (prepare it beforehand)"
        )


def _apply_input_shape(inputs: list[ModelInput], input_shape: Any) -> list[ModelInput]:
    if input_shape is None:
        return inputs
    table = _parse_input_shape(input_shape)
    names = [inp.name for inp in inputs]
    if "" in table:
        if len(inputs) != 1:
            raise CalibrationDataError(
                f"--input-shape {input_shape!r}: the model has {len(inputs)} inputs, name each one "
                f"like '{names[0]}[...]'"
            )
        table = {names[0]: table.pop("")} | table
    unknown = [k for k in table if k not in names]
    if unknown:
        raise CalibrationDataError(
            f"--input-shape {input_shape!r}: no model input named {unknown[0]!r} "
            f"(the model's inputs: {', '.join(map(repr, names))})"
        )
    out = []
    for inp in inputs:
        dims = table.get(inp.name)
        if dims is None:
            out.append(inp)
            continue
        if len(dims) != len(inp.shape) or any(m >= 0 and m != d for m, d in zip(inp.shape, dims, strict=False)):
            raise CalibrationDataError(
                f"--input-shape {input_shape!r}: {_shape_text(dims)} does not fit input {inp.name!r} "
                f"of shape {inp.shape_text()}"
            )
        out.append(ModelInput(inp.name, tuple(dims), inp.dtype))
    return out


def _parse_input_shape(value: Any) -> dict[str, tuple[int, ...]]:
    if isinstance(value, str):
        text = value.strip()
        if "[" not in text:
            text = f"[{text.strip('()')}]"
        try:
            raw = parse_mo_values(text, "--input-shape")
        except PreprocessingError as exc:
            raise CalibrationDataError(str(exc)) from None
    elif isinstance(value, Mapping):
        raw = {str(k): tuple(v) for k, v in value.items()}
    else:
        raw = {"": tuple(value)}
    table = {}
    for name, dims in raw.items():
        if not all(float(d).is_integer() and d >= 1 for d in dims):
            raise CalibrationDataError(f"--input-shape {value!r}: dimensions must be positive integers")
        table[name] = tuple(int(d) for d in dims)
    return table


# ----------------------------------------------------------------------------- finding files

def _collect(p: Path, text: str) -> tuple[str, list[Path]]:
    """Kind (``"images"`` or ``"arrays"``) and the sorted files a path stands for."""
    if p.is_dir():
        found = sorted(
            (f for f in p.rglob("*") if f.is_file() and not _hidden(f.relative_to(p))),
            key=lambda f: f.relative_to(p).as_posix(),
        )
        return _classify(found, text, f"{text}: no images or .npy/.npz files in the folder")
    if p.is_file():
        suffix = p.suffix.lower()
        if suffix == ".txt":
            return _classify(_read_list(p), text, f"{text}: the list names no files")
        if suffix in IMAGE_SUFFIXES:
            return "images", [p]
        raise CalibrationDataError(
            f"{text}: unknown extension {p.suffix or '(none)'!r}: expected a folder, a glob pattern, "
            f"an image ({', '.join(sorted(IMAGE_SUFFIXES))}), .npy, .npz or a .txt list of files"
        )
    if any(ch in text for ch in "*?["):
        matches = sorted(Path(m) for m in glob.glob(text, recursive=True) if os.path.isfile(m))
        if not matches:
            raise CalibrationDataError(f"{text}: no files match the pattern")
        return _classify(matches, text, f"{text}: no images or .npy/.npz files match the pattern")
    if os.path.exists(text):  # a device, FIFO or socket: refused without reading it
        from ovq.files import check_input

        check_input(text, CalibrationDataError)
    raise CalibrationDataError(f"{text}: no such file or folder")


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def _read_list(p: Path) -> list[Path]:
    """POT's list file: one path per line, relative to the list's folder; ``#`` comments."""
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationDataError(f"{p}: cannot read the list: {exc}") from None
    files = []
    for lineno, line in enumerate(lines, 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        f = Path(entry) if os.path.isabs(entry) else p.parent / entry
        if not f.is_file():
            raise CalibrationDataError(f"{p}:{lineno}: no such file {f}")
        files.append(f)
    return files


def _classify(files: list[Path], text: str, empty_message: str) -> tuple[str, list[Path]]:
    images = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
    arrays = [f for f in files if f.suffix.lower() in ARRAY_SUFFIXES]
    if images and arrays:
        raise CalibrationDataError(
            f"{text}: mixes images ({images[0]}, ...) and NumPy files ({arrays[0]}, ...): use one kind"
        )
    skipped = [f for f in files if f.suffix.lower() not in IMAGE_SUFFIXES | ARRAY_SUFFIXES]
    if not (images or arrays):
        detail = f" (skipped {len(skipped)} other file(s): {', '.join(str(f) for f in skipped[:3])})" if skipped else ""
        raise CalibrationDataError(empty_message + detail)
    if skipped:
        log.warning("%s: skipped %d file(s) that are neither images nor .npy/.npz, e.g. %s",
                    text, len(skipped), skipped[0])
    return ("images", images) if images else ("arrays", arrays)


# ----------------------------------------------------------------------------- NumPy data

def _load_npy(path: Path, *, mmap: bool) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise CalibrationDataError(f"{path}: cannot read the .npy file: {exc}") from None
    if not isinstance(arr, np.ndarray):
        arr.close()
        raise CalibrationDataError(f"{path}: holds a .npz archive, not a .npy array: rename it")
    return arr


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        archive = np.load(path, allow_pickle=False)
        if isinstance(archive, np.ndarray):
            raise CalibrationDataError(f"{path}: holds a .npy array, not a .npz archive: rename it")
        with archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise CalibrationDataError(f"{path}: cannot read the .npz file: {exc}") from None


def _by_input(arrays: dict[str, np.ndarray], inputs: Sequence[ModelInput], where: str) -> dict[str, np.ndarray]:
    """Key a .npz's arrays by input name; a lone key feeds a lone input whatever its name."""
    names = [inp.name for inp in inputs]
    if len(arrays) == 1 and len(inputs) == 1:
        return {names[0]: next(iter(arrays.values()))}
    missing = [n for n in names if n not in arrays]
    unexpected = [k for k in arrays if k not in names]
    if missing or unexpected:
        parts = [f"no key for input(s) {', '.join(map(repr, missing))}"] if missing else []
        parts += [f"unexpected key(s) {', '.join(map(repr, unexpected))}"] if unexpected else []
        raise CalibrationDataError(
            f"{where}: {'; '.join(parts)} (keys must be the model's input names: {', '.join(map(repr, names))})"
        )
    return {n: arrays[n] for n in names}


class _Stack:
    """A ``.npy`` (memory-mapped) or ``.npz`` (read whole) file of stacked samples."""

    def __init__(self, path: Path, arrays: dict[str, np.ndarray], inputs: Sequence[ModelInput]) -> None:
        self.path = path
        self._arrays = arrays
        self._chunk: dict[str, int] = {}  # 0: one sample per row of a stack
        counts = {}
        for inp in inputs:
            arr, rank = arrays[inp.name], len(inp.shape)
            if arr.ndim == rank + 1:
                self._chunk[inp.name] = 0
                counts[inp.name] = arr.shape[0]
            elif arr.ndim == rank and rank > 0:
                chunk = inp.shape[0] if inp.shape[0] > 0 else 1
                if arr.shape[0] % chunk:
                    raise CalibrationDataError(
                        f"{path}: input {inp.name!r} has shape {inp.shape_text()}: the {arr.shape[0]} rows of "
                        f"{_shape_text(arr.shape)} do not split into samples of {chunk} along axis 0"
                    )
                self._chunk[inp.name] = chunk
                counts[inp.name] = arr.shape[0] // chunk
            else:
                raise CalibrationDataError(
                    f"{path}: input {inp.name!r} has shape {inp.shape_text()} (rank {rank}): expected an array of "
                    f"rank {rank + 1} (a stack of samples) or {rank} (split along axis 0), got {_shape_text(arr.shape)}"
                )
        if len(set(counts.values())) > 1:
            detail = ", ".join(f"{name!r}: {n}" for name, n in counts.items())
            raise CalibrationDataError(f"{path}: the inputs hold different numbers of samples ({detail})")
        self.count = next(iter(counts.values()))
        if self.count == 0:
            raise CalibrationDataError(f"{path}: holds no samples")

    def sample(self, index: int) -> Sample:
        out = {}
        for name, arr in self._arrays.items():
            chunk = self._chunk[name]
            # np.array copies: a row of a memory map must not outlive the file's mapping.
            out[name] = np.array(arr[index] if chunk == 0 else arr[index * chunk:(index + 1) * chunk])
        return out


def _stacked_entries(path: Path, inputs: Sequence[ModelInput]) -> list[_Entry]:
    if path.suffix.lower() == ".npy":
        if len(inputs) != 1:
            raise CalibrationDataError(
                f"{path}: a .npy file feeds a model with one input; this model has {len(inputs)} "
                f"({', '.join(repr(i.name) for i in inputs)}): use a .npz with one key per input"
            )
        arrays = {inputs[0].name: _load_npy(path, mmap=True)}
    else:
        arrays = _by_input(_load_npz(path), inputs, str(path))
    stack = _Stack(path, arrays, inputs)
    return [_StackEntry(stack, i) for i in range(stack.count)]


@dataclass(frozen=True)
class _StackEntry:
    stack: _Stack
    index: int

    @property
    def label(self) -> str:
        return f"{self.stack.path}[{self.index}]"

    def read(self) -> Sample:
        return self.stack.sample(self.index)


@dataclass(frozen=True)
class _FileEntry:
    """One ``.npy`` (one-input model) or ``.npz`` file holding one sample."""

    path: Path
    inputs: tuple[ModelInput, ...]

    @property
    def label(self) -> str:
        return str(self.path)

    def read(self) -> Sample:
        if self.path.suffix.lower() == ".npy":
            return {self.inputs[0].name: _load_npy(self.path, mmap=False)}
        return _by_input(_load_npz(self.path), self.inputs, str(self.path))


# ----------------------------------------------------------------------------- images

def _pillow(where: str) -> ModuleType:
    try:
        from PIL import Image
    except ImportError:
        raise CalibrationDataError(f"{where}: reading images needs Pillow (pip install pillow)") from None
    return Image


@dataclass(frozen=True)
class _ImageRecipe:
    """How every image of a source becomes an input tensor."""

    input: ModelInput
    layout: tuple[str, ...]
    height: int
    width: int
    channels: int
    mean: np.ndarray | None
    scale: np.ndarray | None
    reverse: bool
    central_fraction: float | None
    pipeline: ImagePipeline | None = None

    def load(self, path: Path) -> np.ndarray:
        pixels = self._from_pipeline(path) if self.pipeline is not None else self._from_pillow(path)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        if self.reverse:
            pixels = pixels[:, :, ::-1]
        data: np.ndarray = pixels
        if self.mean is not None or self.scale is not None:
            data = pixels.astype(np.float32)
            if self.mean is not None:
                data = data - self.mean
            if self.scale is not None:
                data = data / self.scale
        elif self.input.dtype.kind == "f":
            data = pixels.astype(self.input.dtype)
        elif data.dtype.kind == "f":
            raise CalibrationDataError(f"{path}: normalization gives float data but input {self.input.name!r} "
                                       f"is {self.input.dtype}")
        return self._arrange(data)

    def _from_pillow(self, path: Path) -> np.ndarray:
        image_mod = _pillow(str(path))
        try:
            with image_mod.open(path) as img:
                img = img.convert("L" if self.channels == 1 else "RGB")
                if self.central_fraction is not None:
                    img = _center_crop(img, self.central_fraction)
                img = img.resize((self.width, self.height), image_mod.Resampling.BILINEAR)
                return np.asarray(img)
        except (OSError, ValueError, image_mod.DecompressionBombError) as exc:
            raise CalibrationDataError(f"{path}: cannot read the image: {exc}") from None

    def _from_pipeline(self, path: Path) -> np.ndarray:
        assert self.pipeline is not None
        data = self.pipeline.load(path, size=(self.width, self.height), channels=self.channels)
        if data.shape != (self.height, self.width, self.channels):
            raise CalibrationDataError(
                f"{path}: the config's preprocessing gives a {data.shape[1]}x{data.shape[0]} image with "
                f"{data.shape[2]} channel(s); input {self.input.name!r} takes {self.width}x{self.height} with "
                f"{self.channels} (add a resize or crop step of that size)")
        return data

    def _arrange(self, data: np.ndarray) -> np.ndarray:
        """H, W, C pixels in the layout's order, with the batch axis."""
        hwc = "HWC"
        order = [hwc.index(label) for label in self.layout if label != "N"]
        data = np.ascontiguousarray(data.transpose(order))
        if "N" in self.layout:
            data = np.expand_dims(data, self.layout.index("N"))
        return data


def _center_crop(img: Any, fraction: float) -> Any:
    width, height = img.size
    w, h = max(1, int(width * fraction)), max(1, int(height * fraction))
    left, top = (width - w) // 2, (height - h) // 2
    return img.crop((left, top, left + w, top + h))


@dataclass(frozen=True)
class _ImageEntry:
    path: Path
    recipe: _ImageRecipe

    @property
    def label(self) -> str:
        return str(self.path)

    def read(self) -> Sample:
        return {self.recipe.input.name: self.recipe.load(self.path)}


def _image_recipe(inp: ModelInput, layout: str | None, mean_values: str | None, scale_values: str | None,
                  reverse: bool, central_fraction: float | None) -> _ImageRecipe:
    where = f"input {inp.name!r} of shape {inp.shape_text()}"
    rank = len(inp.shape)
    if rank not in (3, 4):
        raise CalibrationDataError(f"{where}: images feed a rank-4 (NCHW, NHWC) or rank-3 (CHW, HWC) input")
    if layout:
        text = _pick(_parse(parse_mo_layouts, layout, "--layout"), inp.name, "--layout", layout)
        labels = _parse(parse_layout, text)
        if len(labels) != rank:
            raise CalibrationDataError(f"--layout {layout!r}: {len(labels)} dimensions for {where}")
    else:
        colors = (1, 3)
        if rank == 4:
            labels = tuple("NCHW") if inp.shape[1] in colors else tuple("NHWC")
        else:
            labels = tuple("CHW") if inp.shape[0] in colors else tuple("HWC")
    if set(labels) - {"N"} != {"C", "H", "W"} or ("N" in labels) != (rank == 4):
        raise CalibrationDataError(
            f"layout {''.join(labels)} for {where}: images need the dimensions C, H and W (and N for rank 4)"
        )
    dims = {label: inp.shape[i] for i, label in enumerate(labels)}
    dynamic = [label for label in "CHW" if dims[label] < 0]
    if dynamic:
        raise CalibrationDataError(
            f"{where}: dimension(s) {', '.join(dynamic)} of layout {''.join(labels)} are dynamic: "
            "give input_shape (--input-shape) like 1,3,224,224"
        )
    if dims["C"] not in (1, 3):
        raise CalibrationDataError(
            f"{where}: images give 1 (grayscale) or 3 (RGB) channels, layout {''.join(labels)} "
            f"says {dims['C']}; give --layout if the layout was guessed wrong"
        )
    if dims.get("N", 1) not in (1, -1):
        raise CalibrationDataError(
            f"{where}: images are fed one at a time; the batch dimension must be 1 or dynamic"
        )
    channels = dims["C"]
    # Reversing one channel changes nothing: a POT job (BGR by default) may feed grayscale.
    reverse = reverse and channels == 3
    mean = _per_channel(mean_values, "--data-mean-values", inp, channels)
    scale = _per_channel(scale_values, "--data-scale-values", inp, channels)
    if scale is not None and not np.all(scale != 0):
        raise CalibrationDataError(f"--data-scale-values {scale_values!r}: a scale of 0 for input {inp.name!r}")
    if inp.dtype.kind not in "fiu":
        raise CalibrationDataError(f"{where}: images cannot feed a {inp.dtype} input")
    if inp.dtype.kind != "f" and (mean is not None or scale is not None):
        raise CalibrationDataError(
            f"{where}: mean/scale values give float data but the input is {inp.dtype} "
            "(the model normalizes raw pixels itself: drop --data-mean-values/--data-scale-values)"
        )
    if central_fraction is not None and not 0 < central_fraction <= 1:
        raise CalibrationDataError(f"central_fraction {central_fraction}: must be in (0, 1]")
    return _ImageRecipe(inp, labels, dims["H"], dims["W"], channels, mean, scale, reverse, central_fraction)


def _parse(parser: Any, *args: Any) -> Any:
    """Call one of ovq.preprocess's parsers; its errors become CalibrationDataError."""
    try:
        return parser(*args)
    except PreprocessingError as exc:
        raise CalibrationDataError(str(exc)) from None


def _pick(table: dict[str, Any], name: str, option: str, text: str) -> Any:
    """The value meant for input ``name`` of a one-input model: unnamed or named so."""
    unknown = [k for k in table if k not in ("", name)]
    if unknown:
        raise CalibrationDataError(f"{option} {text!r}: no model input named {unknown[0]!r} (the input is {name!r})")
    if len(table) > 1:
        raise CalibrationDataError(f"{option} {text!r}: input {name!r} given twice")
    return next(iter(table.values()))


def _per_channel(text: str | None, option: str, inp: ModelInput, channels: int) -> np.ndarray | None:
    if not text:
        return None
    values = _pick(_parse(parse_mo_values, text, option), inp.name, option, text)
    if len(values) not in (1, channels):
        raise CalibrationDataError(
            f"{option} {text!r}: {len(values)} values for input {inp.name!r} with {channels} channel(s) "
            "(give one value or one per channel)"
        )
    return np.asarray(values, dtype=np.float32)
