"""The statistics pass split into contiguous slices of the calibration subset, and merged.

:func:`shard_slices` cuts the subset into ``K`` contiguous slices; :func:`collect_partial_statistics`
runs the statistics pass (:func:`~.statistics.collect_statistics`) on one slice and returns a
:class:`PartialStatistics` (statistics records, no weights, no samples); :func:`merge_partial_statistics`
turns the partials of every slice into the statistics one unsharded pass would have produced.
The slices can run in different processes or on different machines (``ovq batch --shards K``).

The merge is **bit-identical** to the unsharded pass for every statistic the estimators read:

* per-sample min/max, quantiles (``activations_range="quantile"``: the unsharded pass
  keeps one p / 1 - p quantile pair per sample, so an exact concatenation, no sketch),
  SmoothQuant's per-sample channel ranges and kept tensors: concatenated in sample order;
* per-channel min/max: ``np.minimum`` / ``np.maximum`` over the slices (exact, order-free);
* per-channel means (fast bias correction): each slice keeps every sample's means and
  element counts (``keep_sample_means``), and the merge folds them in sample order with
  the same float64 products and additions as the unsharded running fold
  (:class:`~.statistics._Running`), then divides once. Folding per-slice sums instead
  would reassociate the additions and change the last bits.

Models whose inputs change shape mid-subset are calibrated by the unsharded pass in two
parts (the shape-specialised model up to the first sample of another shape, the dynamic
one after it) whose means are combined by weight; the merge splits the samples at the
same place and combines them the same way.

Each slice must see the same per-sample values as the unsharded pass: the same model,
observations and samples, and an OpenVINO CPU plugin that reduces each tensor the same
way in every process. That held in every run measured: EfficientNet-Lite0 sliced across
worker processes with one and with two OpenVINO threads each
(``tests/batch/test_shards.py``, ``bench/batch.py shards``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ovq.errors import CalibrationDataError, OptionError, OvqError
from ovq.quantization.dataset import InputSpec, Subset
from ovq.quantization.statistics import (CollectionReport, Observation, TensorStats, collect_statistics,
                                         concatenate_samples)

__all__ = ["PartialStatistics", "ShardSlice", "collect_partial_statistics", "merge_partial_statistics",
           "shard_slices", "slice_subset"]


@dataclass(frozen=True)
class ShardSlice:
    """Samples ``start`` (inclusive) to ``stop`` (exclusive) of the subset: slice ``index`` of ``of``."""

    index: int
    of: int
    start: int
    stop: int

    @property
    def count(self) -> int:
        return self.stop - self.start


def shard_slices(count: int | None, shards: int) -> list[ShardSlice]:
    """``shards`` contiguous slices of ``count`` samples, sizes differing by at most one
    (the first ``count % shards`` slices hold one more).

    Raises:
        OptionError: ``shards`` is not a positive integer or exceeds ``count``, or the
            subset's size is unknown (a stream without a length cannot be sliced).
    """
    if isinstance(shards, bool) or not isinstance(shards, (int, np.integer)) or shards < 1:
        raise OptionError(f"shards: must be a positive integer, got {shards!r}")
    if count is None:
        raise OptionError("shards: the calibration data has no length (a generator), so it cannot be split; "
                          "give a list, a path or an ovq.Dataset over a sized source")
    if shards > count:
        raise OptionError(f"shards: {shards} slices of {count} calibration sample{'s' * (count != 1)}: "
                          f"at most {count} (one sample per slice)")
    base, extra = divmod(int(count), int(shards))
    out, start = [], 0
    for k in range(shards):
        stop = start + base + (k < extra)
        out.append(ShardSlice(k, int(shards), start, stop))
        start = stop
    return out


def slice_subset(subset: Subset, piece: ShardSlice) -> Subset:
    """The samples of ``piece`` from ``subset``, in the same order as the whole subset streams them."""
    if subset.count is None:
        raise OptionError("shards: the calibration data has no length, so it cannot be split")
    indices = subset.indices if subset.indices is not None else list(range(subset.count))
    return Subset(subset.source, list(indices[piece.start:piece.stop]), piece.count)


@dataclass
class PartialStatistics:
    """What the statistics pass measured on one slice (records only: no weights, no samples).

    Attributes:
        piece: Which samples of the subset.
        observations: What was observed (as the quantize phases asked; ``keep_samples``
            as for the whole subset).
        stats: Per observation key, the slice's statistics with per-sample means kept.
        input_shapes: Each sample's input shapes (where the unsharded pass would switch
            from the shape-specialised model to the dynamic one).
        report: The slice's collection report.
    """

    piece: ShardSlice
    observations: tuple[Observation, ...]
    stats: dict[Hashable, TensorStats]
    input_shapes: list[tuple[tuple[int, ...], ...]] = field(default_factory=list)
    report: CollectionReport = field(default_factory=CollectionReport)


class _Shapes:
    """Streams a subset while recording each sample's input shapes."""

    def __init__(self, subset: Subset, spec: InputSpec) -> None:
        self.subset, self.spec = subset, spec
        self.shapes: list[tuple[tuple[int, ...], ...]] = []

    def __iter__(self) -> Any:
        for i, sample in enumerate(self.subset):  # numbered within the slice, as collect_statistics does
            self.shapes.append(tuple(a.shape for a in self.spec.arrays(sample, i)))
            yield sample


