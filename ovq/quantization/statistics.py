"""The calibration engine: one streamed pass of the data through an instrumented model.

:func:`collect_statistics` adds in-graph reductions to a copy of the FP model, one set
per :class:`Observation`:

* ``minmax``: per-sample min and max (``ReduceMin``/``ReduceMax`` over every axis but
  the first; ``Reshape [N, -1]`` first only for dynamic ranks, since the CPU plugin
  would reorder a blocked conv output into a planar copy for it), so each
  inference hands back two ``[N]`` vectors, not the tensor; the
  min is skipped (taken as 0) when the producer cannot output negatives and the range
  is symmetric (ReLU, ReLU6 as Clamp, Sigmoid, ...): each reduction is a full pass over
  the tensor, and on CNNs most observed tensors are activation outputs;
* ``channel_axis``: per-channel min and max (per-channel activation FQs);
* ``sample_channel_axis``: per-channel min and max of every inference (one ``[C]``
  row per sample), from which SmoothQuant derives both its per-channel scales and the
  per-sample ranges of the smoothed tensor without a second pass;
* ``mean_axis``: the per-channel mean over every other axis plus the tensor's shape
  (``ShapeOf``), for bias correction; with ``mean_stride`` k the mean reads every k-th
  row and column only (large convolution inputs; see :mod:`.bias_correction`);
* ``quantile``: the raw tensor, reduced on the fly by the native quantile kernel;
* ``wc_channel_axis`` / ``wc_scalars`` (weight compression, NNCF's ``compress_weights``
  statistics of a MatMul input): every sample's per-channel mean over the other axes and
  its element count per channel, and per-sample scalars (:data:`WC_SCALARS`).

All reductions leave the model **packed** into at most three outputs (:class:`_Packing`):
one flat f32 vector of the static-size reductions, one ``[N, P]`` block of per-sample
scalars over a dynamic batch, and an i64 index of whatever sizes and shapes are only
known at run time; the callback checks finiteness once and slices views (one Result
per reduction would cost a fetch, a copy and a check each).

Convolution weights stored as int8 decompression subgraphs are folded to f32 constants
first, on a copy (:mod:`.conv_decompression`: with more than one stream the CPU plugin
sometimes runs such convolutions with the wrong weights).

When the model's inputs have dynamic dims, the instrumented model is built on a copy
reshaped to the first sample's input shapes (:class:`_Pass`): the CPU plugin then skips
shape inference on every inference and the packs have static offsets; the statistics
are bit-identical to the dynamic model's. A sample of another shape switches the rest of
the pass to the dynamic model; the two parts' statistics are merged (per-sample rows
concatenated, min/max combined, means weighted by their element counts).

It compiles that model once on CPU (f32 hint, THROUGHPUT hint) and streams the samples
through an ``AsyncInferQueue`` with one request more than OpenVINO's optimal number in
flight (with a dynamic-batch rows pack, the first sample runs alone: see :class:`_Pass`); the completion
callback (an OpenVINO worker thread) folds per-channel min/max and means into running
aggregates (O(channels) per tensor) and keeps the few per-sample values. Where the pack's
offsets are static it does so for all observations at once (:class:`_PackedFold`, a
handful of numpy operations per sample); otherwise per observation (:class:`_Running`),
with identical results. Only the roles that need every sample
(per-sample min/max, quantiles, SmoothQuant's per-sample channel ranges, kept tensors)
are kept per sample. Memory is O(samples × channels) at most, never
O(samples × tensor size). The compiled model, its queue and the instrumented model are
released before the rows are gathered.
Reducing in the graph keeps OpenVINO's Conv+bias+activation fusions intact where the
observed tensor is the fused chain's output, and moves no full activations to Python
(docs/quantize.md gives the reasoning).

Every reduced value is checked: NaN or Inf raises :class:`~ovq.errors.NonFiniteError`
naming the op, the output and the sample. OpenVINO failing to compile or run the
instrumented model raises :class:`~ovq.errors.InferenceError`; an observation the model
does not have, :class:`~ovq.errors.ObservationError`.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ovq.errors import CalibrationDataError, InferenceError, NonFiniteError, ObservationError
from ovq.quantization.conv_decompression import fold_conv_weight_decompression
from ovq.quantization.dataset import InputSpec, Subset


WC_SCALARS = ("var_mean", "var_max", "absmax_mean", "sq_mean")
"""Per-sample scalars of a MatMul input ``x`` (rank >= 2, axis -2 the tokens), NNCF 3.4's
mixed-precision reducers: ``var_mean`` / ``var_max``, the mean / max over the other axes
of the variance along axis -2; ``absmax_mean``, the mean of ``max |x|`` along axis -2;
``sq_mean``, ``sum(x²) / numel(x)`` (HESSIAN_INPUT_ACTIVATION)."""

CHECKED_ROLES = ("min", "max", "mean", "cmin", "cmax", "scmin", "scmax", "smean", "stokens", *WC_SCALARS)
RUNNING_ROLES = ("cmin", "cmax", "mean", "shape")  # folded as results arrive, not kept per sample


@dataclass(frozen=True)
class Observation:
    """What to measure on output ``out_index`` of the op named ``op_name``."""

    key: Hashable
    op_name: str
    out_index: int = 0
    minmax: bool = True
    mean_axis: int | None = None
    quantile: float | None = None  # outlier probability p: per-sample p and 1 - p quantiles
    channel_axis: int | None = None  # per-channel min/max (over every other axis) instead of per-sample
    nonnegative: bool = False  # the producer never outputs negatives: skip the min reduction (0 is exact)
    sample_channel_axis: int | None = None  # per-channel min/max of every sample (SmoothQuant)
    mean_stride: int = 1  # the mean reads every k-th row and column of a [N, C, H, W...] tensor
    keep_samples: int = 0  # keep the whole tensor of the first k samples (with sample_channel_axis)
    whole_samples: int = 0  # keep the whole tensor, in its own layout, of the first k samples
    batch_axis: bool = True  # dim 0 is a batch: per-sample min/max/quantiles per item; else per inference
    wc_channel_axis: int | None = None  # per-sample per-channel mean (every other axis) and elements per channel
    wc_scalars: tuple[str, ...] = ()  # per-sample scalars, names from WC_SCALARS


@dataclass
class TensorStats:
    """Per-sample statistics of one observed tensor (rows in sample order)."""

    mins: np.ndarray | None = None  # (rows,) per-sample minimum
    maxs: np.ndarray | None = None  # (rows,) per-sample maximum
    channel_min: np.ndarray | None = None  # (C,) per-channel minimum over all samples
    channel_max: np.ndarray | None = None  # (C,) per-channel maximum over all samples
    channel_mean: np.ndarray | None = None  # (C,) mean over all samples and other axes
    shape: tuple[int, ...] | None = None  # shape seen on the first sample
    q_low: np.ndarray | None = None  # (rows,) per-sample p-quantile
    q_high: np.ndarray | None = None  # (rows,) per-sample (1 - p)-quantile
    sample_channel_min: np.ndarray | None = None  # (samples, C) per-channel minimum of each sample
    sample_channel_max: np.ndarray | None = None  # (samples, C) per-channel maximum of each sample
    kept: np.ndarray | None = None  # (rows, C) the first samples' values, channel axis last
    whole: list[np.ndarray] | None = None  # the first samples' tensors as the model computed them (whole_samples)
    mean_weight: float | None = None  # Σ over samples of the tensor's element count: channel_mean's weight in a merge
    sample_means: np.ndarray | None = None  # (samples, C) float32 per-sample channel means (keep_sample_means only)
    sample_weights: np.ndarray | None = None  # (samples,) float64 element count of each sample's mean
    sample_mean: np.ndarray | None = None  # (samples, C) float32 per-channel mean of each sample (wc_channel_axis)
    sample_tokens: np.ndarray | None = None  # (samples,) elements per channel of each sample (wc_channel_axis)
    sample_scalars: dict[str, np.ndarray] = field(default_factory=dict)  # WC_SCALARS name -> (samples,) float64


@dataclass
class CollectionReport:
    """What one statistics pass did."""

    samples: int = 0
    observed: int = 0
    seconds_compile: float = 0.0
    seconds_infer: float = 0.0
    requests: int = 0
    static_shapes: tuple[tuple[int, ...], ...] | None = None  # input shapes the first model was compiled for
    models: int = 0  # instrumented models compiled (a shape change or the rows fallback adds one)
    folded_conv_weights: int = 0  # int8 convolution weight decompressions folded to f32 (see .conv_decompression)


@dataclass
class _Slots:
    """Where one observation's results are in the instrumented model's outputs."""

    outputs: dict[str, int] = field(default_factory=dict)  # role -> output index (whole tensors: raw, kept)
    packed: dict[str, tuple[str, int]] = field(default_factory=dict)  # role -> ("flat" | "rows", piece)
    shape: tuple[int, ...] | None = None  # static shape of the tensor whose mean is taken
    shape_at: int | None = None  # or: offset of its runtime shape in the packed shapes
    shape_rank: int = 0


@dataclass
class _Packing:
    """The outputs every reduction is packed into, so that a completed request hands back
    a few tensors instead of one per reduction (about 250 on EfficientNet-Lite0, each
    costing a fetch, a copy and a finiteness check in the callback).

    ``flat``: the reductions of static size (and any of dynamic size), flattened and
    concatenated. ``rows``: the per-sample scalars over a dynamic batch (``[N]`` each),
    side by side as ``[N, P]``. ``index`` (i64): the element counts of the dynamic-size
    flat pieces, then the runtime shapes of the dynamic-shape tensors whose means are
    taken; static sizes and shapes are known when the model is built and cost nothing.
    """

    flat: int | None = None  # output indices, None when empty
    rows: int | None = None
    index: int | None = None
    model_outputs: int = 0  # output index of the model's own first output
    static_sizes: list[int | None] = field(default_factory=list)  # per flat piece; None: dynamic
    _bounds: list[int] | None = field(default=None, repr=False)

    def split(self, request: Any) -> tuple[np.ndarray, _Pieces, np.ndarray | None, np.ndarray | None]:
        """(the flat vector, views of its pieces, the ``[N, P]`` rows, the index) of a
        completed request.

        Raises:
            _NonFinite: a packed value is NaN or Inf.
        """
        index = None if self.index is None else np.array(request.get_output_tensor(self.index).data).reshape(-1)
        rows = None if self.rows is None else np.array(request.get_output_tensor(self.rows).data)
        values = np.empty(0, np.float32)
        pieces = _Pieces(values, [0])
        if self.flat is not None:
            values = np.array(request.get_output_tensor(self.flat).data).reshape(-1)
            if self.bounds is not None:
                bounds = self.bounds
            else:
                dynamic = iter(index if index is not None else ())
                sizes = [n if n is not None else int(next(dynamic)) for n in self.static_sizes]
                bounds = [0, *np.cumsum(sizes).tolist()]
            pieces = _Pieces(values, bounds)
            if not np.all(np.isfinite(values)):
                raise _NonFinite(pieces, rows)
        if rows is not None and not np.all(np.isfinite(rows)):
            raise _NonFinite(pieces, rows)
        return values, pieces, rows, index

    @property
    def bounds(self) -> list[int] | None:
        """Piece boundaries in the flat vector when every size is static (else None)."""
        if self._bounds is None and self.static_sizes and all(n is not None for n in self.static_sizes):
            self._bounds = [0, *np.cumsum(self.static_sizes).tolist()]
        return self._bounds

    @property
    def dynamic_sizes(self) -> int:
        return sum(n is None for n in self.static_sizes)


class _Pieces:
    """The flat pack's pieces as views, made when asked for (most are never needed
    one by one: :class:`_PackedFold` reads its columns straight from the vector)."""

    def __init__(self, values: np.ndarray, bounds: Sequence[int]) -> None:
        self.values, self.bounds = values, bounds

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.bounds[i]:self.bounds[i + 1]]

    def __len__(self) -> int:
        return len(self.bounds) - 1


class _NonFinite(Exception):
    """A packed reduction holds NaN or Inf (the callback names the observation)."""

    def __init__(self, pieces: _Pieces, rows: np.ndarray | None) -> None:
        super().__init__("non-finite statistics")
        self.pieces, self.rows = pieces, rows

    def bad(self, where: tuple[str, int]) -> bool:
        kind, i = where
        if kind == "rows":
            return self.rows is not None and not np.all(np.isfinite(self.rows[:, i]))
        return i < len(self.pieces) and not np.all(np.isfinite(self.pieces[i]))


class _Packer:
    """Collects the reductions of :func:`instrument` into the outputs of :class:`_Packing`."""

    def __init__(self, *, rows: bool = True) -> None:
        import openvino.opset13 as ops

        self.ops = ops
        self.use_rows = rows
        self.flat: list[Any] = []
        self.static_sizes: list[int | None] = []
        self.dynamic_sizes: list[Any] = []  # [1] i64 element counts of dynamic flat pieces
        self.rows: list[Any] = []  # [N, 1] pieces
        self.shapes: list[Any] = []  # ShapeOf of dynamic-shape mean tensors
        self.shapes_len = 0

    def reduction(self, node: Any, *, per_sample: bool) -> tuple[str, int]:
        """Pack the f32 reduction ``node``; where it will be. ``per_sample``: ``node`` keeps
        only the batch axis, so every such node of one inference has the same length."""
        import openvino as ov

        ops = self.ops
        if node.get_output_element_type(0) != ov.Type.f32:
            node = ops.convert(node, "f32")
        ps = node.get_output_partial_shape(0)
        if self.use_rows and per_sample and not ps.is_static and ps.rank.is_static and ps.rank.get_length() == 1:
            self.rows.append(ops.unsqueeze(node, ops.constant(np.array([1], np.int64))))
            return "rows", len(self.rows) - 1
        piece = ops.reshape(node, ops.constant(np.array([-1], np.int64)), special_zero=False)
        self.flat.append(piece)
        if ps.is_static:
            self.static_sizes.append(int(np.prod(ps.to_shape(), dtype=np.int64)))
        else:
            self.static_sizes.append(None)
            self.dynamic_sizes.append(ops.reduce_prod(ops.shape_of(piece), ops.constant(np.array([0], np.int64)),
                                                      keep_dims=True))
        return "flat", len(self.flat) - 1

    def shape(self, x: Any, slot: _Slots) -> None:
        """Record ``x``'s shape on ``slot``: static now, or from the packed index at run time."""
        ps = x.get_partial_shape()
        if ps.is_static:
            slot.shape = tuple(int(d) for d in ps.to_shape())
            return
        slot.shape_at, slot.shape_rank = self.shapes_len, ps.rank.get_length()
        self.shapes.append(self.ops.shape_of(x))
        self.shapes_len += slot.shape_rank

    def finish(self, results: list[Any]) -> _Packing:
        """Append the packed Results to ``results``; their description."""
        ops = self.ops
        packing = _Packing(static_sizes=list(self.static_sizes))
        for attr, parts, axis in (("flat", self.flat, 0), ("rows", self.rows, 1),
                                  ("index", self.dynamic_sizes + self.shapes, 0)):
            if not parts:
                continue
            res = ops.result(ops.concat(parts, axis) if len(parts) > 1 else parts[0])
            res.set_friendly_name(f"__ovq_stat/packed/{attr}")
            setattr(packing, attr, len(results))
            results.append(res)
        return packing


