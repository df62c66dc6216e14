"""Calibration datasets: ``ovq.Dataset``, deterministic subsets, and sample checking.

A calibration dataset is any iterable of samples, optionally wrapped as
``Dataset(data, transform_fn)`` like ``nncf.Dataset``. One sample (after the
transform) is what one inference takes:

* a single ``np.ndarray`` for a single-input model;
* a tuple or list of arrays, by input position;
* a dict of arrays by input name (tensor name or friendly name of the Parameter).

:func:`select_subset` picks ``subset_size`` samples deterministically (a seeded
sorted draw of indices when the data has a length, the first ones otherwise) and
streams them: nothing but the current sample is held in memory.
:class:`InputSpec` checks every sample against the model's inputs (names, rank,
static dims, dtype kind) and converts it to the list ``infer`` takes.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ovq.errors import CalibrationDataError, OptionError

log = logging.getLogger("ovq.quantization")


class Dataset:
    """Wrap calibration data with an optional transform (the ``nncf.Dataset`` shape).

    ``Dataset(data_source, transform_func)`` with NNCF's keyword names; ``transform_fn``
    is accepted as an alias of ``transform_func``.

    Args:
        data_source: Any iterable of items (a list, a generator, a torch DataLoader, ...).
        transform_func: Turns one item into one model sample (array, tuple or dict).
    """

    def __init__(self, data_source: Iterable[Any], transform_func: Callable[[Any], Any] | None = None, *,
                 transform_fn: Callable[[Any], Any] | None = None) -> None:
        if transform_fn is not None and transform_func is not None:
            raise CalibrationDataError("Dataset: give transform_func or its alias transform_fn, not both")
        self.data = data_source
        self.transform_fn = transform_func if transform_func is not None else transform_fn

    def __iter__(self) -> Iterator[Any]:
        for item in self.data:
            yield self.transform_fn(item) if self.transform_fn is not None else item

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def get_length(self) -> int | None:
        """The number of items, or None when the data source has no length."""
        return _length(self.data)

    def get_batch_size(self) -> int | None:
        """The data source's ``batch_size`` (a torch DataLoader's), or None."""
        size = getattr(self.data, "batch_size", None)
        return size if isinstance(size, int) else None

    def get_data(self, indices: Iterable[int] | None = None) -> Iterator[Any]:
        """Raw items (before the transform), all or those at ``indices`` (sorted)."""
        return _pick(self.data, indices)

    def get_inference_data(self, indices: Iterable[int] | None = None) -> Iterator[Any]:
        """Transformed samples, all or those at ``indices`` (sorted)."""
        for item in _pick(self.data, indices):
            yield self.transform_fn(item) if self.transform_fn is not None else item


class _ForeignDataset(Dataset):
    """A dataset object of another library with ``nncf.Dataset``'s public methods
    (``get_inference_data(indices)``, ``get_length()``), read only through them."""

    def __init__(self, foreign: Any) -> None:
        self.foreign = foreign
        self.data = foreign  # for messages; never iterated directly
        self.transform_fn = None

    def __iter__(self) -> Iterator[Any]:
        return iter(self.foreign.get_inference_data())

    def __len__(self) -> int:
        n = self.get_length()
        if n is None:
            raise TypeError(f"{type(self.foreign).__name__} has no length")
        return n

    def get_length(self) -> int | None:
        n = self.foreign.get_length()
        return None if n is None else int(n)

    def get_batch_size(self) -> int | None:
        get = getattr(self.foreign, "get_batch_size", None)
        return get() if callable(get) else None

    def get_data(self, indices: Iterable[int] | None = None) -> Iterator[Any]:
        get = getattr(self.foreign, "get_data", None)
        if not callable(get):
            raise CalibrationDataError(f"{type(self.foreign).__name__} has no get_data()")
        return iter(get(None if indices is None else sorted(set(indices))))

    def get_inference_data(self, indices: Iterable[int] | None = None) -> Iterator[Any]:
        return iter(self.foreign.get_inference_data(None if indices is None else sorted(set(indices))))


@dataclass(frozen=True)
class _FirstItems:
    """The first ``count`` transformed samples of a dataset, re-iterable."""

    dataset: Dataset
    count: int

    def __iter__(self) -> Iterator[Any]:
        return itertools.islice(iter(self.dataset), self.count)


def as_dataset(value: Any) -> Any:
    """``value`` itself, or an ``nncf.Dataset``-like object (recognised by its public
    ``get_inference_data`` and ``get_length`` methods) wrapped as an :class:`ovq.Dataset`."""
    if isinstance(value, Dataset):
        return value
    if callable(getattr(value, "get_inference_data", None)) and callable(getattr(value, "get_length", None)):
        return _ForeignDataset(value)
    return value


def _pick(data: Iterable[Any], indices: Iterable[int] | None) -> Iterator[Any]:
    if indices is None:
        yield from data
        return
    wanted = sorted(set(indices))
    if isinstance(data, Sequence) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        for i in wanted:
            yield data[i]  # type: ignore[index]
        return
    it = iter(data)
    pos = 0
    for i in wanted:
        for item in it:
            pos += 1
            if pos - 1 == i:
                yield item
                break


def _length(data: Any) -> int | None:
    try:
        return len(data)
    except TypeError:
        return None


@dataclass(frozen=True)
class Subset:
    """The samples :func:`select_subset` chose: ``count`` of them, streamed by ``__iter__``."""

    source: Any
    indices: list[int] | None
    count: int | None

    def __iter__(self) -> Iterator[Any]:
        if isinstance(self.source, Dataset):
            return self.source.get_inference_data(self.indices)
        if self.indices is None:
            return iter(self.source)
        return _pick(self.source, self.indices)

    def peek(self) -> Any:
        """The first sample when it can be read without consuming a one-shot source
        (a sequence, or an :class:`ovq.Dataset` over one); else None."""
        first = self.indices[0] if self.indices else 0
        data = self.source.data if isinstance(self.source, Dataset) else self.source
        if isinstance(self.source, _ForeignDataset) or not (
                isinstance(data, Sequence) or (hasattr(data, "__getitem__") and hasattr(data, "__len__"))):
            return None
        try:
            if isinstance(self.source, Dataset):
                return next(iter(self.source.get_inference_data([first])), None)
            return data[first]
        except Exception:  # noqa: BLE001 - a peek that fails only costs the optimisation that asked
            return None


DEFAULT_SUBSET_SIZE = 300


def check_subset_size(subset_size: Any) -> int | None:
    """``subset_size`` as an int (or None for all samples).

    Raises:
        OptionError: not an integer (``2.5``, ``"300"``, ``True``) or not positive.
    """
    if subset_size is None:
        return None
    if isinstance(subset_size, bool) or not isinstance(subset_size, (int, np.integer)):
        raise OptionError(f"subset_size must be a positive integer or None, got {subset_size!r}")
    if subset_size <= 0:
        raise OptionError(f"subset_size must be positive, got {subset_size}")
    return int(subset_size)


def select_subset(dataset: Iterable[Any], subset_size: int | None, *, seed: int = 0) -> Subset:
    """Choose the calibration samples: a seeded, sorted draw of ``subset_size`` indices.

    With no length (a generator), the first ``subset_size`` items are taken. A
    ``subset_size`` larger than the data uses all of it, with a warning unless it is the
    default (300, which smaller datasets are expected to undershoot). ``None`` uses all.
    """
    dataset = as_dataset(dataset)
    if isinstance(dataset, (np.ndarray, Mapping)) or not isinstance(dataset, Iterable):
        raise CalibrationDataError(
            "calibration_dataset must be an iterable of samples (a list of arrays, tuples or dicts, "
            f"or ovq.Dataset(data, transform_fn)), got {type(dataset).__name__}"
            + ("; wrap a stacked array as list(array) or ovq.Dataset(array)" if isinstance(dataset, np.ndarray) else "")
        )
    subset_size = check_subset_size(subset_size)
    n = dataset.get_length() if isinstance(dataset, Dataset) else _length(dataset)
    if n == 0:
        raise CalibrationDataError("the calibration dataset is empty")
    if subset_size is None:
        return Subset(dataset, None, n)
    if n is None:
        src = dataset
        if isinstance(dataset, _ForeignDataset):
            return Subset(_FirstItems(dataset, subset_size), None, None)
        if isinstance(dataset, Dataset):
            src = Dataset(itertools.islice(dataset.data, subset_size), dataset.transform_fn)
            return Subset(src, None, None)
        return Subset(itertools.islice(dataset, subset_size), None, None)
    if subset_size > n:
        if subset_size == DEFAULT_SUBSET_SIZE:
            log.info("calibrating on all %d samples (fewer than subset_size=%d)", n, subset_size)
            return Subset(dataset, None, n)
        warnings.warn(f"subset_size={subset_size} is larger than the calibration dataset ({n} samples); "
                      f"using all {n}", stacklevel=4)
        return Subset(dataset, None, n)
    if subset_size == n:
        return Subset(dataset, None, n)
    rng = np.random.default_rng(seed)
    indices = sorted(int(i) for i in rng.choice(n, size=subset_size, replace=False))
    return Subset(dataset, indices, subset_size)


@dataclass(frozen=True)
class _Input:
    names: frozenset[str]
    display: str
    shape: tuple[int, ...] | None  # -1 for dynamic dims; None for dynamic rank
    dtype: np.dtype


class InputSpec:
    """The inputs of a compiled or plain ``openvino.Model``, to check and order samples."""

    def __init__(self, model: Any) -> None:
        self.inputs: list[_Input] = []
        for port in model.inputs:
            names = set(port.get_names())
            node = port.get_node()
            names.add(node.get_friendly_name())
            pshape = port.get_partial_shape()
            shape = None if pshape.rank.is_dynamic else tuple(d.get_length() if d.is_static else -1 for d in pshape)
            display = port.get_any_name() if port.get_names() else node.get_friendly_name()
            self.inputs.append(_Input(frozenset(names), display, shape, np.dtype(port.get_element_type().to_dtype())))

    def describe(self) -> str:
        """``'x' [1,3,224,224] float32, ...`` for error messages."""
        return ", ".join(f"'{i.display}' {list(i.shape) if i.shape is not None else '[...]'} {i.dtype}"
                         for i in self.inputs)

    def arrays(self, sample: Any, index: int) -> list[np.ndarray]:
        """The checked input arrays of ``sample`` (number ``index``) in model input order.

        Raises:
            CalibrationDataError: wrong count or names of inputs, shape or dtype mismatch.
        """
        where = f"calibration sample {index}"
        if isinstance(sample, Mapping):
            by_name: dict[int, Any] = {}
            for key, value in sample.items():
                pos = next((k for k, i in enumerate(self.inputs) if str(key) in i.names), None)
                if pos is None:
                    raise CalibrationDataError(f"{where}: no model input is named {key!r}; "
                                               f"the model takes {self.describe()}")
                by_name[pos] = value
            missing = [self.inputs[k].display for k in range(len(self.inputs)) if k not in by_name]
            if missing:
                raise CalibrationDataError(f"{where}: missing input(s) {missing}; the model takes {self.describe()}")
            values = [by_name[k] for k in range(len(self.inputs))]
        elif isinstance(sample, (tuple, list)):
            values = list(sample)
        else:
            values = [sample]
        if len(values) != len(self.inputs):
            raise CalibrationDataError(f"{where}: {len(values)} array(s) given, the model takes "
                                       f"{len(self.inputs)}: {self.describe()}")
        return [self._check(v, spec, where) for v, spec in zip(values, self.inputs, strict=True)]

    @staticmethod
    def _check(value: Any, spec: _Input, where: str) -> np.ndarray:
        if hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # torch / tf tensors
            value = value.numpy()
        arr = np.asarray(value)
        if arr.dtype == object:
            raise CalibrationDataError(f"{where}: input '{spec.display}' is not a numeric array "
                                       f"({type(value).__name__})")
        if spec.shape is not None:
            ok = arr.ndim == len(spec.shape) and all(d == -1 or d == a for d, a in zip(spec.shape, arr.shape))
            if not ok:
                raise CalibrationDataError(f"{where}: input '{spec.display}' expects shape {list(spec.shape)}, "
                                           f"got {list(arr.shape)}")
        if arr.dtype != spec.dtype:
            kinds_ok = (spec.dtype.kind == "f" and arr.dtype.kind in "fiu") or (
                spec.dtype.kind in "iu" and arr.dtype.kind in "iu") or (spec.dtype.kind == "b" and arr.dtype.kind == "b")
            if not kinds_ok:
                raise CalibrationDataError(f"{where}: input '{spec.display}' expects {spec.dtype}, got {arr.dtype}")
            arr = arr.astype(spec.dtype)
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise CalibrationDataError(f"{where}: input '{spec.display}' holds NaN or Inf")
        # np.ascontiguousarray would turn a 0-d (scalar) input into shape [1]
        return arr if arr.flags.c_contiguous else arr.copy(order="C")
