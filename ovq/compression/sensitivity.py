"""How layers are ranked for the primary precision when ``ratio < 1`` (NNCF 3.4's criteria).

The lowest score goes to the primary (4-bit) precision first. With ``e`` the per-row mean
squared error of per-channel INT8_ASYM quantization of the weight (a kernel) and the
metric's per-sample statistic averaged over the samples
(:data:`ovq.compression.activations.METRIC_SCALAR`):

* WEIGHT_QUANTIZATION_ERROR (data-free): ``1 / (max e + eps)``;
* MEAN_ACTIVATION_VARIANCE, MAX_ACTIVATION_VARIANCE, MEAN_ACTIVATION_MAGNITUDE:
  ``1 / (max e + eps)`` times the mean over samples of the variance along the tokens
  averaged (or maxed) over channels, or of ``max |x|`` over the tokens averaged over channels;
* HESSIAN_INPUT_ACTIVATION: the Frobenius norm of the INT8_ASYM error
  (``sqrt(Σ_rows e · C)``) times ``2 · mean over samples of Σx² / numel(x)``.

Data-aware metrics give embeddings (Gather) score 0, as NNCF.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ovq.compression.activations import METRIC_SCALAR, LayerActivations
from ovq.compression.layers import WeightSite
from ovq.compression.options import CompressionOptions, SensitivityMetric
from ovq.errors import OptionError

EPS = float(np.finfo(np.float32).eps)


def sensitivity(opts: CompressionOptions, row_errors: Callable[[WeightSite], np.ndarray],
                acts: dict[int, LayerActivations] | None) -> Callable[[WeightSite], float]:
    """The score function :func:`~ovq.compression.layers.select_precisions` ranks with.

    ``row_errors(site)``: the per-row INT8_ASYM MSE of the weight (float64 ``(R,)``).
    """
    metric = opts.sensitivity_metric
    if not opts.data_aware_ratio:
        return lambda site: 1.0 / (float(np.max(row_errors(site))) + EPS)
    key = METRIC_SCALAR[metric]

    def score(site: WeightSite) -> float:
        if site.op_type == "Gather":
            return 0.0
        a = (acts or {}).get(site.const)
        if a is None or key not in a.scalars:
            raise OptionError(f"{site.op_type} {site.op_name!r}: no activation statistics for "
                              f"sensitivity_metric={metric.value} (its input is not observable)")
        e = row_errors(site)
        if metric == SensitivityMetric.HESSIAN_INPUT_ACTIVATION:
            fro = float(np.sqrt(np.sum(e) * site.matrix[1]))
            return fro * 2.0 * float(np.mean(a.scalars[key]))
        return 1.0 / (float(np.max(e)) + EPS) * float(np.mean(a.scalars[key]))

    return score