class _PackedFold:
    """Every observation whose reductions sit at static offsets of the flat pack (or in
    the rows pack), handled for all of them at once per sample: per-channel min/max and
    means folded with a handful of numpy operations, per-sample values kept as one
    gathered vector and the rows block, instead of a loop over the observations (110
    on EfficientNet-Lite0) in every callback.

    Same arithmetic and order as the per-observation path (:class:`_Running` and
    :func:`_gather`: float32 min/max; float64 ``weight · mean`` and weights summed in
    sample order; per-sample rows in sample order), so results are bit-identical.
    Callers hold the lock.
    """

    def __init__(self, slots: Sequence[_Slots], packing: _Packing, keep_means: bool = False) -> None:
        self.handled: set[int] = set()  # observations this fold takes entirely
        self.running: dict[int, dict[str, slice]] = {}  # observation -> running role -> span of its columns
        self.sampled: dict[int, dict[str, tuple[str, Any]]] = {}  # -> per-sample role -> ("flat", span) | ("rows", j)
        self.mean_ordinal: dict[int, int] = {}  # observation -> index among the folded means
        self.shapes: list[tuple[int, ...] | None] = []  # per folded mean: the first sample's shape
        self.dynamic: list[tuple[int, int, int]] = []  # (mean ordinal, layout offset, rank)
        self.cmin = self.cmax = self.mean_sum = self.weight = None
        self.pending: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
        self.samples: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        self.keep_means = keep_means
        self.mean_rows: list[tuple[np.ndarray, np.ndarray]] = []  # (means, weights) per sample, in order
        self.next = 0
        if packing.flat is None and packing.rows is None:
            return
        offsets = packing.bounds if packing.flat is not None else [0]
        if offsets is None:
            return  # piece offsets vary per sample: the per-observation path takes everything
        cols: dict[str, list[np.ndarray]] = {"cmin": [], "cmax": [], "mean": [], "sample": []}
        static_w: list[float] = []
        mean_sizes: list[int] = []

        def take(group: str, at: int) -> slice:
            start, stop = offsets[at], offsets[at + 1]
            used = sum(c.size for c in cols[group])
            cols[group].append(np.arange(start, stop))
            return slice(used, used + stop - start)

        for k, sl in enumerate(slots):
            if not sl.packed:
                continue
            running, sampled = {}, {}
            for role, (kind, at) in sl.packed.items():
                if kind == "rows":
                    sampled[role] = ("rows", at)
                elif role in RUNNING_ROLES:
                    running[role] = take(role, at)
                else:
                    sampled[role] = ("flat", take("sample", at))
            if "mean" in running:
                self.mean_ordinal[k] = len(mean_sizes)
                mean_sizes.append(running["mean"].stop - running["mean"].start)
                if sl.shape is not None:
                    static_w.append(float(np.prod(sl.shape)))
                else:
                    self.dynamic.append((len(static_w), packing.dynamic_sizes + sl.shape_at, sl.shape_rank))
                    static_w.append(0.0)
                self.shapes.append(sl.shape)
            self.handled.add(k)
            if running:
                self.running[k] = running
            if sampled:
                self.sampled[k] = sampled
        self.cols = {g: (np.concatenate(c) if c else np.empty(0, np.int64)) for g, c in cols.items()}
        self.static_w = np.array(static_w, np.float64)
        self.col_mean = np.repeat(np.arange(len(mean_sizes)), mean_sizes)
        self.dyn_means = np.array([m for m, _at, _r in self.dynamic], np.int64)
        self.dyn_positions = np.array([at + i for _m, at, r in self.dynamic for i in range(r)], np.int64)
        self.dyn_starts = np.cumsum([0] + [r for _m, _at, r in self.dynamic])[:-1].astype(np.int64)
        self.stacked: tuple[np.ndarray | None, np.ndarray | None] | None = None

    def add(self, index: int, values: np.ndarray, rows: np.ndarray | None, layout: np.ndarray | None) -> None:
        """Take sample ``index``: its flat pack ``values``, ``rows`` block and index ``layout``
        (``values`` and ``rows`` are fresh copies of the outputs; ``rows`` is kept)."""
        if not self.handled:
            return
        if self.sampled:
            self.samples[index] = (values[self.cols["sample"]], rows)
        if self.cols["cmax"].size:
            v = values[self.cols["cmax"]]
            self.cmax = v if self.cmax is None else np.maximum(self.cmax, v)
        if self.cols["cmin"].size:
            v = values[self.cols["cmin"]]
            self.cmin = v if self.cmin is None else np.minimum(self.cmin, v)
        if not self.col_mean.size:
            return
        w = self.static_w
        if self.dynamic:
            w = w.copy()
            w[self.dyn_means] = np.multiply.reduceat(layout[self.dyn_positions], self.dyn_starts)
        self.pending[index] = (values[self.cols["mean"]], w, layout if index == 0 else None)
        while self.next in self.pending:
            means, w, first_layout = self.pending.pop(self.next)
            term = w[self.col_mean] * means.astype(np.float64)
            self.mean_sum = term if self.mean_sum is None else self.mean_sum + term
            self.weight = w.copy() if self.weight is None else self.weight + w
            if self.keep_means:
                self.mean_rows.append((means, w))
            if first_layout is not None:
                for m, at, rank in self.dynamic:
                    self.shapes[m] = tuple(int(d) for d in first_layout[at:at + rank])
            self.next += 1

    def fill(self, k: int, st: TensorStats, count: int) -> None:
        """Set observation ``k``'s statistics on ``st`` (handled observations only)."""
        if k not in self.handled:
            return
        spans = self.running.get(k, {})
        if "cmax" in spans:
            st.channel_max = self.cmax[spans["cmax"]].astype(np.float64)
            st.channel_min = (self.cmin[spans["cmin"]].astype(np.float64) if "cmin" in spans
                              else np.zeros_like(st.channel_max))
        if "mean" in spans and self.mean_sum is not None:
            m = self.mean_ordinal[k]
            st.channel_mean = self.mean_sum[spans["mean"]] / self.weight[m]
            st.mean_weight = float(self.weight[m])
            st.shape = self.shapes[m]
            if self.keep_means:
                st.sample_means = np.stack([v[spans["mean"]] for v, _w in self.mean_rows])
                st.sample_weights = np.array([w[m] for _v, w in self.mean_rows], np.float64)
        sampled = self.sampled.get(k)
        if not sampled:
            return
        if self.stacked is None:
            order = [self.samples[i] for i in range(count)]
            flat = np.stack([v for v, _r in order]) if self.cols["sample"].size else None
            rows = np.concatenate([r for _v, r in order]) if order[0][1] is not None else None
            self.stacked = (flat, rows)
        flat, rows = self.stacked

        def values(role: str) -> np.ndarray:
            kind, where = sampled[role]
            return rows[:, where] if kind == "rows" else flat[:, where]

        if "max" in sampled:
            st.maxs = values("max").reshape(-1).astype(np.float64)
            st.mins = values("min").reshape(-1).astype(np.float64) if "min" in sampled else np.zeros_like(st.maxs)
        if "scmax" in sampled:
            st.sample_channel_min = values("scmin").astype(np.float64)
            st.sample_channel_max = values("scmax").astype(np.float64)
        _fill_wc(st, {role: values(role) for role in sampled})


