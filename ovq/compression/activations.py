"""Activation statistics of the compressed MatMuls' inputs, in one streamed pass.

Matches what ``nncf.compress_weights`` 3.4 collects with a dataset: for every MatMul
whose weight is compressed, the tensor it multiplies (its input 0, channels on the last
axis, or on axis -2 with ``transpose_a``), observed once per distinct producer output
(q/k/v projections reading one tensor share one observation). Per calibration sample
(one inference, the first ``subset_size`` samples of the dataset as NNCF's aggregator
takes them):

* the per-channel mean over every other axis and the element count per channel (AWQ
  and scale estimation, NNCF's ``WCTensorStatistic``);
* with a data-aware ``sensitivity_metric`` and ``ratio < 1``, that metric's scalar
  (:data:`ovq.quantization.statistics.WC_SCALARS`).

Everything is reduced inside the model by :func:`ovq.quantization.statistics.collect_statistics`
(one compiled instrumented copy, async infer requests); only ``[C]`` vectors and scalars
come back per sample.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ovq.compression.layers import WeightSite
from ovq.compression.options import CompressionOptions, SensitivityMetric
from ovq.errors import CalibrationDataError
from ovq.ir import Graph

METRIC_SCALAR = {
    SensitivityMetric.HESSIAN_INPUT_ACTIVATION: "sq_mean",
    SensitivityMetric.MEAN_ACTIVATION_VARIANCE: "var_mean",
    SensitivityMetric.MAX_ACTIVATION_VARIANCE: "var_max",
    SensitivityMetric.MEAN_ACTIVATION_MAGNITUDE: "absmax_mean",
}
"""The per-sample statistic each data-aware metric averages over the samples."""


@dataclass
class LayerActivations:
    """Statistics of one MatMul input over the calibration samples.

    Attributes:
        mean: ``(samples, C)`` float32, each sample's per-channel mean (signed).
        tokens: ``(samples,)`` elements per channel of each sample.
        scalars: Per-sample metric scalars by :data:`WC_SCALARS` name.
        source: ``producer:output`` the statistics were taken on (for messages).
    """

    mean: np.ndarray
    tokens: np.ndarray
    scalars: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""

    def scaled(self, factor: np.ndarray) -> LayerActivations:
        """The statistics of ``x * factor`` (per channel): what AWQ's inserted scale leaves."""
        return LayerActivations((self.mean * factor.astype(np.float32)).astype(np.float32), self.tokens,
                                self.scalars, self.source)

    def process(self, subset_size: int) -> tuple[np.ndarray, np.ndarray]:
        """NNCF's ``process_stats``: ``(s, X)``.

        ``s`` ``(C,)``: the largest ``|mean|`` of each channel over all samples; ``X``
        ``(C, k)``: the means of at most about ``subset_size`` samples, taken every
        ``N // subset_size``-th in order of decreasing token count (all when
        ``N <= subset_size``).
        """
        x_full = self.mean.T
        n = x_full.shape[1]
        if n > subset_size > 0:
            step = n // subset_size
            order = sorted(range(n), key=lambda i: -self.tokens[i])
            x = x_full[:, order[::step]]
        else:
            x = x_full
        return np.max(np.abs(x_full), axis=1).astype(np.float32), np.ascontiguousarray(x, np.float32)


class _FirstSamples:
    """The first ``n`` items of a dataset, in order (NNCF's statistics aggregator takes these)."""

    def __init__(self, dataset: Any, n: int) -> None:
        self.dataset, self.n = dataset, n

    def __iter__(self):
        from ovq.quantization.dataset import Dataset

        if isinstance(self.dataset, Dataset):
            return itertools.islice(iter(self.dataset.get_inference_data(None)), self.n)
        return itertools.islice(iter(self.dataset), self.n)


def first_samples(dataset: Any, subset_size: int):
    """A :class:`~ovq.quantization.dataset.Subset` of the first ``subset_size`` samples.

    Raises:
        CalibrationDataError: ``dataset`` is not an iterable of samples, or is empty.
    """
    from collections.abc import Iterable, Mapping

    from ovq.quantization.dataset import Dataset, Subset, as_dataset

    data = as_dataset(dataset)
    if isinstance(data, (np.ndarray, Mapping, str, bytes)) or not isinstance(data, Iterable):
        raise CalibrationDataError(
            "dataset must be an iterable of samples (a list of arrays, tuples or dicts, or "
            f"ovq.Dataset / nncf.Dataset), got {type(dataset).__name__}")
    n = data.get_length() if isinstance(data, Dataset) else (len(data) if hasattr(data, "__len__") else None)
    if n == 0:
        raise CalibrationDataError("the compression dataset is empty")
    count = subset_size if n is None else min(n, subset_size)
    return Subset(_FirstSamples(data, count), None, None if n is None else count)


def activation_axis(graph: Graph, site: WeightSite) -> int:
    """Channel axis of ``site``'s MatMul input 0: -1, or -2 with ``transpose_a``."""
    return -2 if str(graph.op(site.op).attrs.get("transpose_a", "false")).lower() == "true" else -1


def collect_activations(graph: Graph, sites: list[WeightSite], opts: CompressionOptions, dataset: Any, *,
                        progress: bool | None = None) -> dict[int, LayerActivations]:
    """Statistics of the input of every MatMul in ``sites``, keyed by the weight's Const id.

    Raises:
        CalibrationDataError: the dataset is empty or a sample does not fit the model.
        NonFiniteError / InferenceError: from the statistics pass.
    """
    from ovq.quantization.statistics import Observation, collect_statistics

    scalar = METRIC_SCALAR.get(opts.sensitivity_metric) if opts.data_aware_ratio else None
    keys: dict[int, tuple[str, int, int]] = {}
    observations: dict[tuple[str, int, int], Observation] = {}
    for site in sites:
        if site.op_type != "MatMul":
            continue
        src = graph.producer(site.op, 0)
        if src is None:
            continue
        key = (graph.op(src[0]).name, src[1], activation_axis(graph, site))
        keys[site.const] = key
        if key not in observations:
            observations[key] = Observation(key, key[0], key[1], minmax=False, wc_channel_axis=key[2],
                                            wc_scalars=(scalar,) if scalar else ())
    if not observations:
        return {}
    samples = first_samples(dataset, opts.subset_size)
    stats, _ = collect_statistics(graph.to_ov(), list(observations.values()), samples, progress=progress)
    out = {}
    for const, key in keys.items():
        st = stats[key]
        out[const] = LayerActivations(st.sample_mean, st.sample_tokens, dict(st.sample_scalars), f"{key[0]}:{key[1]}")
    return out