def collect_partial_statistics(model: Any, observations: Sequence[Observation], subset: Subset, piece: ShardSlice,
                               *, progress: bool | None = False, requests: int | None = None) -> PartialStatistics:
    """Run the statistics pass on slice ``piece`` of ``subset`` (the whole chosen subset).

    ``observations`` are those of the whole run: the ``keep_samples`` and
    ``whole_samples`` counts (the first samples SmoothQuant's search and the saturation
    analysis keep) are shifted to the slice, so the concatenated slices keep exactly the
    first samples. Errors name the slice.

    Raises:
        CalibrationDataError, NonFiniteError, InferenceError, ObservationError: as
            :func:`~.statistics.collect_statistics`, with the slice's sample range added.
    """
    local = [replace(o, keep_samples=max(0, o.keep_samples - piece.start),
                     whole_samples=max(0, o.whole_samples - piece.start))
             if o.keep_samples or o.whole_samples else o for o in observations]
    stream = _Shapes(slice_subset(subset, piece), InputSpec(model))
    try:
        stats, report = collect_statistics(model, local, Subset(stream, None, piece.count), progress=progress,
                                           requests=requests, keep_sample_means=True)
    except OvqError as exc:
        raise _in_slice(exc, piece) from None
    if report.samples != piece.count:
        raise CalibrationDataError(f"shard {piece.index + 1}/{piece.of}: expected {piece.count} samples "
                                   f"({piece.start}..{piece.stop - 1}), the data gave {report.samples}")
    return PartialStatistics(piece, tuple(observations), stats, stream.shapes, report)


def _in_slice(exc: OvqError, piece: ShardSlice) -> OvqError:
    """``exc`` with the slice's sample range appended to its message (sample numbers in
    it count from the slice's first sample)."""
    where = (f" (shard {piece.index + 1}/{piece.of}: subset samples {piece.start}..{piece.stop - 1}; "
             "sample numbers count from the shard's first)")
    exc.args = (f"{exc}{where}", *exc.args[1:])
    return exc


def _fold_means(rows: Sequence[np.ndarray], weights: Sequence[float]) -> tuple[np.ndarray, float]:
    """Σ w·mean / Σ w over samples in order, with the unsharded fold's float64 arithmetic."""
    total, weight = None, None
    for mean, w in zip(rows, weights, strict=True):
        term = np.float64(w) * mean.reshape(-1).astype(np.float64)
        total = term if total is None else total + term
        weight = np.float64(w) if weight is None else weight + np.float64(w)
    return total / weight, float(weight)


def _merge_one(obs: Observation, parts: Sequence[PartialStatistics], switch: int) -> TensorStats:
    """One observation's statistics over every slice (``switch``: see :func:`merge_partial_statistics`)."""
    stats = [p.stats[obs.key] for p in parts]
    st = concatenate_samples(stats)
    if stats[0].sample_means is not None:
        rows = [r for s in stats for r in s.sample_means]
        weights = [w for s in stats for w in s.sample_weights]
        if switch >= len(rows):
            st.channel_mean, st.mean_weight = _fold_means(rows, weights)
        else:  # two parts combined by weight, as statistics._merge does
            (m1, w1), (m2, w2) = _fold_means(rows[:switch], weights[:switch]), _fold_means(rows[switch:],
                                                                                           weights[switch:])
            ws = np.array([w1, w2], np.float64)
            st.channel_mean = sum(w * m for w, m in zip(ws, (m1, m2), strict=True)) / ws.sum()
            st.mean_weight = float(ws.sum())
    return st


def merge_partial_statistics(parts: Sequence[PartialStatistics]) -> tuple[dict[Hashable, TensorStats],
                                                                          CollectionReport]:
    """The statistics of the whole subset from the partials of every slice (any order).

    Bit-identical to :func:`~.statistics.collect_statistics` on the whole subset (see the
    module docstring); the report adds the slices' samples and times.

    Raises:
        OptionError: slices missing, overlapping or from different ``K``, or observed
            differently (the slices ran on different models or options).
    """
    if not parts:
        raise OptionError("shards: no partial statistics to merge")
    parts = sorted(parts, key=lambda p: p.piece.start)
    of = parts[0].piece.of
    if [p.piece.index for p in parts] != list(range(of)) or any(p.piece.of != of for p in parts) \
            or parts[0].piece.start != 0 or any(a.piece.stop != b.piece.start for a, b in zip(parts, parts[1:])):
        got = ", ".join(f"{p.piece.index + 1}/{p.piece.of} [{p.piece.start}, {p.piece.stop})" for p in parts)
        raise OptionError(f"shards: the partial statistics do not tile the subset: {got}")
    keys = [o.key for o in parts[0].observations]
    for p in parts[1:]:
        if [o.key for o in p.observations] != keys:
            raise OptionError(f"shards: shard {p.piece.index + 1}/{of} observed other tensors than shard 1 "
                              "(the slices ran on different models or options)")
    observations = parts[0].observations
    count = parts[-1].piece.stop
    # where the unsharded pass switches from the shape-specialised model to the dynamic one
    static = parts[0].report.static_shapes
    shapes = [s for p in parts for s in p.input_shapes]
    switch = next((i for i, s in enumerate(shapes) if static is not None and s != static), count)
    if any(p.stats[o.key].sample_weights is None and o.mean_axis is not None for p in parts for o in observations):
        raise OptionError("shards: a partial kept no per-sample means (collect it with keep_sample_means=True)")
    stats = {o.key: _merge_one(o, parts, switch) for o in observations}
    report = CollectionReport(samples=sum(p.report.samples for p in parts), observed=len(observations),
                              seconds_compile=sum(p.report.seconds_compile for p in parts),
                              seconds_infer=sum(p.report.seconds_infer for p in parts),
                              requests=max(p.report.requests for p in parts),
                              static_shapes=static, models=sum(p.report.models for p in parts))
    return stats, report