def _fill_wc(st: TensorStats, got: dict[str, np.ndarray]) -> None:
    """Set the weight-compression statistics on ``st`` from ``(samples, n)`` role arrays."""
    if "smean" in got:
        st.sample_mean = np.ascontiguousarray(got["smean"], np.float32)
        st.sample_tokens = got["stokens"].reshape(-1).astype(np.float64)
    for name in WC_SCALARS:
        if name in got:
            st.sample_scalars[name] = got[name].reshape(-1).astype(np.float64)


class _Running:
    """The running aggregates of one statistics pass, one slot per observation.

    Per-channel minima and maxima are folded as results arrive, in any order (min and
    max commute). Per-channel means are folded in sample order: a result that arrives
    early waits in ``pending`` until its predecessors are in, so the weighted sum makes
    the same float64 additions in the same order as summing the stacked per-sample rows
    along the sample axis (bit-identical for two or more channels; numpy sums a single
    column pairwise, which can differ in the last bit). Callers hold the lock.
    """

    def __init__(self, count: int, keep_means: bool = False) -> None:
        self.keep_means = keep_means
        self.mean_rows: list[list[tuple[np.ndarray, float]]] = [[] for _ in range(count)]  # (mean, weight) in order
        self.cmin: list[np.ndarray | None] = [None] * count
        self.cmax: list[np.ndarray | None] = [None] * count
        self.mean_sum: list[np.ndarray | None] = [None] * count  # Σ weight · mean, in sample order
        self.weight = [0.0] * count  # Σ weight (elements per channel of each inference)
        self.shape: list[tuple[int, ...] | None] = [None] * count  # shape of sample 0
        self.pending: dict[int, list[tuple[np.ndarray, np.ndarray] | None]] = {}
        self.next = 0  # first sample whose means are not folded yet

    def add(self, index: int, values: list[dict[str, np.ndarray]]) -> None:
        """Fold sample ``index``'s running roles (``values[k]`` for observation ``k``)."""
        means: list[tuple[np.ndarray, np.ndarray] | None] = []
        for k, got in enumerate(values):
            if "cmax" in got:
                cmax = got["cmax"].reshape(-1)
                prev = self.cmax[k]
                self.cmax[k] = cmax if prev is None else np.maximum(prev, cmax)
            if "cmin" in got:
                cmin = got["cmin"].reshape(-1)
                prev = self.cmin[k]
                self.cmin[k] = cmin if prev is None else np.minimum(prev, cmin)
            means.append((got["mean"], got["shape"]) if "mean" in got else None)
        self.pending[index] = means
        while self.next in self.pending:
            for k, item in enumerate(self.pending.pop(self.next)):
                if item is None:
                    continue
                mean, shape = item
                weight = float(np.prod(shape))
                term = weight * mean.reshape(-1).astype(np.float64)
                prev = self.mean_sum[k]
                self.mean_sum[k] = term if prev is None else prev + term
                self.weight[k] += weight
                if self.keep_means:
                    self.mean_rows[k].append((mean.reshape(-1).copy(), weight))  # a view would pin the pack
                if self.shape[k] is None:
                    self.shape[k] = tuple(int(d) for d in shape)
            self.next += 1

    def fill(self, k: int, st: TensorStats) -> None:
        """Set observation ``k``'s per-channel min/max and mean on ``st``."""
        cmax, cmin, mean_sum = self.cmax[k], self.cmin[k], self.mean_sum[k]
        if cmax is not None:
            st.channel_max = cmax.astype(np.float64)
            st.channel_min = cmin.astype(np.float64) if cmin is not None else np.zeros_like(st.channel_max)
        if mean_sum is not None:
            st.channel_mean = mean_sum / self.weight[k]
            st.mean_weight = float(self.weight[k])
            st.shape = self.shape[k]
            if self.keep_means:
                st.sample_means = np.stack([m for m, _w in self.mean_rows[k]])
                st.sample_weights = np.array([w for _m, w in self.mean_rows[k]], np.float64)


def _ops_by_name(model: Any) -> dict[str, Any]:
    return {op.get_friendly_name(): op for op in model.get_ops()}


def _other_axes(x: Any, axis: int, op_name: str, out_index: int) -> Any:
    """A Const of every axis of ``x`` but ``axis`` (the rank must be static)."""
    import openvino.opset13 as ops

    rank = x.get_partial_shape().rank
    if rank.is_dynamic:
        raise ObservationError(f"calibration: output {out_index} of {op_name!r} has a dynamic rank")
    r = rank.get_length()
    return ops.constant(np.array([a for a in range(r) if a != axis % r], np.int64))


def _strided(x: Any, stride: int) -> Any:
    """``x[:, :, ::stride, ::stride, ...]`` (``x`` itself for stride 1 or rank < 3)."""
    import openvino.opset13 as ops

    r = x.get_partial_shape().rank.get_length()
    if stride == 1 or r < 3:
        return x
    steps = np.array([1, 1] + [stride] * (r - 2), np.int64)
    return ops.slice(x, ops.constant(np.zeros(r, np.int64)), ops.constant(np.full(r, np.iinfo(np.int64).max)),
                     ops.constant(steps))


def instrument(model: Any, observations: Sequence[Observation], *,
               rows: bool = True) -> tuple[Any, list[_Slots], _Packing]:
    """A new ``openvino.Model``: the reductions per observation (packed, see
    :class:`_Packing`), the whole tensors some roles need, then ``model``'s own results
    (from output :attr:`_Packing.model_outputs` on). ``rows=False`` packs per-sample
    values over a dynamic batch as dynamic-size flat pieces instead (for models whose
    observed tensors do not all share the first dimension).

    The packs come first and their pieces in topological order of the observed ops: the
    CPU plugin orders execution depth-first from the Results, so each reduction then runs
    right after the op it reads, while the tensor is still in cache and before its buffer
    is reused. Packs after the model's own Results would put every reduction after the
    whole network, keeping all the observed tensors alive and reading them back from
    memory.
    """
    import openvino as ov
    import openvino.opset13 as ops

    by_name = _ops_by_name(model)
    position = {op.get_friendly_name(): k for k, op in enumerate(model.get_ordered_ops())}
    extras: list[Any] = []  # whole-tensor outputs
    slots: list[_Slots] = [_Slots() for _ in observations]
    packer = _Packer(rows=rows)
    flat_shape = ops.constant(np.array([0, -1], np.int64))
    whole_shape = ops.constant(np.array([1, -1], np.int64))
    axis1 = ops.constant(np.array([1], np.int64))
    for k in sorted(range(len(observations)), key=lambda k: position.get(observations[k].op_name, -1)):
        obs = observations[k]
        op = by_name.get(obs.op_name)
        if op is None:
            raise ObservationError(f"calibration: no op named {obs.op_name!r} in the model")
        if obs.out_index >= op.get_output_size():
            raise ObservationError(f"calibration: op {obs.op_name!r} has no output {obs.out_index}")
        x = op.output(obs.out_index)
        s = slots[k]
        stem = f"__ovq_stat/{obs.op_name}/{obs.out_index}"

        def add(role: str, node: Any) -> None:
            if role in CHECKED_ROLES:  # a reduction: packed
                s.packed[role] = packer.reduction(node, per_sample=role in ("min", "max"))
                return
            res = ops.result(node)
            res.set_friendly_name(f"{stem}/{role}")
            s.outputs[role] = len(extras)
            extras.append(res)

        if obs.channel_axis is not None:
            axes = _other_axes(x, obs.channel_axis, obs.op_name, obs.out_index)
            if not obs.nonnegative:
                add("cmin", ops.reduce_min(x, axes, keep_dims=False))
            add("cmax", ops.reduce_max(x, axes, keep_dims=False))
        elif obs.minmax or obs.quantile is not None:
            flat = ops.reshape(x, flat_shape if obs.batch_axis else whole_shape, special_zero=True)
            if obs.minmax:
                # reduce the tensor as it is (a Reshape to [N, -1] would make the CPU
                # plugin reorder a blocked conv output into a planar copy first)
                rank = x.get_partial_shape().rank
                data, axes = flat, axis1
                if obs.batch_axis and rank.is_static and rank.get_length() >= 2:
                    data, axes = x, ops.constant(np.arange(1, rank.get_length(), dtype=np.int64))
                if not obs.nonnegative:
                    add("min", ops.reduce_min(data, axes, keep_dims=False))
                add("max", ops.reduce_max(data, axes, keep_dims=False))
            if obs.quantile is not None:
                add("raw", flat)
        if obs.sample_channel_axis is not None:
            axes = _other_axes(x, obs.sample_channel_axis, obs.op_name, obs.out_index)
            add("scmin", ops.reduce_min(x, axes, keep_dims=False))
            add("scmax", ops.reduce_max(x, axes, keep_dims=False))
            if obs.keep_samples:
                add("kept", x)
        if obs.whole_samples:
            add("whole", x)
        if obs.mean_axis is not None:
            axes = _other_axes(x, obs.mean_axis, obs.op_name, obs.out_index)
            add("mean", ops.reduce_mean(_strided(x, obs.mean_stride), axes, keep_dims=False))
            packer.shape(x, s)
        if obs.wc_channel_axis is not None:
            axes = _other_axes(x, obs.wc_channel_axis, obs.op_name, obs.out_index)
            add("smean", ops.reduce_mean(x, axes, keep_dims=False))
            dims = ops.gather(ops.shape_of(x), axes, ops.constant(np.array(0, np.int64)))
            add("stokens", ops.reduce_prod(dims, ops.constant(np.array([0], np.int64)), keep_dims=False))
        for name, node in _wc_scalars(x, obs).items():
            add(name, node)
    packs: list[Any] = []
    packing = packer.finish(packs)
    for s in slots:
        s.outputs = {role: len(packs) + j for role, j in s.outputs.items()}
    packing.model_outputs = len(packs) + len(extras)
    results = packs + extras + list(model.get_results())
    # the Assign sinks stay: without them a ReadValue has no sibling and the model does not compile
    return ov.Model(results, model.get_sinks(), model.get_parameters(), "ovq_statistics"), slots, packing


def _wc_scalars(x: Any, obs: Observation) -> dict[str, Any]:
    """The in-graph reductions of ``obs.wc_scalars`` on ``x`` (see :data:`WC_SCALARS`)."""
    import openvino.opset13 as ops

    if not obs.wc_scalars:
        return {}
    unknown = set(obs.wc_scalars) - set(WC_SCALARS)
    if unknown:
        raise ObservationError(f"calibration: unknown weight-compression statistics {sorted(unknown)}")
    rank = x.get_partial_shape().rank
    if rank.is_dynamic or rank.get_length() < 2:
        raise ObservationError(f"calibration: output {obs.out_index} of {obs.op_name!r} needs a static rank >= 2 "
                               "for data-aware weight compression statistics (axis -2 is the tokens)")
    r = rank.get_length()
    tokens = ops.constant(np.array([r - 2], np.int64))
    rest = ops.constant(np.arange(r - 1, dtype=np.int64))
    out: dict[str, Any] = {}
    if "var_mean" in obs.wc_scalars or "var_max" in obs.wc_scalars:
        d = ops.subtract(x, ops.reduce_mean(x, tokens, keep_dims=True))
        var = ops.reduce_mean(ops.multiply(d, d), tokens, keep_dims=False)
        if "var_mean" in obs.wc_scalars:
            out["var_mean"] = ops.reduce_mean(var, rest, keep_dims=False)
        if "var_max" in obs.wc_scalars:
            out["var_max"] = ops.reduce_max(var, rest, keep_dims=False)
    if "absmax_mean" in obs.wc_scalars:
        out["absmax_mean"] = ops.reduce_mean(ops.reduce_max(ops.abs(x), tokens, keep_dims=False), rest,
                                             keep_dims=False)
    if "sq_mean" in obs.wc_scalars:
        out["sq_mean"] = ops.reduce_mean(ops.multiply(x, x), ops.constant(np.arange(r, dtype=np.int64)),
                                         keep_dims=False)
    return out


def _progress_bar(total: int | None, enabled: bool | None, desc: str):
    from tqdm.auto import tqdm

    disable = (not sys.stderr.isatty() or os.environ.get("OVQ_NO_PROGRESS")) if enabled is None else not enabled
    return tqdm(total=total, desc=desc, unit="sample", disable=bool(disable), leave=False)


def collect_statistics(
    model: Any,
    observations: Sequence[Observation],
    samples: Subset,
    *,
    progress: bool | None = None,
    requests: int | None = None,
    on_sample: Callable[[int], None] | None = None,
    specialize: bool = True,
    keep_sample_means: bool = False,
) -> tuple[dict[Hashable, TensorStats], CollectionReport]:
    """Run ``samples`` through ``model`` once and reduce every observed tensor.

    Args:
        model: The FP ``openvino.Model`` (not modified).
        observations: Tensors to observe and how.
        samples: The chosen calibration samples (see :func:`select_subset`).
        progress: Show a progress bar (``None``: only on a terminal, unless
            ``OVQ_NO_PROGRESS`` is set).
        requests: Infer requests in flight (default: one more than OpenVINO's optimal
            number, so a stream need not idle while a finished request is handed back;
            bench/quantize.py runs its plain FP32 pass the same way).
        specialize: When the model has dynamic input dims, compile the instrumented
            model for the first sample's input shapes (a static copy: no per-inference
            shape inference, static pack offsets); the first sample of another shape
            switches the rest of the pass to the dynamic model, and the two parts'
            statistics are merged.
        keep_sample_means: Also keep every sample's per-channel means
            (:attr:`TensorStats.sample_means` and ``sample_weights``), so that statistics
            of consecutive slices can be merged bit for bit (:mod:`.shards`).

    Raises:
        CalibrationDataError: no samples, or a sample does not fit the model.
        NonFiniteError: an observed tensor holds NaN or Inf.
        InferenceError: OpenVINO cannot compile or run the instrumented model.
        ObservationError: an observed op or output is not in the model, or a
            per-channel statistic is asked of a tensor of dynamic rank.
    """
    import time

    from ovq.kernels import get_kernels

    report = CollectionReport(observed=len(observations))
    spec = InputSpec(model)
    shared = _Shared(observations, get_kernels(), [k for k, out in enumerate(model.outputs)
                                                   if out.get_element_type().is_real()], keep_means=keep_sample_means)
    dynamic_inputs = any(not port.get_partial_shape().is_static for port in model.inputs)
    observations = _with_batch_axes(model, observations)
    passes: list[_Pass] = []
    current: _Pass | None = None
    bar = _progress_bar(samples.count, progress, "calibration")
    t0 = time.perf_counter()
    count = 0
    try:
        for index, sample in enumerate(samples):
            if shared.errors:
                break
            arrays = spec.arrays(sample, index)
            shapes = tuple(a.shape for a in arrays)
            if current is None or (current.shapes is not None and shapes != current.shapes):
                if current is not None:
                    current.finish()
                static = shapes if specialize and dynamic_inputs and current is None else None
                try:
                    current = _Pass(model, observations, shared, index, static, requests, report)
                except (InferenceError, ObservationError):  # the static copy cannot be built
                    if static is None:
                        raise
                    current = _Pass(model, observations, shared, index, None, requests, report)
                passes.append(current)
            current.submit(arrays, index)
            count += 1
            bar.update(1)
            if on_sample is not None:
                on_sample(index)
    finally:
        for p in passes:
            p.finish()
        bar.close()
    report.seconds_infer = time.perf_counter() - t0 - report.seconds_compile
    if shared.errors:
        raise shared.errors[0]
    if shared.bad_inputs:
        index, arrays = min(shared.bad_inputs, key=lambda b: b[0])
        _locate_non_finite(model, observations, index, arrays)
    if count == 0:
        raise CalibrationDataError("the calibration dataset is empty")
    report.samples = count
    bounds = [p.base for p in passes] + [count]
    parts = [p.gather(bounds[i + 1] - p.base) for i, p in enumerate(passes)]
    return (parts[0] if len(parts) == 1 else _merge(observations, parts)), report


def _with_batch_axes(model: Any, observations: Sequence[Observation]) -> list[Observation]:
    """``observations`` with :attr:`Observation.batch_axis` set from ``model`` as given:
    dim 0 of an observed tensor is a batch when it is dynamic (or 1); a 0-d tensor has none. A static first dim
    above 1 (``[3, 5]`` into a MatMul) is part of one sample: its per-sample statistics
    then cover the whole tensor of each inference, as NNCF's do."""
    from dataclasses import replace

    by_name = _ops_by_name(model)
    out = []
    for obs in observations:
        op = by_name.get(obs.op_name)
        batch = True
        if op is not None and obs.out_index < op.get_output_size():
            ps = op.get_output_partial_shape(obs.out_index)
            # a 0-d tensor has no batch axis: reduced whole per inference
            batch = ps.rank.is_dynamic or (ps.rank.get_length() > 0 and (ps[0].is_dynamic or ps[0].get_length() == 1))
        out.append(obs if batch == obs.batch_axis else replace(obs, batch_axis=batch))
    return out


@dataclass
class _Shared:
    """What every :class:`_Pass` of one :func:`collect_statistics` call shares."""

    observations: Sequence[Observation]
    kernels: Any
    float_outputs: list[int]  # the model's own real-valued outputs (checked for NaN/Inf)
    errors: list[BaseException] = field(default_factory=list)  # raised in callbacks, re-raised by the caller
    bad_inputs: list[tuple[int, list[np.ndarray]]] = field(default_factory=list)  # (sample, inputs) with NaN outputs
    lock: threading.Lock = field(default_factory=threading.Lock)
    keep_means: bool = False  # keep every sample's channel means (TensorStats.sample_means)


class _Pass:
    """One compiled instrumented model with its queue and folds, fed the samples from
    ``base`` on (their indices rebased to 0 in the folds).

    ``static``: the input shapes to compile for (a reshaped copy of ``model``), or
    None for ``model`` as it is. With a rows pack (dynamic batch), the first sample
    runs alone: if the per-sample rows of tensors with different first dims cannot be
    stacked (dynamic shapes hide that until run time), the model is rebuilt without it.
    """

    def __init__(self, model: Any, observations: Sequence[Observation], shared: _Shared, base: int,
                 static: tuple[tuple[int, ...], ...] | None, requests: int | None, report: CollectionReport) -> None:
        self.model, self.observations, self.shared, self.base = model, observations, shared, base
        self.requests, self.report = requests, report
        self.shapes = None
        if static is not None:
            fixed = _reshaped(model, static)
            if fixed is not None:
                self.model, self.shapes = fixed, static
        # int8 convolution weights computed in each stream's graph sometimes run with the
        # wrong weights under THROUGHPUT (an OpenVINO CPU bug): fold them to f32 constants
        self.model, folded = fold_conv_weight_decompression(self.model)
        report.folded_conv_weights = max(report.folded_conv_weights, folded)
        self.queue: Any = None
        self.stateful = bool(model.get_sinks())
        self.per_sample: dict[int, list[dict[str, np.ndarray]]] = {}
        self._build(rows=True)
        if self.shapes is not None:
            report.static_shapes = self.shapes

    def _build(self, rows: bool) -> None:
        import time

        from ovq.ir.bridge import core

        t0 = time.perf_counter()
        inst, self.slots, self.packing = instrument(self.model, self.observations, rows=rows)
        try:
            self.compiled = core().compile_model(inst, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                               "PERFORMANCE_HINT": "THROUGHPUT"})
        except RuntimeError as exc:
            raise InferenceError(f"OpenVINO cannot compile the statistics model: {_first_line(exc)}") from None
        self.running = _Running(len(self.observations), self.shared.keep_means)
        self.packed_fold = _PackedFold(self.slots, self.packing, self.shared.keep_means)
        self.busy = [bool(s.outputs) or k not in self.packed_fold.handled for k, s in enumerate(self.slots)]
        self.uses_running = any(k not in self.packed_fold.handled and any(r in RUNNING_ROLES for r in s.packed)
                                for k, s in enumerate(self.slots))
        self.report.seconds_compile += time.perf_counter() - t0
        self.report.models += 1

    def submit(self, arrays: list[np.ndarray], index: int) -> None:
        """Start sample ``index`` (with a rows pack, the first one runs alone: see the class)."""
        if self.queue is None and self.packing.rows is None:
            self._open_queue()  # no rows pack that could fail: no need to run the first sample alone
        if self.queue is not None:
            try:
                self.queue.start_async(arrays, userdata=index)
            except RuntimeError as exc:
                raise InferenceError(f"OpenVINO cannot run the statistics model on calibration sample {index}: "
                               f"{_first_line(exc)}") from None
            return
        try:
            first = self.compiled.create_infer_request()
            first.infer(arrays)
        except RuntimeError as exc:
            if self.packing.rows is None:
                raise InferenceError(f"OpenVINO cannot run the statistics model on calibration sample {index}: "
                               f"{_first_line(exc)}") from None
            self._build(rows=False)
            first = self.compiled.create_infer_request()
            try:
                first.infer(arrays)
            except RuntimeError as again:
                raise InferenceError(f"OpenVINO cannot run the statistics model on calibration sample {index}: "
                               f"{_first_line(again)}") from None
        self.done(first, index)
        del first
        self._open_queue()

    def _open_queue(self) -> None:
        import openvino as ov

        jobs = self.requests or max(1, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))) + 1
        self.report.requests = max(self.report.requests, jobs)
        self.queue = ov.AsyncInferQueue(self.compiled, jobs)
        self.queue.set_callback(self.done)

    def finish(self) -> None:
        """Wait for the samples in flight; release the compiled model and its queue."""
        queue, self.queue, self.compiled, self.model = self.queue, None, None, None
        if queue is not None:
            try:
                queue.wait_all()
            except RuntimeError as exc:
                raise InferenceError(f"OpenVINO failed running the statistics model: {_first_line(exc)}") from None

    def done(self, request: Any, index: int) -> None:
        """Completion callback: check and fold the reductions of sample ``index``."""
        shared, slots, packing = self.shared, self.slots, self.packing
        try:
            # In-graph ReduceMin/ReduceMax skip NaN, so NaN is caught where it surfaces: in
            # a model output; _locate_non_finite then names the first observed tensor.
            first = packing.model_outputs
            if any(not np.all(np.isfinite(request.get_output_tensor(first + k).data)) for k in shared.float_outputs):
                with shared.lock:
                    shared.bad_inputs.append((index, [np.array(request.get_input_tensor(i).data)
                                                      for i in range(len(request.model_inputs))]))
                return
            try:
                values, pieces, rows, layout = packing.split(request)
            except _NonFinite as bad:
                _raise_non_finite(self.observations, slots, bad, index)
            row, folded = [], []
            for k, (obs, s) in enumerate(zip(self.observations, slots, strict=True)):
                if not self.busy[k]:
                    row.append(_NO_STATS)
                    folded.append(_NO_STATS)
                    continue
                got: dict[str, np.ndarray] = {}
                fold: dict[str, np.ndarray] = {}
                if k not in self.packed_fold.handled:
                    for role, (kind, at) in s.packed.items():
                        value = rows[:, at] if kind == "rows" else pieces[at]
                        if role in RUNNING_ROLES:
                            fold[role] = value
                        else:  # kept per sample: copied, as a view would keep the whole packed buffer alive
                            got[role] = value.copy()
                    if s.shape is not None:
                        fold["shape"] = np.array(s.shape, np.int64)
                    elif s.shape_at is not None:
                        start = packing.dynamic_sizes + s.shape_at
                        fold["shape"] = layout[start:start + s.shape_rank]
                for role, out in s.outputs.items():
                    data = request.get_output_tensor(out).data
                    if role == "kept":
                        if index < obs.keep_samples:
                            got[role] = np.moveaxis(np.array(data), obs.sample_channel_axis, -1)
                    elif role == "whole":
                        if index < obs.whole_samples:
                            got[role] = np.array(data, np.float32)
                    elif role == "raw":
                        p = obs.quantile
                        q = shared.kernels.quantile(data, [p, 1.0 - p], axis=0, name=obs.op_name)
                        got["q_low"], got["q_high"] = np.array(q[0]), np.array(q[1])
                row.append(got)
                folded.append(fold)
            local = index - self.base
            with shared.lock:
                self.per_sample[local] = row
                if self.uses_running:
                    self.running.add(local, folded)
                self.packed_fold.add(local, values, rows, layout)
        except BaseException as exc:  # re-raised on the calling thread
            with shared.lock:
                shared.errors.append(exc)
        finally:
            if self.stateful:  # every sample starts from the initial state (as NNCF's engine)
                request.reset_state()

    def gather(self, count: int) -> dict[Hashable, TensorStats]:
        """The statistics of this pass's ``count`` samples."""
        return _gather(self.observations, self.per_sample, (self.running, self.packed_fold), count)


_NO_STATS: dict[str, np.ndarray] = {}  # shared, never written: the row of an observation with nothing per sample


def _reshaped(model: Any, shapes: tuple[tuple[int, ...], ...]) -> Any:
    """A copy of ``model`` with static input ``shapes``, or None if OpenVINO cannot reshape it."""
    import openvino as ov

    fixed = model.clone()
    try:
        fixed.reshape({port: ov.PartialShape(list(shape)) for port, shape in zip(fixed.inputs, shapes, strict=True)})
    except (RuntimeError, ValueError):
        return None
    if any(not out.get_partial_shape().is_static for op in fixed.get_ops() for out in op.outputs()
           if out.get_element_type().is_real()):
        return None  # shapes that depend on data stay dynamic: nothing to gain
    return fixed


def concatenate_samples(stats: Sequence[TensorStats]) -> TensorStats:
    """The statistics of consecutive runs of samples (in order) joined: per-sample rows
    concatenated, per-channel extremes reduced. Channel means are left to the caller
    (they are combined by weight, which depends on how the runs were split)."""
    st = TensorStats(shape=stats[0].shape)

    def cat(name: str, stack: bool = False) -> Any:
        values = [getattr(s, name) for s in stats if getattr(s, name) is not None]
        return (np.vstack(values) if stack else np.concatenate(values)) if values else None

    st.mins, st.maxs, st.q_low, st.q_high, st.kept = (cat(n) for n in ("mins", "maxs", "q_low", "q_high", "kept"))
    st.sample_channel_min, st.sample_channel_max = cat("sample_channel_min", True), cat("sample_channel_max", True)
    whole = [w for s in stats for w in (s.whole or [])]
    st.whole = whole or None
    st.sample_mean, st.sample_tokens = cat("sample_mean", True), cat("sample_tokens")
    st.sample_scalars = {name: np.concatenate([s.sample_scalars[name] for s in stats])
                         for name in stats[0].sample_scalars}
    if stats[0].channel_max is not None:
        st.channel_max = np.maximum.reduce([s.channel_max for s in stats])
        st.channel_min = np.minimum.reduce([s.channel_min for s in stats])
    return st


def _merge(observations: Sequence[Observation], parts: Sequence[dict[Hashable, TensorStats]]) -> dict[Hashable, TensorStats]:
    """One :class:`TensorStats` per observation from consecutive runs of samples (in order)."""
    out: dict[Hashable, TensorStats] = {}
    for obs in observations:
        stats = [p[obs.key] for p in parts]
        st = concatenate_samples(stats)
        means = [s.sample_means for s in stats if s.sample_means is not None]
        if means:
            st.sample_means = np.vstack(means)
            st.sample_weights = np.concatenate([s.sample_weights for s in stats if s.sample_weights is not None])
        if stats[0].channel_mean is not None:
            weights = np.array([s.mean_weight for s in stats], np.float64)
            st.channel_mean = sum(w * s.channel_mean for w, s in zip(weights, stats, strict=True)) / weights.sum()
            st.mean_weight = float(weights.sum())
        out[obs.key] = st
    return out


def _raise_non_finite(observations: Sequence[Observation], slots: Sequence[_Slots], bad: _NonFinite,
                      index: int) -> None:
    """Raise :class:`NonFiniteError` for the first observation with a non-finite reduction."""
    for obs, s in zip(observations, slots, strict=True):
        if any(bad.bad(where) for where in s.packed.values()):
            raise NonFiniteError(f"{obs.op_name}:{obs.out_index}", _nan_hint(index))
    raise NonFiniteError("statistics", _nan_hint(index))


def _first_line(exc: BaseException) -> str:
    """The informative line of an OpenVINO error (not its ``Exception from <file>`` chain)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith("Exception from")]
    return (useful or lines or [type(exc).__name__])[0]


def _nan_hint(index: int) -> str:
    return f"on calibration sample {index} (check the input data, or exclude the op with ignored_scope)"


def _locate_non_finite(model: Any, observations: Sequence[Observation], index: int,
                       arrays: list[np.ndarray]) -> None:
    """Re-run sample ``index`` with every observed tensor as an output; raise for the first bad one."""
    import openvino as ov
    import openvino.opset13 as ops

    from ovq.ir.bridge import core

    by_name = _ops_by_name(model)
    order = {op.get_friendly_name(): k for k, op in enumerate(model.get_ordered_ops())}
    seen = sorted({(o.op_name, o.out_index) for o in observations}, key=lambda t: order.get(t[0], 0))
    results = [ops.result(by_name[name].output(out)) for name, out in seen]
    probe = ov.Model(results, model.get_sinks(), model.get_parameters(), "ovq_nan_probe")
    compiled = core().compile_model(probe, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    outs = compiled.create_infer_request().infer(arrays)
    for k, (name, out) in enumerate(seen):
        if not np.all(np.isfinite(outs[compiled.output(k)])):
            raise NonFiniteError(f"{name}:{out}", _nan_hint(index))
    raise NonFiniteError("model outputs", _nan_hint(index) + "; no observed tensor does")


def _gather(observations: Sequence[Observation], per_sample: dict[int, list[dict[str, np.ndarray]]],
            folds: tuple[_Running, _PackedFold], count: int) -> dict[Hashable, TensorStats]:
    """One :class:`TensorStats` per observation from the per-sample rows and running
    aggregates (``folds``: the per-observation ones and the packed ones)."""
    running, packed = folds
    out: dict[Hashable, TensorStats] = {}
    order = [per_sample[i] for i in range(count)]
    for k, obs in enumerate(observations):
        rows = [r[k] for r in order]
        st = TensorStats()
        if "max" in rows[0]:
            st.maxs = np.concatenate([r["max"].reshape(-1) for r in rows]).astype(np.float64)
            st.mins = (np.concatenate([r["min"].reshape(-1) for r in rows]).astype(np.float64) if "min" in rows[0]
                       else np.zeros_like(st.maxs))
        if "scmax" in rows[0]:
            st.sample_channel_min = np.stack([r["scmin"].reshape(-1) for r in rows]).astype(np.float64)
            st.sample_channel_max = np.stack([r["scmax"].reshape(-1) for r in rows]).astype(np.float64)
        kept = [r["kept"] for r in rows if "kept" in r]
        if kept:
            st.kept = np.concatenate([k.reshape(-1, k.shape[-1]) for k in kept])
        whole = [r["whole"] for r in rows if "whole" in r]
        if whole:
            st.whole = whole
        wc = [role for role in ("smean", "stokens", *WC_SCALARS) if role in rows[0]]
        if wc:
            _fill_wc(st, {role: np.stack([r[role].reshape(-1) for r in rows]) for role in wc})
        if "q_low" in rows[0]:
            st.q_low = np.concatenate([r["q_low"].reshape(-1) for r in rows]).astype(np.float64)
            st.q_high = np.concatenate([r["q_high"].reshape(-1) for r in rows]).astype(np.float64)
        running.fill(k, st)
        packed.fill(k, st, count)
        out[obs.key] = st
    return out
